"""Real data sets of the tracker: where they come from, and downloading the ones that can be fetched directly.

Registry (:data:`DATASETS`):

- ``towncentre``: the Oxford Active Vision group's Town Centre data set (Benfold and Reid, CVPR 2011),
  project page http://www.robots.ox.ac.uk/ActiveVision/Research/Projects/2009bbenfold_headpose/project.html,
  files ``TownCentreXVID.avi`` (the 1920x1080, 25 fps video) and ``TownCentre-groundtruth.top`` (head and
  body boxes) under ``.../2009bbenfold_headpose/Datasets/``. **No checksum or exact size is published**
  for either file (none was found on the project page or in code that downloads them), so none is
  written here. Instead the first download is *verified* only as far as the server allows (the bytes
  received must match its ``Content-Length``) and then **pins** the content: its SHA-256 is written to
  a ``<file>.sha256`` sidecar, and every later download or check of that folder must match it. A
  corrupted first download cannot be detected this way; compare the sidecar with a colleague's copy
  if that matters. (The shared 126-frame excerpt in ``../shared/data/towncentre`` is a re-encoded cut,
  its MD5 says nothing about the original files.)
- ``crowdhuman`` (https://www.crowdhuman.org/) and ``mot17`` (https://motchallenge.net/data/MOT17/)
  need registration or licence acceptance: :func:`download` prints where to get them and the folder
  layout the readers (:func:`~adaptrack.track.data.crowdhuman.read_crowdhuman`,
  :func:`~adaptrack.track.data.mot17.read_mot17_dir`) expect, and downloads nothing.

Files are streamed to a temporary file next to the destination (``adaptrack.common.files.atomic_write``)
and renamed into place only after every check passed, so a failed, truncated or mismatching download
never leaves a file behind. (``adaptrack.adapt.data.download`` does the same for the adaptation data
sets, but requires a published MD5 for every file, which Town Centre does not have.)
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from adaptrack.common.errors import DataError, MissingDataError
from adaptrack.common.files import atomic_write

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
SIDECAR_SUFFIX = ".sha256"

Opener = Callable[[str], IO[bytes]]
"""Opens a URL for reading (a response with ``read(n)`` and optionally ``headers``); ``urlopen`` by default."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set that can be downloaded directly.

    Attributes:
        filename: Name it is saved under.
        url: Where it is published.
        sha256: Published SHA-256, or ``None`` where none is published (then pinned by the first
            verified download in a ``.sha256`` sidecar).
        size: Published size in bytes, or ``None`` where unknown.
    """

    filename: str
    url: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSource:
    """Where a data set comes from.

    Attributes:
        name: Registry key.
        title: Human-readable name and citation.
        homepage: Project page.
        files: Directly downloadable files; empty where registration is needed.
        instructions: How to obtain it by hand (registration, licence) and the layout expected.
    """

    name: str
    title: str
    homepage: str
    files: tuple[RemoteFile, ...] = ()
    instructions: str = ""


_OXFORD = "http://www.robots.ox.ac.uk/ActiveVision/Research/Projects/2009bbenfold_headpose/"

DATASETS: dict[str, DatasetSource] = {
    "towncentre": DatasetSource(
        "towncentre", "Oxford Town Centre (Benfold and Reid, CVPR 2011)", _OXFORD + "project.html",
        files=(RemoteFile("TownCentreXVID.avi", _OXFORD + "Datasets/TownCentreXVID.avi"),
               RemoteFile("TownCentre-groundtruth.top", _OXFORD + "Datasets/TownCentre-groundtruth.top")),
        instructions="Released for research by the Oxford Active Vision group; see the project page for its terms.",
    ),
    "crowdhuman": DatasetSource(
        "crowdhuman", "CrowdHuman (Shao et al., 2018)", "https://www.crowdhuman.org/",
        instructions=(
            "CrowdHuman is distributed only after accepting its licence (non-commercial research) on\n"
            "https://www.crowdhuman.org/download.html. Download CrowdHuman_train01..03.zip, CrowdHuman_val.zip\n"
            "and annotation_train.odgt, annotation_val.odgt, unzip the images, and arrange:\n"
            "  <out>/annotation_train.odgt\n"
            "  <out>/annotation_val.odgt\n"
            "  <out>/Images/<ID>.jpg            (all images of train and val in one folder)\n"
            "Read with read_crowdhuman('<out>/annotation_val.odgt', '<out>/Images')."),
    ),
    "mot17": DatasetSource(
        "mot17", "MOT17 (Milan et al., MOT16: A Benchmark for Multi-Object Tracking)",
        "https://motchallenge.net/data/MOT17/",
        instructions=(
            "MOT17 needs a (free) MOTChallenge account and acceptance of its terms (CC BY-NC-SA 3.0):\n"
            "https://motchallenge.net/data/MOT17/ -> MOT17.zip. Unzip it so that:\n"
            "  <out>/MOT17/train/MOT17-02-FRCNN/seqinfo.ini\n"
            "  <out>/MOT17/train/MOT17-02-FRCNN/gt/gt.txt\n"
            "  <out>/MOT17/train/MOT17-02-FRCNN/img1/000001.jpg ...\n"
            "(test sequences have no gt/gt.txt). Read with read_mot17_dir('<out>/MOT17/train'): one detector\n"
            "variant per sequence, since -DPM, -FRCNN and -SDP share frames and ground truth."),
    ),
}
"""The real data sets the tracker's readers know, by name."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def sidecar_path(path: str | Path) -> Path:
    """The ``<file>.sha256`` sidecar that pins a file without a published checksum."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def read_sidecar(path: str | Path) -> str | None:
    """The SHA-256 pinned for ``path``, or ``None`` without a sidecar.

    Raises:
        DataError: The sidecar does not start with 64 hex digits.
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return None
    words = sidecar.read_text(encoding="utf-8").split()
    digest = words[0].lower() if words else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DataError("checksum sidecar does not hold a SHA-256 (64 hex digits); delete it to pin again", sidecar)
    return digest


