"""Clip sampling: shapes, NaN padding, box scaling on resize, sampling mode and collation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.track.data import ClipDataset, FrameAnn, PartSpec, PersonAnn, SequenceAnn, collate_clips
from adaptrack.track.data.clips import is_crowded_frame
from adaptrack.track.data.frames import resize_frame


def make_sequence(root: Path, name: str, people: list[list[int]], width: int = 40, height: int = 20,
                  target: int | None = None) -> SequenceAnn:
    """A sequence whose frame t holds the tracks ``people[t]``; track k sits at x = 2 + 8k."""
    frames = []
    for t, tracks in enumerate(people):
        path = root / name / f"{t:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), 10 * t, np.uint8)).save(path)
        persons = tuple(PersonAnn(k, (2.0 + 8 * k, 4.0, 6.0, 12.0),
                                  ((3.0 + 8 * k, 4.0, 4.0, 4.0) if k != 2 else None,)) for k in tracks)
        frames.append(FrameAnn(path, t * 2, width, height, persons))
    return SequenceAnn(name, tuple(frames), (PartSpec(),), target)


def test_clip_shapes_nan_rows_and_stable_other_slots(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, "s", [[0, 1], [1, 2], [0, 1, 2], [0]])
    ds = ClipDataset([seq], clip_len=3)
    # starts 0 and 1 fit a 3-frame window: tracks {0, 1} + {1, 2}
    assert [(i.start, i.track_id) for i in ds.items] == [(0, 0), (0, 1), (1, 1), (1, 2)]
    clip = ds[0]
    assert clip.frames.shape == (3, 3, 20, 40) and clip.frames.dtype == torch.uint8
    assert clip.frames[1].float().mean() == 10  # frame t was filled with 10 * t
    assert clip.target_box.shape == (3, 4) and clip.target_parts.shape == (3, 1, 4)
    assert torch.isnan(clip.target_box[1]).all()  # target 0 absent in frame 1
    assert clip.target_box[2].tolist() == [2.0, 4.0, 6.0, 12.0]
    assert clip.template_box.tolist() == [2.0, 4.0, 6.0, 12.0]
    assert clip.other_parts.shape == (3, 2, 1, 4) and clip.other_boxes.shape == (3, 2, 4)
    # slot 0 = track 1 in every frame, slot 1 = track 2 (absent in frame 0, head invisible throughout)
    assert clip.other_boxes[:, 0, 0].tolist() == [10.0, 10.0, 10.0]
    assert torch.isnan(clip.other_boxes[0, 1]).all() and clip.other_boxes[1, 1, 0] == 18.0
    assert torch.isnan(clip.other_parts[:, 1]).all()
    assert clip.frame_indices == [0, 2, 4] and clip.sequence == "s" and clip.track_id == 0


def test_resize_scales_every_box(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, "s", [[0, 1], [0, 1]])
    clip = ClipDataset([seq], clip_len=2, size=(40, 20))[0]  # height x2, width x0.5
    assert clip.frames.shape == (2, 3, 40, 20)
    assert clip.target_box[0].tolist() == [1.0, 8.0, 3.0, 24.0]
    assert clip.other_parts[0, 0, 0].tolist() == [5.5, 8.0, 2.0, 8.0]
    assert resize_frame(torch.full((3, 4, 4), 7, dtype=torch.uint8), (2, 2)).unique().tolist() == [7]


def test_designated_targets_stride_gap_and_template_part(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, "s", [[0, 1, 2]] * 5, target=1)
    assert {i.track_id for i in ClipDataset([seq], 2, targets="designated").items} == {1}
    assert len(ClipDataset([seq], 2, stride=2).items) == 3 * 3  # starts 0, 1, 2
    assert len(ClipDataset([seq], 2, max_frame_gap=2).items) == 4 * 3
    with pytest.raises(DataError, match="no clip of 2 frames"):
        ClipDataset([seq], 2, max_frame_gap=1)  # annotated frames are 2 video frames apart
    assert {i.track_id for i in ClipDataset([seq], 2, require_template_part=True).items} == {0, 1}
    with pytest.raises(DataError, match="no clip of 9 frames"):
        ClipDataset([seq], 9)


def test_sampling_mode_is_reproducible_and_changes_with_epoch(tmp_path: Path) -> None:
    seqs = [make_sequence(tmp_path, f"s{i}", [[0, 1]] * 6) for i in range(3)]
    ds = ClipDataset(seqs, clip_len=2, max_stride=4, samples_per_epoch=16, seed=5)
    assert len(ds) == 16
    first = [(c.sequence, c.track_id, tuple(c.frame_indices)) for c in (ds[i] for i in range(16))]
    again = [(c.sequence, c.track_id, tuple(c.frame_indices)) for c in (ds[i] for i in range(16))]
    assert first == again
    assert len({f[2][1] - f[2][0] for f in first}) > 1  # several strides drawn
    assert all(f[2][1] <= 10 for f in first)  # windows never run past the sequence end
    ds.set_epoch(1)
    assert [(c.sequence, c.track_id, tuple(c.frame_indices)) for c in (ds[i] for i in range(16))] != first
    with pytest.raises(IndexError):
        ds[16]


def test_crowded_frame_neighbour_distance_hidden_part_and_absent_target(tmp_path: Path) -> None:
    frame = make_sequence(tmp_path, "s", [[0, 1, 2]]).frames[0]
    # part centres are 8 px apart with a 4 px side: 2 part sizes
    assert not is_crowded_frame(frame, 0, radius=1.5)
    assert is_crowded_frame(frame, 0, radius=2.0)
    assert is_crowded_frame(frame, 2, radius=0.1)  # track 2's part is hidden
    assert not is_crowded_frame(frame, 1, radius=1.5)  # track 2 has no part to be near
    assert not is_crowded_frame(frame, 5, radius=9.0)  # the target is not in the frame


def test_hard_share_draws_crowded_clips(tmp_path: Path) -> None:
    alone = make_sequence(tmp_path, "alone", [[0]] * 6)
    pair = make_sequence(tmp_path, "pair", [[0]] * 3 + [[0, 1]] * 3)
    uniform = ClipDataset([alone, pair], clip_len=2, samples_per_epoch=64, seed=1)
    assert uniform.hard_items == []
    hard = ClipDataset([alone, pair], clip_len=2, samples_per_epoch=64, seed=1, hard_share=1.0, hard_radius=2.5)
    # windows of "pair" that reach frame 3 (starts 2..4), for both tracks there
    assert sorted((hard.items[i].start, hard.items[i].track_id) for i in hard.hard_items) == [
        (2, 0), (3, 0), (3, 1), (4, 0), (4, 1)]
    assert {hard[i].sequence for i in range(64)} == {"pair"}
    assert {uniform[i].sequence for i in range(64)} == {"alone", "pair"}
    half = ClipDataset([alone, pair], clip_len=2, samples_per_epoch=400, seed=1, hard_share=0.5, hard_radius=2.5)
    crowded = {("pair", hard.items[i].start * 2, hard.items[i].track_id) for i in hard.hard_items}
    share = sum((c.sequence, c.frame_indices[0], c.track_id) in crowded for c in (half[i] for i in range(400))) / 400
    assert 0.6 < share < 0.82  # 0.5 + 0.5 x the uniform share of 5 hard items in 12
    with pytest.warns(UserWarning, match="no clip .* is crowded"):
        assert ClipDataset([alone], clip_len=2, samples_per_epoch=4, hard_share=0.5).hard_items == []
    for bad in ({"hard_share": 1.5}, {"hard_radius": 0.0}):
        with pytest.raises(ValueError, match="hard_"):
            ClipDataset([alone], clip_len=2, **bad)


def test_collate_pads_other_people_with_nan(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, "s", [[0, 1, 2], [0, 1, 2]])
    lone = make_sequence(tmp_path, "lone", [[0], [0]])
    clips = [ClipDataset([seq], 2)[0], ClipDataset([lone], 2)[0]]
    assert clips[1].other_parts.shape == (2, 0, 1, 4)
    batch = collate_clips(clips)
    assert batch.frames.shape == (2, 2, 3, 20, 40)
    assert batch.target_box.shape == (2, 2, 4) and batch.target_parts.shape == (2, 2, 1, 4)
    assert batch.other_parts.shape == (2, 2, 2, 1, 4) and batch.other_boxes.shape == (2, 2, 2, 4)
    assert torch.isnan(batch.other_boxes[1]).all() and not torch.isnan(batch.other_boxes[0]).any()
    assert batch.template_box.shape == (2, 4) and batch.track_ids.tolist() == [0, 0]
    assert batch.sequences == ["s", "lone"] and batch.frame_indices == [[0, 2], [0, 2]]
    assert math.isnan(float(batch.other_parts[0, 0, 1, 0, 0]))  # track 2's head is not visible


def test_collate_rejects_mixed_sizes(tmp_path: Path) -> None:
    small = make_sequence(tmp_path, "a", [[0], [0]])
    large = make_sequence(tmp_path, "b", [[0], [0]], width=48)
    with pytest.raises(ValueError, match="differ in shape"):
        collate_clips([ClipDataset([small], 2)[0], ClipDataset([large], 2)[0]])
    with pytest.raises(ValueError, match="empty"):
        collate_clips([])


def test_frame_file_not_matching_annotations_is_an_error(tmp_path: Path) -> None:
    seq = make_sequence(tmp_path, "s", [[0], [0]])
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(seq.frames[1].path)
    with pytest.raises(DataError, match=r"000001\.png: frame 2: file is 5x5"):
        ClipDataset([seq], 2)[0]


def test_sequential_clips_continue_each_stream_in_the_next_batch(tmp_path: Path) -> None:
    """Row b of every batch continues row b of the previous one (the region-map store's order)."""
    from adaptrack.track.data.clips import SequentialClips

    seqs = [make_sequence(tmp_path, f"s{i}", [[0, 1]] * 20) for i in range(3)]
    pool = ClipDataset(seqs, clip_len=3, require_template_part=True)
    ds = SequentialClips(pool, streams=2, length=13, max_stride=2, seed=3)
    assert len(ds) == 12  # a multiple of the streams
    clips = [ds[i] for i in range(len(ds))]
    continued = 0
    for step in range(1, 6):
        for slot in range(2):
            prev, cur = clips[(step - 1) * 2 + slot], clips[step * 2 + slot]
            stride = prev.frame_indices[1] - prev.frame_indices[0]
            assert cur.frame_indices[1] - cur.frame_indices[0] >= 1
            if (cur.sequence, cur.track_id) == (prev.sequence, prev.track_id) and \
                    cur.frame_indices[0] == prev.frame_indices[-1] + stride:
                continued += 1
            else:  # a new stream starts only where the old one could not go on
                assert prev.frame_indices[-1] + stride * 3 > 19
    assert continued >= 6
    def draw() -> list[tuple]:
        return [(c.sequence, c.track_id, tuple(c.frame_indices)) for c in (ds[i] for i in range(len(ds)))]

    first = draw()
    ds.set_epoch(0)
    assert draw() == first  # deterministic by (seed, epoch)
    ds.set_epoch(1)
    assert draw() != first
