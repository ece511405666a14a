"""Storage of past part region maps for the temporal-consistency loss (third embodiment, ¶63–70)."""

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

    def average(self, key: Hashable, frame_index: int) -> torch.Tensor | None:
        """Moving average of the last ``n`` stored maps (S110, ¶67) if ``frame_index`` continues them.

        Returns:
            The mean map (same shape as the stored ones), or ``None`` while fewer than ``n`` maps of
            a continuing stream are stored (S109: the loss is skipped).
        """
        maps = self._maps.get(key)
        if maps is None or len(maps) < self.n or not self.continues(key, frame_index):
            return None
        return torch.stack(list(maps)).mean(dim=0)

    def push(self, key: Hashable, frame_index: int, region: torch.Tensor) -> None:
        """Store ``region`` (S108); a non-consecutive ``frame_index`` restarts the stream."""
        if not self.continues(key, frame_index):
            self._maps[key] = deque(maxlen=self.n)
        self._maps[key].append(region.detach().clone())
        self._last[key] = frame_index

    def clear(self) -> None:
        """Forget every stream."""
        self._maps.clear()
        self._last.clear()
