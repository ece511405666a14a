"""Exact resume: per-step randomness, data position and shards, atomic checkpoint IO."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.datamodule import PairedBatches
from adaptrack.common.resume import (
    AtomicCheckpointIO,
    ResumableSampler,
    replayed_rng,
    rng_states,
    seed_all,
    set_rng_states,
    step_seed,
)
from adaptrack.track.train.temporal import RegionMapBuffer


def test_step_seed_depends_on_every_part_and_nothing_else() -> None:
    base = step_seed(0, 10, 0, 0)
    assert step_seed(0, 10, 0, 0) == base
    assert len({base, step_seed(1, 10, 0, 0), step_seed(0, 11, 0, 0), step_seed(0, 10, 1, 0),
                step_seed(0, 10, 0, 1)}) == 5
    assert 0 <= base < 2**63


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    seed_all(3)
    torch.save(rng_states(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    seed_all(99)
    set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def _images(n: int, value_offset: int = 0) -> ImageSet:
    images = (torch.arange(n) + value_offset).view(n, 1, 1, 1).expand(n, 1, 2, 2).to(torch.uint8).contiguous()
    return ImageSet(images, torch.arange(n) % 3, ["a", "b", "c"], "tiny")


def _source_indices(batches: PairedBatches) -> list[list[int]]:
    return [b.source[:, 0, 0, 0].tolist() for b in batches]


def test_paired_batches_skip_yields_the_rest_of_the_same_epoch() -> None:
    full = PairedBatches(_images(40), _images(30), 4, steps=6, seed=5, labeled=_images(6), labeled_batch_size=2,
                         position=lambda: (2, 0))
    resumed = PairedBatches(_images(40), _images(30), 4, steps=6, seed=5, labeled=_images(6), labeled_batch_size=2,
                            position=lambda: (2, 4))
    all_batches, rest = list(full), list(resumed)
    assert len(rest) == 2
    for a, b in zip(all_batches[4:], rest, strict=True):
        assert torch.equal(a.source, b.source) and torch.equal(a.target_index, b.target_index)
        assert torch.equal(a.labeled, b.labeled)
    other_epoch = PairedBatches(_images(40), _images(30), 4, steps=6, seed=5, position=lambda: (3, 0))
    assert _source_indices(other_epoch) != _source_indices(full)


@pytest.mark.parametrize("world", [2, 3])
def test_paired_batches_ranks_partition_the_epoch(world: int) -> None:
    n, batch = 48, 4
    steps = n // (batch * world)
    seen: list[int] = []
    for rank in range(world):
        shard = PairedBatches(_images(n), _images(n), batch, steps=steps, seed=1, position=lambda: (0, 0),
                              rank=rank, world=world)
        seen += [i for b in _source_indices(shard) for i in b]
    assert sorted(seen) == list(range(n))  # disjoint, and together one pass over the source


class _Dataset:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def test_resumable_sampler_skips_trained_batches_and_shards() -> None:
    full = list(ResumableSampler(_Dataset(10), 2, lambda: (4, 0)))
    assert full == [(4, i) for i in range(10)]
    assert list(ResumableSampler(_Dataset(10), 2, lambda: (4, 3))) == full[6:]
    shards = [list(ResumableSampler(_Dataset(11), 2, lambda: (0, 0), rank=r, world=2)) for r in range(2)]
    indices = [i for shard in shards for _, i in shard]
    assert sorted(indices) == list(range(10)) and len(shards[0]) == len(shards[1])  # the 11th is left out


def test_atomic_checkpoint_io_keeps_the_old_file_when_a_save_fails(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def broken_save(obj: object, handle: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert int(io.load_checkpoint(path)["step"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this would run",))


def test_atomic_checkpoint_io_refuses_a_checkpoint_that_needs_pickled_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(ValueError, match=r"evil\.ckpt"):
        AtomicCheckpointIO().load_checkpoint(path)


def test_region_map_store_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    store = RegionMapBuffer(n=2, max_gap=1)
    for frame in range(3):
        store.push(("seq0", 1), frame, torch.full((1, 4, 4), float(frame)), origin=(1, 0), canvas_hw=(4, 6))
    torch.save(store.state_dict(), tmp_path / "store.pt")
    restored = RegionMapBuffer(n=2, max_gap=1)
    restored.load_state_dict(torch.load(tmp_path / "store.pt", weights_only=True))
    a = store.average(("seq0", 1), 3, origin=(1, 0), window_hw=(4, 4))
    b = restored.average(("seq0", 1), 3, origin=(1, 0), window_hw=(4, 4))
    assert a is not None and b is not None and torch.equal(a, b)


def test_replayed_rng_draws_what_the_captured_state_would_have_drawn_and_restores_the_generators() -> None:
    seed_all(5)
    states = rng_states()
    expected = (torch.rand(3), np.random.rand(), random.random())  # drawn from the captured state
    seed_all(6)
    following = (torch.rand(3), np.random.rand(), random.random())  # seed 6's first draws
    seed_all(6)
    with replayed_rng(states):
        again = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(again[0], expected[0]) and again[1:] == expected[1:]
    after = (torch.rand(3), np.random.rand(), random.random())  # the block left seed 6's generators as they were
    assert torch.equal(after[0], following[0]) and after[1:] == following[1:]


def test_seed_all_gives_the_states_of_torch_manual_seed() -> None:
    torch.manual_seed(123)
    reference = torch.get_rng_state()
    seed_all(123)
    assert torch.equal(torch.get_rng_state(), reference)
