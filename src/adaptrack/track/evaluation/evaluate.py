"""Evaluation on PoseTrack18-format sequences: subject tracking, part association and baselines.

For every evaluated track the tracker is initialised with the ground-truth box of its start frame and
runs through the rest of the sequence. The primary protocol starts each track at its first annotated
frame, as a user draws a box at frame 0 (``init_visibility: null``, the default); the secondary one
starts at the first frame in which the person's parts are at least a share v visible
(``--init_visibility 0.99``), as single-object benchmarks start on a clearly visible target. Every
table says how many tracks it scores and how many it leaves out, and why. Metrics over the frames
after the start where the target is annotated:

* subject: success AUC (mean over IoU thresholds 0, 0.05, …, 1 of the share of frames with IoU above
  the threshold) and precision at 20 px (centre error ≤ 20 px);
* part (per frame where the target's part is annotated): **hit** (predicted position inside the
  tracked person's part box), **wrong person** (inside another person's part box, not the target's),
  **miss** (neither, or the tracker abstained although the part is visible), and the mean centre
  error divided by the part size ``sqrt(w × h)``;
* hidden part (per frame where the target is annotated but its part is not — hidden behind someone,
  less than half visible in the generator's data): **abstain** (the tracker reports the part hidden,
  :attr:`~adaptrack.track.inference.tracker.PartResult.visible` False: correct), **wrong person** (reported on
  another person's part) or **false report** (reported anywhere else). Methods that cannot abstain
  (the bare element product, the baselines) never score an abstention.

Part association methods, all on the same part detector output:

* ``element product`` — the patent (claims 5–6): the maximum of the element product;
* the :class:`~adaptrack.track.inference.tracker.Tracker`'s output when its decoding differs from the bare
  product (:attr:`~adaptrack.track.inference.tracker.TrackerSettings.output_name`): ``+ part window`` (the
  element product times a Gaussian at the part's previous position), ``heat^γ x region`` (a part
  ``part_exponent`` γ < 1), or both;
* ``(a) peak in box`` — the part-map maximum inside a person box;
* ``(b) nearest expected`` — the part-map peak nearest the expected part position in a person box
  (``expected_position``, top-centre ``(0.5, 0.1)`` for heads);

(a) and (b) are reported with the tracker's box and with the ground-truth box. So are the element
product and the tracker's output: their ``ground truth`` rows come from a second pass of each tracker whose
motion prior is centred on the target's annotated box in every frame (``Tracker.track(prior_box=…)``),
which measures association apart from subject tracking.

Each row's wrong-person rate carries a 95 % bootstrap interval over tracks (frames of one track are
not independent: a swap lasts many frames). For the tracker's output the per-track outcomes are kept
as timelines, one letter per frame (``h`` hit, ``W`` wrong person, ``m`` miss, ``-`` not annotated),
so the tracks that swap people can be found and watched; hidden frames add ``a`` (abstained), ``X``
(reported on another person) and ``f`` (false report), and ``o`` marks an abstention on a visible
part (a miss).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.files import atomic_write, check_writable_dir
from adaptrack.common.report import format_table
from adaptrack.track.data.frames import load_frame
from adaptrack.track.data.posetrack import read_posetrack_dir
from adaptrack.track.data.types import FrameAnn, PersonAnn, SequenceAnn
from adaptrack.track.geometry import (
    box_centre,
    box_iou,
    cell_centres,
    decode_peak,
    local_peaks,
    points_in_boxes,
)
from adaptrack.track.inference.tracker import PartMaps, Tracker, TrackResult, load_tracker
from adaptrack.track.train.datamodule import annotation_dir, part_specs

COLUMNS = ["method", "model", "box", "AUC", "P@20", "hit %", "wrong %", "wrong 95% CI", "miss %", "err/size",
           "frames", "abstain % (hidden)", "wrong % (hidden)", "false % (hidden)", "hidden", "FPS"]
TRACK_COLUMNS = ["model", "part", "track", "hit %", "wrong %", "frames", "timeline"]
IOU_THRESHOLDS = np.linspace(0, 1, 21)
VISIBLE_OUTCOMES = frozenset("hWmo")  # outcomes of frames whose target part is annotated


@dataclass
class PartTally:
    """Outcome counts of one association method, also kept per track for intervals and timelines.

    Attributes:
        tracks: ``{track key: outcomes}``, one character per frame of that track in time order:
            ``h`` hit, ``W`` wrong person, ``m`` miss, ``o`` abstained on a visible part (a miss),
            ``a`` abstained on a hidden part, ``X`` reported on another person while the part is
            hidden, ``f`` another report while it is hidden, ``-`` not scored (target not annotated).
    """

    hit: int = 0
    wrong: int = 0
    miss: int = 0
    abstain: int = 0
    hidden_wrong: int = 0
    false_report: int = 0
    errors: list[float] = field(default_factory=list)
    tracks: dict[str, list[str]] = field(default_factory=dict)

    def add(self, position: torch.Tensor, target: torch.Tensor, others: torch.Tensor, track: str = "",
            visible: bool = True) -> None:
        """Score one prediction on a frame where the target's part is annotated (visible).

        Args:
            position: ``(2,)`` predicted x, y (NaN = no prediction, a miss).
            target: ``(4,)`` tracked person's part box.
            others: ``(M, 4)`` other people's part boxes (NaN rows ignored).
            track: Key of the track the frame belongs to (for :meth:`interval` and :meth:`timelines`).
            visible: False when the method abstained (reported the part hidden): a miss.
        """
        outcomes = self.tracks.setdefault(track, [])
        if not visible or not bool(torch.isfinite(position).all()):
            self.miss += 1
            self.errors.append(math.inf)
            outcomes.append("m" if visible else "o")
            return
        if bool(points_in_boxes(position, target)):
            self.hit += 1
            outcomes.append("h")
        elif others.numel() and bool(points_in_boxes(position[None], others).any()):
            self.wrong += 1
            outcomes.append("W")
        else:
            self.miss += 1
            outcomes.append("m")
        side = math.sqrt(float(target[2] * target[3]))
        self.errors.append(float((position - box_centre(target)).norm()) / max(side, 1e-6))

    def add_hidden(self, position: torch.Tensor, others: torch.Tensor, track: str = "",
                   visible: bool = True) -> None:
        """Score one prediction on a frame where the target is annotated but its part is hidden.

        Args:
            position: ``(2,)`` reported x, y (NaN: nothing reported, as an abstention).
            others: ``(M, 4)`` other people's part boxes.
            track: Key of the track.
            visible: Whether the method reported the part (False: it abstained, which is correct).
        """
        outcomes = self.tracks.setdefault(track, [])
        if not visible or not bool(torch.isfinite(position).all()):
            self.abstain += 1
            outcomes.append("a")
        elif others.numel() and bool(points_in_boxes(position[None], others).any()):
            self.hidden_wrong += 1
            outcomes.append("X")
        else:
            self.false_report += 1
            outcomes.append("f")

    def skip(self, track: str = "") -> None:
        """Record a frame of ``track`` whose target part is not annotated (kept in the timeline only)."""
        self.tracks.setdefault(track, []).append("-")

    def interval(self, outcome: str = "W", level: float = 0.95, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, float]:
        """Bootstrap interval of an outcome's rate in % over tracks (tracks resampled with replacement).

        Frames of one track are not independent (a tracker that swaps people stays swapped), so the
        tracks, not the frames, are the units resampled.

        Returns:
            ``(low, high)``; NaNs without scored frames.
        """
        counts = np.array([[o.count(outcome), sum(c in VISIBLE_OUTCOMES for c in o)] for o in self.tracks.values()],
                          dtype=float).reshape(-1, 2)  # (tracks, 2)
        if counts[:, 1].sum() == 0:
            return math.nan, math.nan
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(counts), size=(resamples, len(counts)))  # (R, tracks)
        sums = counts[picks].sum(axis=1)  # (R, 2)
        rates = 100 * sums[:, 0] / np.maximum(sums[:, 1], 1)
        tail = 100 * (1 - level) / 2
        return float(np.percentile(rates, tail)), float(np.percentile(rates, 100 - tail))

    def timelines(self) -> dict[str, str]:
        """``{track key: outcome string}`` (see :attr:`tracks`)."""
        return {key: "".join(o) for key, o in self.tracks.items()}

    def row(self) -> dict[str, object]:
        n = self.hit + self.wrong + self.miss
        hidden = self.abstain + self.hidden_wrong + self.false_report
        share = 100 / hidden if hidden else math.nan
        out: dict[str, object] = {"abstain % (hidden)": self.abstain * share,
                                  "wrong % (hidden)": self.hidden_wrong * share,
                                  "false % (hidden)": self.false_report * share, "hidden": hidden}
        if n == 0:
            return {"hit %": math.nan, "wrong %": math.nan, "wrong 95% CI": "-", "miss %": math.nan,
                    "err/size": math.nan, "frames": 0, **out}
        finite = [e for e in self.errors if math.isfinite(e)]
        low, high = self.interval("W")
        return {"hit %": 100 * self.hit / n, "wrong %": 100 * self.wrong / n,
                "wrong 95% CI": f"{low:.1f}-{high:.1f}", "miss %": 100 * self.miss / n,
                "err/size": float(np.mean(finite)) if finite else math.nan, "frames": n, **out}


@dataclass
class SubjectTally:
    """IoU and centre errors of the subject box."""

    ious: list[float] = field(default_factory=list)
    centre_errors: list[float] = field(default_factory=list)

    def add(self, pred: torch.Tensor, gt: torch.Tensor) -> None:
        self.ious.append(float(box_iou(pred, gt)))
        self.centre_errors.append(float((box_centre(pred) - box_centre(gt)).norm()))

    def row(self) -> dict[str, float]:
        if not self.ious:
            return {"AUC": math.nan, "P@20": math.nan}
        ious = np.nan_to_num(np.asarray(self.ious), nan=0.0)
        errs = np.nan_to_num(np.asarray(self.centre_errors), nan=np.inf)
        return {"AUC": float(np.mean([(ious > t).mean() for t in IOU_THRESHOLDS])),
                "P@20": float((errs <= 20).mean())}


def product_peak(maps: PartMaps, k: int) -> torch.Tensor:
    """The patent's S205: the element-product maximum, decoded with the part offset; ``(2,)``."""
    pos, _, _, _ = decode_peak(maps.product[k:k + 1], maps.size[k:k + 1], maps.offset[k:k + 1], maps.ratio)
    return pos[0] + torch.tensor(maps.origin)


