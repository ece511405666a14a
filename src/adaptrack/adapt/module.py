"""The LightningModule that trains FIG. 1's three networks (steps S1–S9, Expression (1))."""

from __future__ import annotations

import math
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.losses import MaskingMode, PseudoLabeler, domain_loss, self_learning_loss
from adaptrack.adapt.methods import MethodName, get_method
from adaptrack.adapt.networks import PresetName, build_network, grl_coefficient
from adaptrack.adapt.schedule import SelfLearningGate, loss_weight_decay
from adaptrack.common.training import check_finite


class DomainAdaptationModule(L.LightningModule):
    """Feature extractor + class classifier + domain classifier trained by a registered method.

    Every argument is a hyperparameter recorded in checkpoints and settable from YAML / CLI.

    Args:
        method: ``source_only``, ``dann`` or ``self_learning`` (see :data:`adaptrack.adapt.methods.METHODS`).
        network: Network preset: ``lenet`` (28×28), ``dtn`` (32×32) or ``convnet``.
        conv_channels: Override of the feature extractor's conv widths.
        class_hidden: Override of the class classifier's hidden widths.
        domain_hidden: Override of the domain classifier's hidden widths.
        dropout: Override of the dropout rate.
        num_classes: Number of classes (linked from the data module).
        class_names: Class names (linked from the data module), written to predictions.
        in_channels: Image channels (linked from the data module).
        image_size: Square input size (linked from the data module).
        source_weight: θs of Expression (1).
        domain_weight: θd of Expression (1).
        self_learning_weight: θp of Expression (1).
        grl_gamma: Steepness of the GRL ramp ``2/(1+exp(-γp))-1``.
        threshold: Softmax score above which a target image gets a pseudo label (S8).
        masking: Logit masking of the images below the threshold (third/fourth modifications).
        lower_threshold: t2 for ``masking="dual"``.
        per_class_cap: Max pseudo labels per class per mini-batch (fifth modification).
        total_cap: Max share of the mini-batch pseudo-labeled (sixth modification).
        start_window: Steps per source-loss plateau window for the start gate (S4); 0 disables.
        start_min_delta: Relative decrease under which the source loss counts as plateaued.
        start_ratio: Processed-epoch ratio at which self-learning starts at the latest (S4).
        stop_source_loss: Suspend self-learning while the source loss is at or above this (S11).
        loss_schedule: Apply Expression (2): lower θs, θd and raise θp as self-learning progresses.
        schedule_start: ``s`` of Expression (2), as a fraction of the self-learning period.
        schedule_stop: ``max`` of Expression (2), as a fraction of the self-learning period.
        optimizer: ``adam`` or ``sgd`` (momentum 0.9, Nesterov).
        lr: Learning rate.
        weight_decay: Weight decay.
        lr_schedule: ``cosine``, ``dann`` (``lr/(1+10p)^0.75``) or ``constant``.
    """

    def __init__(
        self,
        method: MethodName = "self_learning",
        network: PresetName = "lenet",
        conv_channels: list[int] | None = None,
        class_hidden: list[int] | None = None,
        domain_hidden: list[int] | None = None,
        dropout: float | None = None,
        num_classes: int = 10,
        class_names: list[str] | None = None,
        in_channels: int = 1,
        image_size: int = 28,
        source_weight: float = 1.0,
        domain_weight: float = 0.3,
        self_learning_weight: float = 1.0,
        grl_gamma: float = 10.0,
        threshold: float = 0.95,
        masking: MaskingMode = "none",
        lower_threshold: float = 0.5,
        per_class_cap: int | None = None,
        total_cap: float | None = None,
        start_window: int = 100,
        start_min_delta: float = 0.02,
        start_ratio: float = 0.3,
        stop_source_loss: float | None = None,
        loss_schedule: bool = False,
        schedule_start: float = 0.5,
        schedule_stop: float = 1.5,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 5e-4,
        lr_schedule: Literal["cosine", "dann", "constant"] = "cosine",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.spec = get_method(method)
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names for num_classes={num_classes}")
        self.net = build_network(network, in_channels, num_classes, image_size, channels=conv_channels,
                                 class_hidden=class_hidden, domain_hidden=domain_hidden, dropout=dropout)
        self.labeler = PseudoLabeler(threshold, masking, lower_threshold, per_class_cap, total_cap)
        self.gate = SelfLearningGate(start_window, start_min_delta, start_ratio, stop_source_loss)
        self.val_source_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_target_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_target_conf = MeanMetric()
        self.pseudo_share = MeanMetric()
        self.pseudo_acc = MeanMetric()

    # -- inference (FIG. 30) -------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of normalized images ``(B, C, H, W)`` (S52–S53)."""
        return self.net(images)

    # -- training ------------------------------------------------------------------------------
    def _progress(self) -> float:
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        if not total or math.isinf(total):
            return 0.0
        return min(1.0, self.global_step / float(total))

    def _loss_weights(self, progress: float) -> tuple[float, float, float]:
        hp = self.hparams
        ws, wd, wp = hp.source_weight, hp.domain_weight, hp.self_learning_weight
        if hp.loss_schedule and self.gate.state.started:
            f = loss_weight_decay(self.gate.progress_since_start(progress), hp.schedule_start, hp.schedule_stop)
            ws, wd, wp = ws * f, wd * f, wp * (2.0 - f)
        return ws, wd, wp

    def training_step(self, batch: AdaptBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """One iteration of FIG. 3 (S1–S9, S5, S6); returns ``{"loss": …, **logs}``."""
        progress = self._progress()
        bs, bt = batch.source.shape[0], batch.target.shape[0]
        use_domain = self.spec.domain_adversarial
        use_self = self.spec.self_learning and self.gate.active
        views = [batch.source] + ([batch.target] if use_domain or self.spec.self_learning else [])
        if use_self:
            views.append(batch.target_strong)
        z = self.net.features(torch.cat(views))  # (Bs [+ Bt [+ Bt]], D)   S1 forward
        z_s = z[:bs]
        logits_s = self.net.classifier(z_s)  # (Bs, K)
        loss_s = F.cross_entropy(logits_s, batch.source_labels)  # S2
        zero = loss_s.new_zeros(())
        loss_d, loss_p = zero, zero
        logs: dict[str, torch.Tensor] = {}
        if use_self:
            z_t, z_p = z[bs:bs + bt], z[bs + bt:]
            pseudo = self.labeler(self.net.classifier(z_t))  # S7, S8 (no gradient)
            loss_p = self_learning_loss(self.net.classifier(z_p), pseudo)  # S9 on the second view
            share = pseudo.selected.float().mean()
            self.pseudo_share.update(share)
            known = pseudo.selected & (batch.target_report_labels >= 0)
            if bool(known.any()):  # reporting only; labels never reach a loss
                correct = (pseudo.labels[known] == batch.target_report_labels[known]).float()
                self.pseudo_acc.update(correct.mean(), weight=int(known.sum()))
            logs["pseudo_share"] = share
            z_domain_t = torch.cat([z_t, z_p[pseudo.selected]])  # second data combining unit 12
        else:
            z_domain_t = z[bs:bs + bt]
        coef = grl_coefficient(progress, self.hparams.grl_gamma)
        if use_domain:
            loss_d = domain_loss(self.net.domain_logits(z_s, coef), self.net.domain_logits(z_domain_t, coef))  # S3
        ws, wd, wp = self._loss_weights(progress)
        loss = ws * loss_s + wd * loss_d + wp * loss_p  # Expression (1), weight loss generation unit 18
        check_finite(loss, self.global_step, {"source": loss_s, "domain": loss_d, "self_learning": loss_p})

        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)  # S5
        opt.step()  # S6
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self.gate.update(float(loss_s.detach()), progress)  # S4/S11 for the next mini-batch

        logs.update(source_loss=loss_s.detach(), domain_loss=loss_d.detach(), self_learning_loss=loss_p.detach(),
                    source_acc=(logits_s.argmax(1) == batch.source_labels).float().mean())
        self.log("train/loss", loss.detach(), prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in logs.items()})
        self.log_dict({"train/self_learning_on": float(use_self), "train/grl_coefficient": coef,
                       "train/lr": opt.param_groups[0]["lr"]})
        return {"loss": loss.detach(), **logs}

    def on_train_epoch_end(self) -> None:
        if self.pseudo_share.update_count:
            self.log("pseudo/share", self.pseudo_share.compute())
            self.pseudo_share.reset()
        if self.pseudo_acc.update_count:
            self.log("pseudo/accuracy", self.pseudo_acc.compute())
            self.pseudo_acc.reset()

    # -- evaluation: source validation selects checkpoints; target labels are only reported ----
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        images, labels = batch
        logits = self(images)
        if dataloader_idx == 0:
            self.val_source_acc.update(logits, labels)
            self.log("val/source_acc", self.val_source_acc, prog_bar=True, add_dataloader_idx=False)
        else:
            self.val_target_conf.update(logits.softmax(1).amax(1))
            self.log("val/target_confidence", self.val_target_conf, add_dataloader_idx=False)
            known = labels >= 0
            if bool(known.any()):
                self.val_target_acc.update(logits[known], labels[known])
                self.log("report/target_acc", self.val_target_acc, prog_bar=True, add_dataloader_idx=False)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self.validation_step(batch, batch_idx, dataloader_idx)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                     dataloader_idx: int = 0) -> torch.Tensor:
        """Softmax probabilities ``(B, num_classes)`` (S54)."""
        return self(batch[0]).softmax(dim=1)

    # -- optimisation and checkpoint state ----------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        params = self.net.parameters()
        if hp.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.9, nesterov=True, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if hp.lr_schedule == "cosine":
            sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1 + 10 * step / total) ** -0.75)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["self_learning_gate"] = self.gate.state.as_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "self_learning_gate" in checkpoint:
            self.gate.load_state(checkpoint["self_learning_gate"])
