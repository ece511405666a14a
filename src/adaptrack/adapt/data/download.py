"""Which files each downloadable data set needs, where to get them, and fetching them safely.

Sources (every file is verified against the MD5 published with it before it is kept):

- MNIST: the original idx ``.gz`` files of http://yann.lecun.com/exdb/mnist/, tried first from
  PyTorch's mirror ``https://ossci-datasets.s3.amazonaws.com/mnist/`` (byte-identical, same MD5 as
  torchvision) because the original host often refuses scripted downloads.
- USPS: ``usps.bz2`` and ``usps.t.bz2`` of the LIBSVM data sets page,
  https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps (MD5 as torchvision).
- SVHN: ``train_32x32.mat`` and ``test_32x32.mat`` of http://ufldl.stanford.edu/housenumbers/.
- MNIST-M: Ganin and Lempitsky's release ``mnist_m.tar.gz`` (unpacking to ``mnist_m/``) is shared
  only through Google Drive, which needs an interactive confirmation; the byte-identical archive is
  fetched from the Cornell Box mirror that pytorch-adapt uses (MD5 ``859df31c...``) and unpacked.

Files are streamed to a temporary file next to the destination and renamed into place only after
the checksum matches, so an interrupted or corrupt download never leaves a file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from adaptrack.common.errors import DataError, MissingDataError
from adaptrack.common.files import atomic_write

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RemoteFile:
    """One published file.

    Attributes:
        filename: Name it is saved under in the data set's folder.
        urls: Locations to try in order.
        md5: Published MD5 of the file's bytes.
        extract: A ``.tar.gz`` to unpack into the folder (then deleted) instead of keeping it.
    """

    filename: str
    urls: tuple[str, ...]
    md5: str
    extract: bool = False


@dataclass(frozen=True)
class Requirement:
    """A file a split needs: present when any of ``accepts`` exists, else fetched from ``remote``.

    Attributes:
        accepts: Paths relative to the data set's folder, any one of which satisfies the need.
        remote: What to download when none is present.
    """

    accepts: tuple[str, ...]
    remote: RemoteFile


def _mnist(name: str, md5: str) -> Requirement:
    remote = RemoteFile(f"{name}.gz", (f"https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz",
                                       f"http://yann.lecun.com/exdb/mnist/{name}.gz"), md5)
    return Requirement((f"{name}.gz", name), remote)


_LIBSVM = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_MNISTM = RemoteFile("mnist_m.tar.gz", ("https://cornell.box.com/shared/static/jado7quprg6hzzdubvwzh9umr75damwi",),
                     "859df31c91afe82e80e5012ba928f279", extract=True)

REQUIREMENTS: dict[str, dict[str, tuple[Requirement, ...]]] = {
    "mnist": {
        "train": (_mnist("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                  _mnist("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432")),
        "test": (_mnist("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
                 _mnist("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c")),
    },
    "usps": {
        "train": (Requirement(("usps.h5", "usps.bz2", "usps"), RemoteFile(
            "usps.bz2", (_LIBSVM + "usps.bz2",), "ec16c51db3855ca6c91edd34d0e9b197")),),
        "test": (Requirement(("usps.h5", "usps.t.bz2", "usps.t"), RemoteFile(
            "usps.t.bz2", (_LIBSVM + "usps.t.bz2",), "8ea070ee2aca1ac39742fdd1ef5ed118")),),
    },
    "svhn": {
        "train": (Requirement(("train_32x32.mat",), RemoteFile(
            "train_32x32.mat", (_SVHN + "train_32x32.mat",), "e26dedcc434d2e4c54c9b2d4a06d8373")),),
        "test": (Requirement(("test_32x32.mat",), RemoteFile(
            "test_32x32.mat", (_SVHN + "test_32x32.mat",), "eb5a983be6a315427106f1b164d9cef3")),),
    },
    "mnistm": {
        split: (Requirement((f"mnist_m/mnist_m_{split}_labels.txt", f"mnist_m_{split}_labels.txt"), _MNISTM),)
        for split in ("train", "test")
    },
}
"""``{data set: {split: files needed}}`` for every data set that can be downloaded."""


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file's bytes."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "md5").hexdigest()


def missing_requirements(dataset: str, split: str, directory: str | Path) -> list[Requirement]:
    """The requirements of ``dataset``/``split`` that no file in ``directory`` satisfies."""
    directory = Path(directory)
    return [req for req in REQUIREMENTS[dataset][split]
            if not any((directory / name).is_file() for name in req.accepts)]


def _describe(dataset: str, split: str, directory: Path, missing: list[Requirement]) -> str:
    lines = [f"{dataset}/{split}: {len(missing)} file(s) missing from {directory}:"]
    for req in missing:
        alternatives = " or ".join(req.accepts)
        lines.append(f"  - {alternatives}  (get {req.remote.filename} from {' or '.join(req.remote.urls)}"
                     + (", then unpack it there)" if req.remote.extract else ")"))
    lines.append(f"Put the files in {directory} (or set the data root, or $ADAPTRACK_DATA, to a folder "
                 f"holding {dataset}/), or load with download=True.")
    return "\n".join(lines)


def _progress(name: str, done: int, total: int | None) -> None:
    mib = done / 2**20
    if total:
        sys.stderr.write(f"\r{name}: {mib:.1f}/{total / 2**20:.1f} MiB ({100 * done / total:3.0f}%)")
    else:
        sys.stderr.write(f"\r{name}: {mib:.1f} MiB")
    sys.stderr.flush()


def download_url(url: str, dest: str | Path, md5: str, progress: bool = True) -> Path:
    """Stream ``url`` to ``dest``, verifying its MD5 before the file appears.

    Args:
        url: Location to fetch.
        dest: Final path; written atomically.
        md5: Expected hex MD5 of the content.
        progress: Report MiB received on stderr.

    Returns:
        ``dest``.

    Raises:
        urllib.error.URLError: The location cannot be reached (offline, 404, ...).
        DataError: The content's MD5 differs from ``md5``; nothing is written.
    """
    dest = Path(dest)
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        length = response.headers.get("Content-Length") if response.headers is not None else None
        total = int(length) if length and str(length).isdigit() else None
        done, shown = 0, -1
        with atomic_write(dest, "wb") as handle:
            while chunk := response.read(_CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                step = done * 100 // total if total else done // _CHUNK
                if progress and step != shown:
                    shown = step
                    _progress(dest.name, done, total)
            if progress:
                sys.stderr.write("\n")
            if digest.hexdigest() != md5:
                raise DataError(f"checksum mismatch for {url}: MD5 {digest.hexdigest()}, expected {md5} "
                                f"({done} bytes received); the download was discarded", dest)
    return dest


def _unpack(archive: Path, directory: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=directory))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"cannot unpack ({type(exc).__name__}: {exc})", archive) from exc
        for entry in staging.iterdir():
            final = directory / entry.name
            if final.exists():  # an incomplete earlier copy: swap it out, then delete it
                old = directory / f".{entry.name}.old"
                os.replace(final, old)
                os.replace(entry, final)
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
            else:
                os.replace(entry, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    archive.unlink()


def fetch(remote: RemoteFile, directory: str | Path, progress: bool = True) -> Path:
    """Download ``remote`` into ``directory`` (trying each URL), verify it, and unpack archives.

    Args:
        remote: The published file.
        directory: The data set's folder (created if needed).
        progress: Report progress on stderr.

    Returns:
        The saved file, or ``directory`` for an unpacked archive.

    Raises:
        DataError: Every location failed and at least one served content with the wrong checksum.
        MissingDataError: Every location was unreachable.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    corrupt = False
    for url in remote.urls:
        try:
            path = download_url(url, directory / remote.filename, remote.md5, progress)
        except DataError as exc:
            corrupt = True
            failures.append(str(exc))
            continue
        except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, timeouts, dropped links
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            continue
        if remote.extract:
            _unpack(path, directory)
            return directory
        return path
    detail = "\n  ".join(failures)
    if corrupt:
        raise DataError(f"could not download {remote.filename} with the published MD5 {remote.md5}:\n"
                        f"  {detail}")
    raise MissingDataError(f"could not download {remote.filename} into {directory}:\n  {detail}")


