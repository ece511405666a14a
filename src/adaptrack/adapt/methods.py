"""The registry of training methods.

A method decides which terms of Expression (1) a training step computes; the step itself is
:meth:`adaptrack.adapt.module.DomainAdaptationModule.training_step`, one generic loop for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MethodName = Literal["source_only", "dann", "self_learning"]


@dataclass(frozen=True)
class MethodSpec:
    """Which loss terms a method uses.

    Attributes:
        domain_adversarial: Domain classifier trained through the gradient reversal layer (S3).
        self_learning: Pseudo labels on target images and the self-learning loss (S4, S7–S9).
        description: One line for ``--help`` and reports.
    """

    domain_adversarial: bool
    self_learning: bool
    description: str


METHODS: dict[str, MethodSpec] = {
    "source_only": MethodSpec(False, False, "cross entropy on labeled source images only (lower bound)"),
    "dann": MethodSpec(True, False, "DANN: source loss + adversarial domain loss through a GRL"),
    "self_learning": MethodSpec(True, True, "patent US12394188B2: DANN + gated self-learning on pseudo labels"),
}


def get_method(name: str) -> MethodSpec:
    """Look a method up by name; an unknown name raises an error listing the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None