def _positions(maps: PartMaps, k: int) -> torch.Tensor:
    """Frame pixel position decoded at every element of part ``k``'s maps; ``(h, w, 2)``."""
    h, w = maps.heat.shape[-2:]
    return (cell_centres((h, w), maps.ratio) + maps.offset[k].permute(1, 2, 0) * torch.tensor(maps.ratio)
            + torch.tensor(maps.origin))


def peak_in_box(maps: PartMaps, k: int, box: torch.Tensor) -> torch.Tensor:
    """Baseline (a): the part likelihood maximum among decoded positions inside ``box (4,)``; ``(2,)``."""
    valid = points_in_boxes(_positions(maps, k), box)  # (h, w)
    pos, _, _, _ = decode_peak(maps.heat[k:k + 1], maps.size[k:k + 1], maps.offset[k:k + 1], maps.ratio,
                               valid=valid[None])
    return pos[0] + torch.tensor(maps.origin)


def peak_nearest(maps: PartMaps, k: int, box: torch.Tensor, expected: Sequence[float],
                 threshold: float) -> torch.Tensor:
    """Baseline (b): the part peak (≥ ``threshold``, else the global maximum) nearest the expected
    position ``box_xy + expected × box_wh``; ``(2,)``."""
    heat = maps.heat[k:k + 1]  # (1, h, w)
    peaks = local_peaks(heat, threshold)[0]  # (h, w)
    if not bool(peaks.any()):
        peaks = heat[0] == heat[0].max()
    cand = _positions(maps, k)[peaks]  # (P, 2)
    point = box[:2] + torch.tensor(list(expected)) * box[2:]
    if not bool(torch.isfinite(point).all()):
        return torch.full((2,), math.nan)
    return cand[(cand - point).norm(dim=-1).argmin()]


