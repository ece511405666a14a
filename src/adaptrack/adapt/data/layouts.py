"""File listings (no decoding) of image folders and of the Office-31, Office-Home and VisDA-2017 layouts.

Each function returns a :class:`~adaptrack.adapt.data.base.FileSet`; the data module either streams
it from disk (:mod:`adaptrack.adapt.data.stream`) or decodes it once into memory
(:func:`materialize`), chosen by ``data.stream.cache``.

Layouts:

* ``office31``: ``<root>/<domain>/<class>/*.jpg`` or, as released, ``<root>/<domain>/images/<class>/*.jpg``
  (domains ``amazon``, ``dslr``, ``webcam``).
* ``office_home``: ``<root>/<domain>/<class>/*.jpg`` (domains ``Art``, ``Clipart``, ``Product``,
  ``Real_World``; any folder name is accepted).
* ``visda2017``: ``<root>/<domain>/image_list.txt`` (domains ``train``, ``validation``, ``test``) whose
  lines are ``<path relative to <root>/<domain>> <label>``; class names are the paths' first folder
  (``aeroplane/src_1_..png``) and must be one per label; lines without a label make an unlabeled set.

These sets have no train/test split: both splits are the whole domain (the usual protocol of
unsupervised adaptation: the unlabeled target domain is also the one reported).
"""

from __future__ import annotations

from pathlib import Path

import torch

from adaptrack.adapt.data.base import FileSet, ImageSet
from adaptrack.adapt.data.folders import labeled_folder_files, unlabeled_folder_files
from adaptrack.adapt.data.images import Channels, Size, read_images
from adaptrack.common.errors import DataError


def folder_files(folder: Path, labeled: bool | None, name: str) -> FileSet:
    """List a labeled (class sub-folders) or unlabeled (flat) folder; ``labeled=None`` decides by sub-folders."""
    if labeled is None:
        labeled = folder.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())
    if labeled:
        paths, labels, classes = labeled_folder_files(folder)
        return FileSet([str(p) for p in paths], torch.tensor(labels, dtype=torch.int64), classes, name)
    return FileSet([str(p) for p in unlabeled_folder_files(folder)], None, [], name)


def _domain_folder(root: Path, domain: str | None, dataset: str) -> Path:
    if domain is None:
        raise DataError(f"the {dataset!r} data set needs a domain (data.source_domain / data.target_domain): "
                        "one of the sub-folders of its folder", root)
    folder = root / domain
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise DataError(f"domain {domain!r} of {dataset!r} not found (domains there: {found or 'none'})", folder)
    return folder


def office_files(root: Path, domain: str | None, dataset: str = "office31") -> FileSet:
    """List ``<root>/<domain>/<class>/*`` (or ``<root>/<domain>/images/<class>/*``, Office-31 as released)."""
    folder = _domain_folder(root, domain, dataset)
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(subs) == 1 and subs[0].name == "images":
        folder = subs[0]
    return folder_files(folder, True, f"{dataset}/{domain}")


def visda_files(root: Path, domain: str | None) -> FileSet:
    """List ``<root>/<domain>/image_list.txt`` (lines ``path label``; see the module docstring).

    Raises:
        DataError: The list is missing, a line is malformed (naming the line), a listed file is
            absent, or one label has two folder names.
    """
    folder = _domain_folder(root, domain, "visda2017")
    listing = folder / "image_list.txt"
    if not listing.is_file():
        raise DataError("image list is missing (VisDA-2017 lists each domain's images in "
                        "<domain>/image_list.txt, lines '<path> <label>')", listing)
    files: list[str] = []
    labels: list[int] = []
    names: dict[int, str] = {}
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and not parts[1].lstrip("-").isdigit()):
            raise DataError(f"line {number} {line!r} is not '<path> <integer label>'", listing)
        if files and (len(parts) == 2) != bool(labels):
            raise DataError(f"line {number} {line!r}: some lines have a label and others not", listing)
        path = folder / parts[0]
        if not path.is_file():
            raise DataError(f"image listed on line {number} of {listing} is missing", path)
        files.append(str(path))
        if len(parts) == 2:
            label, cls = int(parts[1]), Path(parts[0]).parts[0] if len(Path(parts[0]).parts) > 1 else parts[1]
            if label < 0:
                raise DataError(f"line {number} {line!r}: negative label", listing)
            if names.setdefault(label, cls) != cls:
                raise DataError(f"line {number} {line!r}: label {label} is folder {cls!r} here but "
                                f"{names[label]!r} before", listing)
            labels.append(label)
    if not files:
        raise DataError("image list names no image", listing)
    if not labels:
        return FileSet(files, None, [], f"visda2017/{domain}")
    classes = [names[k] for k in sorted(names)]
    if sorted(names) != list(range(len(names))):
        raise DataError(f"labels {sorted(names)} are not 0..{len(names) - 1}", listing)
    if sorted(classes) != classes:  # class index = sorted folder name, as for folders
        order = sorted(range(len(classes)), key=lambda k: classes[k])
        remap = torch.empty(len(classes), dtype=torch.int64)
        remap[torch.tensor(order)] = torch.arange(len(classes))
        return FileSet(files, remap[torch.tensor(labels)], sorted(classes), f"visda2017/{domain}")
    return FileSet(files, torch.tensor(labels, dtype=torch.int64), classes, f"visda2017/{domain}")


def materialize(files: FileSet, *, size: Size | None, channels: Channels | None, skip_bad: bool) -> ImageSet:
    """Decode a listed set into memory (uint8, resized to ``size``): the in-memory cache of a small set.

    Raises:
        DataError: An unreadable file (``skip_bad=False``; naming it), or no readable file.
    """
    images, kept = read_images([Path(f) for f in files.files], channels=channels, size=size, skip_bad=skip_bad,
                               what=files.name)
    labels = None if files.labels is None else files.labels[torch.tensor(kept, dtype=torch.int64)]  # (N,)
    return ImageSet(images, labels, list(files.classes), files.name, [files.files[i] for i in kept])
