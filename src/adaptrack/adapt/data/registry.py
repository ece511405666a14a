"""The one registry of named data sets and its typed factory :func:`load_dataset`.

Files of a named data set live in ``<data root>/<name>/`` (e.g. ``<root>/mnist/train-images-idx3-ubyte.gz``,
``<root>/usps/usps.h5``) unless ``directory`` points elsewhere; the data root is the explicit ``root``,
else ``$ADAPTRACK_DATA``, else ``~/.cache/adaptrack``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptrack.adapt.data.base import FileSet, ImageSet
from adaptrack.adapt.data.download import REQUIREMENTS, ensure_available
from adaptrack.adapt.data.folders import (
    check_same_classes,
    match_classes,
)
from adaptrack.adapt.data.formats import (
    Split,
    load_mnist,
    load_mnistm,
    load_sklearn_digits,
    load_svhn,
    load_usps,
)
from adaptrack.adapt.data.images import Channels, Size
from adaptrack.adapt.data.layouts import folder_files, materialize, office_files, visda_files
from adaptrack.adapt.data.synthetic import load_synthetic_digits
from adaptrack.common.errors import DataError
from adaptrack.common.paths import resolve_data_root

__all__ = ["DATASETS", "DatasetSpec", "LoadOptions", "check_same_classes", "dataset_dir", "index_dataset",
           "list_datasets", "load_dataset", "match_classes"]


@dataclass(frozen=True)
class LoadOptions:
    """The options of :func:`load_dataset`, normalised; each data set reads the ones it uses."""

    directory: Path | None = None
    image_size: Size | None = None
    channels: Channels | None = None
    labeled: bool | None = None
    skip_bad: bool = False
    synthetic_size: int | None = None
    seed: int = 0
    domain: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """One registered data set.

    Attributes:
        description: One line for listings.
        options: Names of the :class:`LoadOptions` it uses (the others are ignored).
        load: ``(split, data set folder, options) -> ImageSet``.
        index: ``(split, data set folder, options) -> FileSet``: the files without decoding them, for
            sets of image files that can be streamed from disk; ``None`` for archive formats.
    """

    description: str
    options: frozenset[str]
    load: Callable[[Split, Path, LoadOptions], ImageSet]
    index: Callable[[Split, Path, LoadOptions], FileSet] | None = None


def _synthetic(split: Split, _: Path, o: LoadOptions) -> ImageSet:
    return load_synthetic_digits(split, n=o.synthetic_size, seed=o.seed, size=o.image_size or (28, 28),
                                 channels=o.channels or 1)


def _folder_index(split: Split, directory: Path, o: LoadOptions) -> FileSet:
    if o.directory is None:
        raise ValueError("the 'folder' data set needs directory=<folder>: class sub-folders (labeled), a "
                         "flat folder of images (unlabeled), or either of those under train/ and test/")
    folder = directory / split if (directory / split).is_dir() else directory
    return folder_files(folder, o.labeled, f"folder:{folder}")


def _decoded(index: Callable[[Split, Path, LoadOptions], FileSet]) -> Callable[[Split, Path, LoadOptions], ImageSet]:
    """The in-memory loader of a listed set: its files decoded at ``image_size`` and ``channels``."""
    def load(split: Split, directory: Path, o: LoadOptions) -> ImageSet:
        return materialize(index(split, directory, o), size=o.image_size, channels=o.channels, skip_bad=o.skip_bad)
    return load


def _office31(_: Split, directory: Path, o: LoadOptions) -> FileSet:
    return office_files(directory, o.domain, "office31")


def _office_home(_: Split, directory: Path, o: LoadOptions) -> FileSet:
    return office_files(directory, o.domain, "office_home")


def _visda(_: Split, directory: Path, o: LoadOptions) -> FileSet:
    return visda_files(directory, o.domain)


_FILES = frozenset({"directory"})
_LISTED = _FILES | {"domain", "image_size", "channels", "skip_bad"}
DATASETS: dict[str, DatasetSpec] = {
    "synthetic_digits": DatasetSpec(
        "printed digits rendered from matplotlib's fonts on scikit-image photos (embedded source, no files)",
        frozenset({"synthetic_size", "seed", "image_size", "channels"}), _synthetic),
    "sklearn_digits": DatasetSpec(
        "scikit-learn's bundled handwritten digits, 8x8 gray, fixed stratified 2/3-1/3 split (embedded "
        "target)", frozenset(), lambda split, _, o: load_sklearn_digits(split)),
    "mnist": DatasetSpec("MNIST idx files, 28x28 gray, 60000/10000", _FILES,
                         lambda split, d, _: load_mnist(d, split)),
    "usps": DatasetSpec("USPS usps.h5 or libsvm usps.bz2/usps.t.bz2, 16x16 gray, 7291/2007", _FILES,
                        lambda split, d, _: load_usps(d, split)),
    "svhn": DatasetSpec("SVHN cropped digits train_32x32.mat/test_32x32.mat, 32x32 RGB, 73257/26032",
                        _FILES, lambda split, d, _: load_svhn(d, split)),
    "mnistm": DatasetSpec("MNIST-M as released (mnist_m/ png + label lists), 28x28 RGB, 59001/9001",
                          _FILES | {"skip_bad"},
                          lambda split, d, o: load_mnistm(d, split, skip_bad=o.skip_bad)),
    "folder": DatasetSpec("your images: class sub-folders (labeled) or a flat folder (unlabeled), "
                          "optionally under train/ and test/",
                          _FILES | {"labeled", "image_size", "channels", "skip_bad"}, _decoded(_folder_index),
                          _folder_index),
    "office31": DatasetSpec("Office-31: <dir>/<domain>/[images/]<class>/*.jpg, domains amazon, dslr, webcam; "
                            "both splits are the whole domain", _LISTED, _decoded(_office31), _office31),
    "office_home": DatasetSpec("Office-Home: <dir>/<domain>/<class>/*.jpg, domains Art, Clipart, Product, "
                               "Real_World; both splits are the whole domain", _LISTED, _decoded(_office_home),
                               _office_home),
    "visda2017": DatasetSpec("VisDA-2017 classification: <dir>/<domain>/image_list.txt ('path label'), domains "
                             "train (synthetic), validation (real), test; both splits are the whole domain",
                             _LISTED, _decoded(_visda), _visda),
}
"""Every named data set, by name."""


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return list(DATASETS)


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder ``<data root>/<name>`` where the files of ``name`` are looked up by default."""
    return resolve_data_root(root) / name


