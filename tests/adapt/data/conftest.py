"""Writers of small files in the original data set formats, shared by the data loader tests."""

from __future__ import annotations

import bz2
import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of ``array`` (uint8, big-endian int32 or float32)."""
    dtype = np.dtype(array.dtype).newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, IDX_CODES[dtype], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(dtype).tobytes()


@pytest.fixture
def write_idx() -> Callable[[Path, np.ndarray], Path]:
    """Write an idx file, gzip-compressed when the name ends in ``.gz``."""

    def write(path: Path, array: np.ndarray) -> Path:
        data = idx_bytes(array)
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        return path

    return write


@pytest.fixture
def write_mnist(
    write_idx: Callable[[Path, np.ndarray], Path],
) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """Write a tiny MNIST split (``n`` images) into a folder; returns its images and labels."""

    def write(directory: Path, split: str = "train", n: int = 12, gz: bool = True,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        prefix = "train" if split == "train" else "t10k"
        suffix = ".gz" if gz else ""
        directory.mkdir(parents=True, exist_ok=True)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        return images, labels

    return write


def libsvm_text(labels: np.ndarray, pixels: np.ndarray) -> str:
    """LIBSVM lines ``label 1:v1 2:v2 ...`` (zero features omitted, as in the real files)."""
    lines = []
    for label, row in zip(labels, pixels, strict=True):
        feats = " ".join(f"{i + 1}:{v:.6f}" for i, v in enumerate(row) if v != 0)
        lines.append(f"{label} {feats}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_usps_libsvm() -> Callable[[Path, np.ndarray, np.ndarray], Path]:
    """Write a bz2 LIBSVM USPS file from labels 1..10 and N x 256 pixels in [-1, 1]."""

    def write(path: Path, labels: np.ndarray, pixels: np.ndarray) -> Path:
        path.write_bytes(bz2.compress(libsvm_text(labels, pixels).encode()))
        return path

    return write


@pytest.fixture
def write_png() -> Callable[..., Path]:
    """Write a random image of a given mode and size (W, H) with PIL; the suffix picks the format."""

    def write(path: Path, size: tuple[int, int] = (10, 8), mode: str = "L", seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
        return path

    return write
