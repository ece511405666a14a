"""Downloads without the network: urllib is replaced by fakes that fail or serve local bytes."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.adapt.data import download
from adaptrack.adapt.data.download import RemoteFile, Requirement, download_url, ensure_available
from adaptrack.adapt.data.registry import load_dataset
from adaptrack.common.errors import DataError, MissingDataError


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: a readable body with headers."""

    def __init__(self, body: bytes) -> None:
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def serve(monkeypatch, pages: dict[str, bytes]) -> list[str]:
    """Replace ``urlopen``: URLs in ``pages`` answer their bytes, others fail as offline."""
    asked: list[str] = []

    def urlopen(url, timeout=None):
        asked.append(url)
        if url in pages:
            return FakeResponse(pages[url])
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_missing_without_download_lists_files_dir_and_urls(tmp_path, monkeypatch):
    asked = serve(monkeypatch, {})
    directory = tmp_path / "mnist"
    with pytest.raises(MissingDataError) as info:
        ensure_available("mnist", "train", directory, download=False)
    message = str(info.value)
    assert "2 file(s) missing" in message and str(directory) in message
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert name in message
        assert f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}" in message
    assert "download=True" in message and asked == []


def test_offline_download_error_names_files_and_leaves_nothing(tmp_path, monkeypatch):
    asked = serve(monkeypatch, {})
    directory = tmp_path / "usps"
    with pytest.raises(MissingDataError) as info:
        ensure_available("usps", "test", directory, download=True, progress=False)
    message = str(info.value)
    url = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/usps.t.bz2"
    assert asked == [url]
    assert "Temporary failure in name resolution" in message
    assert "usps.h5 or usps.t.bz2" in message and url in message and str(directory) in message
    assert list(directory.iterdir()) == []


def test_checksum_mismatch_discards_download(tmp_path, monkeypatch):
    url = "https://example.org/file.bin"
    serve(monkeypatch, {url: b"these are not the published bytes"})
    with pytest.raises(DataError, match="checksum mismatch") as info:
        download_url(url, tmp_path / "file.bin", md5="0" * 32, progress=False)
    assert url in str(info.value) and "0" * 32 in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_mirror_fallback_and_progress(tmp_path, monkeypatch, capsys):
    body = b"x" * 5000
    remote = RemoteFile("data.bin", ("https://down.example/data.bin", "https://up.example/data.bin"),
                        hashlib.md5(body).hexdigest())
    asked = serve(monkeypatch, {"https://up.example/data.bin": body})
    path = download.fetch(remote, tmp_path, progress=True)
    assert path.read_bytes() == body and len(asked) == 2
    assert "data.bin: 0.0/0.0 MiB (100%)" in capsys.readouterr().err


def test_all_mirrors_corrupt_is_a_data_error(tmp_path, monkeypatch):
    remote = RemoteFile("data.bin", ("https://a.example/d", "https://b.example/d"), "f" * 32)
    serve(monkeypatch, {"https://a.example/d": b"bad", "https://b.example/d": b"worse"})
    with pytest.raises(DataError, match="published MD5") as info:
        download.fetch(remote, tmp_path, progress=False)
    assert "https://a.example/d" in str(info.value) and "https://b.example/d" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_true_end_to_end_usps(tmp_path, monkeypatch, write_usps_libsvm):
    body_path = write_usps_libsvm(tmp_path / "served.bz2", np.array([2, 7]), np.zeros((2, 256)))
    body = body_path.read_bytes()
    url = "https://mirror.example/usps.bz2"
    remote = RemoteFile("usps.bz2", (url,), hashlib.md5(body).hexdigest())
    requirement = Requirement(("usps.h5", "usps.bz2"), remote)
    monkeypatch.setitem(download.REQUIREMENTS, "usps", {"train": (requirement,)})
    serve(monkeypatch, {url: body})
    data = load_dataset("usps", "train", root=tmp_path / "root", download=True)
    assert data.labels.tolist() == [1, 6] and data.images.shape == (2, 1, 16, 16)
    assert (tmp_path / "root" / "usps" / "usps.bz2").read_bytes() == body


def test_download_unpacks_mnistm_archive(tmp_path, monkeypatch):
    staging = tmp_path / "staging" / "mnist_m"
    for split in ("train", "test"):
        (staging / f"mnist_m_{split}").mkdir(parents=True)
        image = Image.fromarray(np.full((28, 28, 3), 40, np.uint8))
        image.save(staging / f"mnist_m_{split}" / "00000000.png")
        (staging / f"mnist_m_{split}_labels.txt").write_text("00000000.png 7\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(staging, arcname="mnist_m")
    body = buffer.getvalue()
    url = "https://box.example/mnist_m"
    archive = RemoteFile("mnist_m.tar.gz", (url,), hashlib.md5(body).hexdigest(), extract=True)
    monkeypatch.setitem(download.REQUIREMENTS, "mnistm", {
        s: (Requirement((f"mnist_m/mnist_m_{s}_labels.txt",), archive),) for s in ("train", "test")})
    asked = serve(monkeypatch, {url: body})
    root = tmp_path / "root"
    data = load_dataset("mnistm", "test", root=root, download=True)
    assert data.labels.tolist() == [7] and data.images.shape == (1, 3, 28, 28)
    assert load_dataset("mnistm", "train", root=root, download=True).labels.tolist() == [7]
    assert len(asked) == 1  # one archive serves both splits
    assert sorted(p.name for p in (root / "mnistm").iterdir()) == ["mnist_m"]  # archive removed


def test_published_checksums_are_md5_hex():
    for splits in download.REQUIREMENTS.values():
        for requirements in splits.values():
            for req in requirements:
                assert len(req.remote.md5) == 32 and int(req.remote.md5, 16) >= 0
                assert all(u.startswith(("http://", "https://")) for u in req.remote.urls)


def test_file_md5(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert download.file_md5(path) == "900150983cd24fb0d6963f7d28e17f72"
