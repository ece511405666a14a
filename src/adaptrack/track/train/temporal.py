"""Storage of past part region maps for the temporal-consistency loss (third embodiment, ¶63–70).

Maps are stored on the full frame's map grid: a map computed on a crop window (and maybe mirrored)
is un-mirrored and placed at the window's origin on a canvas of the whole frame, NaN elsewhere.
The average for a later frame is cut out at that frame's window (and mirrored like it), so the
maps of an in-order pass over a sequence stay comparable across training batches whose crops and
flips differ; elements not covered by every stored map are NaN (the loss skips them).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import torch


class RegionMapBuffer:
    """Per-sequence store of the last ``n`` region maps (storage unit 170, S108).

    Maps are stored detached. A stream is keyed by e.g. ``(sequence, track_id)``; it restarts
    when frames stop being consecutive (a frame index not after the last stored one, or a gap
    larger than ``max_gap``), so a randomly sampled clip never averages maps of another time.

    Args:
        n: How many past maps the moving average uses (n ≥ 2, ¶67).
        max_gap: Largest frame-index step that still continues a stream.
    """

    def __init__(self, n: int = 3, max_gap: int = 1) -> None:
        if n < 2:
            raise ValueError(f"temporal consistency needs n >= 2 past maps (¶67), got n={n}")
        self.n = n
        self.max_gap = max_gap
        self._maps: dict[Hashable, deque[torch.Tensor]] = {}
        self._last: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._maps)

    def count(self, key: Hashable) -> int:
        """How many maps are stored for ``key`` (at most ``n``)."""
        return len(self._maps.get(key, ()))

    def continues(self, key: Hashable, frame_index: int) -> bool:
        """Whether ``frame_index`` continues the stored stream of ``key``."""
        last = self._last.get(key)
        return last is not None and 0 < frame_index - last <= self.max_gap

    def average(self, key: Hashable, frame_index: int, origin: tuple[int, int] = (0, 0), flipped: bool = False,
                window_hw: tuple[int, int] | None = None) -> torch.Tensor | None:
        """Moving average of the last ``n`` stored maps (S110, ¶67) if ``frame_index`` continues them,
        cut out at the current window.

        Args:
            key: Stream key.
            frame_index: Video frame index of the current map.
            origin: ``(x, y)`` of the current window on the map grid.
            flipped: The current window is mirrored.
            window_hw: ``(h, w)`` of the current map; ``None``: the whole canvas.

        Returns:
            The mean map in the current window's coordinates (NaN where a stored map does not cover
            it), or ``None`` while fewer than ``n`` maps of a continuing stream are stored (S109:
            the loss is skipped).
        """
        maps = self._maps.get(key)
        if maps is None or len(maps) < self.n or not self.continues(key, frame_index):
            return None
        mean = torch.stack(list(maps)).mean(dim=0)  # NaN where any map is missing
        if window_hw is None and tuple(origin) == (0, 0):
            return mean.flip(-1) if flipped else mean
        H, W = mean.shape[-2:]
        h, w = window_hw or (H, W)
        ox, oy = origin
        window = mean[..., oy:oy + h, ox:ox + w]
        return window.flip(-1) if flipped else window

    def push(self, key: Hashable, frame_index: int, region: torch.Tensor, origin: tuple[int, int] = (0, 0),
             flipped: bool = False, canvas_hw: tuple[int, int] | None = None) -> None:
        """Store ``region (K, h, w)`` (S108); a non-consecutive ``frame_index`` restarts the stream.

        Args:
            key: Stream key.
            frame_index: Video frame index of the map.
            region: The map, computed on a window of the frame.
            origin: ``(x, y)`` of the window on the full frame's map grid, in map elements.
            flipped: The window was mirrored left-right (within itself).
            canvas_hw: ``(h, w)`` of the full frame's map; ``None``: the window is the whole frame.
        """
        if not self.continues(key, frame_index):
            self._maps[key] = deque(maxlen=self.n)
        region = region.detach()
        if flipped:
            region = region.flip(-1)
        if canvas_hw is None and tuple(origin) == (0, 0):  # the window is the whole frame
            self._maps[key].append(region.clone())
            self._last[key] = frame_index
            return
        h, w = region.shape[-2:]
        H, W = canvas_hw or (h, w)
        ox, oy = origin
        if not (ox >= 0 and oy >= 0 and ox + w <= W and oy + h <= H):
            raise ValueError(f"window {w}x{h} at {origin} does not fit the {W}x{H} canvas")
        canvas = region.new_full((*region.shape[:-2], H, W), float("nan"))
        canvas[..., oy:oy + h, ox:ox + w] = region
        self._maps[key].append(canvas)
        self._last[key] = frame_index

    def state_dict(self) -> dict[str, list]:
        """The stored streams as lists (keys, frame indices, maps), for checkpoints (``weights_only`` readable)."""
        keys = list(self._maps)
        return {"keys": [list(k) if isinstance(k, tuple) else k for k in keys],
                "last": [self._last[k] for k in keys], "maps": [list(self._maps[k]) for k in keys]}

    def load_state_dict(self, state: dict[str, list]) -> None:
        """Restore what :meth:`state_dict` returned (replacing every stream)."""
        self.clear()
        for key, last, maps in zip(state["keys"], state["last"], state["maps"], strict=True):
            key = tuple(key) if isinstance(key, list) else key
            self._maps[key] = deque(maps, maxlen=self.n)
            self._last[key] = int(last)

    def clear(self) -> None:
        """Forget every stream."""
        self._maps.clear()
        self._last.clear()
