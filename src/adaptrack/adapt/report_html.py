"""``report.html``: the end-of-fit report as one self-contained page, plus its PNGs.

Sections: summary, checkpoint selection (each validator's choice against the oracle), the
validators' curves, pseudo labels over time, per-class target accuracy and the confusion matrix,
a 2-D embedding of source and target features before and after adaptation, and the training
curves. Every figure is also written as a PNG beside the page and embedded in it as base64, so
the page opens offline, moved or not; it references nothing outside itself (no CDN, no script).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from adaptrack.adapt.selection import SELECTION_COLUMNS, TARGET_KEY
from adaptrack.adapt.validators import Validator
from adaptrack.common.files import atomic_path, atomic_write

EmbeddingName = Literal["tsne", "pca"]

SECTIONS = ("summary", "selection", "validators", "pseudo-labels", "per-class", "confusion", "embedding",
            "training-curves")
"""The ``id`` of each section of the page, in order."""


@dataclass
class Embedding:
    """2-D points of a fixed subset of source and target images.

    Attributes:
        coords: ``(N, 2)`` embedded features.
        domain: ``(N,)`` 0 source, 1 target.
        labels: ``(N,)`` class labels (-1 unknown; the target's are read for colouring only).
    """

    coords: np.ndarray
    domain: np.ndarray
    labels: np.ndarray

    def as_state(self) -> dict[str, torch.Tensor]:
        """Tensors for a checkpoint (readable with ``weights_only=True``)."""
        return {"coords": torch.from_numpy(self.coords).float(), "domain": torch.from_numpy(self.domain).long(),
                "labels": torch.from_numpy(self.labels).long()}

    @classmethod
    def from_state(cls, state: Mapping[str, torch.Tensor]) -> Embedding:
        """Inverse of :meth:`as_state`."""
        return cls(state["coords"].numpy(), state["domain"].numpy(), state["labels"].numpy())


def embed(features: np.ndarray, method: EmbeddingName, seed: int = 0) -> np.ndarray:
    """2-D embedding ``(N, 2)`` of ``features`` ``(N, D)``: scikit-learn's t-SNE (PCA init) or PCA.

    The linear algebra runs on one BLAS thread: the matrices are small, and on cores other jobs
    share, OpenBLAS's default of one thread per core spin-waits (a 400×784 SVD took ~2 s instead of
    ~0.05 s). t-SNE (and its import, several seconds) is loaded only when asked for.
    """
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_limits

    x = np.asarray(features, dtype=np.float32)
    if x.shape[0] < 3:
        return np.zeros((x.shape[0], 2), dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        if method == "pca":
            return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, (x.shape[0] - 1) / 3.0))
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x).astype(
            np.float32)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def plot_validators(history: Sequence[Mapping[str, Any]], validators: Sequence[Validator],
                    selected: Mapping[str, int | None], path: Path) -> Path | None:
    """One panel per validator over the validation epochs, target accuracy (reporting) on a second axis."""
    if not history:
        return None
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    n = max(1, len(validators))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.2), squeeze=False)
    epochs = [int(r["epoch"]) for r in history]
    target = [100.0 * float(r.get(TARGET_KEY, float("nan"))) for r in history]
    for ax, v in zip(axes[0], validators, strict=False):
        values = [float(r.get(v.key, float("nan"))) for r in history]
        ax.plot(epochs, values, marker="o", color="tab:blue", label=v.key)
        pick = selected.get(v.key)
        if pick is not None:
            ax.axvline(epochs[pick], color="tab:blue", ls="--", alpha=0.6)
        ax.set_title(f"{v.key} ({'higher' if v.mode == 'max' else 'lower'} better)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.ticklabel_format(axis="y", useOffset=False)
        if any(math.isfinite(t) for t in target):
            twin = ax.twinx()
            twin.plot(epochs, target, color="tab:green", marker=".", alpha=0.7, label="target acc %")
            twin.tick_params(axis="y", colors="tab:green", labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("validators per epoch (dashed: the epoch each selects; green: target acc %, labels)", fontsize=9)
    return _save(fig, path)


def plot_pseudo(series: Mapping[str, Sequence[tuple[float, float]]], path: Path) -> Path | None:
    """Pseudo-label share per step and per epoch, and their precision per epoch (where labels are known)."""
    share_steps = series.get("train/pseudo_share", [])
    share, precision = series.get("pseudo/share", []), series.get("pseudo/accuracy", [])
    if not (share_steps or share):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    if share_steps:
        xs, ys = zip(*share_steps, strict=True)
        ax.plot(xs, [100 * y for y in ys], color="tab:blue", alpha=0.35, label="share, per step")
    if share:
        xs, ys = zip(*share, strict=True)
        ax.plot(xs, [100 * y for y in ys], color="tab:blue", marker="o", label="share, per epoch")
    if precision:
        xs, ys = zip(*precision, strict=True)
        ax.plot(xs, [100 * y for y in ys], color="tab:red", marker="s", label="precision, per epoch (labels)")
    ax.set_xlabel("step")
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("pseudo labels: share of target images labeled; precision of those labels", fontsize=10)
    return _save(fig, path)


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class (%) from a confusion matrix (rows = true class); NaN for absent classes."""
    totals = confusion.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * np.diag(confusion) / np.maximum(totals, 1), np.nan)


