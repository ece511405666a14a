"""The embedded default source domain: printed digits rendered on photo backgrounds, no download.

Glyph masks of the digits 0-9 are rendered once per (font, stroke width) with PIL from the TrueType
fonts bundled with matplotlib. Each sample then picks a mask and is placed by a random affine warp
(size, aspect, rotation, shear, position), done in batch with kornia at twice the output size and
average-pooled for antialiasing, then composited in a random ink colour over a random crop of one of
the photos bundled with scikit-image, blurred and noised. Everything is drawn from one seeded
``torch.Generator``, so a seed gives the same images.

These are printed digits, a clearly different domain from the handwritten target of the embedded
default (scikit-learn's digits), but bright ink on a darker background like it, so that a classifier
trained on them transfers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import kornia
import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.formats import DIGIT_CLASSES, Split
from adaptrack.adapt.data.images import Channels, Size
from adaptrack.common.files import atomic_path

FONT_FILES: tuple[str, ...] = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf", "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmmi10.ttf",
)
"""Fonts of ``matplotlib/mpl-data/fonts/ttf`` that hold the digits (cmmi10 has old-style figures)."""

BACKGROUND_IMAGES: tuple[str, ...] = (
    "astronaut", "camera", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "moon", "coins",
    "hubble_deep_field",
)
"""Photos of ``skimage.data`` that ship inside scikit-image (no pooch download)."""

DEFAULT_SIZES: dict[str, int] = {"train": 20000, "test": 2000}

_BANK = 64  # glyph canvas side, pixels
_FONT_PX = 40  # font size on that canvas
_BG_SCALES = (1.5, 3.0, 6.0)  # background short side, in multiples of the output height


@dataclass(frozen=True)
class SyntheticStyle:
    """Ranges of the random rendering parameters (each drawn uniformly per image).

    Attributes:
        strokes: Extra stroke widths (pixels on the 64-pixel glyph canvas) the glyphs are rendered with;
            bold fonts get at most 1 so that their counters (the holes of 0, 6, 8, 9) stay open.
        height: Glyph height as a fraction of the image height.
        aspect: Maximum relative change of the glyph's width.
        rotation: Maximum rotation, degrees either way.
        shear: Maximum horizontal shear factor either way.
        shift: Maximum offset of the glyph centre, as a fraction of the image size.
        ink: Ink brightness (0-1).
        contrast: Minimum gap between the ink brightness and the background's mean brightness.
        texture: Contrast of the photo texture kept in the background.
        tint: Maximum colour saturation of ink and background (3 channels only).
        blur: Gaussian blur sigma, output pixels.
        noise: Maximum standard deviation of the additive pixel noise.
        invert: Probability of dark ink on a bright background.
    """

    strokes: tuple[int, ...] = (0, 1, 2)
    height: tuple[float, float] = (0.55, 0.95)
    aspect: float = 0.15
    rotation: float = 15.0
    shear: float = 0.2
    shift: float = 0.08
    ink: tuple[float, float] = (0.6, 1.0)
    contrast: float = 0.35
    texture: tuple[float, float] = (0.05, 0.5)
    tint: float = 0.6
    blur: tuple[float, float] = (0.3, 1.2)
    noise: float = 0.04
    invert: float = 0.0


@functools.lru_cache(maxsize=4)
def glyph_bank(strokes: tuple[int, ...] = SyntheticStyle.strokes) -> tuple[torch.Tensor, torch.Tensor]:
    """Render every digit in every font and stroke width once.

    Args:
        strokes: Stroke widths to render, pixels on the 64-pixel canvas.

    Returns:
        Masks ``(G, 10, 64, 64)`` float in [0, 1] (G = fonts x strokes, second axis = digit) and
        their bounding boxes ``(G, 10, 4)`` as centre x, centre y, width, height in pixels.
    """
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    masks = np.zeros((len(FONT_FILES) * len(strokes), 10, _BANK, _BANK), dtype=np.float32)
    boxes = np.zeros((len(FONT_FILES) * len(strokes), 10, 4), dtype=np.float32)
    for f, font_file in enumerate(FONT_FILES):
        font = ImageFont.truetype(str(font_dir / font_file), _FONT_PX)
        bold = "Bol" in font_file or font_file == "cmb10.ttf"
        for s, width in enumerate(strokes):
            stroke = min(width, 1) if bold else width
            for digit in range(10):
                canvas = Image.new("L", (_BANK, _BANK))
                ImageDraw.Draw(canvas).text((_BANK / 2, _BANK / 2), str(digit), font=font, fill=255,
                                            anchor="mm", stroke_width=stroke, stroke_fill=255)
                mask = np.asarray(canvas, dtype=np.float32) / 255.0  # (64, 64)
                ys, xs = np.nonzero(mask > 0.2)
                g = f * len(strokes) + s
                masks[g, digit] = mask
                boxes[g, digit] = ((xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2,
                                   xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    return torch.from_numpy(masks), torch.from_numpy(boxes)


@functools.lru_cache(maxsize=4)
def background_bank(height: int, channels: Channels) -> tuple[torch.Tensor, torch.Tensor]:
    """The bundled photos at a few scales, packed into one zero-padded tensor for batched cropping.

    Args:
        height: Output image height; the photos' short sides become 1.5, 3 and 6 times it.
        channels: 1 (luminance) or 3 (RGB).

    Returns:
        Photos ``(K, C, S, S)`` float in [0, 1] and their valid sizes ``(K, 2)`` as height, width.
    """
    import skimage.data

    resized: list[np.ndarray] = []
    for name in BACKGROUND_IMAGES:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("L" if channels == 1 else "RGB")
        for scale in _BG_SCALES:
            factor = scale * height / min(photo.size)
            w, h = max(1, round(photo.size[0] * factor)), max(1, round(photo.size[1] * factor))
            array = np.asarray(photo.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
            resized.append(array.reshape(h, w, channels))
    side = max(max(a.shape[:2]) for a in resized)
    bank = np.zeros((len(resized), side, side, channels), dtype=np.float32)
    for k, array in enumerate(resized):
        bank[k, : array.shape[0], : array.shape[1]] = array
    sizes = torch.tensor([a.shape[:2] for a in resized], dtype=torch.int64)  # (K, 2)
    return torch.from_numpy(bank).permute(0, 3, 1, 2).contiguous(), sizes  # (K, C, S, S)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)  # (n,)


def _glyph_alpha(labels: torch.Tensor, gen: torch.Generator, size: Size,
                 style: SyntheticStyle) -> torch.Tensor:
    """Warp one random glyph mask per label into place; returns ``(n, 1, H, W)`` coverage in [0, 1]."""
    masks, boxes = glyph_bank(style.strokes)
    n = len(labels)
    oh, ow = 2 * size[0], 2 * size[1]  # warp at twice the size, then average-pool
    g = torch.randint(0, masks.shape[0], (n,), generator=gen)
    src = masks[g, labels].unsqueeze(1)  # (n, 1, 64, 64)
    cx, cy, bw, bh = boxes[g, labels].unbind(-1)  # (n,) each
    sy = _uniform(gen, n, *style.height) * oh / bh
    sx = sy * (1 + _uniform(gen, n, -style.aspect, style.aspect))
    fit = torch.clamp(0.95 * ow / (bw * sx), max=1.0)  # keep wide glyphs inside the frame
    sx, sy = sx * fit, sy * fit
    angle = torch.deg2rad(_uniform(gen, n, -style.rotation, style.rotation))
    shear = _uniform(gen, n, -style.shear, style.shear)
    tx = (ow - 1) / 2 + _uniform(gen, n, -style.shift, style.shift) * ow
    ty = (oh - 1) / 2 + _uniform(gen, n, -style.shift, style.shift) * oh
    cos, sin = torch.cos(angle), torch.sin(angle)
    # linear part = rotation @ shear @ scale; translation puts the glyph centre at (tx, ty)
    a, b = cos * sx, (cos * shear - sin) * sy
    c, d = sin * sx, (sin * shear + cos) * sy
    matrix = torch.stack([torch.stack([a, b, tx - a * cx - b * cy], -1),
                          torch.stack([c, d, ty - c * cx - d * cy], -1)], 1)  # (n, 2, 3)
    warped = kornia.geometry.transform.warp_affine(src, matrix, dsize=(oh, ow))  # (n, 1, 2H, 2W)
    return F.avg_pool2d(warped, 2).clamp(0.0, 1.0)  # (n, 1, H, W)


def _backgrounds(n: int, gen: torch.Generator, size: Size, channels: Channels) -> torch.Tensor:
    """Random crops of the bundled photos; returns ``(n, C, H, W)`` in [0, 1]."""
    bank, sizes = background_bank(size[0], channels)
    h, w = size
    k = torch.randint(0, bank.shape[0], (n,), generator=gen)
    ys = (torch.rand(n, generator=gen) * (sizes[k, 0] - h + 1).clamp(min=1)).long()  # (n,)
    xs = (torch.rand(n, generator=gen) * (sizes[k, 1] - w + 1).clamp(min=1)).long()  # (n,)
    rows = ys[:, None] + torch.arange(h)  # (n, H)
    cols = xs[:, None] + torch.arange(w)  # (n, W)
    crops = bank[k[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, H, W, C)
    crops = crops.permute(0, 3, 1, 2)  # (n, C, H, W)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], crops.flip(-1), crops)


def _tint(gen: torch.Generator, n: int, channels: Channels, strength: float) -> torch.Tensor:
    """Per-image colour factors ``(n, C, 1, 1)`` in [1 - strength, 1]; all ones for gray."""
    if channels == 1:
        return torch.ones(n, 1, 1, 1)
    sat = _uniform(gen, n, 0.0, strength)[:, None, None, None]  # (n, 1, 1, 1)
    return 1.0 - sat * torch.rand(n, channels, 1, 1, generator=gen)  # (n, C, 1, 1)


def _render_chunk(labels: torch.Tensor, gen: torch.Generator, size: Size, channels: Channels,
                  style: SyntheticStyle) -> torch.Tensor:
    n = len(labels)
    alpha = _glyph_alpha(labels, gen, size, style)  # (n, 1, H, W)
    photo = _backgrounds(n, gen, size, channels)  # (n, C, H, W)
    ink = _uniform(gen, n, *style.ink)  # (n,)
    level = torch.rand(n, generator=gen) * (ink - style.contrast).clamp(min=0.0)  # (n,) background mean
    texture = _uniform(gen, n, *style.texture)[:, None, None, None]  # (n, 1, 1, 1)
    background = level[:, None, None, None] + texture * (photo - photo.mean((1, 2, 3), keepdim=True))
    background = background * _tint(gen, n, channels, style.tint)  # (n, C, H, W)
    ink_colour = ink[:, None, None, None] * _tint(gen, n, channels, style.tint)  # (n, C, 1, 1)
    image = background * (1 - alpha) + ink_colour * alpha  # (n, C, H, W)
    invert = torch.rand(n, generator=gen) < style.invert
    image = torch.where(invert[:, None, None, None], 1 - image, image)
    sigma = _uniform(gen, n, *style.blur)[:, None].expand(n, 2)  # (n, 2)
    image = kornia.filters.gaussian_blur2d(image, (5, 5), sigma)  # (n, C, H, W)
    noise = _uniform(gen, n, 0.0, style.noise)[:, None, None, None]  # (n, 1, 1, 1)
    image = image + noise * torch.randn(image.shape, generator=gen)
    return (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8)  # (n, C, H, W)


def render_digits(n: int, *, seed: int = 0, size: Size = (28, 28), channels: Channels = 1,
                  style: SyntheticStyle | None = None,
                  chunk: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``n`` synthetic printed digits.

    Args:
        n: Number of images; labels are balanced (counts differ by at most one).
        seed: Seed of every random choice; the same seed gives the same images.
        size: ``(H, W)`` of the images.
        channels: 1 (gray) or 3 (colour ink and backgrounds).
        style: Ranges of the random parameters; defaults to :class:`SyntheticStyle`.
        chunk: Images rendered per batch (bounds memory; part of what the seed reproduces).

    Returns:
        Images ``(n, C, H, W)`` uint8 and labels ``(n,)`` int64.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if min(size) < 8:
        raise ValueError(f"size must be at least 8x8, got {size}")
    style = style or SyntheticStyle()
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 10)[torch.randperm(n, generator=gen)]  # (n,)
    with torch.no_grad():
        parts = [_render_chunk(labels[i:i + chunk], gen, size, channels, style) for i in range(0, n, chunk)]
    return torch.cat(parts), labels  # (n, C, H, W), (n,)


def load_synthetic_digits(split: Split, *, n: int | None = None, seed: int = 0, size: Size = (28, 28),
                          channels: Channels = 1) -> ImageSet:
    """The embedded default source domain as an :class:`ImageSet`.

    The two splits come from different random streams of the same seed, so they never coincide.

    Args:
        split: ``"train"`` or ``"test"``.
        n: Number of images; defaults to 20,000 for train and 2,000 for test.
        seed: Seed of the rendering.
        size: ``(H, W)`` of the images.
        channels: 1 or 3.
    """
    if split not in DEFAULT_SIZES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    count = DEFAULT_SIZES[split] if n is None else n
    key = (count, 2 * seed + (split == "test"), tuple(size), channels)
    if key not in _RENDERED:  # `adaptrack adapt compare` fits several methods on the same images
        while len(_RENDERED) >= _KEEP_RENDERED:  # the last few sets only (train and test: ~17 MB by default)
            del _RENDERED[next(iter(_RENDERED))]
        _RENDERED[key] = render_digits(count, seed=key[1], size=size, channels=channels)
    images, labels = _RENDERED[key]
    return ImageSet(images.clone(), labels.clone(), list(DIGIT_CLASSES), f"synthetic_digits/{split}")


_RENDERED: dict[tuple[int, int, tuple[int, ...], int], tuple[torch.Tensor, torch.Tensor]] = {}
"""The sets this process rendered last, by ``(n, seed, size, channels)``; handed out as copies."""
_KEEP_RENDERED = 4


def save_grid(images: torch.Tensor, labels: torch.Tensor | None, path: str | Path, *, columns: int = 10,
              scale: int = 3, classes: list[str] | None = None) -> Path:
    """Save a grid of images, each captioned with its label, as a PNG (written atomically).

    Args:
        images: ``(N, C, H, W)`` uint8, C = 1 or 3.
        labels: ``(N,)`` class indices, or ``None`` for no captions.
        path: Destination PNG.
        columns: Images per row.
        scale: Integer upscaling of each image (nearest neighbour).
        classes: Names printed for the labels; defaults to the label numbers.

    Returns:
        The PNG path.
    """
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images must be (N, C, H, W) uint8, got {tuple(images.shape)} {images.dtype}")
    n, c, h, w = images.shape
    tiles = images.expand(n, 3, h, w) if c == 1 else images  # (N, 3, H, W)
    caption = 12 if labels is not None else 0
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cell_w, cell_h = w * scale + 2, h * scale + caption + 2
    grid = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i in range(n):
        tile = Image.fromarray(tiles[i].permute(1, 2, 0).numpy()).resize((w * scale, h * scale),
                                                                          Image.Resampling.NEAREST)
        x, y = (i % cols) * cell_w + 1, (i // cols) * cell_h + 1
        grid.paste(tile, (x, y + caption))
        if labels is not None:
            text = classes[int(labels[i])] if classes else str(int(labels[i]))
            draw.text((x + 1, y), text, fill=(0, 0, 0))
    path = Path(path)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
    return path
