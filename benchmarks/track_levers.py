"""Ablation of the tracker's levers against swaps: today's decoding, each lever alone, all together.

    python benchmarks/track_levers.py --checkpoint runs/crowded/tracker/best.ckpt \\
        --data runs/crowded/data --split dev --jobs 2

Every row runs the same networks (one ``fit`` checkpoint) with other
:class:`~adaptrack.track.inference.decoder.TrackerSettings`: ``today`` is the checkpoint's recorded decoding
with every lever off; each lever row switches one on over it (``redetect`` needs the gate, so it
runs with it); ``all`` switches every lever on, ``all but gating`` every lever but the gate, re-detection
and abstention (the ones that trade reports for misses). Lever values are :data:`LEVERS`, or ``--levers``
(a JSON object ``{row: {setting: value}}`` replacing rows of it) — tune them on a dev split, report
on a test split no decision looked at.

Primary protocol: each track starts at its first annotated frame (``--init-visibility`` for the
secondary one). Columns: hit, wrong-person (with its 95 % bootstrap interval over tracks) and miss
% of the frames where the target's part is visible; abstain, wrong-person and false-report % of the
frames where it is hidden; subject AUC; frames/s of ``Tracker.track`` (networks and decoding, 1
thread per job, while the other job runs). The patent's bare element product (S205) and baseline (a)
with the ground-truth box are rows too. Writes ``<out>/levers.md`` and ``levers.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from adaptrack.common.report import format_table
from adaptrack.track.data.posetrack import read_posetrack_dir
from adaptrack.track.evaluation.evaluate import evaluate_sequences, output_name, protocol_counts, protocol_line
from adaptrack.track.inference.tracker import load_tracker
from adaptrack.track.train.datamodule import annotation_dir, part_specs

LEVERS: dict[str, dict[str, Any]] = {
    # dev split (seed 11; 100 / 60 sequences, wrong-person % of visible frames, today 7.35 / 6.06):
    "velocity": {"motion": "velocity"},  # 7.68 (noise 0.1: 7.23 of 6.06): the prior overshoots at turns
    "gate": {"gate": 0.45},  # gate 0.3 fires on 0.3 % of frames (7.35 -> 8.01); 0.45 (+ redetect) 4.58, hit -9.6
    "redetect": {"gate": 0.45, "redetect": True},
    "memory": {"memory_weight": 0.3},  # 7.49; 0.5 at threshold 0.5: 6.28 of 6.06
    "distractors": {"distractor_weight": 3.0},  # 1.0: 7.16 of 7.35; 3.0: 5.30 of 6.06
    "jump": {"jump_penalty": 2.0},  # 0.5 and 2.0: no change (the motion window already decides)
    "abstain": {"part_gate": 0.03},
    # not a new lever: the parts decoded at part likelihood^0.5 x region map (with the part window);
    # dev 60 sequences: wrong-person 6.06 -> 4.6 %, misses 2.6 %; 0.25 without the window: 19 %
    "exponent": {"part_exponent": 0.5},  # 0.1: abstains on 59 % of hidden, 35 % of visible frames; 0.03: 40 / 13
}
"""Each lever's settings over ``today``, chosen on the dev split (figures above)."""
OFF = {"motion": "last", "gate": 0.0, "part_gate": 0.0, "coast_on_hidden_part": False, "redetect": False,
       "memory_weight": 0.0, "distractor_weight": 0.0, "jump_penalty": 0.0}
GATING = ("gate", "redetect", "part_gate", "coast_on_hidden_part")  # the levers that turn reports into misses
COLUMNS = ["row", "hit %", "wrong %", "wrong 95% CI", "miss %", "abstain % (hidden)", "wrong % (hidden)",
           "false % (hidden)", "AUC", "FPS", "frames", "hidden"]