def _gt(frame: FrameAnn, track_id: int, k: int) -> tuple[torch.Tensor | None, torch.Tensor | None,
                                                          torch.Tensor]:
    """Target box, target part box (or None) and other people's part boxes ``(M, 4)``."""
    person = frame.person(track_id)
    others = [p.parts[k] for p in frame.people if p.track_id != track_id and p.parts[k] is not None]
    other_t = torch.tensor(others, dtype=torch.float32).reshape(-1, 4)
    if person is None:
        return None, None, other_t
    part = person.parts[k]
    return (torch.tensor(person.box, dtype=torch.float32),
            None if part is None else torch.tensor(part, dtype=torch.float32), other_t)


def select_tracks(seq: SequenceAnn, tracks: str, max_tracks: int | None,
                  init_visibility: float | None = None) -> list[tuple[int, int]]:
    """The tracks to evaluate in ``seq`` and the frame each starts at.

    Args:
        seq: Annotated sequence.
        tracks: ``"designated"`` (the sequence's ``target_track`` when set, else all) or ``"all"``.
        max_tracks: At most this many tracks.
        init_visibility: ``None``: start at the track's first annotated frame. A share v: start at
            the first frame in which every part of the person is annotated and at least v of it is
            visible (:meth:`PersonAnn.visible_share`); a track that never is, is skipped.

    Returns:
        ``(track_id, position in seq.frames)`` pairs; the start leaves at least one frame to track.
    """
    ids = [seq.target_track] if tracks == "designated" and seq.target_track is not None else seq.track_ids

    def can_start(person: PersonAnn | None) -> bool:
        if person is None:
            return False
        return init_visibility is None or all(part is not None and person.visible_share(k) >= init_visibility
                                              for k, part in enumerate(person.parts))

    out = []
    for tid in ids:
        first = next((i for i, f in enumerate(seq.frames) if can_start(f.person(tid))), None)
        if first is not None and first < len(seq.frames) - 1:
            out.append((tid, first))
    return out[:max_tracks] if max_tracks else out


