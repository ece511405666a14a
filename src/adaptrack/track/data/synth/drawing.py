"""Vectorised numpy rasterisation: shape masks, clothing textures, painting and camera effects.

Shapes are evaluated on a pixel grid of a small region (``yy``, ``xx`` float arrays of pixel
centres), so drawing a person costs a few array operations on a patch of its size, never a
per-pixel Python loop.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

TEXTURES: tuple[str, ...] = ("solid", "hstripes", "vstripes", "checks", "noise")
"""Clothing texture kinds understood by :func:`texture`."""


def grid(y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of the region ``[y0, y1) × [x0, x1)``.

    Returns:
        ``(yy, xx)``, each ``(y1 - y0, x1 - x0)`` float32.
    """
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5
    return np.broadcast_to(ys[:, None], (len(ys), len(xs))), np.broadcast_to(xs[None, :], (len(ys), len(xs)))


def ellipse_mask(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    """Pixels inside the axis-aligned ellipse centred at ``(cx, cy)`` with radii ``rx``, ``ry``."""
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def capsule_mask(yy: np.ndarray, xx: np.ndarray, p0: tuple[float, float], p1: tuple[float, float],
                 radius: float) -> np.ndarray:
    """Pixels within ``radius`` of the segment ``p0``–``p1`` (points as ``(x, y)``): a limb."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length2 = dx * dx + dy * dy
    if length2 == 0:
        return (xx - p0[0]) ** 2 + (yy - p0[1]) ** 2 <= radius * radius
    t = np.clip(((xx - p0[0]) * dx + (yy - p0[1]) * dy) / length2, 0.0, 1.0)
    ex = xx - (p0[0] + t * dx)
    ey = yy - (p0[1] + t * dy)
    return ex * ex + ey * ey <= radius * radius


def trapezoid_mask(yy: np.ndarray, xx: np.ndarray, top: float, bottom: float, cx: float,
                   top_half: float, bottom_half: float) -> np.ndarray:
    """Pixels of a vertical trapezoid (a torso): rows ``top``–``bottom``, half-widths interpolated."""
    frac = np.clip((yy - top) / max(bottom - top, 1e-6), 0.0, 1.0)
    half = top_half + (bottom_half - top_half) * frac
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def texture(kind: str, u: np.ndarray, v: np.ndarray, base: np.ndarray, second: np.ndarray,
            period: float, noise_tile: np.ndarray) -> np.ndarray:
    """Clothing colours at body-relative coordinates, so the pattern moves and scales with the body.

    Args:
        kind: One of :data:`TEXTURES`.
        u: Horizontal body coordinate (0 at the garment's left edge, 1 at its right), ``(h, w)``.
        v: Vertical body coordinate, in the same units as ``u`` × garment width / height.
        base: RGB base colour, ``(3,)`` float.
        second: RGB second colour for stripes and checks, ``(3,)`` float.
        period: Pattern period in body units.
        noise_tile: ``(n, n)`` float values in [-1, 1] for the ``noise`` kind.

    Returns:
        ``(h, w, 3)`` float32 colours.
    """
    if kind == "solid":
        weight = np.zeros(u.shape, np.float32)
    elif kind == "hstripes":
        weight = (np.floor(v / period) % 2).astype(np.float32)
    elif kind == "vstripes":
        weight = (np.floor(u / period) % 2).astype(np.float32)
    elif kind == "checks":
        weight = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    elif kind == "noise":
        n = noise_tile.shape[0]
        iy = (np.floor(v / period * 2).astype(np.int64)) % n
        ix = (np.floor(u / period * 2).astype(np.int64)) % n
        jitter = noise_tile[iy, ix][..., None] * 0.35  # (h, w, 1)
        return (base[None, None, :] * (1.0 + jitter)).astype(np.float32)  # (h, w, 3)
    else:
        raise ValueError(f"unknown texture {kind!r}; known: {', '.join(TEXTURES)}")
    w = weight[..., None]  # (h, w, 1)
    return (base[None, None, :] * (1.0 - w) + second[None, None, :] * w).astype(np.float32)  # (h, w, 3)


def shade(xx: np.ndarray, cx: float, half_width: float, strength: float = 0.3) -> np.ndarray:
    """Cylinder-like shading factor, 1 at ``cx`` falling to ``1 - strength`` at ``± half_width``.

    Returns:
        ``(h, w, 1)`` float32 multipliers.
    """
    d = np.clip(np.abs(xx - cx) / max(half_width, 1e-6), 0.0, 1.0)
    return (1.0 - strength * d * d).astype(np.float32)[..., None]


def fabric(u: np.ndarray, v: np.ndarray, noise_tile: np.ndarray, strength: float,
           period: float = 0.05) -> np.ndarray:
    """Fine cloth grain: a weave of threads plus value noise, in body coordinates (moves with the body).

    Args:
        u: Horizontal body coordinate (see :func:`texture`), ``(h, w)``.
        v: Vertical body coordinate, ``(h, w)``.
        noise_tile: ``(n, n)`` values in [-1, 1].
        strength: Amplitude of the brightness modulation (0 = none).
        period: Grain size in body units.

    Returns:
        ``(h, w, 1)`` float32 multipliers around 1.
    """
    n = noise_tile.shape[0]
    grain = noise_tile[np.floor(v / period).astype(np.int64) % n, np.floor(u / period).astype(np.int64) % n]
    weave = np.sin(u * (np.pi / period)) * np.sin(v * (np.pi / period))  # (h, w) threads crossing
    return (1.0 + strength * (0.6 * grain + 0.4 * weave)).astype(np.float32)[..., None]


def vertical_shade(yy: np.ndarray, top: float, bottom: float, strength: float) -> np.ndarray:
    """Light from above: ``1 + strength / 2`` at row ``top`` falling to ``1 - strength / 2`` at ``bottom``.

    Returns:
        ``(h, w, 1)`` float32 multipliers.
    """
    frac = np.clip((yy - top) / max(bottom - top, 1e-6), 0.0, 1.0)
    return (1.0 + strength * (0.5 - frac)).astype(np.float32)[..., None]


def line_kernel(dx: float, dy: float) -> np.ndarray:
    """Normalised 2-D kernel of a motion-blur streak ``(dx, dy)`` pixels long (odd square side)."""
    length = float(np.hypot(dx, dy))
    half = int(np.ceil(length / 2))
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    for t in np.linspace(-0.5, 0.5, max(2, int(np.ceil(length)) * 2 + 1)):
        kernel[round(half + float(t) * dy), round(half + float(t) * dx)] += 1.0
    return kernel / kernel.sum()


def soften(canvas: np.ndarray, cover: np.ndarray, sigma: float, motion: tuple[float, float] = (0.0, 0.0),
           ) -> tuple[np.ndarray, np.ndarray, int]:
    """Gaussian and motion blur of a painted person, edges included (premultiplied alpha).

    Args:
        canvas: ``(h, w, 3)`` float32 colours.
        cover: ``(h, w)`` bool painted pixels.
        sigma: Gaussian blur radius in pixels (0 = none).
        motion: Motion-blur streak ``(dx, dy)`` in pixels.

    Returns:
        ``(h + 2m, w + 2m, 3)`` colours, ``(h + 2m, w + 2m)`` alpha in [0, 1] and the margin ``m``
        the blur spreads beyond the canvas.
    """
    from scipy import ndimage

    kernel = line_kernel(*motion) if np.hypot(*motion) >= 1.0 else None
    margin = int(np.ceil(3 * sigma)) + (kernel.shape[0] // 2 if kernel is not None else 0)
    pad = ((margin, margin), (margin, margin))
    alpha = np.pad(cover.astype(np.float32), pad)  # (h', w')
    premult = np.pad(canvas * cover[..., None], (*pad, (0, 0)))  # (h', w', 3)
    layers = [premult[..., c] for c in range(3)] + [alpha]
    out = []
    for layer in layers:
        if sigma > 0:
            layer = ndimage.gaussian_filter(layer, sigma, mode="constant")
        if kernel is not None:
            layer = ndimage.convolve(layer, kernel, mode="constant")
        out.append(layer)
    alpha = np.clip(out[3], 0.0, 1.0)
    colours = np.stack(out[:3], axis=-1) / np.maximum(out[3], 1e-6)[..., None]  # (h', w', 3) un-premultiplied
    return colours.astype(np.float32), alpha.astype(np.float32), margin


def blend(image: np.ndarray, top_left: tuple[int, int], colours: np.ndarray, alpha: np.ndarray) -> None:
    """Alpha-blend ``colours (h, w, 3)`` over ``image (H, W, 3)`` at ``(y, x)``, clipped to the image."""
    H, W = image.shape[:2]
    y, x = top_left
    y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + alpha.shape[0], H), min(x + alpha.shape[1], W)
    if y1 <= y0 or x1 <= x0:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]  # (h, w, 1)
    region = image[y0:y1, x0:x1]
    region += a * (colours[y0 - y:y1 - y, x0 - x:x1 - x] - region)


def paint(canvas: np.ndarray, cover: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Paint ``colour`` where ``mask`` is set on a person's own canvas (later paint wins).

    Args:
        canvas: ``(h, w, 3)`` float32 patch, modified in place.
        cover: ``(h, w)`` bool, pixels painted so far; updated in place.
        mask: ``(h, w)`` bool.
        colour: ``(3,)`` or ``(h, w, 3)`` float colours.
    """
    np.copyto(canvas, colour, where=mask[..., None])
    cover |= mask


def composite(image: np.ndarray, owner: np.ndarray, region: tuple[int, int, int, int], canvas: np.ndarray,
              cover: np.ndarray, owner_id: int) -> None:
    """Put a painted person canvas over the frame and record who owns the covered pixels.

    Args:
        image: ``(H, W, 3)`` float32 frame, modified in place.
        owner: ``(H, W)`` int16 person id per pixel (-1 = background), modified in place.
        region: ``(y0, y1, x0, x1)`` of the canvas in the frame.
        canvas: ``(y1 - y0, x1 - x0, 3)`` float32.
        cover: ``(y1 - y0, x1 - x0)`` bool.
        owner_id: Id written into ``owner``.
    """
    y0, y1, x0, x1 = region
    np.copyto(image[y0:y1, x0:x1], canvas, where=cover[..., None])
    np.copyto(owner[y0:y1, x0:x1], np.int16(owner_id), where=cover)


def noise_bank(rng: np.random.Generator, width: int, height: int, sigma: float) -> np.ndarray:
    """Gaussian sensor noise twice the frame size; frames take shifted windows of it (cheap per frame).

    Returns:
        ``(2 * height, 2 * width, 3)`` float32 noise with standard deviation ``sigma``, plus 0.5 so
        that truncating to uint8 rounds.
    """
    bank = rng.standard_normal((2 * height, 2 * width, 3), dtype=np.float32) * np.float32(sigma)
    return bank + np.float32(0.5)


def camera_effects(image: np.ndarray, noise: np.ndarray, offset: tuple[int, int], brightness: float,
                   blur_sigma: float) -> np.ndarray:
    """Blur, brightness and sensor noise, in that order.

    Args:
        image: ``(H, W, 3)`` float32 frame in [0, 255]; overwritten.
        noise: From :func:`noise_bank`.
        offset: ``(dy, dx)`` of this frame's noise window, each in ``[0, H)`` / ``[0, W)``.
        brightness: Multiplicative gain.
        blur_sigma: Gaussian blur radius in pixels (0 = none).

    Returns:
        ``(H, W, 3)`` uint8 frame.
    """
    height, width = image.shape[:2]
    if blur_sigma > 0:
        sharp = np.clip(image, 0, 255).astype(np.uint8)
        image = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(blur_sigma)), np.float32)
    image *= np.float32(brightness)
    image += noise[offset[0]:offset[0] + height, offset[1]:offset[1] + width]
    np.clip(image, 0, 255, out=image)
    return image.astype(np.uint8)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an ``(H, W, 3)`` uint8 frame (deterministic for equal input)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()