def _normalise_size(size: int | Sequence[int] | None) -> Size | None:
    if size is None:
        return None
    values = (int(size), int(size)) if isinstance(size, int) else tuple(int(v) for v in size)
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"image_size must be a positive int or (H, W), got {size!r}")
    return values[0], values[1]


def load_dataset(name: str, split: Split, root: str | Path | None = None, download: bool = False, *,
                 directory: str | Path | None = None, image_size: int | Sequence[int] | None = None,
                 channels: Channels | None = None, labeled: bool | None = None, skip_bad: bool = False,
                 synthetic_size: int | None = None, seed: int = 0, domain: str | None = None) -> ImageSet:
    """Load one split of a named data set.

    Every option can be passed to every data set (so that generic code can forward its settings);
    a data set ignores the options it does not use (see ``DATASETS[name].options``).

    Args:
        name: One of :func:`list_datasets`.
        split: ``"train"`` or ``"test"``.
        root: Data root; else ``$ADAPTRACK_DATA``, else ``~/.cache/adaptrack``. Files are looked up in
            ``<root>/<name>/``.
        download: Fetch missing files of ``mnist``, ``usps``, ``svhn``, ``mnistm`` (checksums verified).
        directory: The data set's own folder instead of ``<root>/<name>``; required for ``folder``,
            where ``<directory>/<split>`` is used when it exists, else ``directory`` itself (relative
            paths are taken from the current directory).
        image_size: ``folder``: resize every image to it; ``synthetic_digits``: render at it. An int
            means a square. Other sets keep their native size.
        channels: ``folder``: convert to 1 or 3 (default: 1 if every file is gray); ``synthetic_digits``:
            render with 1 (default) or 3. Other sets keep their native channels.
        labeled: ``folder``: require class sub-folders (true) or a flat folder (false); ``None`` decides
            by whether the folder has sub-folders.
        skip_bad: ``folder``, ``mnistm``: skip unreadable images with a warning instead of raising.
        synthetic_size: ``synthetic_digits``: number of images (default 20,000 train, 2,000 test).
        seed: ``synthetic_digits``: rendering seed. (The ``sklearn_digits`` split is fixed on purpose,
            so train and test never overlap whatever seed the caller uses.)
        domain: ``office31``, ``office_home``, ``visda2017``: the domain sub-folder (``amazon``, ``Art``,
            ``train``, …).

    Returns:
        The split as an :class:`ImageSet`.

    Raises:
        ValueError: Unknown name (the message lists the valid ones), bad split or bad option value.
        MissingDataError: Files are absent (listing each, the folder to put it in and its URL).
        DataError: A file is corrupt or malformed (naming it).
    """
    options, where = _options(name, split, root, directory, image_size, channels, labeled, skip_bad,
                              synthetic_size, seed, domain)
    if name in REQUIREMENTS:
        ensure_available(name, split, where, download=download)
    data = DATASETS[name].load(split, where, options)
    if len(data) == 0:
        raise DataError(f"the {split} split of {name!r} is empty", where)
    return data


