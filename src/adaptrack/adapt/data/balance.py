"""Labeled target images drawn per class, and class-balancing oversampling by rotation (S40, S41).

* :func:`draw_per_class`: the third embodiment's few labeled target images (k per class, by seed).
* :func:`oversample` : the DOA unit 21 / 21a (S40, FIGS. 25, 28) and the padder 21b (S41, claim 9):
  new images are made by rotating existing ones of the same class by a random angle, until every
  class holds the requested count.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.geometry.transform as KT
import torch

from adaptrack.common.errors import ConfigError


def class_counts(labels: torch.Tensor, num_classes: int) -> list[int]:
    """Images per class, ``[n_0, …, n_{K-1}]``."""
    return torch.bincount(labels, minlength=num_classes).tolist()


def draw_per_class(labels: torch.Tensor, k: int, classes: Sequence[str], seed: int, what: str) -> torch.Tensor:
    """Indices of ``k`` images of every class, drawn without replacement by ``seed``.

    Args:
        labels: ``(N,)`` labels of the set drawn from.
        k: Images per class (≥ 1).
        classes: Class names (index = label), for messages.
        seed: Seed of the draw; the same seed draws the same images.
        what: Name of the set, for messages.

    Returns:
        ``(k * K,)`` int64 indices, class by class.

    Raises:
        ConfigError: ``k < 1``, or a class has fewer than ``k`` labeled images (naming it).
    """
    if k < 1:
        raise ConfigError(f"data.labeled_target.per_class={k} must be >= 1")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c, name in enumerate(classes):
        pool = torch.nonzero(labels == c).flatten()
        if pool.numel() < k:
            raise ConfigError(f"data.labeled_target.per_class={k} but class {name!r} of {what} has only "
                              f"{pool.numel()} labeled image(s)")
        chosen.append(pool[torch.randperm(pool.numel(), generator=g)[:k]])
    return torch.cat(chosen)


def rotate_uint8(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate uint8 ``(N, C, H, W)`` images about their centres by ``angles`` degrees ``(N,)``.

    Bilinear, borders replicated (a digit's dark background, or a photo's edge, extends outward).
    """
    if images.shape[0] == 0:
        return images
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].float()
        rotated = KT.rotate(chunk, angles[start:start + 4096].float(), padding_mode="border")
        out[start:start + 4096] = rotated.round_().clamp_(0, 255).to(torch.uint8)
    return out


def oversample(images: torch.Tensor, labels: torch.Tensor, counts: Sequence[int], max_angle: float,
               seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Bring every class to ``counts[c]`` images by adding rotated copies of its existing images.

    The original images are kept, in order; new ones are appended. Each new image is a randomly
    chosen image of its class rotated by an angle drawn uniformly from ``[-max_angle, max_angle]``.
    A class already at or above its count is left as it is (nothing is removed).

    Args:
        images: ``(N, C, H, W)`` uint8.
        labels: ``(N,)`` int64.
        counts: Wanted images per class.
        max_angle: Largest rotation in degrees.
        seed: Seed of the choices and angles.

    Returns:
        ``(N', C, H, W)`` images and ``(N',)`` labels.

    Raises:
        ValueError: A class to be filled has no image to rotate.
    """
    g = torch.Generator().manual_seed(seed)
    new_images, new_labels = [images], [labels]
    for c, wanted in enumerate(counts):
        pool = torch.nonzero(labels == c).flatten()
        missing = int(wanted) - pool.numel()
        if missing <= 0:
            continue
        if pool.numel() == 0:
            raise ValueError(f"class {c} has no image to oversample from")
        pick = pool[torch.randint(pool.numel(), (missing,), generator=g)]
        angles = (torch.rand(missing, generator=g) * 2 - 1) * max_angle
        new_images.append(rotate_uint8(images[pick], angles))
        new_labels.append(torch.full((missing,), c, dtype=labels.dtype))
    return torch.cat(new_images), torch.cat(new_labels)


def equal_counts(total: int, num_classes: int) -> list[int]:
    """``num_classes`` counts summing to ``total`` that differ by at most one (the first classes get the rest)."""
    base, rest = divmod(total, num_classes)
    return [base + (1 if c < rest else 0) for c in range(num_classes)]
