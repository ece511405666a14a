"""The registry of training methods.

A method is a small object that picks the loss terms of one training step from a
:class:`~adaptrack.adapt.step.Step` (the forward pass, the combining units and every loss the
patent defines, each computed once and only when asked for). The training loop
(:meth:`adaptrack.adapt.module.DomainAdaptationModule.training_step`) is generic: it builds the
step, asks the method for its terms, weighs them by Expression (1) and back-propagates them, jointly
(FIG. 3) or in two stages (FIG. 19).

Contract of a :class:`Method`:
    * ``domain_adversarial``: the step computes target features for the domain classifier (S3);
    * ``self_learns``: the S4 gate is consulted and, when it is open, the step carries the
      pseudo-labeled images fed again to the feature extractor (S7–S9);
    * ``supervised(step)``: the terms of the first learner (10a: source, minority shot, domain);
    * ``self_learning(step)``: the terms of the self-learner (9, second learner 10b), only called
      while the gate is open; with ``update: two_stage`` they update the feature extractor and
      the class classifier only.
    Each returns ``{term name: scalar loss}``; every name must be a field of
    :class:`~adaptrack.adapt.config.LossWeights` (its θ in Expression (1)).

Labeled target images (the third embodiment) are a data option, not a method: when the data module
supplies them, every method's supervised terms include the minority-shot loss, so ``dann`` with them
is the third embodiment (FIGS. 20–21) and ``self_learning`` with them its first modification (FIGS. 22–23).
Adding a method touches this file and its test; the names the CLI accepts come from :data:`METHODS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    import torch

    from adaptrack.adapt.step import Step


class Method:
    """Base of every method: source and minority-shot terms only (see the module docstring)."""

    description: ClassVar[str] = "cross entropy on the labeled images only (source, and labeled target when given)"
    domain_adversarial: ClassVar[bool] = False
    self_learns: ClassVar[bool] = False

    def supervised(self, step: Step) -> dict[str, torch.Tensor]:
        """Terms of the first learner: S2 and, with labeled target images, S32."""
        return {"source": step.source_loss(), "minority_shot": step.minority_shot_loss()}

    def self_learning(self, step: Step) -> dict[str, torch.Tensor]:
        """Terms of the self-learner (S9); empty for methods that do not self-learn."""
        return {}


class SourceOnly(Method):
    """Lower bound: the class classifier trained on labeled images only."""


class DANN(Method):
    """DANN: source loss + adversarial domain loss through the gradient reversal layer."""

    description = "DANN: source loss + adversarial domain loss through a GRL"
    domain_adversarial = True

    def supervised(self, step: Step) -> dict[str, torch.Tensor]:
        return {**super().supervised(step), "domain": step.domain_loss()}


class SelfLearning(DANN):
    """The patent (US12394188B2): DANN plus gated self-learning on pseudo-labeled target images."""

    description = "patent US12394188B2: DANN + gated self-learning on pseudo labels"
    self_learns = True

    def self_learning(self, step: Step) -> dict[str, torch.Tensor]:
        return {"self_learning": step.self_learning_loss()}


class SelfTraining(SelfLearning):
    """Ablation: the patent's self-learning without the domain classifier (plain pseudo-label training)."""

    description = "self-learning on pseudo labels without the domain classifier (ablation of the patent)"
    domain_adversarial = False

    def supervised(self, step: Step) -> dict[str, torch.Tensor]:
        return Method.supervised(self, step)


METHODS: dict[str, Method] = {
    "source_only": SourceOnly(),
    "dann": DANN(),
    "self_learning": SelfLearning(),
    "self_training": SelfTraining(),
}
"""Every method, by name."""

MethodName = Literal[tuple(METHODS)]  # type: ignore[valid-type]


def get_method(name: str) -> Method:
    """Look a method up by name; an unknown name raises an error listing the valid ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {sorted(METHODS)}") from None