@dataclass
class Variant:
    """One evaluated tracker and its tallies."""

    name: str
    tracker: Tracker
    subject: SubjectTally = field(default_factory=SubjectTally)
    parts: dict[str, PartTally] = field(default_factory=dict)
    gt_prior: Tracker | None = None  # the same networks, prior on the ground-truth box
    gt_parts: dict[str, PartTally] = field(default_factory=dict)
    seconds: float = 0.0  # in Tracker.track (networks and decoding), for frames/s
    frames: int = 0

    def tally(self, key: str) -> PartTally:
        return self.parts.setdefault(key, PartTally())

    def gt_tally(self, key: str) -> PartTally:
        return self.gt_parts.setdefault(key, PartTally())


def output_name(tracker: Tracker) -> str:
    """Row name of a tracker's own part output: :attr:`TrackerSettings.output_name`, with
    ``+ abstain`` when it can report a part hidden."""
    name = tracker.settings.output_name
    return f"{name} + abstain" if tracker.settings.part_gate > 0 else name


def _tracker_parts(tracker: Tracker, result: TrackResult, k: int) -> dict[str, tuple[torch.Tensor, bool]]:
    """The patent's bare element-product peak (S205, always reported) and, when the tracker decodes
    otherwise (a part window, a part exponent, abstention), its output for part k with its
    ``visible`` flag, under :func:`output_name`."""
    maps = tracker.last_maps
    assert maps is not None
    out = {"element product": (product_peak(maps, k), True)}
    part = result.parts[k]
    if output_name(tracker) != "element product":
        out[output_name(tracker)] = (torch.tensor(part.position), part.visible)
    return out


