"""One forward pass of a training step and every loss term of the patent computed from it.

A :class:`Step` runs the feature extractor once over all the views the stage needs, concatenated
(so its batch norms see source and target together), and computes each loss term lazily, once, when
a method asks for it. It is where the patent's data combining units live:

* first combining unit 11 (¶59, ¶161): source features, labeled-target features and the features of
  the pseudo-labeled images fed again go through the class classifier in one call; the rows are then
  split into the source loss (S2), the minority-shot loss (S32) and the self-learning loss (S9);
* second combining unit 12 (¶59, ¶161): unlabeled-target, labeled-target and pseudo-labeled-target
  features, after the source features, go through the domain classifier in one call (S3, S33);
  source = 0, every target image = 1.

The pseudo labels (S7, S8) come from the class classifier on the unlabeled target features of this
pass (``teacher="train"``), or from logits given by the caller (an eval-mode pass, or labels kept
for the epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.config import PseudoLabelConfig
from adaptrack.adapt.losses import domain_loss, self_learning_loss
from adaptrack.adapt.networks import AdaptationNetwork
from adaptrack.adapt.pseudo import PseudoLabeler, PseudoLabels

CHANNELS_LAST = torch.channels_last
"""Images and networks are kept channels-last: a LeNet step runs about 1.5× faster on CPU; values are unchanged."""


@dataclass(frozen=True)
class Views:
    """Which images a step feeds to the feature extractor.

    Attributes:
        labeled: The labeled target images (when the batch has any) and the source images — the
            first learner's inputs. Source images are always fed when this is set.
        target: The unlabeled target images (weak view): domain loss, pseudo labels.
        again: The pseudo-labeled images fed again (self-learning).
    """

    labeled: bool
    target: bool
    again: bool


class Step:
    """The features of one stage of a training step and its loss terms.

    Args:
        net: The three networks.
        batch: The augmented mini-batch.
        views: Which images this stage feeds.
        labeler: S7/S8 and the modifications.
        pseudo: Pseudo-label settings (view fed again, mask value).
        grl_coefficient: Gradient-reversal coefficient of this step.
        domain_call: ``joint`` (one domain-classifier call) or ``per_domain``.
        teacher_logits: ``(Bt, K)`` logits to pseudo-label from; ``None`` uses the class classifier
            on this pass's unlabeled target features (then ``views.target`` must be set).
    """

    def __init__(self, net: AdaptationNetwork, batch: AdaptBatch, views: Views, labeler: PseudoLabeler,
                 pseudo: PseudoLabelConfig, grl_coefficient: float, domain_call: str = "joint",
                 teacher_logits: torch.Tensor | None = None) -> None:
        if views.again and teacher_logits is None and not views.target:
            raise ValueError("pseudo labels need the unlabeled target features or teacher_logits")
        self.net, self.batch, self.views = net, batch, views
        self.labeler, self.pseudo_config = labeler, pseudo
        self.grl_coefficient, self.domain_call = grl_coefficient, domain_call
        self._teacher_logits = teacher_logits
        again = None if not views.again else batch.target if pseudo.view == "same" else batch.strong_target()
        parts = {"source": batch.source if views.labeled else None,
                 "labeled": batch.labeled if views.labeled else None,
                 "target": batch.target if views.target else None,
                 "again": again}
        images = [x for x in parts.values() if x is not None]
        self.n_source = batch.source.shape[0] if views.labeled else 0
        self.n_labeled = batch.labeled.shape[0] if views.labeled else 0
        x = torch.cat(images).contiguous(memory_format=CHANNELS_LAST)  # (Bs + Bl + Bt + Bt, C, H, W)
        z = net.features(x)  # (N, D)  S1 / S31 forward
        self.features: dict[str, torch.Tensor] = {}
        start = 0
        for name, part in parts.items():
            if part is not None:
                self.features[name] = z[start:start + part.shape[0]]
                start += part.shape[0]
        self._class_logits: dict[str, torch.Tensor] | None = None
        self._pseudo: PseudoLabels | None = None
        self._cache: dict[str, torch.Tensor] = {}
        self._zero = z.new_zeros(())

    # -- first combining unit 11 ----------------------------------------------------------------
    def class_logits(self) -> dict[str, torch.Tensor]:
        """Class logits of the source, labeled and fed-again rows, from one classifier call."""
        if self._class_logits is None:
            names = [n for n in ("source", "labeled", "again") if n in self.features]
            if not names:
                self._class_logits = {}
            else:
                logits = self.net.classifier(torch.cat([self.features[n] for n in names]))  # (N', K)
                sizes = [self.features[n].shape[0] for n in names]
                self._class_logits = dict(zip(names, logits.split(sizes), strict=True))
        return self._class_logits

    def source_loss(self) -> torch.Tensor:
        """S2: cross entropy of the class classifier on the source images."""
        if "source" not in self._cache:
            logits = self.class_logits().get("source")
            self._cache["source"] = self._zero if logits is None else F.cross_entropy(
                logits, self.batch.source_labels)
        return self._cache["source"]

    def minority_shot_loss(self) -> torch.Tensor:
        """S32: cross entropy of the class classifier on the labeled target images (0 without them)."""
        if "minority_shot" not in self._cache:
            logits = self.class_logits().get("labeled")
            self._cache["minority_shot"] = self._zero if logits is None or logits.shape[0] == 0 else (
                F.cross_entropy(logits, self.batch.labeled_labels))
        return self._cache["minority_shot"]

    # -- S7, S8 and S9 -------------------------------------------------------------------------
    @property
    def pseudo(self) -> PseudoLabels | None:
        """Pseudo labels of the unlabeled target images, when this stage self-learns."""
        if self._pseudo is None and self.views.again:
            teacher = self._teacher_logits
            if teacher is None:
                teacher = self.net.classifier(self.features["target"])  # (Bt, K), labels carry no gradient
            self._pseudo = self.labeler(teacher)
        return self._pseudo

    def self_learning_loss(self) -> torch.Tensor:
        """S9: cross entropy of the fed-again images against their pseudo labels (0 without them)."""
        if "self_learning" not in self._cache:
            pseudo = self.pseudo
            self._cache["self_learning"] = self._zero if pseudo is None else self_learning_loss(
                self.class_logits()["again"], pseudo, self.pseudo_config.mask_value)
        return self._cache["self_learning"]

    # -- second combining unit 12 ----------------------------------------------------------------
    def domain_loss(self) -> torch.Tensor:
        """S3 / S33: domain cross entropy, source = 0; unlabeled, labeled and pseudo-labeled target = 1."""
        if "domain" not in self._cache:
            targets = [self.features[n] for n in ("labeled", "target") if n in self.features]
            if self.pseudo is not None:
                targets.append(self.features["again"][self.pseudo.selected])
            source = self.features.get("source", self._zero.new_zeros((0, self.net.feature_dim)))
            target = torch.cat(targets) if targets else source[:0]
            if source.shape[0] == 0 or target.shape[0] == 0:
                self._cache["domain"] = self._zero
            else:
                coef = self.grl_coefficient
                if self.domain_call == "joint":
                    logits = self.net.domain_logits(torch.cat([source, target]), coef)  # (Bs + Bt', 2)
                else:  # per domain: the domain classifier's batch norms see one domain at a time
                    logits = torch.cat([self.net.domain_logits(source, coef), self.net.domain_logits(target, coef)])
                self._cache["domain"] = domain_loss(logits, source.shape[0])
        return self._cache["domain"]

    def source_accuracy(self) -> torch.Tensor:
        """Share of source images classified correctly in this pass (a training diagnostic)."""
        logits = self.class_logits().get("source")
        if logits is None:
            return self._zero
        return (logits.detach().argmax(1) == self.batch.source_labels).float().mean()
