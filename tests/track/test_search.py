"""Search-region tracking: window geometry, crops, moving the track state, the tracker in frame pixels,
training clips cut like the tracker cuts frames, and the data → model link."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.clips import ClipDataset, SearchCrop
from adaptrack.track.data.convert import write_posetrack
from adaptrack.track.data.frames import PAD_VALUE, crop_frame
from adaptrack.track.data.posetrack import read_posetrack_dir
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn
from adaptrack.track.geometry import from_window, jittered_window, reframe_affine, search_window, to_window
from adaptrack.track.inference.decoder import BoxKalman, FrameDecoder, TrackerSettings
from adaptrack.track.inference.tracker import Tracker


# ------------------------------------------------------------------------------------ geometry
def test_search_window_is_centred_and_sized_by_the_longer_side() -> None:
    x0, y0, side = search_window(torch.tensor([100.0, 50.0, 40.0, 100.0]), 2.3)
    assert side == 230
    assert (x0 + side / 2, y0 + side / 2) == pytest.approx((120.0, 100.0), abs=0.5)
    assert search_window(torch.tensor([0.0, 0.0, 1.0, 1.0]), 2.0)[2] == 8  # at least 8 pixels
    assert search_window(torch.tensor([0.0, 0.0, 10.0, 20.0]), 2.0, side=50.0)[2] == 100


def test_jittered_window_without_jitter_is_the_search_window_and_with_it_scales_and_shifts() -> None:
    box = torch.tensor([300.0, 200.0, 60.0, 150.0])
    assert jittered_window(box, 2.3, 0.25, 0.15, (0.0, 0.0, 0.0)) == search_window(box, 2.3)
    x0, y0, side = jittered_window(box, 2.3, 0.25, 0.15, (1.0, 1.0, -1.0))
    assert side == round(2.3 * 150 * np.exp(0.25))
    assert x0 + side / 2 == pytest.approx(330 + 0.15 * side, abs=0.5)
    assert y0 + side / 2 == pytest.approx(275 - 0.15 * side, abs=0.5)


def test_window_round_trip_and_reframe_affine() -> None:
    boxes = torch.tensor([[10.0, 20.0, 30.0, 60.0], [-5.0, 7.0, 2.0, 3.0]])
    old, new = (-40, 5, 200), (15, -30, 320)
    inside = to_window(boxes, old, 256)
    assert torch.allclose(from_window(inside, old, 256), boxes, atol=1e-4)
    assert torch.allclose(to_window(boxes, old, 256)[0], torch.tensor([50.0, 15.0, 30.0, 60.0]) * 256 / 200)
    a, b = reframe_affine(old, new, 256)
    moved = torch.cat([inside[:, :2] * a + b, inside[:, 2:] * a], dim=1)
    assert torch.allclose(moved, to_window(boxes, new, 256), atol=1e-4)


def test_crop_frame_places_the_region_and_pads_outside_grey() -> None:
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[10:20, 30:40] = 255  # white square
    crop = crop_frame(frame, (25, 5, 20), 20)  # 1:1, the square at (5..15, 5..15) of the crop
    assert crop.shape == (3, 20, 20) and crop.dtype == torch.uint8
    assert int(crop[0, 5:15, 5:15].min()) == 255 and int(crop[0, 0, 0]) == 0
    edge = crop_frame(torch.from_numpy(frame).permute(2, 0, 1), (50, 30, 20), 10)  # half outside
    assert edge.shape == (3, 10, 10)
    assert int(edge[0, -1, -1]) == PAD_VALUE and int(edge[0, 0, 0]) == 0


# --------------------------------------------------------------------------------- track state
def test_decoder_reframe_moves_box_kalman_parts_and_distractors() -> None:
    dec = FrameDecoder(backend=None, settings=TrackerSettings(motion="velocity"), input_size=64,  # type: ignore[arg-type]
                       stride=4)
    box = torch.tensor([10.0, 12.0, 8.0, 20.0])
    dec.box, dec.kalman = box.clone(), BoxKalman(box, 0.05)
    dec.kalman.x[4:6] = [1.0, -2.0]  # a velocity
    dec.part_centre, dec.part_size = torch.tensor([[14.0, 15.0]]), torch.tensor([[4.0, 4.0]])
    a, b = 0.5, torch.tensor([3.0, -1.0])
    dec.reframe(a, b)
    assert torch.allclose(dec.box, torch.tensor([8.0, 5.0, 4.0, 10.0]))
    assert torch.allclose(dec.kalman.box, dec.box, atol=1e-5)
    assert dec.kalman.x[4:6].tolist() == [0.5, -1.0]
    assert dec.part_centre.tolist() == [[10.0, 6.5]] and dec.part_size.tolist() == [[2.0, 2.0]]


class BrightBackend:
    """Maps that peak at the centroid of the input's bright pixels (a Gaussian there, with the exact
    sub-cell offset): a stand-in for trained networks, so the tracker's cropping and coordinate mapping
    can be checked exactly."""

    def __init__(self, stride: int, box_cells: float) -> None:
        self.stride, self.box_cells = stride, box_cells
        self.inputs: list[torch.Tensor] = []

    def _maps(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.inputs.append(image)
        bright = (image.mean(1)[0] > 0.9).float()  # (S, S)
        ys, xs = torch.nonzero(bright, as_tuple=True)
        c = torch.stack([xs.float().mean() + 0.5, ys.float().mean() + 0.5]) / self.stride  # centroid, cells
        h, w = image.shape[-2] // self.stride, image.shape[-1] // self.stride
        gy, gx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        heat = torch.exp(-((gx - c[0]) ** 2 + (gy - c[1]) ** 2) / 2).clamp(1e-4, 1 - 1e-4)[None, None]
        offset = torch.stack([c[0] - gx, c[1] - gy])[None]  # (1, 2, h, w)
        return heat, offset

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return torch.ones(1, 1, 1, 1)

    def parts(self, image: torch.Tensor):
        heat, offset = self._maps(image)
        h, w = heat.shape[-2:]
        return heat, torch.full((1, 1, 2, h, w), 1.0), offset[:, None]

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor):
        heat, offset = self._maps(image)
        h, w = heat.shape[-2:]
        return heat, torch.full((1, 2, h, w), self.box_cells), offset, torch.ones(1, 1, h, w)


def _frame_with_square(x: int, y: int, side: int = 24, hw: tuple[int, int] = (360, 640)) -> np.ndarray:
    frame = np.zeros((*hw, 3), np.uint8)
    frame[y:y + side, x:x + side] = 255
    return frame


def test_tracker_follows_a_moving_square_in_frame_pixels_through_search_regions() -> None:
    backend = BrightBackend(stride=4, box_cells=24 * 64 / (2.0 * 24) / 4)  # the square's size in cells
    settings = TrackerSettings(search_factor=2.0, search_scale_rate=0.0, prior_sigma=2.0)
    tracker = Tracker(backend, ["head"], stride=4, input_size=64, settings=settings)
    tracker.initialize(_frame_with_square(100, 100), (100, 100, 24, 24))
    for t in range(1, 12):
        x, y = 100 + 9 * t, 100 + 4 * t  # moves 9 px right, 4 down per frame: it leaves the first region
        result = tracker.track(_frame_with_square(x, y))
        cx, cy = result.box[0] + result.box[2] / 2, result.box[1] + result.box[3] / 2
        assert (cx, cy) == pytest.approx((x + 12, y + 12), abs=1.0)
        assert result.box[2] == pytest.approx(24, abs=1.0)
        assert result.parts[0].position == pytest.approx((x + 12, y + 12), abs=1.0)
        maps = tracker.last_maps
        assert maps is not None and maps.origin == tracker._window[:2]
    assert all(x.shape == (1, 3, 64, 64) for x in backend.inputs)


def test_full_frame_mode_is_unchanged_by_the_search_settings() -> None:
    backend = BrightBackend(stride=4, box_cells=2.0)
    tracker = Tracker(backend, ["head"], stride=4, input_size=64, settings=TrackerSettings())
    tracker.initialize(_frame_with_square(10, 10, 8, (64, 64)), (10, 10, 8, 8))
    result = tracker.track(_frame_with_square(14, 12, 8, (64, 64)))
    assert tracker.last_maps is not None and tracker.last_maps.origin == (0.0, 0.0)
    assert result.parts[0].position == pytest.approx((18, 16), abs=1.0)


@pytest.mark.parametrize("bad", [{"search_factor": 0.5}, {"search_factor": float("nan")}, {"search_scale_rate": 2.0}])
def test_bad_search_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TrackerSettings(**bad)


# ------------------------------------------------------------------------------ training clips
def _big_sequence(root: Path, n_frames: int = 4) -> SequenceAnn:
    """A 400×300 sequence: target 0 walking right, person 1 standing; frames written as PNG."""
    frames = []
    for t in range(n_frames):
        path = root / "src" / f"{t:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(np.full((300, 400, 3), 60 + t, np.uint8)).save(path)
        people = (PersonAnn(0, (100.0 + 5 * t, 80.0, 40.0, 100.0), ((110.0 + 5 * t, 80.0, 14.0, 14.0),)),
                  PersonAnn(1, (250.0, 90.0, 40.0, 100.0), ((262.0, 90.0, 14.0, 14.0),)))
        frames.append(FrameAnn(path, t, 400, 300, people))
    return SequenceAnn("walk", tuple(frames), (PartSpec(),))


def test_search_clips_are_cut_around_the_template_box_and_every_box_follows(tmp_path: Path) -> None:
    seq = _big_sequence(tmp_path)
    crop = SearchCrop(factor=2.0, scale_jitter=0.0, shift_jitter=0.0)
    clips = ClipDataset([seq], clip_len=3, size=(64, 64), search=crop)
    clip = clips.make_clip(0, 0, 0)
    window = search_window(torch.tensor([100.0, 80.0, 40.0, 100.0]), 2.0)
    assert clip.frames.shape == (3, 3, 64, 64)
    for t in range(3):
        truth = torch.tensor([[100.0 + 5 * t, 80.0, 40.0, 100.0]])
        assert torch.allclose(clip.target_box[t], to_window(truth, window, 64)[0], atol=1e-4)
    assert torch.allclose(clip.template_box, clip.target_box[0])
    assert clip.target_box[0, 3] == pytest.approx(100 * 64 / 200)


def test_sampled_search_clips_draw_the_full_frame_clips_with_jittered_regions(tmp_path: Path) -> None:
    seq = _big_sequence(tmp_path, n_frames=6)
    plain = ClipDataset([seq], clip_len=2, size=(64, 64), samples_per_epoch=8, max_stride=2, seed=3)
    cut = ClipDataset([seq], clip_len=2, size=(64, 64), samples_per_epoch=8, max_stride=2, seed=3,
                      search=SearchCrop(factor=2.0, scale_jitter=0.3, shift_jitter=0.2))
    heights = set()
    for i in range(8):
        a, b = plain[i], cut[i]
        assert (a.track_id, a.frame_indices) == (b.track_id, b.frame_indices)
        heights.add(round(float(b.target_box[0, 3]), 3))
    assert len(heights) > 1  # the region's scale is jittered per clip


def test_search_needs_a_square_size_and_valid_jitters(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="square"):
        ClipDataset([_big_sequence(tmp_path)], clip_len=1, size=(64, 32), search=SearchCrop())
    with pytest.raises(ValueError, match="factor"):
        SearchCrop(factor=0.5)


def test_written_posetrack_reads_back_the_same_annotations(tmp_path: Path) -> None:
    seq = _big_sequence(tmp_path)
    write_posetrack([seq], tmp_path / "out", "train")
    (back,) = read_posetrack_dir(tmp_path / "out" / "annotations" / "train", tmp_path / "out")
    assert [f.frame_index for f in back.frames] == [0, 1, 2, 3]
    for f, g in zip(seq.frames, back.frames, strict=True):
        assert [(p.track_id, p.box, p.parts) for p in f.people] == [(p.track_id, p.box, p.parts) for p in g.people]
        assert g.path.read_bytes() == f.path.read_bytes()


# ------------------------------------------------------------------------------ data → model
def test_tracker_module_takes_the_search_factor_from_the_data(part_ckpt: Path) -> None:
    from adaptrack.track.train.module import TrackerModule

    module = TrackerModule(str(part_ckpt), search=SearchCrop(factor=2.5))
    assert module.tracker.search_factor == 2.5
    with pytest.raises(ConfigError, match="search_factor"):
        TrackerModule(str(part_ckpt), tracker=dataclasses.replace(TrackerSettings(), search_factor=3.0),
                      search=SearchCrop(factor=2.5))
    with pytest.raises(ConfigError, match="temporal_n"):
        TrackerModule(str(part_ckpt), temporal_n=3, search=SearchCrop())


def test_tracker_module_starts_from_an_init_checkpoint(part_ckpt: Path, tracker_ckpt: Path) -> None:
    from adaptrack.track.inference.checkpoints import load_models
    from adaptrack.track.train.module import TrackerModule

    _, subject, meta = load_models(tracker_ckpt)
    cfg = meta["subject_model"]
    module = TrackerModule(str(part_ckpt), channels=cfg["channels"], head_channels=cfg["head_channels"],
                           dilations=cfg["dilations"], head_dilations=cfg["head_dilations"],
                           kernel_size=cfg["kernel_size"], context=cfg["context"],
                           region_dilations=cfg.get("region_dilations"), init_checkpoint=str(tracker_ckpt))
    for (name, a), b in zip(module.subject_model.state_dict().items(), subject.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(DataError, match="differs from this one"):
        TrackerModule(str(part_ckpt), head_channels=cfg["head_channels"] + 8, init_checkpoint=str(tracker_ckpt))
    with pytest.raises(DataError, match="init_checkpoint must be"):
        TrackerModule(str(part_ckpt), init_checkpoint=str(part_ckpt))


def test_tracker_fit_refuses_the_part_detectors_target_streams(part_ckpt: Path) -> None:
    from adaptrack.track.train.module import TrackerModule

    with pytest.raises(ConfigError, match="fit-parts"):
        TrackerModule(str(part_ckpt)).training_step({"source": None, "target": None}, 0)
