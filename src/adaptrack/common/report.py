"""Human-facing results: aligned text tables and PNG training curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from adaptrack.common.files import atomic_path


def _fmt(value: object, precision: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{precision}f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None,
                 precision: int = 2, title: str | None = None) -> str:
    """Render rows as a Markdown-style table (readable in a terminal and pasteable into notes).

    Args:
        rows: One mapping per row.
        columns: Column order; defaults to the keys of the first row.
        precision: Decimals for floats; NaN prints as ``-``.
        title: Optional line printed above the table.

    Returns:
        The table as one string, no trailing newline.
    """
    if not rows:
        return title or ""
    cols = list(columns or rows[0].keys())
    cells = [[_fmt(r.get(c, ""), precision) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(items: Sequence[str]) -> str:
        return "| " + " | ".join(item.rjust(w) if i else item.ljust(w)
                                 for i, (item, w) in enumerate(zip(items, widths, strict=True))) + " |"

    out = [title] if title else []
    out += [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(row) for row in cells]
    return "\n".join(out)


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Read a Lightning ``CSVLogger`` ``metrics.csv`` into ``{metric: [(step, value), ...]}``."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = float(row.get("step") or 0)
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(series: Mapping[str, Sequence[tuple[float, float]]], out_png: str | Path,
                panels: Mapping[str, Sequence[str]], title: str = "") -> Path:
    """Plot metric series into one PNG with a panel per group.

    Args:
        series: ``{metric: [(step, value), ...]}``, e.g. from :func:`read_metrics_csv`.
        out_png: Destination PNG (written atomically).
        panels: ``{panel title: [metric names]}``; metrics absent from ``series`` are skipped.
        title: Figure title.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4.8 * n, 3.6), squeeze=False)
    for ax, (panel, names) in zip(axes[0], panels.items(), strict=False):
        for name in names:
            points = series.get(name)
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, label=name, marker="." if len(xs) < 40 else None)
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return out_png
