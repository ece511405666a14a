"""Rebuilding the networks from checkpoints, without any training code.

Both LightningModules write a ``"adaptrack_track"`` entry into their checkpoints:
``{"kind": "parts" | "tracker", "parts": [...], "part_model": {...}, "subject_model": {...},
"tracker": {...}}`` with the constructor arguments of :class:`PartDetector` / :class:`SubjectModel`
(a ``"backbone"`` entry names a ResNet backbone; the mobile one, the default, is not recorded; the
weights of a pretrained backbone are in the state dict, so a ``backbone_weights`` file is never re-read).
Their state dicts live under the ``part_model.`` and ``subject_model.`` prefixes. Checkpoints are
read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adaptrack.common.errors import DataError
from adaptrack.common.files import safe_torch_load
from adaptrack.track.models import PartDetector, SubjectModel

META_KEY = "adaptrack_track"


def read_meta(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load a checkpoint's ``adaptrack_track`` entry and state dict.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not loadable, or not written by an adaptrack track module.
    """
    ckpt = safe_torch_load(path)
    if not isinstance(ckpt, dict) or META_KEY not in ckpt or "state_dict" not in ckpt:
        raise DataError(f"not an adaptrack track checkpoint (no {META_KEY!r} entry); "
                        "use a checkpoint written by `adaptrack track fit-parts` or `fit`", path)
    return ckpt[META_KEY], ckpt["state_dict"]


def _sub_state(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _build(cls: type[PartDetector] | type[SubjectModel], config: dict[str, Any], state: dict[str, torch.Tensor],
           prefix: str, path: str | Path) -> Any:
    """``cls(**config)`` filled from ``state``'s ``prefix`` entries (its backbone included, so the
    recorded ``backbone_weights`` file, which may be gone, is not read)."""
    model = cls(**{**config, "backbone_weights": None})
    try:
        model.load_state_dict(_sub_state(state, prefix))
    except RuntimeError as exc:  # missing / unexpected keys or shapes: the meta does not match the weights
        raise DataError(f"the {prefix[:-1]} weights do not fit its recorded architecture "
                        f"({config}): {exc}", path) from exc
    return model


def load_part_detector(path: str | Path) -> tuple[PartDetector, dict[str, Any]]:
    """The part detector (first model) of a ``fit-parts`` or ``fit`` checkpoint, in eval mode.

    Returns:
        The model and the checkpoint's meta entry.
    """
    meta, state = read_meta(path)
    model = _build(PartDetector, meta["part_model"], state, "part_model.", path)
    return model.eval(), meta


def load_models(path: str | Path) -> tuple[PartDetector, SubjectModel, dict[str, Any]]:
    """Both models of a ``fit`` (tracker) checkpoint, in eval mode.

    Raises:
        ValueError: The checkpoint holds only a part detector.
    """
    meta, state = read_meta(path)
    if meta.get("kind") != "tracker":
        raise DataError("this is a part-detector checkpoint; the tracker needs one written by "
                        "`adaptrack track fit`", path)
    part = _build(PartDetector, meta["part_model"], state, "part_model.", path)
    subject = _build(SubjectModel, meta["subject_model"], state, "subject_model.", path)
    return part.eval(), subject.eval(), meta
