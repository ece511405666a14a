"""Custom data as folders: labeled (one sub-folder per class) or unlabeled (a flat folder of images)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from adaptrack.adapt.data.base import AnySet, ImageSet
from adaptrack.adapt.data.images import IMAGE_SUFFIXES, Channels, Size, is_image_file, read_images
from adaptrack.common.errors import DataError


def list_images(directory: Path, recursive: bool = False) -> list[Path]:
    """Image files of ``directory`` in sorted order (hidden files and other suffixes are ignored).

    Args:
        directory: Folder to scan.
        recursive: Also scan sub-folders.
    """
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in directory.glob(pattern) if is_image_file(p))


def _check_dir(root: Path) -> None:
    if not root.exists():
        raise DataError("folder not found", root)
    if not root.is_dir():
        raise DataError("not a folder", root)


def labeled_folder_files(root: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """List ``root/<class>/**/*.png|jpg|jpeg|bmp`` without decoding: files, label of each, class names.

    Class names are the sorted sub-folder names.

    Raises:
        DataError: The folder is missing, has no class sub-folder or a class sub-folder without images.
    """
    root = Path(root)
    _check_dir(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        loose = " (it holds images directly: load it as an unlabeled folder)" if list_images(root) else ""
        raise DataError(f"no class sub-folders found; a labeled folder needs one sub-folder per class{loose}",
                        root)
    paths: list[Path] = []
    labels: list[int] = []
    for index, cls in enumerate(classes):
        files = list_images(root / cls, recursive=True)
        if not files and (root / cls).is_dir():
            raise DataError(f"class folder {cls!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); add images of "
                            "that class or remove the folder", root / cls)
        paths += files
        labels += [index] * len(files)
    if not paths:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in any of the class folders "
                        f"{classes}", root)
    return paths, labels, classes


def unlabeled_folder_files(root: str | Path) -> list[Path]:
    """List the images directly inside ``root`` without decoding them.

    Raises:
        DataError: The folder is missing or holds no image.
    """
    root = Path(root)
    _check_dir(root)
    paths = list_images(root)
    if not paths:
        nested = " (it has sub-folders: load it as a labeled folder)" if any(
            p.is_dir() for p in root.iterdir()) else ""
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found{nested}", root)
    return paths


def load_labeled_folder(root: str | Path, *, size: Size | None = None, channels: Channels | None = None,
                        skip_bad: bool = False, name: str | None = None) -> ImageSet:
    """Load ``root/<class>/**/*.png|jpg|jpeg|bmp``; class names are the sorted sub-folder names.

    Args:
        root: Folder holding one sub-folder per class.
        size: ``(H, W)`` to resize every image to; ``None`` requires one common size.
        channels: 1 or 3; ``None`` gives 1 when every file is gray-scale, else 3.
        skip_bad: Skip unreadable images with a warning giving the count, instead of raising.
        name: Name of the set; defaults to the folder path.

    Raises:
        DataError: The folder is missing, has no class sub-folder, a class sub-folder without images,
            or an image is unreadable (naming the file).
    """
    paths, labels, classes = labeled_folder_files(root)
    images, kept = read_images(paths, channels=channels, size=size, skip_bad=skip_bad, what=str(root))
    label_tensor = torch.tensor([labels[i] for i in kept], dtype=torch.int64)  # (N,)
    return ImageSet(images, label_tensor, classes, name or str(root), [str(paths[i]) for i in kept])


def load_unlabeled_folder(root: str | Path, *, size: Size | None = None, channels: Channels | None = None,
                          skip_bad: bool = False, name: str | None = None) -> ImageSet:
    """Load the images directly inside ``root`` (no labels, no class names).

    Args:
        root: Flat folder of png/jpg/jpeg/bmp images.
        size: ``(H, W)`` to resize every image to; ``None`` requires one common size.
        channels: 1 or 3; ``None`` gives 1 when every file is gray-scale, else 3.
        skip_bad: Skip unreadable images with a warning giving the count, instead of raising.
        name: Name of the set; defaults to the folder path.

    Raises:
        DataError: The folder is missing or holds no image, or an image is unreadable.
    """
    paths = unlabeled_folder_files(root)
    images, kept = read_images(paths, channels=channels, size=size, skip_bad=skip_bad, what=str(root))
    return ImageSet(images, None, [], name or str(root), [str(paths[i]) for i in kept])


def check_same_classes(a: AnySet, b: AnySet) -> None:
    """Require two labeled sets to use the same class names in the same order.

    Raises:
        DataError: The class lists differ; the message lists both and the names only in one.
    """
    if a.classes == b.classes:
        return
    only_a = sorted(set(a.classes) - set(b.classes))
    only_b = sorted(set(b.classes) - set(a.classes))
    if only_a or only_b:
        detail = f"only in {a.name}: {only_a}; only in {b.name}: {only_b}"
    else:
        detail = "same names, different order"
    raise DataError(f"class names differ: {a.name} has {a.classes}, {b.name} has {b.classes} ({detail})")


def match_classes(reference: AnySet, other: AnySet, require_all: bool = False) -> AnySet:
    """Express ``other`` in the classes of ``reference``, matching classes by (folder) name.

    A labeled ``other`` may hold a subset of the reference classes (e.g. a test folder missing one
    class) unless ``require_all``; its labels are re-indexed into ``reference.classes``. An unlabeled
    ``other`` simply takes the reference class names.

    Args:
        reference: The set whose classes are the model's (the source).
        other: The set to re-index.
        require_all: Every class of ``reference`` must be in ``other`` (the labeled target images).

    Returns:
        A new set of ``other``'s kind (in memory or on disk) sharing its images or files.

    Raises:
        DataError: ``other`` has a class name the reference lacks, or (``require_all``) lacks one the
            reference has; the message lists both lists.
    """
    if other.labels is None:
        return replace(other, classes=list(reference.classes))
    unknown = [c for c in other.classes if c not in reference.classes]
    if unknown:
        raise DataError(f"classes {unknown} of {other.name} are not among the classes of {reference.name}: "
                        f"{reference.name} has {reference.classes}, {other.name} has {other.classes}")
    missing = [c for c in reference.classes if c not in other.classes]
    if require_all and missing:
        raise DataError(f"classes {missing} of {reference.name} have no folder in {other.name}: it needs one "
                        f"sub-folder per class ({reference.name} has {reference.classes}, {other.name} has "
                        f"{other.classes})")
    mapping = torch.tensor([reference.classes.index(c) for c in other.classes])  # (K_other,) int64
    return replace(other, labels=mapping[other.labels], classes=list(reference.classes))