def _write_sidecar(path: Path, digest: str) -> None:
    with atomic_write(sidecar_path(path)) as handle:
        handle.write(f"{digest}  {path.name}\n")


def expected_sha256(remote: RemoteFile, dest: Path) -> tuple[str | None, str]:
    """The SHA-256 ``dest`` must have and where it comes from (``"published"``, ``"pinned"`` or ``"none"``)."""
    if remote.sha256 is not None:
        return remote.sha256.lower(), "published"
    pinned = read_sidecar(dest)
    return (pinned, "pinned") if pinned is not None else (None, "none")


def open_url(url: str) -> IO[bytes]:
    """Open ``url`` for streaming (``urllib.request.urlopen`` with a timeout); tests replace it."""
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)


def fetch_file(remote: RemoteFile, directory: str | Path, progress: bool = True,
               opener: Opener | None = None) -> Path:
    """Download one file into ``directory``, checked before it appears, and pin its SHA-256.

    Checks, in order: the byte count equals the server's ``Content-Length`` and the published
    ``size`` (where given); the SHA-256 equals the published one, else the one pinned in the
    ``.sha256`` sidecar by an earlier download. On success the file is renamed into place and its
    SHA-256 written to the sidecar.

    Args:
        remote: The file.
        directory: Destination folder (created if needed).
        progress: Report MiB received on stderr.
        opener: Opens the URL; :func:`open_url` by default.

    Returns:
        The saved file.

    Raises:
        DataError: Truncated content, wrong size or checksum mismatch; nothing is written.
        MissingDataError: The URL cannot be reached (offline, 404, ...).
    """
    directory = Path(directory)
    dest = directory / remote.filename
    expected, origin = expected_sha256(remote, dest)
    digest = hashlib.sha256()
    done = 0
    try:
        with (opener or open_url)(remote.url) as response:
            headers = getattr(response, "headers", None)
            length = headers.get("Content-Length") if headers is not None else None
            total = int(length) if length and str(length).isdigit() else None
            with atomic_write(dest, "wb") as handle:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress:
                        _progress(remote.filename, done, total)
                if progress:
                    sys.stderr.write("\n")
                _check(remote, dest, done, total, digest.hexdigest(), expected, origin)
    except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, dropped links
        raise MissingDataError(f"could not download {remote.url} into {directory}: "
                               f"{getattr(exc, 'reason', exc)}; nothing was written") from exc
    _write_sidecar(dest, digest.hexdigest())
    return dest