def variants(levers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{row: settings overrides}``: today, each lever alone, all together."""
    rows = {"today": dict(OFF)}
    merged: dict[str, Any] = {}
    for name, values in levers.items():
        rows[name] = {**OFF, **values}
        merged.update(values)
    rows["all"] = {**OFF, **merged}
    rows["all but gating"] = {**OFF, **{k: v for k, v in merged.items() if k not in GATING}}
    return rows


def _run(args: tuple[str, str, str, dict[str, dict[str, Any]], int | None, float | None, bool]) -> list[dict]:
    checkpoint, data, split, rows, max_sequences, init_visibility, baselines = args
    torch.set_num_threads(1)
    trackers = {name: load_tracker(checkpoint, 1, **overrides) for name, overrides in rows.items()}
    parts = next(iter(trackers.values())).parts
    sequences = read_posetrack_dir(annotation_dir(data, split), None, part_specs(parts, 0.25))[:max_sequences]
    table, _ = evaluate_sequences(sequences, trackers, ground_truth_prior=False, init_visibility=init_visibility)
    out = []
    for name, tracker in trackers.items():
        wanted = output_name(tracker)
        out += [dict(r, row=name) for r in table if r["model"] == name and r["box"] == "tracker"
                and r["method"] == wanted]
    if baselines:
        first = next(iter(trackers))
        out += [dict(r, row="patent S205 (element product)") for r in table
                if r["model"] == first and r["box"] == "tracker" and r["method"] == "element product"]
        out += [dict(r, row="(a) peak in box, ground-truth box", FPS=math.nan) for r in table
                if r["box"] == "ground truth" and r["method"] == "(a) peak in box"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="tracker checkpoint of `adaptrack track fit`")
    parser.add_argument("--data", required=True, help="dataset root (annotations/<split>)")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", help="folder for levers.md / levers.json (default: none)")
    parser.add_argument("--levers", default="{}", help="JSON {row: {setting: value}} replacing rows of LEVERS")
    parser.add_argument("--rows", nargs="+", help="only these rows (default: all)")
    parser.add_argument("--max-sequences", type=int)
    parser.add_argument("--init-visibility", type=float, help="secondary protocol (default: primary)")
    parser.add_argument("--jobs", type=int, default=2, help="processes (rows are split between them)")
    args = parser.parse_args(argv)
    levers = {**LEVERS, **json.loads(args.levers)}
    rows = variants(levers)
    if args.rows:
        unknown = sorted(set(args.rows) - set(rows))
        if unknown:
            parser.error(f"unknown rows {unknown}; choose from {sorted(rows)}")
        rows = {k: v for k, v in rows.items() if k in args.rows}
    names = list(rows)
    jobs = max(1, min(args.jobs, len(names)))
    chunks = [{n: rows[n] for n in names[i::jobs]} for i in range(jobs)]
    tasks = [(args.checkpoint, args.data, args.split, chunk, args.max_sequences, args.init_visibility, i == 0)
             for i, chunk in enumerate(chunks)]
    with ProcessPoolExecutor(jobs) as pool:
        results = [r for part in pool.map(_run, tasks) for r in part]
    order = {n: i for i, n in enumerate(names)}
    results.sort(key=lambda r: order.get(str(r["row"]), len(order)))
    sequences = read_posetrack_dir(annotation_dir(args.data, args.split))[:args.max_sequences]
    counts = protocol_counts(sequences, "designated", None, args.init_visibility)
    title = f"levers: {args.data} split {args.split!r}, {len(sequences)} sequences"
    table = format_table(results, COLUMNS, title=title) + "\n" + protocol_line(counts, args.init_visibility)
    table += "\nsettings per row: " + "; ".join(
        f"{n}: {json.dumps({k: v for k, v in rows[n].items() if OFF.get(k) != v})}" for n in names)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "levers.md").write_text(table + "\n")
        (out / "levers.json").write_text(json.dumps({"rows": results, "settings": rows, "protocol": counts},
                                                    indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