def evaluate_sequences(sequences: Sequence[SequenceAnn], trackers: dict[str, Tracker], tracks: str = "designated",
                       max_tracks: int | None = None, expected_position: Sequence[float] = (0.5, 0.1),
                       peak_threshold: float = 0.3, ground_truth_prior: bool = True,
                       init_visibility: float | None = None,
                       ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Run every tracker over every selected track and return the table rows and per-track outcomes.

    Args:
        sequences: Annotated sequences (their parts must match the trackers').
        trackers: ``{name: tracker}``; each gets its rows.
        tracks: ``"designated"`` (a sequence's ``target_track`` when set, else all) or ``"all"``.
        max_tracks: At most this many tracks per sequence.
        expected_position: Baseline (b)'s expected part position, relative to the person box.
        peak_threshold: Baseline (b)'s smallest part peak.
        ground_truth_prior: Also run each tracker with its motion prior on the target's annotated
            box (frames where the target is not annotated keep the tracker's own box); its element
            product and its output (:attr:`TrackerSettings.output_name`) get ``ground truth`` rows.
            Doubles the network time.
        init_visibility: Where each track starts (:func:`select_tracks`): ``None`` at its first
            annotated frame, a share v at the first frame with its parts at least v visible.

    Returns:
        Rows with the :data:`COLUMNS` keys, and one row per model and track with the
        :data:`TRACK_COLUMNS` keys for the tracker's output (:attr:`TrackerSettings.output_name`:
        its part window or part exponent when set, else the element product; the tracker's own box).
    """
    variants = [Variant(name, t, gt_prior=t.copy() if ground_truth_prior else None)
                for name, t in trackers.items()]
    gt_box_tallies: dict[str, PartTally] = {}
    for seq in sequences:
        K = len(seq.parts)
        for track_id, first in select_tracks(seq, tracks, max_tracks, init_visibility):
            f0 = seq.frames[first]
            image0 = load_frame(f0.path)
            for v in variants:
                for tracker in (v.tracker, v.gt_prior):
                    if tracker is not None:
                        tracker.initialize(image0, f0.person(track_id).box, frame_name=f"{f0.path}")
            track = f"{seq.name}/{track_id}"
            for frame in seq.frames[first + 1:]:
                image = load_frame(frame.path)
                truth = [_gt(frame, track_id, k) for k in range(K)]  # per part: box, part box, others
                box_gt = truth[0][0]
                for vi, v in enumerate(variants):
                    t0 = time.perf_counter()
                    result = v.tracker.track(image)
                    v.seconds += time.perf_counter() - t0
                    v.frames += 1
                    maps = v.tracker.last_maps
                    assert maps is not None
                    gt_result = None
                    if v.gt_prior is not None:
                        gt_result = v.gt_prior.track(image, None if box_gt is None else tuple(box_gt.tolist()))
                    pred_box = torch.tensor(result.box)
                    if box_gt is not None:
                        v.subject.add(pred_box, box_gt)
                    for k in range(K):
                        _, part_gt, others = truth[k]
                        name = seq.parts[k].name
                        scored: list[tuple[PartTally, torch.Tensor | None, bool]] = [
                            (v.tally(f"{method}|{name}"), pos, shown)
                            for method, (pos, shown) in _tracker_parts(v.tracker, result, k).items()]
                        if v.gt_prior is not None and gt_result is not None:
                            scored += [(v.gt_tally(f"{method}|{name}"), pos, shown)
                                       for method, (pos, shown) in _tracker_parts(v.gt_prior, gt_result, k).items()]
                        scored += [(v.tally(f"(a) peak in box|{name}"), peak_in_box(maps, k, pred_box), True),
                                   (v.tally(f"(b) nearest expected|{name}"),
                                    peak_nearest(maps, k, pred_box, expected_position, peak_threshold), True)]
                        if vi == 0:  # ground-truth box baselines depend on the part detector only
                            scored += [
                                (gt_box_tallies.setdefault(f"(a) peak in box|{name}", PartTally()),
                                 None if box_gt is None else peak_in_box(maps, k, box_gt), True),
                                (gt_box_tallies.setdefault(f"(b) nearest expected|{name}", PartTally()),
                                 None if box_gt is None else
                                 peak_nearest(maps, k, box_gt, expected_position, peak_threshold), True)]
                        for tally, pos, shown in scored:
                            if box_gt is None or pos is None:
                                tally.skip(track)  # the target is not annotated in this frame
                            elif part_gt is None:
                                tally.add_hidden(pos, others, track, shown)
                            else:
                                tally.add(pos, part_gt, others, track, shown)
    multi = len(sequences[0].parts) > 1 if sequences else False
    no_subject = {"AUC": math.nan, "P@20": math.nan}
    groups = [(v.name, "tracker", {**v.subject.row(), "FPS": v.frames / v.seconds if v.seconds else math.nan},
               v.parts) for v in variants]
    groups += [(v.name, "ground truth", no_subject, v.gt_parts) for v in variants]
    groups.append((variants[0].name if variants else "", "ground truth", no_subject, gt_box_tallies))
    rows: list[dict[str, object]] = []
    for model, box, subject, tallies in groups:
        for key, tally in tallies.items():
            method, part = key.split("|")
            rows.append({"method": f"{method} [{part}]" if multi else method, "model": model, "box": box,
                         **subject, **tally.row()})
    track_rows: list[dict[str, object]] = []
    for v in variants:
        output = output_name(v.tracker)
        for key, tally in v.parts.items():
            method, part = key.split("|")
            if method != output:
                continue
            for track, line in tally.timelines().items():
                scored = sum(c in VISIBLE_OUTCOMES for c in line)
                share = 100 / scored if scored else math.nan  # a track whose part is never annotated: NaN
                track_rows.append({"model": v.name, "part": part, "track": track, "hit %": line.count("h") * share,
                                   "wrong %": line.count("W") * share, "frames": scored, "timeline": line})
    return rows, track_rows


def protocol_counts(sequences: Sequence[SequenceAnn], tracks: str, max_tracks: int | None,
                    init_visibility: float | None) -> dict[str, int]:
    """How many tracks a protocol scores and how many it leaves out, by reason.

    Returns:
        ``{"scored", "too short", "never visible", "over max_tracks"}``: scored tracks; tracks
        annotated only in a sequence's last frame or in one frame (nothing to track); with
        ``init_visibility``, tracks whose parts are never that visible before the last frame;
        tracks beyond ``max_tracks`` per sequence.
    """
    counts = {"scored": 0, "too short": 0, "never visible": 0, "over max_tracks": 0}
    for seq in sequences:
        ids = [seq.target_track] if tracks == "designated" and seq.target_track is not None else seq.track_ids
        started = {tid for tid, _ in select_tracks(seq, tracks, None, None)}
        kept = select_tracks(seq, tracks, None, init_visibility)
        counts["too short"] += len(ids) - len(started)
        counts["never visible"] += len(started) - len(kept)
        n = min(len(kept), max_tracks) if max_tracks else len(kept)
        counts["over max_tracks"] += len(kept) - n
        counts["scored"] += n
    return counts


def protocol_line(counts: dict[str, int], init_visibility: float | None) -> str:
    """One sentence: where tracks start, how many are scored and how many are left out, and why."""
    start = ("each track starts at its first annotated frame (primary protocol)" if init_visibility is None else
             f"each track starts at the first frame with its parts at least {init_visibility:.0%} visible "
             "(secondary protocol)")
    why = {"too short": "annotated in no frame before the sequence's last",
           "never visible": "never that visible before the last frame",
           "over max_tracks": "beyond --max_tracks"}
    reasons = "; ".join(f"{counts[r]} {text}" for r, text in why.items() if counts[r])
    return f"{start}; {counts['scored']} tracks scored, " + (
        f"{sum(counts[r] for r in why)} left out ({reasons})" if reasons else "none left out")


def evaluate(checkpoints: list[str], data: str, names: list[str] | None = None, images_root: str | None = None,
             split: str = "val", parts: list[str] | None = None, part_size: float = 0.25,
             tracks: str = "designated", max_tracks: int | None = None, max_sequences: int | None = None,
             expected_position: list[float] | None = None, peak_threshold: float = 0.3,
             output: str | None = None, threads: int = 1, settings: dict[str, Any] | None = None,
             part_window: float | None = None, part_exponent: float | None = None,
             ground_truth_prior: bool = True, init_visibility: float | None = None) -> list[dict[str, object]]:
    """Evaluate trackers and the baselines on a PoseTrack18-format set; print one table.

    Args:
        checkpoints: Tracker checkpoints (``fit``) or ONNX export folders; one row group each.
        data: Folder of PoseTrack18 ``*.json`` files, or a dataset root with ``annotations/<split>``.
        names: Display name per checkpoint (default: the file's parent folder name).
        images_root: Folder the JSON ``file_name`` entries are relative to.
        split: Split folder under ``annotations`` when ``data`` is a dataset root.
        parts: Parts to evaluate (default: the first tracker's).
        part_size: Keypoint part box side as a fraction of the person height.
        tracks: ``designated`` (the generator's target per sequence; all tracks for real data) or ``all``.
        max_tracks: At most this many tracks per sequence.
        max_sequences: Evaluate only the first sequences.
        expected_position: Baseline (b)'s expected part position relative to the person box.
        peak_threshold: Baseline (b)'s smallest part peak.
        output: Folder for ``metrics.json`` and ``table.md``; nothing written when unset.
        threads: torch / onnxruntime intra-op threads.
        settings: :class:`~adaptrack.track.inference.decoder.TrackerSettings` fields that override every
            tracker's recorded ones, e.g. ``'{gate: 0.3, motion: velocity}'``.
        part_window: Shorthand for ``settings`` ``part_window`` (σ as a fraction of the part size;
            0 turns it off); default: each checkpoint's own setting.
        part_exponent: Shorthand for ``settings`` ``part_exponent`` (1: the element product).
        ground_truth_prior: Also report the element product and the tracker's output with each tracker's
            motion prior on the annotated target box (association apart from tracking; twice the
            network time).
        init_visibility: ``null`` (default, the primary protocol): each track starts at its first
            annotated frame, as a user draws a box at frame 0. A share v (secondary protocol):
            at the first frame in which its parts are annotated and at least v visible (the
            generator's ``head_visible``; data that does not say counts every annotated part as
            fully visible); tracks that never are, are left out and counted.

    Returns:
        The table rows.
    """
    torch.set_num_threads(threads)
    if output is not None:
        check_writable_dir(output, "--output")  # before any track is evaluated
    if init_visibility is not None and not 0.0 <= init_visibility <= 1.0:
        raise ConfigError(f"init_visibility must be a share in [0, 1] or null, got {init_visibility}")
    if names is not None and len(names) != len(checkpoints):
        raise ConfigError(f"{len(names)} names for {len(checkpoints)} checkpoints")
    overrides = dict(settings or {})
    overrides.update({key: value for key, value in (("part_window", part_window), ("part_exponent", part_exponent))
                      if value is not None})
    trackers = {}
    for i, ckpt in enumerate(checkpoints):
        name = names[i] if names else Path(ckpt).parent.name or Path(ckpt).stem
        trackers[name] = load_tracker(ckpt, threads, **overrides)
    first = next(iter(trackers.values()))
    part_names = list(parts or first.parts)
    for name, t in trackers.items():
        if t.parts != part_names:
            raise DataError(f"tracker {name!r} has parts {t.parts}, evaluation asks for {part_names}")
    sequences = read_posetrack_dir(annotation_dir(data, split), images_root, part_specs(part_names, part_size))
    if max_sequences:
        sequences = sequences[:max_sequences]
    rows, track_rows = evaluate_sequences(sequences, trackers, tracks, max_tracks,
                                          tuple(expected_position or (0.5, 0.1)), peak_threshold,
                                          ground_truth_prior, init_visibility)
    counts = protocol_counts(sequences, tracks, max_tracks, init_visibility)
    table = format_table(rows, COLUMNS, title=f"{len(sequences)} sequences, {counts['scored']} tracks: {data}")
    if counts["scored"] == 0:
        table += ("\n(no track is annotated in two or more frames of a sequence: nothing to track)"
                  if init_visibility is None else
                  f"\n(no track has its parts at least {init_visibility:.0%} visible in a frame before the "
                  "last: nothing to track; --init_visibility null starts at the first annotated frame)")
    table += ("\nwrong 95% CI: bootstrap over tracks (a swap lasts many frames, so frames are not "
              "independent); frames: target part visible (annotated); hidden: target annotated, part hidden")
    table += "\n" + protocol_line(counts, init_visibility)
    swapped = [r for r in track_rows if "W" in str(r["timeline"])]
    legend = ("timeline: one letter per frame, h hit, W wrong person, m miss, o abstained on a visible part, "
              "a abstained on a hidden part, X hidden part reported on another person, f other report on a "
              "hidden part, - target not annotated")
    swaps = format_table(swapped, TRACK_COLUMNS, title="tracks with wrong-person frames (tracker output)")
    print(table)
    print(f"\n{swaps}\n{legend}" if swapped else "\nno track has a wrong-person frame (tracker output)")
    if output:
        out = Path(output)
        with atomic_write(out / "metrics.json") as fh:
            json.dump({"data": str(data), "checkpoints": checkpoints, "protocol": counts,
                       "init_visibility": init_visibility, "settings": overrides, "rows": rows,
                       "tracks": track_rows}, fh, indent=2, default=str)
        with atomic_write(out / "table.md") as fh:
            fh.write(table + "\n")
        with atomic_write(out / "tracks.md") as fh:
            fh.write(format_table(track_rows, TRACK_COLUMNS, title="per-track outcomes (tracker output)")
                     + f"\n{legend}\n")
    return rows
