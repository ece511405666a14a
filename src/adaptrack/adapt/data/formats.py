"""Loaders for the digit data sets in their original release formats.

Each loader reads one split from the files as published and returns an :class:`ImageSet` at the
format's native size and channels: MNIST (idx, 28x28 gray), USPS (HDF5 or libsvm, 16x16 gray),
SVHN (MATLAB ``.mat``, 32x32 RGB), MNIST-M (png + label list, 28x28 RGB) and scikit-learn's bundled
handwritten digits (8x8 gray).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import scipy.io
import torch

from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.images import read_images
from adaptrack.common.errors import DataError, MissingDataError

Split = Literal["train", "test"]
DIGIT_CLASSES: list[str] = [str(d) for d in range(10)]

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MNIST_PREFIX: dict[str, str] = {"train": "train", "test": "t10k"}
_GZIP_MAGIC = b"\x1f\x8b"


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def _digit_labels(labels: np.ndarray, path: Path) -> torch.Tensor:
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"labels must be digits 0-9, found values {labels.min()}..{labels.max()}", path)
    return torch.from_numpy(labels.astype(np.int64))  # (N,)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST container), gzip-compressed or not.

    The header is two zero bytes, a type code, the number of dimensions, then each dimension as a
    big-endian uint32; the data follows in C order.

    Args:
        path: ``*-ubyte`` or ``*-ubyte.gz`` file (compression is detected from the content).

    Returns:
        The array with the header's shape and type, in native byte order.

    Raises:
        DataError: Corrupt gzip stream, bad magic number, or a size that disagrees with the header.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"corrupt or truncated gzip stream ({exc}); delete the file and fetch it again",
                            path) from exc
    if len(raw) < 4:
        raise DataError(f"truncated: {len(raw)} byte(s), shorter than the 4-byte idx magic number", path)
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise DataError(f"not an idx file: magic number 0x{raw[:4].hex()} (expected 0x0000TTDD with a type "
                        f"code TT in {[hex(c) for c in _IDX_DTYPES]} and DD dimensions)", path)
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise DataError(f"truncated: the header declares {ndim} dimensions but the file ends after "
                        f"{len(raw)} bytes", path)
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - offset
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes"
        raise DataError(f"{problem}: the header declares shape {shape} ({expected} data bytes) but the file "
                        f"holds {found}; delete the file and fetch it again", path)
    data = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find(directory: Path, names: list[str]) -> Path:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise MissingDataError(f"{directory}: none of {names} found")


def load_mnist(directory: str | Path, split: Split) -> ImageSet:
    """Load MNIST from ``train-images-idx3-ubyte[.gz]``/``train-labels-idx1-ubyte[.gz]`` (``t10k-*``).

    Args:
        directory: Folder holding the idx files.
        split: ``"train"`` (60,000) or ``"test"`` (10,000).

    Returns:
        ``(N, 1, 28, 28)`` uint8 images with digit labels.
    """
    _check_split(split)
    directory = Path(directory)
    prefix = _MNIST_PREFIX[split]
    image_path = _find(directory, [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"])
    label_path = _find(directory, [f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels-idx1-ubyte"])
    images = read_idx(image_path)
    labels = read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"expected an idx3 uint8 image file, got shape {images.shape} {images.dtype}",
                        image_path)
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(f"expected an idx1 uint8 label file, got shape {labels.shape} {labels.dtype}",
                        label_path)
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images in {image_path.name} but {len(labels)} labels", label_path)
    tensor = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageSet(tensor, _digit_labels(labels, label_path), list(DIGIT_CLASSES), f"mnist/{split}")


def _unit_to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values * 255.0), 0, 255).astype(np.uint8)


def read_usps_h5(path: str | Path, split: Split) -> ImageSet:
    """Load one split of ``usps.h5`` (groups ``train``/``test``, each with ``data`` and ``target``).

    Args:
        path: The HDF5 file; ``data`` is N x 256 float in [0, 1], ``target`` holds digits 0-9.
        split: Group to read.

    Returns:
        ``(N, 1, 16, 16)`` uint8 images with digit labels.
    """
    _check_split(split)
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            if split not in handle or "data" not in handle[split] or "target" not in handle[split]:
                raise DataError(f"expected datasets '{split}/data' and '{split}/target', found groups "
                                f"{sorted(handle)}", path)
            data = np.asarray(handle[split]["data"][()], dtype=np.float32)
            target = np.asarray(handle[split]["target"][()])
    except DataError:
        raise
    except Exception as exc:  # h5py raises OSError, KeyError, ValueError... on damaged files
        raise DataError(f"not a readable HDF5 file ({type(exc).__name__}: {exc})", path) from exc
    if data.ndim != 2 or data.shape[1] != 256 or len(data) != len(target):
        raise DataError(f"'{split}/data' must be N x 256 with N = len(target) = {len(target)}, got "
                        f"{data.shape}", path)
    if data.size and (not np.isfinite(data).all() or data.min() < -1e-3 or data.max() > 1 + 1e-3):
        raise DataError(f"'{split}/data' values must lie in [0, 1], found {data.min()}..{data.max()}", path)
    images = torch.from_numpy(_unit_to_uint8(data).reshape(-1, 1, 16, 16))  # (N, 1, 16, 16)
    return ImageSet(images, _digit_labels(target, path), list(DIGIT_CLASSES), f"usps/{split}")


def read_usps_libsvm(path: str | Path, split: Split) -> ImageSet:
    """Load a LIBSVM-format USPS file (``usps.bz2``, ``usps.t.bz2``, or uncompressed).

    Labels are 1..10 (digit = label - 1) and the 256 features are pixels scaled to [-1, 1].

    Args:
        path: The text file (``.bz2``/``.gz`` is decompressed by the suffix).
        split: Split name, for the set's name.

    Returns:
        ``(N, 1, 16, 16)`` uint8 images with digit labels.
    """
    from sklearn.datasets import load_svmlight_file

    path = Path(path)
    try:
        features, target = load_svmlight_file(str(path), n_features=256, zero_based=False)
    except Exception as exc:  # OSError/EOFError for bad compression, ValueError for bad lines
        raise DataError(f"not a readable LIBSVM file with 256 features ({type(exc).__name__}: {exc})",
                        path) from exc
    out_of_range = target.size > 0 and (target.min() < 1 or target.max() > 10)
    if out_of_range or not np.array_equal(target, np.round(target)):
        raise DataError(f"labels must be integers 1..10, found {np.unique(target)[:12]}", path)
    pixels = features.toarray()  # (N, 256), values in [-1, 1]
    if pixels.size and (pixels.min() < -1 - 1e-3 or pixels.max() > 1 + 1e-3):
        raise DataError(f"features must lie in [-1, 1], found {pixels.min()}..{pixels.max()}", path)
    images = torch.from_numpy(_unit_to_uint8((pixels + 1.0) / 2.0).reshape(-1, 1, 16, 16))  # (N, 1, 16, 16)
    return ImageSet(images, _digit_labels(target.astype(np.int64) - 1, path), list(DIGIT_CLASSES),
                    f"usps/{split}")


def load_usps(directory: str | Path, split: Split) -> ImageSet:
    """Load USPS from ``usps.h5`` when present, else from the libsvm ``usps.bz2``/``usps.t.bz2``.

    Args:
        directory: Folder holding the files.
        split: ``"train"`` (7,291) or ``"test"`` (2,007).
    """
    _check_split(split)
    directory = Path(directory)
    if (directory / "usps.h5").is_file():
        return read_usps_h5(directory / "usps.h5", split)
    stem = "usps" if split == "train" else "usps.t"
    return read_usps_libsvm(_find(directory, [f"{stem}.bz2", stem]), split)


def load_svhn(directory: str | Path, split: Split) -> ImageSet:
    """Load SVHN cropped digits from ``train_32x32.mat``/``test_32x32.mat``.

    ``X`` is 32 x 32 x 3 x N; in ``y`` the label 10 stands for the digit 0.

    Args:
        directory: Folder holding the ``.mat`` files.
        split: ``"train"`` (73,257) or ``"test"`` (26,032).

    Returns:
        ``(N, 3, 32, 32)`` uint8 images with digit labels.
    """
    _check_split(split)
    path = Path(directory) / f"{split}_32x32.mat"
    if not path.is_file():
        raise MissingDataError(f"{path}: not found")
    try:
        content = scipy.io.loadmat(path, variable_names=["X", "y"])
    except Exception as exc:  # scipy raises many types on garbage input
        raise DataError(f"not a readable MATLAB file ({type(exc).__name__}: {exc})", path) from exc
    if "X" not in content or "y" not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise DataError(f"expected variables 'X' and 'y', found {found}", path)
    x, y = content["X"], np.asarray(content["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"'X' must be 32 x 32 x 3 x N with N = len(y) = {len(y)}, got {x.shape}", path)
    if y.size and (y.min() < 1 or y.max() > 10):
        raise DataError(f"'y' must hold labels 1..10 (10 = digit 0), found {y.min()}..{y.max()}", path)
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1), dtype=np.uint8))  # (N, 3, 32, 32)
    return ImageSet(images, _digit_labels(y % 10, path), list(DIGIT_CLASSES), f"svhn/{split}")


def _read_label_list(path: Path) -> tuple[list[str], list[int]]:
    names: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) > 9:
            raise DataError(f"line {number}: expected '<file name> <digit 0-9>', got {line!r}", path)
        names.append(parts[0])
        labels.append(int(parts[1]))
    if not names:
        raise DataError("empty label list", path)
    return names, labels


def load_mnistm(directory: str | Path, split: Split, *, skip_bad: bool = False) -> ImageSet:
    """Load MNIST-M as released: ``mnist_m/mnist_m_<split>/*.png`` and ``mnist_m_<split>_labels.txt``.

    ``directory`` may be the folder containing the unpacked ``mnist_m/`` or ``mnist_m/`` itself.

    Args:
        directory: Dataset folder.
        split: ``"train"`` (59,001) or ``"test"`` (9,001).
        skip_bad: Skip unreadable images with a warning giving the count, instead of raising.

    Returns:
        ``(N, 3, 28, 28)`` uint8 images (32x32 releases are accepted as they are) with digit labels.
    """
    _check_split(split)
    directory = Path(directory)
    base = directory / "mnist_m" if (directory / "mnist_m").is_dir() else directory
    label_path = base / f"mnist_m_{split}_labels.txt"
    if not label_path.is_file():
        raise MissingDataError(f"{label_path}: not found")
    names, labels = _read_label_list(label_path)
    image_dir = base / f"mnist_m_{split}"
    images, kept = read_images([image_dir / n for n in names], channels=3, skip_bad=skip_bad,
                               what=str(image_dir))  # (N, 3, H, W)
    if tuple(images.shape[2:]) not in ((28, 28), (32, 32)):
        raise DataError(f"MNIST-M images must be 28x28 (or 32x32), found {tuple(images.shape[2:])}",
                        image_dir)
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.int64)  # (N,)
    return ImageSet(images, label_tensor, list(DIGIT_CLASSES), f"mnistm/{split}",
                    [str(image_dir / names[i]) for i in kept])


def load_sklearn_digits(split: Split, *, seed: int = 0, test_fraction: float = 1 / 3) -> ImageSet:
    """Load scikit-learn's bundled handwritten digits (1,797 images, 8x8, values 0-16), scaled to 0-255.

    The train/test split is stratified by digit and fixed by ``seed``; the two splits never overlap.

    Args:
        split: ``"train"`` (1,198 with the defaults) or ``"test"`` (599).
        seed: Seed of the split.
        test_fraction: Share of the images in the test split.

    Returns:
        ``(N, 1, 8, 8)`` uint8 images with digit labels.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    _check_split(split)
    digits = load_digits()
    indices = np.arange(len(digits.target))
    train_idx, test_idx = train_test_split(indices, test_size=test_fraction, stratify=digits.target,
                                           random_state=seed)
    chosen = np.sort(train_idx if split == "train" else test_idx)
    pixels = np.rint(digits.images[chosen] * (255.0 / 16.0)).astype(np.uint8)  # (N, 8, 8)
    images = torch.from_numpy(pixels).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.from_numpy(digits.target[chosen].astype(np.int64))  # (N,)
    return ImageSet(images, labels, list(DIGIT_CLASSES), f"sklearn_digits/{split}")