def plot_per_class(accuracy: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Bar chart of the per-class target accuracy."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(class_names) + 1.5), 3.0))
    ax.bar(range(len(class_names)), np.nan_to_num(accuracy), color="tab:green")
    ax.set_xticks(range(len(class_names)), list(class_names), rotation=90 if len(class_names) > 15 else 0)
    ax.set_ylim(0, 100)
    ax.set_ylabel("target acc %")
    ax.set_title("per-class target accuracy (final model)")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix of the target test split, with counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _plt()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * k + 2), max(3.5, 0.45 * k + 1.5)))
    ConfusionMatrixDisplay(confusion, display_labels=list(class_names)).plot(
        ax=ax, cmap="Blues", colorbar=False, include_values=k <= 20, values_format="d")
    ax.set_title("target confusion matrix (rows: true class)")
    return _save(fig, path)


def plot_embeddings(before: Embedding | None, after: Embedding | None, class_names: Sequence[str],
                    method: str, path: Path) -> Path | None:
    """2×2 grid: before/after adaptation (rows), coloured by domain and by class (columns)."""
    panels = [(name, e) for name, e in (("before adaptation (start of training)", before),
                                        ("after adaptation (end of training)", after)) if e is not None]
    if not panels:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(panels), 2, figsize=(10, 4.6 * len(panels)), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for (name, e), (ax_dom, ax_cls) in zip(panels, axes, strict=True):
        for d, (label, colour) in enumerate((("source", "tab:blue"), ("target", "tab:orange"))):
            m = e.domain == d
            ax_dom.scatter(e.coords[m, 0], e.coords[m, 1], s=9, c=colour, alpha=0.6, label=label)
        ax_dom.legend(fontsize=8)
        ax_dom.set_title(f"{name}: by domain", fontsize=9)
        for d, marker in ((0, "o"), (1, "x")):
            m = (e.domain == d) & (e.labels >= 0)
            ax_cls.scatter(e.coords[m, 0], e.coords[m, 1], s=12, c=[cmap(int(c) % cmap.N) for c in e.labels[m]],
                           marker=marker, alpha=0.7, linewidths=0.8)
        handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(i % cmap.N), label=str(c))
                   for i, c in enumerate(class_names)]
        handles += [plt.Line2D([], [], ls="", marker=m, color="gray", label=lab)
                    for m, lab in (("o", "source"), ("x", "target"))]
        ax_cls.legend(handles=handles, fontsize=6, ncol=2, loc="best")
        ax_cls.set_title(f"{name}: by class (o source, x target)", fontsize=9)
        for ax in (ax_dom, ax_cls):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"features of a fixed subset, {method.upper()}", fontsize=10)
    return _save(fig, path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """An HTML table of ``rows`` (escaped)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in columns) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _image(path: Path | None, alt: str) -> str:
    if path is None or not path.is_file():
        return f"<p class='none'>No figure: {html.escape(alt)} has nothing to show in this run.</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
            f"<p class='file'>{html.escape(path.name)}</p>")


STYLE = """body{font-family:sans-serif;margin:1.5em auto;max-width:1150px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}.file,.none{color:#777;font-size:.8em}.note{color:#555;font-size:.9em}
.row{display:flex;gap:1.5em;align-items:flex-start}"""


def write_html(path: Path, *, title: str, summary: Mapping[str, Any], summary_columns: Sequence[str],
               selection: Sequence[Mapping[str, Any]], validators: Sequence[Validator],
               per_class: Sequence[Mapping[str, Any]], figures: Mapping[str, Path | None]) -> Path:
    """Write the page (atomically).

    Args:
        path: ``report.html``.
        title: Heading.
        summary: The end-of-fit row (the printed table's).
        summary_columns: Its columns.
        selection: Rows of :func:`~adaptrack.adapt.selection.rank_validators`.
        validators: The validators ranked (for their contracts).
        per_class: ``{"class", "images", "target acc %"}`` rows.
        figures: PNG paths by section id (``validators``, ``pseudo-labels``, ``per-class``,
            ``confusion``, ``embedding``, ``training-curves``); ``None`` where a run has none.
    """
    contracts = "".join(f"<li><b>{html.escape(v.key)}</b> ({'higher' if v.mode == 'max' else 'lower'} is better, "
                        f"<code>--checkpoint.mode {v.mode}</code>): {html.escape(v.description)}</li>"
                        for v in validators)
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
        "<section id='summary'><h2>Summary (final model)</h2>", html_table([summary], summary_columns),
        "<p class='note'>Target labels are read for reporting only: nothing in training or checkpoint selection "
        "uses them.</p></section>",
        "<section id='selection'><h2>Checkpoint selection without target labels</h2>",
        html_table(selection, SELECTION_COLUMNS),
        "<p class='note'>Each validator's row is the validation epoch a checkpoint monitor on it keeps and the "
        "target accuracy there; the oracle is the best target accuracy over the epochs (needs the labels), "
        f"the last epoch the model training ends with.</p><ul class='note'>{contracts}</ul></section>",
        "<section id='validators'><h2>Validators per epoch</h2>", _image(figures.get("validators"), "validators"),
        "</section>",
        "<section id='pseudo-labels'><h2>Pseudo labels over time</h2>",
        _image(figures.get("pseudo-labels"), "pseudo labels"), "</section>",
        "<section id='per-class'><h2>Per-class target accuracy</h2><div class='row'><div>",
        html_table(per_class, ["class", "images", "target acc %"]), "</div><div>",
        _image(figures.get("per-class"), "per class"), "</div></div></section>",
        "<section id='confusion'><h2>Target confusion matrix</h2>", _image(figures.get("confusion"), "confusion"),
        "</section>",
        "<section id='embedding'><h2>Source and target features before and after adaptation</h2>",
        _image(figures.get("embedding"), "embedding"), "</section>",
        "<section id='training-curves'><h2>Training curves</h2>",
        _image(figures.get("training-curves"), "training curves"), "</section></body></html>",
    ]
    with atomic_write(path) as handle:
        handle.write("\n".join(parts))
    return path
