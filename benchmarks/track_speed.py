"""End-to-end tracker speed: both models + decoding, 256x256 input, batch 1, PyTorch and onnxruntime.

    python benchmarks/track_speed.py --checkpoint runs/crowded/tracker/best.ckpt --threads 2
    python benchmarks/track_speed.py --checkpoint runs/crowded/tracker/best.ckpt --levers all   # levers on
    python benchmarks/track_speed.py --backbone resnet18 --threads 1   # random weights, ResNet-18 backbones

Without ``--checkpoint`` the default-sized networks are benchmarked with random weights (speed does
not depend on the weights). Frames come from one generated ``crowded`` sequence (256x256), so the
timing includes the per-frame preprocessing, the motion prior, both networks, the element product and
the decoding of the subject box and every part. Targets: >= 60 frames/s PyTorch, >= 100 frames/s ORT.
``min ms`` (the fastest frame) is the figure least disturbed by other processes on a shared machine.
``--levers all`` switches on every lever of ``benchmarks/track_levers.py`` (``all`` row), or give a
row name of it, or ``--settings`` a JSON object of :class:`TrackerSettings` fields. ``--backbone``
picks the backbone of both random-weight networks (``mobile``, ``resnet18``, ...); the title line
gives the multiply-add count of one tracked frame (both networks, ``torch.utils.flop_counter``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from adaptrack.common.report import format_table
from adaptrack.track.data.frames import load_frame
from adaptrack.track.data.posetrack import read_posetrack_dir
from adaptrack.track.data.synth import generate_dataset
from adaptrack.track.inference.checkpoints import load_models
from adaptrack.track.inference.onnx_export import export_models
from adaptrack.track.inference.tracker import TorchBackend, Tracker, TrackerSettings, load_tracker
from adaptrack.track.models import BACKBONES, PartDetector, SubjectModel


def frame_gmacs(part: PartDetector, subject: SubjectModel, size: int = 256) -> dict[str, float]:
    """Multiply-adds (G) of one tracked frame: the part detector and the subject model, and their backbones."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 3, size, size)  # (1, 3, S, S)
    box = torch.tensor([[0.3, 0.2, 0.2, 0.5]]) * size  # (1, 4)
    out = {}
    with torch.no_grad():
        kernel = subject.encode_template(x, box)
        prior = torch.rand(1, 1, size // subject.stride, size // subject.stride)
        for name, fn in (("parts", lambda: part(x)), ("subject", lambda: subject(x, kernel, prior)),
                         ("backbone", lambda: part.backbone.forward_pyramid(x))):
            with FlopCounterMode(display=False) as counter:
                fn()
            out[name] = counter.get_total_flops() / 2e9
    return out


def measure(tracker: Tracker, frames: list[torch.Tensor], box: tuple[float, ...], n: int, warmup: int = 20
            ) -> list[float]:
    """Per-frame wall times (s) of ``tracker.track`` over ``n`` frames (cycling through ``frames``)."""
    tracker.initialize(frames[0], box)
    for i in range(warmup):
        tracker.track(frames[1 + i % (len(frames) - 1)])
    times = []
    for i in range(n):
        frame = frames[1 + i % (len(frames) - 1)]
        t0 = time.perf_counter()
        tracker.track(frame)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="tracker checkpoint of `adaptrack track fit` (default: random weights)")
    parser.add_argument("--frames", type=int, default=500, help="timed frames per backend")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and onnxruntime)")
    parser.add_argument("--levers", help="a row of benchmarks/track_levers.py (e.g. all) whose settings to use")
    parser.add_argument("--settings", default="{}", help="JSON TrackerSettings overrides (after --levers)")
    parser.add_argument("--backbone", default="mobile", choices=BACKBONES,
                        help="backbone of both networks without --checkpoint (random weights)")
    args = parser.parse_args(argv)
    overrides: dict = {}
    if args.levers:
        sys.path.insert(0, str(Path(__file__).parent))
        from track_levers import LEVERS, variants

        rows = variants(LEVERS)
        if args.levers not in rows:
            parser.error(f"--levers must be one of {sorted(rows)}")
        overrides.update(rows[args.levers])
    overrides.update(json.loads(args.settings))
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        generate_dataset(Path(tmp) / "data", n_sequences=1, n_frames=40, preset="crowded", seed=12345,
                         split="bench")
        seq = read_posetrack_dir(Path(tmp) / "data" / "annotations" / "bench")[0]
        frames = [load_frame(f.path) for f in seq.frames]  # (3, 256, 256) uint8 each
        box = seq.frames[0].person(seq.target_track or 0).box
        if args.checkpoint:
            torch_tracker = load_tracker(args.checkpoint, **overrides)
            part, subject, _ = load_models(args.checkpoint)
        else:
            torch.manual_seed(0)
            # the architecture of configs/track/parts.yaml and tracker.yaml
            part = PartDetector(fine_maps=True, backbone=args.backbone).eval()
            subject = SubjectModel(region_dilations=(2, 4), fine_maps=True, backbone=args.backbone).eval()
            # and the decoding settings of tracker.yaml (both motion windows on)
            settings = dataclasses.replace(TrackerSettings(prior_sigma=0.2, window_power=2.0, part_window=0.15),
                                           **overrides)
            torch_tracker = Tracker(TorchBackend(part, subject), ["head"], subject.stride, settings=settings)
        export_models(part, subject, Path(tmp) / "onnx", torch_tracker.parts, settings=torch_tracker.settings)
        ort_tracker = load_tracker(Path(tmp) / "onnx", threads=args.threads, **overrides)
        rows = []
        for name, tracker, target in (("PyTorch", torch_tracker, 60), ("onnxruntime", ort_tracker, 100)):
            times = measure(tracker, frames, box, args.frames)
            fps = len(times) / sum(times)
            rows.append({"backend": name, "frames/s": fps, "mean ms": 1000 * statistics.mean(times),
                         "p50 ms": 1000 * statistics.median(times), "min ms": 1000 * min(times),
                         "p95 ms": 1000 * sorted(times)[int(0.95 * len(times))], "target fps": target,
                         "met": "yes" if fps >= target else "NO"})
    n_params = sum(p.numel() for p in part.parameters()) + sum(p.numel() for p in subject.parameters())
    macs = frame_gmacs(part, subject)
    backbone = type(part.backbone).__name__ if args.checkpoint else args.backbone
    print(format_table(rows, title=f"end to end, 256x256, batch 1, {args.threads} threads, {args.frames} frames, "
                                   f"levers {torch_tracker.settings.levers or 'off'}, backbone {backbone}, "
                                   f"{n_params / 1e3:.0f}k parameters ({'trained' if args.checkpoint else 'random'}), "
                                   f"GMACs/frame: parts {macs['parts']:.3f} + subject {macs['subject']:.3f} "
                                   f"(one backbone {macs['backbone']:.3f})"))
    return 0 if all(r["met"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
