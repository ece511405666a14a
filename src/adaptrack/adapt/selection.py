"""Ranking the validators' choices against the oracle: what each label-free selection costs.

The history is one record per validation epoch: ``{"epoch", "step", "val/<name>": …, "report/target_acc": …}``.
For each validator, :func:`rank_validators` picks the epoch a checkpoint monitor would keep (the
first best value, as Lightning's ``ModelCheckpoint`` keeps the first of equal scores), and reads the
target accuracy there. The *oracle* is the epoch of the best target accuracy, which needs target
labels and is shown only as the reference: target labels never select anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from adaptrack.adapt.validators import Validator

TARGET_KEY = "report/target_acc"
"""The history's target test accuracy (a fraction; reporting only)."""

SELECTION_COLUMNS = ["selected by", "mode", "epoch", "value", "target acc %", "below oracle (pp)"]
"""Columns of the selection table."""


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(float(value))


def select_epoch(history: Sequence[Mapping[str, Any]], key: str, mode: str) -> int | None:
    """Index in ``history`` of the first best finite ``key`` (``mode`` ``max`` or ``min``); ``None`` if none."""
    best: int | None = None
    for i, record in enumerate(history):
        value = record.get(key)
        if not _finite(value):
            continue
        if best is None or (value > history[best][key] if mode == "max" else value < history[best][key]):
            best = i
    return best


def rank_validators(history: Sequence[Mapping[str, Any]], validators: Sequence[Validator],
                    monitor: str | None = None) -> list[dict[str, Any]]:
    """One row per validator, then the oracle and the last epoch (:data:`SELECTION_COLUMNS`).

    Args:
        history: Records of the validation epochs, in order.
        validators: The validators to rank (those the run computed).
        monitor: The ``--checkpoint.monitor`` of the run; its row is marked ``(checkpoint)``.

    Returns:
        Rows with the selected epoch, the validator's value there, the target accuracy (%) there
        and its distance (percentage points) below the oracle; NaN where target labels are unknown.
    """
    oracle = select_epoch(history, TARGET_KEY, "max")
    oracle_acc = 100.0 * float(history[oracle][TARGET_KEY]) if oracle is not None else float("nan")

    def row(name: str, mode: str, index: int | None, key: str | None) -> dict[str, Any]:
        record = history[index] if index is not None else {}
        target = record.get(TARGET_KEY)
        acc = 100.0 * float(target) if _finite(target) else float("nan")
        return {"selected by": name, "mode": mode,
                "epoch": int(record["epoch"]) if index is not None else "-",
                "value": float(record[key]) if key is not None and index is not None else float("nan"),
                "target acc %": acc, "below oracle (pp)": oracle_acc - acc}

    rows = []
    for v in validators:
        label = v.key + (" (checkpoint)" if v.key == monitor else "")
        rows.append(row(label, v.mode, select_epoch(history, v.key, v.mode), v.key))
    rows.append(row("oracle: best target acc (labels)", "max", oracle, None))
    rows.append(row("last epoch", "-", len(history) - 1 if history else None, None))
    return rows