def _check(remote: RemoteFile, dest: Path, done: int, total: int | None, actual: str, expected: str | None,
           origin: str) -> None:
    """Refuse the received bytes (raising inside ``atomic_write``, so the temporary file is removed)."""
    if total is not None and done != total:
        raise DataError(f"download of {remote.url} is truncated: {done} of {total} bytes received; "
                        "the download was discarded, run the command again", dest)
    if remote.size is not None and done != remote.size:
        raise DataError(f"download of {remote.url} has {done} bytes, the published size is {remote.size}; "
                        "the download was discarded", dest)
    if expected is not None and actual != expected:
        where = (f"pinned in {sidecar_path(dest).name} by an earlier download (delete it if the file "
                 "changed upstream on purpose)" if origin == "pinned" else "published")
        raise DataError(f"checksum mismatch for {remote.url}: SHA-256 {actual}, expected {expected} ({where}); "
                        "the download was discarded", dest)


def _progress(name: str, done: int, total: int | None) -> None:
    mib = done / 2**20
    share = f" ({100 * done / total:3.0f}%)" if total else ""
    sys.stderr.write(f"\r{name}: {mib:.1f} MiB{share}")
    sys.stderr.flush()


def verify_file(remote: RemoteFile, directory: str | Path) -> str:
    """Check a file already in ``directory`` against its published or pinned SHA-256.

    A file without either (placed by hand) is pinned now: its SHA-256 is written to the sidecar.

    Returns:
        ``"verified"`` (published or pinned checksum matches) or ``"pinned"`` (sidecar written now).

    Raises:
        DataError: The checksum differs.
    """
    dest = Path(directory) / remote.filename
    expected, origin = expected_sha256(remote, dest)
    actual = file_sha256(dest)
    if expected is None:
        _write_sidecar(dest, actual)
        return "pinned"
    if actual != expected:
        raise DataError(f"SHA-256 {actual} differs from the {origin} {expected}; delete the file and download "
                        "it again", dest)
    return "verified"


def download(dataset: Literal["towncentre", "crowdhuman", "mot17"], out: Path, progress: bool = True) -> list[Path]:
    """Download a data set's directly available files into ``out``, or print how to obtain it.

    Meant as ``adaptrack track download --dataset towncentre --out DIR``. Files already present are
    checked against their published or pinned SHA-256 instead of being fetched again.

    Args:
        dataset: A key of :data:`DATASETS`.
        out: Destination folder.
        progress: Report download progress on stderr.

    Returns:
        The files in ``out`` (empty for data sets that need registration).

    Raises:
        DataError: Unknown data set, checksum mismatch or truncated download (nothing is left behind).
        MissingDataError: A URL cannot be reached.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown data set {dataset!r}; choose from {', '.join(DATASETS)}")
    source = DATASETS[dataset]
    out = Path(out)
    if not source.files:
        print(f"{source.title}: cannot be downloaded by a script.\n{source.instructions}\nHome page: "
              f"{source.homepage}")
        return []
    paths: list[Path] = []
    for remote in source.files:
        dest = out / remote.filename
        if dest.is_file():
            state = verify_file(remote, out)
            print(f"{dest}: already present, SHA-256 {'checked' if state == 'verified' else 'pinned now'}")
        else:
            _, origin = expected_sha256(remote, dest)
            fetch_file(remote, out, progress)
            state = "pinned" if origin == "none" else f"checked against the {origin} value, kept"
            print(f"{dest}: downloaded, SHA-256 {state} in {sidecar_path(dest).name}")
        paths.append(dest)
    print(f"{source.title}: {len(paths)} file(s) in {out}. {source.instructions}")
    return paths
