"""Fixtures of the tracker tests: hand-made two-person scenes as ClipBatch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from adaptrack.track.data.types import ClipBatch
from adaptrack.track.train.module import PartDetectorModule, TrackerModule


def draw_scene(T: int = 4, size: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                     torch.Tensor]:
    """Two people (body rectangle + head square) walking right; person 0 is the target.

    Returns:
        frames ``(T, 3, S, S)`` uint8, bodies ``(T, 2, 4)``, heads ``(T, 2, 4)``, colours ``(2, 3)``.
    """
    g = torch.Generator().manual_seed(seed)
    frames = torch.full((T, 3, size, size), 40, dtype=torch.uint8)
    bodies = torch.zeros(T, 2, 4)
    heads = torch.zeros(T, 2, 4)
    colours = torch.tensor([[220, 40, 40], [40, 40, 220]], dtype=torch.uint8)
    for t in range(T):
        for p, x0 in enumerate((8.0, 34.0)):
            x = x0 + 2 * t + float(torch.randint(0, 2, (1,), generator=g))
            body = torch.tensor([x, 20.0, 12.0, 36.0])
            head = torch.tensor([x + 3, 12.0, 6.0, 7.0])
            bx, by, bw, bh = (int(v) for v in body)
            frames[t, :, by:by + bh, bx:bx + bw] = colours[p][:, None, None]
            hx, hy, hw, hh = (int(v) for v in head)
            frames[t, :, hy:hy + hh, hx:hx + hw] = 230
            bodies[t, p], heads[t, p] = body, head
    return frames, bodies, heads, colours


def make_batch(B: int = 2, T: int = 4, size: int = 64) -> ClipBatch:
    """A :class:`ClipBatch` of B drawn scenes (K = 1 part, M = 1 other person)."""
    clips = [draw_scene(T, size, seed=b) for b in range(B)]
    frames = torch.stack([c[0] for c in clips])  # (B, T, 3, S, S)
    bodies = torch.stack([c[1] for c in clips])  # (B, T, 2, 4)
    heads = torch.stack([c[2] for c in clips])  # (B, T, 2, 4)
    return ClipBatch(frames=frames, target_box=bodies[:, :, 0], target_parts=heads[:, :, 0:1],
                     other_parts=heads[:, :, 1:2, None], other_boxes=bodies[:, :, 1:2],
                     template_box=bodies[:, 0, 0], track_ids=torch.arange(B),
                     sequences=[f"seq{b}" for b in range(B)], frame_indices=[list(range(T))] * B)


def batches(n: int, **kwargs: int) -> DataLoader:
    """A loader yielding ``n`` ready-made batches (for ``Trainer.fit``)."""
    return DataLoader([make_batch(**kwargs) for _ in range(n)], batch_size=None)



@pytest.fixture
def batch() -> ClipBatch:
    return make_batch()


@pytest.fixture(scope="session")
def batch_factory() -> Callable[..., ClipBatch]:
    """:func:`make_batch`, for tests that need other shapes."""
    return make_batch


@pytest.fixture(scope="session")
def loader_factory() -> Callable[..., DataLoader]:
    """:func:`batches`, a loader of ready-made batches for ``Trainer.fit``."""
    return batches


TINY = {"channels": [8, 8, 8, 8], "dilations": [2], "crop_size": None}
"""Smallest networks: fast enough for tests on 64x64 frames."""


def _fit(module: pl.LightningModule, root: Path, steps: int, T: int = 4) -> Path:
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=root)
    trainer.fit(module, train_dataloaders=batches(steps, T=T))
    path = root / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def part_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A part detector checkpoint after a few steps on the hand-made scenes."""
    torch.manual_seed(0)
    return _fit(PartDetectorModule(**TINY, warmup_steps=1), tmp_path_factory.mktemp("parts"), 3)


@pytest.fixture(scope="session")
def tracker_ckpt(tmp_path_factory: pytest.TempPathFactory, part_ckpt: Path) -> Path:
    """A tracker checkpoint (both models) after a few steps on the hand-made scenes."""
    torch.manual_seed(0)
    module = TrackerModule(str(part_ckpt), **TINY, warmup_steps=1, input_size=64)
    return _fit(module, tmp_path_factory.mktemp("tracker"), 3)


@pytest.fixture
def tiny() -> dict:
    """Constructor arguments of the smallest networks."""
    return dict(TINY)


@pytest.fixture(autouse=True)
def _threads() -> None:
    torch.set_num_threads(2)
