"""The LightningModule that trains FIG. 1's three networks (steps S1–S9, S20–S21, S31–S39, Expression (1))."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Literal

import lightning as L
import torch
from torch.nn.parallel import DistributedDataParallel
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.config import (
    GROUPS,
    GateConfig,
    LossWeights,
    NetworkConfig,
    OptimConfig,
    PseudoLabelConfig,
    UpdateName,
)
from adaptrack.adapt.data.augment import imagenet_affine, to_float
from adaptrack.adapt.methods import MethodName, get_method
from adaptrack.adapt.networks import build_network, grl_coefficient, load_backbone_weights
from adaptrack.adapt.pseudo import PseudoLabeler, PseudoLabels
from adaptrack.adapt.schedule import SelfLearningGate, loss_weight_decay
from adaptrack.adapt.step import CHANNELS_LAST, Step, Views
from adaptrack.adapt.validators import ValidationBuffer, active_validators
from adaptrack.common.errors import ConfigError
from adaptrack.common.training import as_group, check_finite, check_finite_gradients, plain_hyperparameters

LOGGED_TERMS = ("source", "domain", "self_learning", "minority_shot")
"""Loss terms logged at every step (0 when the method or the stage does not use them)."""


class DomainAdaptationModule(L.LightningModule):
    """Feature extractor + class classifier + domain classifier trained by a registered method.

    Every argument is a hyperparameter recorded in checkpoints (as plain dicts) and settable from
    YAML / CLI as a nested block (``model.pseudo.threshold``, ``model.gate.start_ratio``, …).

    Args:
        method: A name of :data:`adaptrack.adapt.methods.METHODS`.
        update: ``joint`` (first embodiment, FIG. 3) or ``two_stage`` (second embodiment, FIG. 19,
            claim 3): see :data:`adaptrack.adapt.config.UpdateName`.
        network: FIG. 4's networks.
        weights: θ of Expression (1) and the Expression (2) schedule.
        pseudo: S7–S9 and their modifications.
        gate: The S4 start gate and the S11 stop.
        optim: Optimiser and learning-rate schedule.
        num_classes: Number of classes (linked from the data module).
        class_names: Class names (linked from the data module), written to predictions.
        in_channels: Image channels (linked from the data module).
        image_size: Square input size (linked from the data module).
        input_norm: ``symmetric``: the network sees images scaled to [-1, 1] as they arrive;
            ``imagenet``: those are mapped to ImageNet's per-channel mean/std normalisation
            (``(x / 255 - mean) / std``) inside :meth:`forward`, so training, evaluation and
            prediction all feed the same (linked from ``data.normalize``).
    """

    def __init__(
        self,
        method: MethodName = "self_learning",
        update: UpdateName = "joint",
        network: NetworkConfig = NetworkConfig(),
        weights: LossWeights = LossWeights(),
        pseudo: PseudoLabelConfig = PseudoLabelConfig(),
        gate: GateConfig = GateConfig(),
        optim: OptimConfig = OptimConfig(),
        num_classes: int = 10,
        class_names: list[str] | None = None,
        in_channels: int = 1,
        image_size: int = 28,
        input_norm: Literal["symmetric", "imagenet"] = "symmetric",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.method = get_method(method)
        if update not in ("joint", "two_stage"):
            raise ConfigError(f"model.update={update!r} must be 'joint' or 'two_stage'")
        self.update = update
        self.network = as_group(NetworkConfig, network, "network")
        self.weights = as_group(LossWeights, weights, "weights")
        self.pseudo_config = as_group(PseudoLabelConfig, pseudo, "pseudo")
        self.gate_config = as_group(GateConfig, gate, "gate")
        self.optim_config = as_group(OptimConfig, optim, "optim")
        self._check_method_options()
        self.class_names = class_names or [str(i) for i in range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ConfigError(f"model.class_names has {len(self.class_names)} names for num_classes={num_classes}")
        n = self.network
        self.net = build_network(n.preset, in_channels, num_classes, image_size, channels=n.conv_channels,
                                 class_hidden=n.class_hidden, domain_hidden=n.domain_hidden, dropout=n.dropout,
                                 bottleneck_dim=n.bottleneck_dim)
        self.net.to(memory_format=CHANNELS_LAST)
        if input_norm not in ("symmetric", "imagenet") or (input_norm == "imagenet" and in_channels != 3):
            raise ConfigError(f"model.input_norm={input_norm!r} must be 'symmetric', or 'imagenet' with 3 channels "
                              f"(in_channels={in_channels})")
        scale, shift = imagenet_affine() if input_norm == "imagenet" else (torch.ones(1), torch.zeros(1))
        self.register_buffer("input_scale", scale.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)
        self.register_buffer("input_shift", shift.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)
        if not self.method.domain_adversarial:  # never trained: no gradient expected (DDP), none computed
            self.net.domain_classifier.requires_grad_(False)
        p = self.pseudo_config
        self.labeler = PseudoLabeler(p.threshold, p.masking, p.lower_threshold, p.per_class_cap, p.total_cap)
        self.gate = SelfLearningGate(self.gate_config)
        self.epoch_logits: torch.Tensor | None = None  # (N_pool, K) per-epoch teacher logits (scope "epoch")
        self.epoch_logits_epoch = -1
        self.validators = active_validators(self.method.domain_adversarial)
        self.val_buffer = ValidationBuffer()  # per-pass outputs the validators read
        self.val_target_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_target_conf = MeanMetric()
        self.pseudo_share = MeanMetric()
        self.pseudo_acc = MeanMetric()

    @staticmethod
    def ddp_find_unused_parameters(method: str, update: str) -> bool:
        """Whether DDP must look for parameters without a gradient (``find_unused_parameters=True``).

        Every backward pass of a step must give every trainable parameter a gradient, or DDP's
        reducer waits for the missing ones and fails. Methods without a domain classifier loss
        (``source_only``, ``self_training``) freeze it (``requires_grad=False``), so DDP never
        expects its gradient; ``joint`` updates then use every trainable parameter in their one
        backward. ``two_stage`` with a domain-adversarial method runs a second backward (S20) that
        leaves the domain classifier out: that one needs the search. The CLI turns
        ``--trainer.strategy ddp`` into ``ddp_find_unused_parameters_true`` when this is true
        (:func:`~adaptrack.common.distributed.resolve_ddp_strategy`).

        Args:
            method: ``model.method``.
            update: ``model.update``.
        """
        return update == "two_stage" and get_method(method).domain_adversarial

    def reads_weak_target_view(self) -> bool:
        """Whether training steps read the weak view of the unlabeled target images (the domain loss,
        the pseudo labels): methods that do neither (``source_only``) leave it un-augmented."""
        return self.method.domain_adversarial or self.method.self_learns

    def _check_method_options(self) -> None:
        """Options that only make sense with some methods fail at start-up, naming the keys."""
        method = self.hparams.method
        if self.gate_config.stop_watch == "domain" and not self.method.domain_adversarial:
            raise ConfigError(f"model.gate.stop_watch='domain' watches the domain loss, which method {method!r} "
                              "does not compute; use a method with a domain classifier or stop_watch='source'")
        if self.update == "two_stage" and not self.method.self_learns:
            raise ConfigError(f"model.update='two_stage' splits off the self-learning update, which method "
                              f"{method!r} does not have; use 'joint' or a self-learning method")

    def setup(self, stage: str) -> None:
        """``fit``: fill the backbone from ``model.network.weights`` (a resumed run's checkpoint is
        restored after this hook and overwrites them; the other stages never read the file)."""
        if stage == "fit" and self.network.weights is not None:
            load_backbone_weights(self.net.backbone, self.network.weights)

    # -- inference (FIG. 30) -------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, num_classes)`` of normalized images ``(B, C, H, W)`` (S52–S53)."""
        images = images * self.input_scale + self.input_shift  # (B, C, H, W): [-1, 1] -> model input
        return self.net(images.contiguous(memory_format=CHANNELS_LAST))

    # -- training ------------------------------------------------------------------------------
    def _progress(self) -> float:
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        if not total or math.isinf(total):
            return 0.0
        return min(1.0, self.global_step / float(total))

    def loss_weights(self, progress: float) -> LossWeights:
        """θ of Expression (1) at this progress, with Expression (2) applied once self-learning started."""
        w = self.weights
        if w.schedule and self.gate.state.started:
            f = loss_weight_decay(self.gate.progress_since_start(progress), w.schedule_start, w.schedule_stop)
            return replace(w, source=w.source * f, domain=w.domain * f, self_learning=w.self_learning * (2.0 - f))
        return w

    @torch.no_grad()
    def _eval_logits(self, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Class logits in eval mode (no dropout, running statistics); float images ``(N, C, H, W)``."""
        was_training = self.net.training
        self.net.eval()
        out = torch.cat([self(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)])
        self.net.train(was_training)
        return out

    def _teacher_logits(self, batch: AdaptBatch) -> torch.Tensor | None:
        """Logits to pseudo-label from, when they do not come from the step's own pass."""
        p = self.pseudo_config
        if p.scope == "epoch":
            if self.epoch_logits is None or self.epoch_logits_epoch != self.current_epoch:
                dm = self.trainer.datamodule  # the pool in memory or streamed from disk, in order
                self.epoch_logits = torch.cat([self._eval_logits(to_float(x.to(self.device)))  # (b, K)
                                               for x in dm.uint8_batches(dm.unlabeled_target(), 4096)])
                self.epoch_logits_epoch = self.current_epoch
            return self.epoch_logits[batch.target_index.to(self.epoch_logits.device)].to(self.device)
        if p.teacher == "eval":
            return self._eval_logits(batch.target)
        return None

    def _step(self, batch: AdaptBatch, coef: float, supervised: bool, self_learning: bool) -> Step:
        teacher = self._teacher_logits(batch) if self_learning else None
        needs_target = (supervised and self.method.domain_adversarial) or (self_learning and teacher is None)
        views = Views(labeled=supervised, target=needs_target, again=self_learning)
        return Step(self.net, batch, views, self.labeler, self.pseudo_config, coef, self.network.domain_call,
                    teacher)

    def _backward(self, terms: dict[str, torch.Tensor], weights: LossWeights, freeze_domain: bool) -> torch.Tensor:
        """Expression (1) over ``terms``, back-propagated and applied (S5/S6, or S20/S21 with ``freeze_domain``)."""
        loss = sum((weights.of(k) * v for k, v in terms.items()), start=next(iter(terms.values())).new_zeros(()))
        check_finite(loss, self.global_step, terms)
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        check_finite_gradients(self.net.named_parameters(), self.global_step)
        if freeze_domain:  # second learner 10b: feature extractor and class classifier only
            for param in self.net.domain_classifier.parameters():
                param.grad = None
            opt.optimizer.step()  # the wrapped optimizer: Lightning counts one global step per iteration
        else:
            opt.step()
        return loss.detach()

    def _update_gate(self, step: Step, progress: float) -> None:
        """Feed S4/S11 the step's source and domain losses, each the mean over all ranks.

        Under DDP every rank sees its own mini-batch; the gate decides on the losses averaged over
        the ranks (one all-reduce of two numbers; nothing on one process), so every rank takes the
        same decision. The domain loss is 0 for methods without a domain classifier.
        """
        domain = step.domain_loss().detach() if self.method.domain_adversarial else step.source_loss().new_zeros(())
        losses = torch.stack([step.source_loss().detach(), domain])  # (2,)
        if self._trainer is not None and self.trainer.world_size > 1:
            losses = self.trainer.strategy.reduce(losses, reduce_op="mean")
        source, domain = losses.tolist()
        self.gate.update(source, progress, domain)

    def _record_pseudo(self, pseudo: PseudoLabels | None, batch: AdaptBatch, logs: dict[str, torch.Tensor]) -> None:
        if pseudo is None:
            return
        share = pseudo.selected.float().mean()
        self.pseudo_share.update(share)
        logs["pseudo_share"] = share
        known = pseudo.selected & (batch.target_report_labels >= 0)  # reporting only; never reaches a loss
        # updated at every self-learning step, known labels or not, so that every DDP rank has the
        # same number of updates (compute() gathers over the ranks); 0/0 = NaN when none is known
        correct = (pseudo.labels[known] == batch.target_report_labels[known]).float().sum()
        self.pseudo_acc.update(correct / known.sum().clamp(min=1), weight=known.sum().float())

    def training_step(self, batch: AdaptBatch, batch_idx: int) -> dict[str, torch.Tensor]:
        """One iteration of FIG. 3 (joint) or FIG. 19 (two stages); returns ``{"loss": …, **logs}``.

        Joint: one pass over source, labeled target, unlabeled target and (gate open) the images fed
        again; Expression (1) over all of the method's terms updates all three networks. Two stages:
        S1–S6 update all three networks with the supervised terms, S4 is decided on this step's
        losses, then (gate open) S7–S9 on a fresh pass and S20–S21 update the feature extractor and
        the class classifier only; the domain classifier's weights are left as stage 1 left them.
        """
        progress = self._progress()
        coef = grl_coefficient(progress, self.network.grl_gamma)
        weights = self.loss_weights(progress)
        self_learns = self.method.self_learns and self.gate.before_step(progress)
        logs: dict[str, torch.Tensor] = {}
        if self.update == "joint":
            step = self._step(batch, coef, supervised=True, self_learning=self_learns)
            terms = {**self.method.supervised(step), **(self.method.self_learning(step) if self_learns else {})}
            loss = self._backward(terms, weights, freeze_domain=False)  # S5, S6
            self._record_pseudo(step.pseudo, batch, logs)
            self._update_gate(step, progress)
        else:
            step = self._step(batch, coef, supervised=True, self_learning=False)
            terms = self.method.supervised(step)
            loss = self._backward(terms, weights, freeze_domain=False)  # S5, S6 (first learner 10a)
            self._update_gate(step, progress)  # S4 after S6 (FIG. 19)
            self_learns = self.method.self_learns and self.gate.active
            if self_learns:
                again = self._step(batch, coef, supervised=False, self_learning=True)  # S7-S9, fresh pass
                second = self.method.self_learning(again)
                loss = loss + self._backward(second, weights, freeze_domain=True)  # S20, S21 (learner 10b)
                terms = {**terms, **second}
                self._record_pseudo(again.pseudo, batch, logs)
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        for name in LOGGED_TERMS:
            logs[f"{name}_loss"] = terms[name].detach() if name in terms else loss.new_zeros(())
        logs["source_acc"] = step.source_accuracy()
        self.log("train/loss", loss, prog_bar=True)
        self.log_dict({f"train/{k}": v for k, v in logs.items()})
        self.log_dict({"train/self_learning_on": float(self_learns), "train/grl_coefficient": coef,
                       "train/lr": self.optimizers().param_groups[-1]["lr"]})  # the heads' (the last group)
        return {"loss": loss, **logs}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Under DDP: let the next forward of the wrapped module broadcast rank 0's buffers, as DDP does.

        DDP (``broadcast_buffers=True``) copies rank 0's buffers (the batch norms' running
        statistics) to every rank at the start of each forward while its flag
        ``require_forward_param_sync`` is set; with manual optimization Lightning's forward
        redirection leaves that flag cleared after every training step, so the ranks' statistics
        drift apart (rank 1 would then validate, and compute per-epoch teacher logits, with
        statistics other than the checkpointed ones). Setting it again restores DDP's behaviour:
        every step, and the first validation batch, start from rank 0's buffers. No-op otherwise.
        """
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel):
            wrapped.require_forward_param_sync = True

    def on_train_epoch_end(self) -> None:
        # compute() reduces over the DDP ranks; sync_dist only tells Lightning the value is global
        if self.pseudo_share.update_count:
            self.log("pseudo/share", self.pseudo_share.compute(), sync_dist=True)
            self.pseudo_share.reset()
        if self.pseudo_acc.update_count:
            accuracy = self.pseudo_acc.compute()  # over the ranks: the same value (and test) on each
            if bool(torch.isfinite(accuracy)):
                self.log("pseudo/accuracy", accuracy, sync_dist=True)
            self.pseudo_acc.reset()

    # -- evaluation: label-free validators select checkpoints; target labels are only reported ----
    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                        dataloader_idx: int = 0) -> None:
        """Loader 0: source test (validators), 1: target test (reported only), 2: the unlabeled target
        pool (validators; its labels are not read)."""
        images, labels = batch
        z = self.net.features(images.contiguous(memory_format=CHANNELS_LAST))  # (B, D)
        logits = self.net.classifier(z)  # (B, K)
        if dataloader_idx == 0:
            self.val_buffer.add("source_logits", logits)
            self.val_buffer.add("source_labels", labels)
            if self.method.domain_adversarial:
                self.val_buffer.add("source_domain_logits", self.net.domain_logits(z, 0.0))  # (B, 2)
        elif dataloader_idx == 1:
            self.val_target_conf.update(logits.softmax(1).amax(1))
            self.log("val/target_confidence", self.val_target_conf, add_dataloader_idx=False)
            known = labels >= 0
            if bool(known.any()):
                self.val_target_acc.update(logits[known], labels[known])
                self.log("report/target_acc", self.val_target_acc, prog_bar=True, add_dataloader_idx=False)
        else:
            self.val_buffer.add("target_probs", logits.softmax(1))  # (B, K)

    def on_validation_epoch_start(self) -> None:
        self.val_buffer.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_validators()

    def on_test_epoch_start(self) -> None:
        self.val_buffer.reset()

    def on_test_epoch_end(self) -> None:
        self._log_validators()

    def _log_validators(self) -> None:
        """Log ``val/<name>`` of every validator, computed on the outputs gathered over the ranks.

        Every rank computes the same number from the same gathered tensors; ``sync_dist`` only tells
        Lightning that the value is global.
        """
        inputs = self.val_buffer.inputs(self, self.hparams.num_classes, self.method.domain_adversarial)
        self.val_buffer.reset()
        if inputs.source_labels.numel() == 0 and inputs.target_probs.shape[0] == 0:
            return
        for validator in self.validators:
            value = validator.compute(inputs).float().to(self.device)
            self.log(validator.key, value, prog_bar=validator.name == "source_acc", sync_dist=True)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self.validation_step(batch, batch_idx, dataloader_idx)

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int,
                     dataloader_idx: int = 0) -> torch.Tensor:
        """Softmax probabilities ``(B, num_classes)`` (S54)."""
        return self(batch[0]).softmax(dim=1)

    # -- optimisation and checkpoint state ----------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's groups: ``backbone`` at ``lr × backbone_lr_mult``, then ``heads`` (the rest) at ``lr``.

        One group (all parameters, ``lr``) when ``backbone_lr_mult`` is 1.
        """
        o = self.optim_config
        if o.backbone_lr_mult == 1.0:
            return [{"params": list(self.net.parameters()), "lr": o.lr, "name": "all"}]
        backbone = list(self.net.backbone.parameters())
        ids = {id(p) for p in backbone}
        heads = [p for p in self.net.parameters() if id(p) not in ids]
        return [{"params": backbone, "lr": o.lr * o.backbone_lr_mult, "name": "backbone"},
                {"params": heads, "lr": o.lr, "name": "heads"}]

    def configure_optimizers(self) -> Any:
        o = self.optim_config
        params = self.parameter_groups()
        if o.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=o.lr, momentum=0.9, nesterov=True, weight_decay=o.weight_decay)
        if o.lr_schedule == "constant":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if o.lr_schedule == "cosine":
            sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1 + 10 * step / total) ** -0.75)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        plain_hyperparameters(checkpoint)  # dataclass groups as dicts: loadable with weights_only=True
        checkpoint["self_learning_gate"] = self.gate.state.as_dict()
        if self.epoch_logits is not None:
            checkpoint["epoch_pseudo_logits"] = {"epoch": self.epoch_logits_epoch, "logits": self.epoch_logits.cpu()}
        # the epoch's running pseudo-label means, so that an epoch resumed inside it logs the whole epoch's
        checkpoint["epoch_metrics"] = {name: {"state": {k: getattr(metric, k) for k in metric._defaults},
                                              "updates": metric._update_count}
                                       for name, metric in self._epoch_metrics().items()}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "self_learning_gate" in checkpoint:
            self.gate.load_state(checkpoint["self_learning_gate"])
        if "epoch_pseudo_logits" in checkpoint:
            self.epoch_logits = checkpoint["epoch_pseudo_logits"]["logits"]
            self.epoch_logits_epoch = int(checkpoint["epoch_pseudo_logits"]["epoch"])
        for name, saved in checkpoint.get("epoch_metrics", {}).items():
            metric = self._epoch_metrics()[name]
            for key, value in saved["state"].items():
                setattr(metric, key, value.to(self.device) if isinstance(value, torch.Tensor) else value)
            metric._update_count = int(saved["updates"])

    def _epoch_metrics(self) -> dict[str, MeanMetric]:
        """The means accumulated over a training epoch (logged at its end)."""
        return {"pseudo_share": self.pseudo_share, "pseudo_acc": self.pseudo_acc}


def build_module(hparams: dict[str, Any]) -> DomainAdaptationModule:
    """Rebuild the module from a checkpoint's ``hyper_parameters`` (plain dicts for the groups).

    Raises:
        ConfigError: The hyperparameters are not those of this version (naming the unknown keys).
    """
    known = {"method", "update", "num_classes", "class_names", "in_channels", "image_size", "input_norm", *GROUPS}
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ConfigError(f"checkpoint hyperparameters {unknown} are not options of this adaptrack version "
                          "(a checkpoint of an older release, or of the other system); retrain with this one")
    return DomainAdaptationModule(**hparams)
