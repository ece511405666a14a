"""Download registry and ``adaptrack track download`` with a fake URL opener (no network)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from adaptrack.common.errors import DataError, MissingDataError
from adaptrack.track.cli import main
from adaptrack.track.data import downloads
from adaptrack.track.data.downloads import DATASETS, RemoteFile, fetch_file, read_sidecar, sidecar_path, verify_file


class FakeResponse(io.BytesIO):
    """A response with ``read`` and ``headers``, as ``urlopen`` returns."""

    def __init__(self, content: bytes, length: int | None = None) -> None:
        super().__init__(content)
        self.headers = {"Content-Length": str(len(content) if length is None else length)}


def serve(monkeypatch: pytest.MonkeyPatch, contents: dict[str, bytes], lengths: dict[str, int] | None = None,
          ) -> list[str]:
    """Replace the module's URL opener; returns the list of URLs opened."""
    opened: list[str] = []

    def fake(url: str) -> FakeResponse:
        opened.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in contents:
            raise OSError(f"HTTP Error 404: {name}")
        return FakeResponse(contents[name], (lengths or {}).get(name))

    monkeypatch.setattr(downloads, "open_url", fake)
    return opened


TOWN = {"TownCentreXVID.avi": b"RIFF fake video bytes" * 50, "TownCentre-groundtruth.top": b"0,0,1,1,1,2,3,4,5,6,7,8\n"}


def test_registry_names_the_published_towncentre_files_without_inventing_checksums() -> None:
    town = DATASETS["towncentre"]
    assert [f.filename for f in town.files] == ["TownCentreXVID.avi", "TownCentre-groundtruth.top"]
    assert all(f.url.startswith("http://www.robots.ox.ac.uk/ActiveVision/Research/Projects/2009bbenfold_headpose/"
                                "Datasets/") for f in town.files)
    assert all(f.sha256 is None for f in town.files)  # none published: pinned by the first download
    assert DATASETS["crowdhuman"].files == () and DATASETS["mot17"].files == ()


def test_cli_downloads_towncentre_and_pins_sha256(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    opened = serve(monkeypatch, TOWN)
    assert main(["download", "--dataset", "towncentre", "--out", str(tmp_path), "--progress", "false"]) == 0
    assert len(opened) == 2
    for name, content in TOWN.items():
        assert (tmp_path / name).read_bytes() == content
        assert read_sidecar(tmp_path / name) == hashlib.sha256(content).hexdigest()
    assert "pinned" in capsys.readouterr().out
    # a second run fetches nothing and checks the files against the pins
    assert main(["download", "--dataset", "towncentre", "--out", str(tmp_path), "--progress", "false"]) == 0
    assert len(opened) == 2
    (tmp_path / "TownCentre-groundtruth.top").write_bytes(b"changed\n")
    with pytest.raises(DataError, match=r"TownCentre-groundtruth\.top: SHA-256 .* differs from the pinned"):
        downloads.download("towncentre", tmp_path, progress=False)


def test_checksum_mismatch_is_a_clear_error_and_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    remote = RemoteFile("clip.avi", "http://example.invalid/data/clip.avi", sha256="0" * 64)
    serve(monkeypatch, {"clip.avi": b"not the published bytes"})
    with pytest.raises(DataError, match=r"clip\.avi: checksum mismatch for http://example\.invalid/data/clip\.avi: "
                                        r"SHA-256 [0-9a-f]{64}, expected 0{64} \(published\); the download was "
                                        "discarded"):
        fetch_file(remote, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the file, nor a temporary, nor a sidecar
    # the CLI reports it as one line and a non-zero exit code
    (tmp_path / "TownCentreXVID.avi.sha256").write_text("f" * 64 + "  TownCentreXVID.avi\n")
    serve(monkeypatch, TOWN)
    assert main(["download", "--dataset", "towncentre", "--out", str(tmp_path), "--progress", "false"]) != 0
    assert "checksum mismatch" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["TownCentreXVID.avi.sha256"]


def test_truncated_and_unreachable_downloads_leave_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = RemoteFile("TownCentreXVID.avi", DATASETS["towncentre"].files[0].url)
    serve(monkeypatch, TOWN, lengths={"TownCentreXVID.avi": 10_000})
    with pytest.raises(DataError, match=r"truncated: 1050 of 10000 bytes"):
        fetch_file(remote, tmp_path, progress=False)
    serve(monkeypatch, {})
    with pytest.raises(MissingDataError, match=r"could not download .*404.*nothing was written"):
        fetch_file(remote, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_published_size_and_hand_placed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, {"a.bin": b"abc"})
    with pytest.raises(DataError, match="has 3 bytes, the published size is 4"):
        fetch_file(RemoteFile("a.bin", "http://example.invalid/a.bin", size=4), tmp_path, progress=False)
    (tmp_path / "b.bin").write_bytes(b"by hand")
    remote = RemoteFile("b.bin", "http://example.invalid/b.bin")
    assert verify_file(remote, tmp_path) == "pinned"
    assert sidecar_path(tmp_path / "b.bin").is_file()
    assert verify_file(remote, tmp_path) == "verified"


def test_registration_datasets_print_instructions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    opened = serve(monkeypatch, {})
    assert main(["download", "--dataset", "mot17", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "https://motchallenge.net/data/MOT17/" in out and "gt/gt.txt" in out
    assert downloads.download("crowdhuman", tmp_path) == []
    assert "annotation_train.odgt" in capsys.readouterr().out
    assert opened == [] and list(tmp_path.iterdir()) == []
