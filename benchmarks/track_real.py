"""Tracking on real video: train everything on the embedded default plus the Town Centre clip's frames,
evaluate every variant and the OpenCV baselines on the clip, leave the chosen tracker at DIR/tracker.

    nice python benchmarks/track_real.py --root runs/real

Runs these documented commands (each printed before it runs) and reports their wall times:

    python benchmarks/track_crowded.py --root <root>/source --skip-temporal            (the embedded default)
    adaptrack track convert --top <top> --video <video> --out <root>/labeled --start 0 --stop 63
    adaptrack track fit ... --data.search.factor 2.3 --model.init_checkpoint <source tracker>      (search crops)
    adaptrack track fit-parts --config parts.yaml --config parts_adapt.yaml --data.target_dir <frames> ...
    adaptrack track fit ... --model.part_checkpoint <adapted parts>                       (adaptation, no labels)
    adaptrack track fit-parts ... --data.labeled_target <root>/labeled ...     (few labeled frames: 0-62 only)
    adaptrack track fit ... --data.train_dir <root>/labeled ...
    adaptrack track export --checkpoint <root>/tracker/best.ckpt --output <root>/tracker_onnx
    adaptrack track evaluate-real ... --protocol dev|test          (every row and both OpenCV baselines)
    adaptrack track evaluate --data <root>/source/data --split test ...      (the synthetic crowded test)

Protocol (``adaptrack.track.evaluation.real``): every pedestrian whose body box is at least half inside frame
``start`` is tracked from that box; ``dev`` starts at frame 0 and scores frames 1-62, ``test`` starts at 63
and scores 64-125. Nothing here is chosen on ``test``; the real labels of frames 0-62 are used only by the
"few labeled frames" rows, which therefore score their own training frames on ``dev`` (marked). The chosen
tracker is fixed in advance, not picked by any score: the few-labeled tracker when ``--labeled-stop`` > 0,
else the adapted one. The unlabeled target is all 126 frames of the clip (no labels).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import track_crowded  # the embedded default's benchmark, beside this script
from track_crowded import stage

from adaptrack.common.report import format_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "track"
SHARED = ROOT.parent / "shared" / "data" / "towncentre"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="runs/real", help="output folder (data, checkpoints, tables)")
    parser.add_argument("--source", default=None,
                        help="an existing `benchmarks/track_crowded.py --root` folder to reuse (default: train it "
                             "under <root>/source)")
    parser.add_argument("--top", default=str(SHARED / "TownCentre-groundtruth-first126.top"))
    parser.add_argument("--video", default=str(SHARED / "TownCentre-first126.mp4"))
    parser.add_argument("--labeled-stop", type=int, default=63,
                        help="label frames 0 .. this - 1 for the few-labeled rows (0: skip them)")
    parser.add_argument("--search-factor", type=float, default=2.3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the synthetic fine-tuning stages")
    parser.add_argument("--few-epochs", type=int, default=8, help="epochs of the few-labeled stages")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-training", action="store_true", help="reuse the checkpoints under --root")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    timings: list[dict[str, object]] = []
    threads = ["--threads", str(args.threads)]

    source = Path(args.source).resolve() if args.source else root / "source"
    if not (source / "tracker" / "best.ckpt").is_file():
        print(f"\n$ python benchmarks/track_crowded.py --root {source} --skip-temporal", flush=True)
        track_crowded.main(["--root", str(source), "--skip-temporal"])
    synth = source / "data"
    src_parts, src_tracker = source / "parts" / "best.ckpt", source / "tracker" / "best.ckpt"
    frames = root / "frames"
    labeled = root / "labeled"
    labeled_json = labeled / "annotations" / "train"
    if args.labeled_stop > 0 and not labeled_json.is_dir():
        stage("convert frames 0-62", ["convert", "--top", args.top, "--video", args.video, "--out", str(labeled),
                                         "--start", "0", "--stop", str(args.labeled_stop),
                                         "--frames_dir", str(frames)], timings)

    def fit_tracker(name: str, parts: Path, init: Path, data: Path, labels: bool, epochs: int) -> Path:
        out = root / name
        if not args.skip_training:
            extra = ["--data.samples_per_epoch", "160"] if labels else []
            stage(f"fit {name}", ["fit", "--config", str(CONFIGS / "tracker.yaml"), "--model.part_checkpoint",
                                     str(parts), "--model.init_checkpoint", str(init), "--data.train_dir", str(data),
                                     "--data.val_dir", str(synth), "--data.search.factor", str(args.search_factor),
                                     "--trainer.max_epochs", str(epochs), "--trainer.check_val_every_n_epoch",
                                     "1", "--model.warmup_steps", "5", "--model.lr", "0.001", *extra,
                                     "--checkpoint.dirpath", str(out), "--trainer.default_root_dir", str(out),
                                     *threads], timings)
        return out / "best.ckpt"

    def fit_parts(name: str, extra: list[str], epochs: int) -> Path:
        out = root / name
        if not args.skip_training:
            stage(f"fit-parts {name}", ["fit-parts", "--config", str(CONFIGS / "parts.yaml"), "--config",
                                           str(CONFIGS / "parts_adapt.yaml"), "--model.init_checkpoint",
                                           str(src_parts), "--data.train_dir", str(synth), "--data.val_dir",
                                           str(synth), "--data.target_dir", str(frames), "--trainer.max_epochs",
                                           str(epochs), *extra, "--checkpoint.dirpath", str(out),
                                           "--trainer.default_root_dir", str(out), *threads], timings)
        return out / "best.ckpt"

    if not frames.is_dir():  # the unlabeled target: every frame of the clip
        from adaptrack.track.data.video import extract_frames

        extract_frames(args.video, frames)
    rows = [("today's models (full frame)", src_tracker, "none")]
    search = fit_tracker("tracker_search", src_parts, src_tracker, synth, False, args.epochs)
    rows.append(("+ search crops", search, "none"))
    parts_adapt = fit_parts("parts_adapt", [], args.epochs + 1)
    adapted = fit_tracker("tracker_adapt", parts_adapt, search, synth, False, 1)
    rows.append(("+ synthetic-to-real adaptation", adapted, "none"))
    chosen = adapted
    if args.labeled_stop > 0:
        label_json = next(labeled_json.glob("*.json"))
        parts_few = fit_parts("parts_few", ["--data.labeled_target", str(label_json), "--data.labeled_images_root",
                                            str(labeled), "--model.adaptation.self_learning", "false",
                                            "--data.labeled_batch_size", "16"], args.few_epochs)
        few = fit_tracker("tracker_few", parts_few, adapted, labeled, True, args.few_epochs - 2)
        rows.append(("+ few labeled real frames", few, f"heads+bodies of frames 0-{args.labeled_stop - 1}"))
        chosen = few
    tracker_dir = root / "tracker"
    tracker_dir.mkdir(exist_ok=True)
    shutil.copyfile(chosen, tracker_dir / "best.ckpt")
    onnx = root / "tracker_onnx"
    stage("export", ["export", "--checkpoint", str(tracker_dir / "best.ckpt"), "--output", str(onnx)], timings)

    names = [name for name, _, _ in rows] + ["chosen, ONNX (onnxruntime)", "OpenCV MIL", "OpenCV HOG + IoU"]
    specs = [str(path) for _, path, _ in rows] + [str(onnx), "opencv-mil", "opencv-hog"]
    labels = [lab for _, _, lab in rows] + [rows[-1][2], "none", "none"]
    tables = {}
    for protocol in ("dev", "test"):
        out = root / f"eval_{protocol}"
        stage(f"evaluate-real {protocol}", ["evaluate-real", "--top", args.top, "--video", args.video,
                                               "--trackers", json.dumps(specs), "--labels", json.dumps(labels),
                                               "--protocol", protocol, "--frames_dir", str(frames), "--output",
                                               str(out), "--threads", str(args.threads)], timings)
        got = json.loads((out / "metrics.json").read_text())["rows"]
        for row, name in zip(got, names, strict=True):
            row["tracker"] = name
        tables[protocol] = got
    synth_out = root / "eval_synthetic"
    stage("evaluate synthetic test", ["evaluate", "--checkpoints", json.dumps([str(src_tracker), str(chosen)]),
                                         "--names", json.dumps(["today's models", "chosen tracker"]), "--data",
                                         str(synth), "--split", "test", "--output", str(synth_out),
                                         "--ground_truth_prior", "false"], timings)

    columns = ["tracker", "real labels", "tracks", "person-frames", "head hit %", "wrong-person %", "miss %",
               "IoU>=0.5 %", "FPS", "track ms", "decode ms", "threads"]
    print()
    print(format_table(timings, title="wall time per stage"))
    for protocol, got in tables.items():
        print()
        print(format_table(got, columns, precision=1, title=f"Town Centre, protocol {protocol} (real labels: "
                           "those used in training)"))
    test = {r["tracker"]: r for r in tables["test"]}
    ours = test["chosen, ONNX (onnxruntime)"]
    checks = []
    for base in ("OpenCV MIL", "OpenCV HOG + IoU"):
        checks += [(f"head hit % > {base}", ours["head hit %"], ours["head hit %"] > test[base]["head hit %"]),
                   (f"wrong-person % < {base}", ours["wrong-person %"],
                    ours["wrong-person %"] < test[base]["wrong-person %"])]
    checks += [("head hit >= 95 %", ours["head hit %"], ours["head hit %"] >= 95),
               ("wrong-person <= 1 %", ours["wrong-person %"], ours["wrong-person %"] <= 1),
               ("ONNX >= 30 frames/s at 1920x1080", ours["FPS"], ours["FPS"] >= 30)]
    print()
    print(format_table([{"target (test protocol)": t, "measured": v, "met": "yes" if ok else "NO"}
                        for t, v, ok in checks]))
    print(f"\nchosen tracker: {tracker_dir / 'best.ckpt'} (ONNX: {onnx})")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