def ensure_available(dataset: str, split: str, directory: str | Path, download: bool = False,
                     progress: bool = True) -> None:
    """Make sure the files of ``dataset``/``split`` are in ``directory``, downloading them if allowed.

    Args:
        dataset: A key of :data:`REQUIREMENTS`.
        split: ``"train"`` or ``"test"``.
        directory: The data set's folder, ``<data root>/<dataset>``.
        download: Fetch missing files; otherwise only check.
        progress: Report download progress on stderr.

    Raises:
        MissingDataError: Files are missing and ``download`` is false, or the download failed; the
            message lists every missing file, the folder to put it in and its URL.
        DataError: A download had the wrong checksum.
    """
    directory = Path(directory)
    missing = missing_requirements(dataset, split, directory)
    if not missing:
        return
    if not download:
        raise MissingDataError(_describe(dataset, split, directory, missing))
    for req in missing:
        if not any((directory / name).is_file() for name in req.accepts):  # an archive may cover several
            try:
                fetch(req.remote, directory, progress)
            except MissingDataError as exc:
                raise MissingDataError(f"{exc}\n{_describe(dataset, split, directory, missing)}") from exc
    still = missing_requirements(dataset, split, directory)
    if still:
        raise DataError(f"downloaded {still[0].remote.filename} but {' or '.join(still[0].accepts)} is still "
                        "absent: the archive does not have the expected layout", directory)
