"""Ablation of the patent's embodiments and modifications on MNIST -> USPS and USPS -> MNIST.

Usage::

    python benchmarks/adapt_ablation.py --out runs/ablation                   # every row, both tasks
    python benchmarks/adapt_ablation.py --out runs/ablation --rows main       # the 3-seed rows only
    python benchmarks/adapt_ablation.py --out runs/ablation --tasks usps_mnist --rows two_stage k1_dann
    python benchmarks/adapt_ablation.py --out runs/ablation --report-only     # table and chart from the CSV
    python benchmarks/adapt_ablation.py --list                                # the rows and what they run
    python benchmarks/adapt_ablation.py --out /tmp/t --rows dann -- --trainer.max_steps 5   # extra fit options

Each row is a shipped task config (``configs/adapt/<task>.yaml``, the best patent configuration) or
its 1-shot twin, reset to the first embodiment by ``recipes/e1_self_learning.yaml`` (all rows but
``shipped`` and ``k1``), with one recipe of ``configs/adapt/recipes/`` and/or a few options layered
over it: each modification is switched on alone over the first embodiment. Every run is an
``adaptrack adapt fit`` subprocess with ``--threads`` torch threads, ``--jobs`` at a time. Finished
runs are appended to ``<out>/results.csv`` and skipped when the script runs again, so it can be run
in parts. The main rows (source_only, dann, the shipped configuration, the shipped 1-shot
configuration) run ``--seeds`` seeds (default 0 1 2), the others the first seed only.

Columns: target accuracy on the scored test split (mean ± std over seeds), target dev accuracy (the
unlabeled training pool, never trained on with its labels), pseudo-label share and precision over the
pool at the end, and wall time per run. Writes ``<out>/ablation.md`` and ``<out>/ablation.png``.
Target labels select nothing: checkpoints are the final model, hyperparameters are the configs'.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from adaptrack.common.files import atomic_path, atomic_write
from adaptrack.common.paths import shared_data_dir
from adaptrack.common.report import format_table

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "adapt"
RECIPES = CONFIGS / "recipes"
TASKS = ("mnist_usps", "usps_mnist")
FIELDS = ["task", "row", "seed", "target acc %", "target dev acc %", "pseudo-labeled %", "pseudo-label acc %",
          "wall s", "log_dir"]


@dataclass(frozen=True)
class Row:
    """One ablation row.

    Attributes:
        name: Row key (``--rows``).
        label: What the table calls it.
        recipe: A recipe file of ``configs/adapt/recipes`` layered over the task config, or a task-level
            config name (``1shot``: ``configs/adapt/<task>_1shot.yaml`` instead of the task config).
        options: Extra ``adaptrack adapt fit`` options.
        main: Run every seed (else the first seed only).
    """

    name: str
    label: str
    recipe: str | None = None
    options: tuple[str, ...] = ()
    main: bool = False


SL = ("--model.method", "self_learning")
ROWS: tuple[Row, ...] = (
    Row("source_only", "source only (lower bound)", options=("--model.method", "source_only"), main=True),
    Row("dann", "DANN (domain classifier, one call)", options=("--model.method", "dann"), main=True),
    Row("dann_per_domain", "DANN, domain classifier called per domain", options=(
        "--model.method", "dann", "--model.network.domain_call", "per_domain")),
    Row("shipped", "patent, shipped configuration", main=True),
    Row("view_same", "self-learning, image fed again: same", options=(*SL, "--model.pseudo.view", "same")),
    Row("view_strong", "first embodiment: image fed again strong, labels from the training pass", options=SL),
    Row("teacher_eval", "pseudo labels in eval mode", options=(*SL, "--model.pseudo.teacher", "eval")),
    Row("self_training", "self-learning without the domain classifier", options=("--model.method", "self_training")),
    Row("epoch_labels", "labels once per epoch (opposite of claim 12)", recipe="e1m1_epoch_labels.yaml"),
    Row("stop_gate", "S11 stop on source loss (suspend)", recipe="e1m2_stop_gate.yaml"),
    Row("stop_domain", "claim 4 stop on domain loss (permanent)", recipe="claim4_stop_on_domain_loss.yaml"),
    Row("start_loss", "claim 7 start on source loss", recipe="claim7_start_on_source_loss.yaml"),
    Row("max_mask", "FIG. 7B max logit masking", recipe="e1m3_max_masking.yaml"),
    Row("full_mask", "FIG. 7C full logit masking", recipe="e1m3_full_masking.yaml"),
    Row("dual_mask", "FIG. 10 dual masking", recipe="e1m4_dual_masking.yaml"),
    Row("equalize", "FIG. 12B per-class cap: equalize", recipe="e1m5_per_class_cap.yaml"),
    Row("total_cap", "S18 total cap 50 %", recipe="e1m6_total_cap.yaml"),
    Row("schedule", "Expression (2) weight schedule", recipe="e1m7_loss_schedule.yaml"),
    Row("two_stage", "second embodiment: two-stage update", recipe="e2_two_stage.yaml"),
    Row("k1_dann", "k = 1 labeled, no self-learning", recipe="e3_few_labeled.yaml"),
    Row("k1_sl", "k = 1 labeled + self-learning", recipe="e3m1_few_labeled_self_learning.yaml"),
    Row("k1", "k = 1 labeled + self-learning (shipped 1-shot config)", recipe="1shot", main=True),
    Row("k5_dann", "k = 5 labeled, no self-learning", recipe="e3_few_labeled.yaml",
        options=("--data.labeled_target.per_class", "5")),
    Row("k5_sl", "k = 5 labeled + self-learning", recipe="e3m1_few_labeled_self_learning.yaml",
        options=("--data.labeled_target.per_class", "5")),
    Row("k1_two_stage", "k = 1 labeled + self-learning, two-stage update", recipe="e3m1_few_labeled_self_learning.yaml",
        options=("--model.update", "two_stage")),
    Row("k1_doa", "k = 1 labeled + self-learning + DOA + filter", recipe="e3m2_doa_filter.yaml"),
    Row("k1_doa_padder", "k = 1 labeled + self-learning + DOA + padder + filter", recipe="e3m3_doa_padder.yaml"),
)
ROW_BY_NAME = {r.name: r for r in ROWS}


def command(task: str, row: Row, seed: int, threads: int, data_root: str | None,
            extra: tuple[str, ...] = ()) -> list[str]:
    """The ``adaptrack adapt fit`` command of one run (``extra``: options appended to every run)."""
    config = CONFIGS / (f"{task}_1shot.yaml" if row.recipe == "1shot" else f"{task}.yaml")
    args = [sys.executable, "-m", "adaptrack.cli", "adapt", "fit", "--config", str(config)]
    if row.name not in ("shipped", "k1"):  # every other row: the first embodiment + its change
        args += ["--config", str(RECIPES / "e1_self_learning.yaml")]
    if row.recipe not in (None, "1shot"):
        args += ["--config", str(RECIPES / row.recipe)]
    args += [*row.options, "--seed_everything", str(seed), "--data.seed", str(seed), "--threads", str(threads),
             "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    if data_root is not None:
        args += ["--data.data_root", data_root]
    return args + list(extra)


def read_results(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def append_result(path: Path, row: dict[str, object]) -> None:
    """Append one finished run (rewriting the CSV atomically, so a kill never leaves half a line)."""
    rows = read_results(path)
    rows.append({k: str(row.get(k, "")) for k in FIELDS})
    with atomic_write(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def run_one(task: str, row: Row, seed: int, out: Path, threads: int, data_root: str | None,
            extra: tuple[str, ...] = ()) -> dict[str, object]:
    """Run one fit in its own folder; return its report row (raises on failure, with the log's tail)."""
    folder = out / task / row.name / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "fit.log"
    start = time.perf_counter()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as handle:
        code = subprocess.call(command(task, row, seed, threads, data_root, extra), cwd=folder, stdout=handle,
                               stderr=subprocess.STDOUT, env=env)
    wall = time.perf_counter() - start
    if code != 0:
        tail = log.read_text().splitlines()[-15:]
        raise RuntimeError(f"{task}/{row.name}/seed{seed} exited {code}; {log}:\n" + "\n".join(tail))
    reports = sorted(folder.glob("runs/adapt/logs/version_*/report.json"), key=lambda p: p.stat().st_mtime)
    report = json.loads(reports[-1].read_text())
    return {"task": task, "row": row.name, "seed": seed, "wall s": round(wall, 1), "log_dir": report["log_dir"],
            **{k: report[k] for k in ("target acc %", "target dev acc %", "pseudo-labeled %", "pseudo-label acc %")}}


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def summarise(results: list[dict[str, str]], tasks: list[str]) -> tuple[list[dict[str, object]], dict]:
    """One table row per ablation row; per task: target acc (mean ± std, n), dev acc, pseudo share/precision, wall."""
    table, chart = [], {}
    for row in ROWS:
        line: dict[str, object] = {"row (--rows key)": f"{row.label} (`{row.name}`)"}
        found = False
        for task in tasks:
            runs = [r for r in results if r["task"] == task and r["row"] == row.name]
            values = [float(r["target acc %"]) for r in runs]
            found |= bool(runs)

            def mean_of(key: str, runs: list[dict[str, str]] = runs) -> float:
                vals = [float(r[key]) for r in runs if r[key] not in ("", "nan")]
                return statistics.mean(vals) if vals else float("nan")

            line[f"{task} acc %"] = mean_std(values)
            line[f"{task} n"] = len(runs)
            line[f"{task} dev %"] = mean_of("target dev acc %")
            line[f"{task} PL % / prec %"] = (f"{mean_of('pseudo-labeled %'):.1f} / {mean_of('pseudo-label acc %'):.2f}"
                                             if runs else "-")
            line[f"{task} wall s"] = mean_of("wall s")
            if values:
                chart.setdefault(task, []).append((row.label, statistics.mean(values),
                                                   statistics.stdev(values) if len(values) > 1 else 0.0))
        if found:
            table.append(line)
    return table, chart


def plot(chart: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(chart)
    fig, axes = plt.subplots(1, len(tasks), figsize=(7 * len(tasks), 0.38 * max(len(v) for v in chart.values()) + 1.5),
                             squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        labels, means, stds = zip(*chart[task], strict=True)
        y = range(len(labels))
        ax.barh(y, means, xerr=stds, color="#4c72b0", ecolor="black", capsize=3)
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        lo = min(means) - 2
        ax.set_xlim(max(0.0, lo), 100)
        ax.set_xlabel("target test accuracy % (mean ± std over seeds)")
        ax.set_title(task.replace("_", " -> "))
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/ablation", help="results folder (CSV, table, chart, run folders)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--rows", nargs="+", default=["all"],
                        help="row names, 'main' (the 3-seed rows) or 'all' (default); see --list")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    parser.add_argument("--data-root", default=None, help="data root (default: ../shared/data if present)")
    parser.add_argument("--report-only", action="store_true", help="only print the table and write the chart")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    ns, extra = parser.parse_known_args()
    extra = tuple(a for a in extra if a != "--")
    if ns.list:
        for row in ROWS:
            args = " ".join(a.replace(str(ROOT) + "/", "") for a in command("<task>", row, 0, 1, None)[5:-10])
            print(f"{row.name:16s} {'3 seeds' if row.main else '1 seed ':8s} {row.label}: {args}")
        return 0
    wanted = {r.name for r in ROWS if "all" in ns.rows or (r.main and "main" in ns.rows) or r.name in ns.rows}
    unknown = [r for r in ns.rows if r not in ROW_BY_NAME and r not in ("all", "main")]
    if unknown:
        parser.error(f"unknown rows {unknown}; see --list")
    out = Path(ns.out)
    csv_path = out / "results.csv"
    root = ns.data_root or (str(shared_data_dir()) if shared_data_dir() else None)
    done = {(r["task"], r["row"], int(r["seed"])) for r in read_results(csv_path)}
    todo = [(task, row, seed) for row in ROWS if row.name in wanted for task in ns.tasks
            for seed in (ns.seeds if row.main else ns.seeds[:1]) if (task, row.name, seed) not in done]
    if not ns.report_only:
        print(f"{len(todo)} runs to do ({len(done)} already in {csv_path}); data root {root}; "
              f"{ns.jobs} at a time, {ns.threads} torch thread(s) each", flush=True)
        failures = 0
        with ThreadPoolExecutor(max_workers=ns.jobs) as pool:
            futures = {pool.submit(run_one, t, r, s, out, ns.threads, root, extra): (t, r.name, s)
                       for t, r, s in todo}
            for i, future in enumerate(as_completed(futures), 1):
                task, name, seed = futures[future]
                try:
                    result = future.result()
                except RuntimeError as exc:
                    failures += 1
                    print(f"[{i}/{len(todo)}] FAILED {exc}", file=sys.stderr, flush=True)
                    continue
                append_result(csv_path, result)
                print(f"[{i}/{len(todo)}] {task} {name} seed {seed}: target {result['target acc %']:.2f} % "
                      f"(dev {result['target dev acc %']:.2f} %), {result['wall s']:.0f} s", flush=True)
        if failures:
            print(f"{failures} run(s) failed; rerun to retry them", file=sys.stderr)
    table, chart = summarise(read_results(csv_path), ns.tasks)
    if not table:
        print(f"no results in {csv_path}")
        return 1
    text = format_table(table, title="adaptrack adapt ablation (target test accuracy: mean ± std over the seeds run; "
                                     "dev = unlabeled training pool; PL = pseudo-labeled share / precision)")
    print("\n" + text)
    with atomic_write(out / "ablation.md") as handle:
        handle.write(text + "\n")
    plot(chart, out / "ablation.png")
    print(f"\ntable: {out / 'ablation.md'}   chart: {out / 'ablation.png'}   results: {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
