"""Data of the domain-adaptation subsystem: loaders of the original formats, folders, synthetic digits.

Use :func:`load_dataset` with a name of :func:`list_datasets`; every loader returns an :class:`ImageSet`.
"""

from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.registry import DATASETS, list_datasets, load_dataset

__all__ = ["DATASETS", "ImageSet", "list_datasets", "load_dataset"]