def _options(name: str, split: Split, root: str | Path | None, directory: str | Path | None,
             image_size: int | Sequence[int] | None, channels: Channels | None, labeled: bool | None,
             skip_bad: bool, synthetic_size: int | None, seed: int, domain: str | None) -> tuple[LoadOptions, Path]:
    """The checked options of :func:`load_dataset` / :func:`index_dataset` and the data set's folder."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid names: {', '.join(list_datasets())}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if synthetic_size is not None and synthetic_size < 1:
        raise ValueError(f"synthetic_size must be at least 1, got {synthetic_size}")
    folder = None if directory is None else Path(directory).expanduser()
    options = LoadOptions(directory=folder, image_size=_normalise_size(image_size), channels=channels,
                          labeled=labeled, skip_bad=skip_bad, synthetic_size=synthetic_size, seed=seed,
                          domain=domain)
    return options, folder if folder is not None else dataset_dir(name, root)


def index_dataset(name: str, split: Split, root: str | Path | None = None, *, directory: str | Path | None = None,
                  labeled: bool | None = None, domain: str | None = None) -> FileSet | None:
    """List one split of a named set of image files without decoding them (to stream it from disk).

    Args:
        name: One of :func:`list_datasets`.
        split: ``"train"`` or ``"test"``.
        root: Data root, as for :func:`load_dataset`.
        directory: The data set's own folder, as for :func:`load_dataset`.
        labeled: ``folder``: as for :func:`load_dataset`.
        domain: ``office31``, ``office_home``, ``visda2017``: the domain sub-folder.

    Returns:
        The files and labels, or ``None`` for a set that is not made of image files (``mnist``, …).

    Raises:
        ValueError: Unknown name or bad split.
        DataError: The folder or list is missing or malformed (naming it), or the split is empty.
    """
    options, where = _options(name, split, root, directory, None, None, labeled, False, None, 0, domain)
    index = DATASETS[name].index
    if index is None:
        return None
    files = index(split, where, options)
    if len(files) == 0:
        raise DataError(f"the {split} split of {name!r} is empty", where)
    return files
