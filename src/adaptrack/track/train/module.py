"""LightningModules: the part detector (``fit-parts``) and the tracking-subject model (``fit``).

:class:`TrackerModule` implements the learning method of claims 1–3: the frozen first model's part
likelihood map times the second model's part region map (S104) is pulled towards a Gaussian at
``round(part centre / size ratio)`` of the *tracked* person's part with the cross entropy of
formula (2) (S105); the subject loss (S106) is added linearly and only the second model is updated
(S107). With ``temporal_n >= 2`` the third embodiment's consistency loss against the moving average
of the last ``n`` stored region maps is added (S108–S110).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from adaptrack.adapt.networks import grl_coefficient
from adaptrack.adapt.schedule import SelfLearningGate
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.resume import fit_position
from adaptrack.common.training import as_group, check_finite, check_finite_gradients, plain_hyperparameters
from adaptrack.track.data.clips import SearchCrop
from adaptrack.track.data.types import ClipBatch
from adaptrack.track.geometry import (
    Normalization,
    box_centre,
    centernet_targets,
    gaussian_maps,
    points_in_boxes,
    size_ratio,
)
from adaptrack.track.inference.checkpoints import META_KEY, load_part_detector, read_meta
from adaptrack.track.inference.decoder import TrackerSettings, decode_parts, decode_subject, prior_maps
from adaptrack.track.models import BackboneKind, PartDetector, SubjectModel, backbone_parameter_groups
from adaptrack.track.train.adaptation import (
    DenseDomainHead,
    DensePseudoLabeler,
    PartAdaptConfig,
    captured_output,
    dense_domain_accuracy,
    dense_domain_loss,
    self_learning_focal_loss,
)
from adaptrack.track.train.batch import augment
from adaptrack.track.train.losses import focal_loss, hard_negative_weights, map_bce, masked_l1
from adaptrack.track.train.temporal import RegionMapBuffer

# Models and images are kept channels-last: the convolutions of a training step run about 1.5× faster
# on CPU (and use the tensor cores' layout on GPU); the values are the same.
CHANNELS_LAST = torch.channels_last


def _images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 3, H, W)`` -> float in [0, 1], leading dims flattened to ``(N, 3, H, W)``, channels-last."""
    x = frames.reshape(-1, *frames.shape[-3:]).float() / 255.0
    return x.contiguous(memory_format=CHANNELS_LAST)


def _cosine_schedule(optimizer: torch.optim.Optimizer, total: int, warmup: int) -> dict[str, Any]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"scheduler": sched, "interval": "step"}


def _adamw_cosine(module: pl.LightningModule, params: Any) -> dict[str, Any]:
    """AdamW on ``params`` with the module's ``lr`` / ``weight_decay``, warm-up then cosine decay
    over the trainer's estimated steps (1000 without a trainer)."""
    hp = module.hparams
    opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
    total = int(module.trainer.estimated_stepping_batches) if module._trainer is not None else 1000
    return {"optimizer": opt, "lr_scheduler": _cosine_schedule(opt, total, hp.warmup_steps)}


class PartDetectorModule(pl.LightningModule):
    """Trains the first model on every person's parts, CenterNet style (S102).

    Args:
        parts: Part names, in the order of the data's part boxes (linked from the data module).
        channels: Backbone channels per stage.
        stride: Output stride of the maps (4 or 8).
        dilations: Dilations of the backbone's context blocks.
        lr: Peak learning rate (AdamW, warm-up then cosine decay).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        size_weight: Weight of the size L1 loss.
        offset_weight: Weight of the offset L1 loss.
        sigma_scale: Target Gaussian σ as a fraction of the part's size (in map elements).
        min_sigma: Smallest target σ in map elements.
        flip_prob: Probability of a left-right flip of a batch.
        crop_size: Train on random square windows of this side (cheaper; the network is fully
            convolutional); ``None`` trains on full frames.
        fine_maps: Maps at half the backbone stride through an upsampling neck (stride 8 -> 4), so
            heads a few pixels apart get separate peaks; the tracker's maps follow.
        backbone: ``mobile`` or ``resnet18`` / ``resnet34`` / ``resnet50`` (stride 8), see
            :func:`~adaptrack.track.models.build_backbone`.
        backbone_weights: ImageNet weights file of a ResNet backbone (``None``: random).
        backbone_lr_mult: The backbone's learning rate is ``lr × backbone_lr_mult`` (e.g. 0.1 for
            pretrained weights).
        adaptation: Synthetic-to-real adaptation (``model.adaptation``,
            :class:`~adaptrack.track.train.adaptation.PartAdaptConfig`): a dense domain classifier
            through the gradient reversal layer, self-learning on the detector's own heat peaks and
            the minority-shot loss of labeled real frames. Used on the steps whose batch carries
            target crops (``data.target_dir`` / ``data.labeled_target``); ``None``: plain training.
        init_checkpoint: A ``fit-parts`` checkpoint whose part detector initialises this one
            (fine-tuning the source detector); its architecture must match. A resumed run takes
            its own checkpoint's weights.
    """

    def __init__(self, parts: list[str] | None = None, channels: list[int] | None = None, stride: int = 8,
                 dilations: list[int] | None = None, lr: float = 3e-3, weight_decay: float = 1e-4,
                 warmup_steps: int = 50, size_weight: float = 0.1, offset_weight: float = 1.0,
                 sigma_scale: float = 0.15, min_sigma: float = 0.6, flip_prob: float = 0.5,
                 crop_size: int | None = 128, fine_maps: bool = False, backbone: BackboneKind = "mobile",
                 backbone_weights: str | None = None, backbone_lr_mult: float = 1.0,
                 adaptation: PartAdaptConfig | None = None, init_checkpoint: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.parts = list(parts or ["head"])
        self.model_config = {"num_parts": len(self.parts), "channels": list(channels or [16, 24, 32, 48]),
                             "stride": stride, "dilations": list(dilations or [2]), "fine_maps": fine_maps}
        if backbone != "mobile":
            self.model_config["backbone"] = backbone
        self.part_model = PartDetector(**self.model_config, backbone_weights=backbone_weights
                                       ).to(memory_format=CHANNELS_LAST)
        if init_checkpoint is not None:
            self._init_from(init_checkpoint)
        # Adaptation (patent 1's S1–S9 on dense maps); nothing of it exists without the group, so
        # training without a target set is exactly the plain run (same parameters, same random stream).
        self.adaptation = None if adaptation is None else as_group(PartAdaptConfig, adaptation, "adaptation")
        if self.adaptation is not None:
            a = self.adaptation
            self.domain_head = DenseDomainHead(self.part_model.backbone.out_channels, a.domain_hidden)
            self.pseudo_labeler = DensePseudoLabeler(a.pseudo.threshold, a.pseudo.ignore_threshold,
                                                     a.pseudo.max_per_image, a.pseudo.sigma_scale or sigma_scale,
                                                     min_sigma)
            self.gate = SelfLearningGate(a.gate)

    def _init_from(self, path: str) -> None:
        """Start from the part detector of a ``fit-parts`` checkpoint (fine-tuning the source detector)."""
        model, meta = load_part_detector(path)
        if list(meta["parts"]) != self.parts or dict(meta["part_model"]) != self.model_config:
            raise DataError(f"model.init_checkpoint holds a part detector {meta['part_model']} for parts "
                            f"{meta['parts']}, but this module builds {self.model_config} for parts {self.parts}; "
                            "set model.channels / stride / dilations / fine_maps / data.parts to the checkpoint's",
                            path)
        self.part_model.load_state_dict(model.state_dict())

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """See :meth:`PartDetector.forward`."""
        return self.part_model(image)

    def _loss(self, batch: ClipBatch, maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
              ) -> dict[str, torch.Tensor]:
        """CenterNet losses of ``batch``; ``maps`` are the detector's outputs on its frames when
        already computed (a joint pass with other crops)."""
        if maps is None:
            maps = self.part_model(_images(batch.frames))  # (N, 3, H, W) in
        heat, size, offset = maps  # (N, K, h, w), (N, K, 2, h, w) x2
        N, K, h, w = heat.shape
        ratio = size_ratio((batch.frames.shape[-1], batch.frames.shape[-2]), (w, h))
        boxes = torch.cat([batch.target_parts[:, :, None], batch.other_parts], dim=2)  # (B, T, 1+M, K, 4)
        boxes = boxes.reshape(N, -1, K, 4).permute(0, 2, 1, 3).reshape(N * K, -1, 4)  # (N*K, 1+M, 4)
        g_heat, g_size, g_off, mask = centernet_targets(boxes, (h, w), ratio, self.hparams.sigma_scale,
                                                        self.hparams.min_sigma)  # (N*K, h, w) ...
        l_heat = focal_loss(heat.reshape(N * K, h, w), g_heat)
        l_size = masked_l1(size.reshape(N * K, 2, h, w), g_size, mask)
        l_off = masked_l1(offset.reshape(N * K, 2, h, w), g_off, mask)
        loss = l_heat + self.hparams.size_weight * l_size + self.hparams.offset_weight * l_off
        return {"loss": loss, "heat": l_heat, "size": l_size, "offset": l_off}

    def training_step(self, batch: ClipBatch | dict[str, Any], batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):  # source + target streams (TrackDataModule with a target set)
            return self._adaptation_step(batch)
        clips = augment(batch, self.hparams.flip_prob, self.hparams.crop_size)
        losses = self._loss(clips)
        check_finite(losses["loss"], self.global_step, losses)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, prog_bar=False,
                      batch_size=clips.frames.shape[0], on_step=True, on_epoch=True)
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=clips.frames.shape[0])
        return losses["loss"]

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        losses = self._loss(batch)
        bs = batch.frames.shape[0]
        # sync_dist: the epoch values are the means over all processes' batches (val/loss picks checkpoints)
        self.log_dict({f"val/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=bs, sync_dist=True)
        self.log("val/loss", losses["loss"], prog_bar=True, batch_size=bs, sync_dist=True)

    def _progress(self) -> float:
        """Training progress in [0, 1] (0 without a trainer)."""
        total = self.trainer.estimated_stepping_batches if self._trainer is not None else 0
        if not total or math.isinf(total):
            return 0.0
        return min(1.0, self.global_step / float(total))

    def _adaptation_step(self, batch: dict[str, Any]) -> torch.Tensor:
        """One step of Expression (1) over the source, unlabeled-target and labeled-target crops.

        One joint pass of the detector over all crops (its batch norms see both domains); the
        domain head reads the backbone's output through the gradient reversal layer; the pseudo
        targets come from the same pass, detached (S7, S8); the gate (S4, S11) is fed the source
        heat loss after the step.
        """
        a = self.adaptation
        if a is None:
            raise ConfigError("the data module feeds target crops (data.target_dir / data.labeled_target) but "
                              "model.adaptation is not set; add configs/track/parts_adapt.yaml")
        progress = self._progress()
        self.domain_head.grl.coefficient = grl_coefficient(progress, a.grl_gamma)
        weights = a.weights_at(self.gate, progress)
        self_learns = a.self_learning and self.gate.before_step(progress) and batch.get("target") is not None
        source = augment(batch["source"], self.hparams.flip_prob, self.hparams.crop_size)
        labeled: ClipBatch | None = batch.get("labeled")
        target = batch.get("target")
        xs = [_images(source.frames)]  # (Ns, 3, S, S)
        if target is not None:
            xs.append(_images(target))  # (Nt, 3, S, S)
        if labeled is not None:
            xs.append(_images(labeled.frames))  # (Nl, 3, S, S)
        if len({tuple(x.shape[-2:]) for x in xs}) > 1:
            raise ConfigError(f"source crops {tuple(xs[0].shape[-2:])} and target crops "
                              f"{[tuple(x.shape[-2:]) for x in xs[1:]]} differ: set data.target_crop_size to "
                              "model.crop_size")
        n = [x.shape[0] for x in xs]
        with captured_output(self.part_model.backbone.body[-1]) as features:
            heat, size, offset = self.part_model(torch.cat(xs))  # (N, K, h, w), (N, K, 2, h, w) x2
        ns = n[0]
        terms = self._loss(source, (heat[:ns], size[:ns], offset[:ns]))
        logits = self.domain_head(features[-1])  # (N, 2, h', w')
        terms_dom = dense_domain_loss(logits, ns)  # S3 / S33
        loss = weights.source * terms["loss"] + weights.domain * terms_dom
        logs = {**{f"train/{k}": v for k, v in terms.items()}, "train/domain": terms_dom,
                "train/domain_accuracy": dense_domain_accuracy(logits.detach(), ns),
                "train/grl": torch.tensor(self.domain_head.grl.coefficient),
                "train/self_learning_active": torch.tensor(float(self_learns))}
        if target is not None:
            h, w = heat.shape[-2:]
            t = slice(ns, ns + n[1])
            ratio = size_ratio((target.shape[-1], target.shape[-2]), (w, h))
            heat_t = heat[t].reshape(-1, h, w)  # (Nt*K, h, w)
            pseudo = self.pseudo_labeler(heat_t, size[t].reshape(-1, 2, h, w), offset[t].reshape(-1, 2, h, w),
                                         ratio)  # S7, S8
            logs.update({f"target/{k}": v for k, v in pseudo.diagnostics().items()})
            logs["target/max_heat"] = heat_t.detach().amax((-2, -1)).mean()
            if self_learns:
                l_self = self_learning_focal_loss(heat_t, pseudo)  # S9
                loss = loss + weights.self_learning * l_self
                logs["train/self_learning"] = l_self
        if labeled is not None:
            m = slice(ns + (n[1] if target is not None else 0), None)
            shot = self._loss(labeled, (heat[m], size[m], offset[m]))["loss"]  # S32, third embodiment
            loss = loss + weights.minority_shot * shot
            logs["train/minority_shot"] = shot
        logs["train/total"] = loss
        check_finite(loss, self.global_step, logs)
        self.log_dict(logs, batch_size=ns, on_step=True, on_epoch=True)
        self.log("loss", loss, prog_bar=True, logger=False, batch_size=ns)
        self.gate.update(float(terms["heat"].detach()), progress, float(terms_dom.detach()))  # S4, S11
        return loss

    def configure_optimizers(self) -> Any:
        groups = backbone_parameter_groups(self.part_model, self.hparams.lr, self.hparams.backbone_lr_mult)
        if self.adaptation is not None:
            groups.append({"params": list(self.domain_head.parameters()), "lr": self.hparams.lr})
        return _adamw_cosine(self, groups)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        check_finite_gradients(self.part_model.named_parameters(), self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[META_KEY] = {"kind": "parts", "parts": self.parts, "part_model": self.model_config}
        if self.adaptation is not None:  # the tracker reads part_model.* only; the domain head is ignored
            checkpoint["self_learning_gate"] = self.gate.state.as_dict()
            plain_hyperparameters(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.adaptation is not None and "self_learning_gate" in checkpoint:
            self.gate.load_state(checkpoint["self_learning_gate"])


class TrackerModule(pl.LightningModule):
    """Trains the second model with the frozen first model (S101–S107, claims 1–3).

    Args:
        part_checkpoint: Checkpoint of ``adaptrack track fit-parts`` (the frozen first model).
        parts: Part names (linked from the data module); must match the part detector's.
        channels: Second model's backbone channels per stage.
        dilations: Dilations of the backbone's context blocks.
        head_channels: Width of the prediction head.
        head_dilations: Dilations of the head's separable blocks.
        kernel_size: ``[rows, cols]`` of the template kernel (odd).
        context: Border around the target box when pooling the template, relative to box size.
        lr: Peak learning rate (AdamW, warm-up then cosine decay).
        weight_decay: AdamW weight decay.
        warmup_steps: Linear warm-up steps.
        element_weight: Weight of the element-product loss (S105).
        subject_weight: Weight of the subject loss (S106: heatmap + size + offset).
        size_weight: Weight of the subject size L1 inside the subject loss.
        offset_weight: Weight of the subject offset L1 inside the subject loss.
        gt_normalization: Correct-answer map: ``"patent"`` (formula (1), 1/(2πσ²)) or ``"peak1"``.
        gt_sigma: σ of the correct-answer Gaussian in map elements (formula (1): 1).
        temporal_n: Past region maps averaged for the consistency loss (third embodiment);
            0 disables it, otherwise ≥ 2.
        temporal_weight: Weight of the consistency loss.
        prior_jitter: Random shift of the training prior, as a fraction of the box size.
        flip_prob: Probability of a left-right flip of a batch.
        crop_size: Train on random square windows of this side around the template box (the same
            window in all frames of a clip); ``None`` trains on full frames.
        temporal_max_gap: Largest frame-index step between stored region maps that still counts
            as consecutive (clips are drawn with strides up to the data module's ``max_stride``).
        region_dilations: Dilations of the subject-conditioned region branch of
            :class:`SubjectModel` (empty: region maps from the shared head).
        negative_boost: Extra formula-(2) weight at other people's part centres (hard negatives);
            0 is the plain mean over all elements.
        self_prior_prob: Scheduled sampling: probability that a frame's motion prior is centred on
            the model's own (detached) box prediction of the previous frame instead of the jittered
            ground truth, so the model learns to recover from its own drift; 0 disables it.
        distractor_prior_prob: Probability per training frame that its motion prior is centred on
            another person's box of the previous frame (a swap, as when the tracker has jumped to a
            neighbour), while the loss still asks for the target: the model learns to weigh the
            template against the prior and to come back. With ``self_prior_prob`` the following
            frames keep the model's own prior, so a drawn swap lasts until the model leaves the
            neighbour. 0 disables it.
        tracker: How the tracker decodes the maps (:class:`~adaptrack.track.inference.decoder.TrackerSettings`,
            ``model.tracker`` in YAML), recorded under ``"tracker"`` in the checkpoint. Training
            uses its ``prior_sigma`` (the motion prior) and ``window_power`` (the closed-loop
            rollouts); the validation that picks checkpoints decodes with ``window_power`` and
            ``part_window`` through the same functions as the tracker, with the element product
            (an exponent < 1 let an early model's region map, still unconstrained where no part
            is, win there, and validation then picked an undertrained epoch); the online levers
            (gating, re-detection, memory, distractors, abstention) act in the tracker only.
        input_size: Side of the square network input the data module feeds (linked from
            ``data.image_size``), recorded so the tracker runs at the training size.
        clip_order: How the data module orders training clips (linked from ``data.clip_order``):
            ``sequential`` keeps the region-map store across batches (see :meth:`temporal_loss`).
        init_checkpoint: A ``fit`` checkpoint whose second model starts this one (fine-tuning, e.g. on
            search-region crops or on a few labeled frames of one's own camera); its architecture must
            equal this one's. ``None`` starts from random weights.
        search: The data module's search-region crops (linked from ``data.search``): the tracker then
            cuts its frames the same way (``tracker.search_factor`` is set from it; a different
            non-zero one is refused). The region-map store needs the full-frame mode.
        backbone: Second model's backbone, ``mobile`` or ``resnet18`` / ``resnet34`` / ``resnet50``.
        backbone_weights: ImageNet weights file of a ResNet backbone (``None``: random).
        backbone_lr_mult: The backbone's learning rate is ``lr × backbone_lr_mult``.
    """

    def __init__(self, part_checkpoint: str, parts: list[str] | None = None,
                 channels: list[int] | None = None, dilations: list[int] | None = None,
                 head_channels: int = 48, head_dilations: list[int] | None = None,
                 kernel_size: list[int] | None = None, context: float = 0.1, lr: float = 3e-3,
                 weight_decay: float = 1e-4, warmup_steps: int = 50, element_weight: float = 1.0,
                 subject_weight: float = 1.0, size_weight: float = 0.1, offset_weight: float = 1.0,
                 gt_normalization: Normalization = "patent", gt_sigma: float = 1.0, temporal_n: int = 0,
                 temporal_weight: float = 0.5, prior_jitter: float = 0.15,
                 flip_prob: float = 0.5, crop_size: int | None = 160, temporal_max_gap: int = 3,
                 region_dilations: list[int] | None = None, negative_boost: float = 0.0,
                 self_prior_prob: float = 0.0, distractor_prior_prob: float = 0.0,
                 tracker: TrackerSettings = TrackerSettings(), input_size: int = 256,
                 clip_order: Literal["random", "sequential"] = "random", init_checkpoint: str | None = None,
                 search: SearchCrop | None = None, backbone: BackboneKind = "mobile",
                 backbone_weights: str | None = None, backbone_lr_mult: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        # validated here, so a bad YAML value fails before training rather than at inference
        self.tracker = as_group(TrackerSettings, tracker, "tracker")
        if search is not None:
            search = as_group(SearchCrop, search, "search")
            if self.tracker.search_factor not in (0, search.factor):
                raise ConfigError(f"model.tracker.search_factor {self.tracker.search_factor} differs from "
                                  f"data.search.factor {search.factor}: the tracker must cut frames as training did")
            if temporal_n:
                raise ConfigError(f"model.temporal_n {temporal_n} needs the full-frame mode: the region-map store "
                                  "keeps maps on the frame's grid; drop data.search or set model.temporal_n 0")
            self.tracker = dataclasses.replace(self.tracker, search_factor=search.factor)
        part_model, part_meta = load_part_detector(part_checkpoint)
        self.parts = list(parts or part_meta["parts"])
        if self.parts != list(part_meta["parts"]):
            raise ValueError(f"parts {self.parts} differ from the part detector's {part_meta['parts']} "
                             f"({part_checkpoint})")
        self.part_config = dict(part_meta["part_model"])
        self.part_model = part_model.requires_grad_(False).eval().to(memory_format=CHANNELS_LAST)
        self.subject_config = {
            "num_parts": len(self.parts), "channels": list(channels or [16, 24, 32, 48]),
            # Same backbone stride and map stride as the part detector (the element product needs it).
            "stride": self.part_config["stride"], "fine_maps": bool(self.part_config.get("fine_maps", False)),
            "dilations": list(dilations or [2]),
            "head_channels": head_channels, "head_dilations": list(head_dilations or [1, 2, 4]),
            "kernel_size": list(kernel_size or [5, 3]), "context": context}
        if region_dilations:
            self.subject_config["region_dilations"] = list(region_dilations)
        if backbone != "mobile":
            self.subject_config["backbone"] = backbone
        self.subject_model = SubjectModel(**self.subject_config, backbone_weights=backbone_weights
                                          ).to(memory_format=CHANNELS_LAST)
        if init_checkpoint:
            self._init_from(init_checkpoint)
        if not 0 <= distractor_prior_prob <= 1:
            raise ValueError(f"distractor_prior_prob must be in [0, 1], got {distractor_prior_prob}")
        if temporal_n == 1 or temporal_n < 0:
            raise ValueError(f"temporal_n must be 0 (off) or >= 2, got {temporal_n}")
        self.buffer = RegionMapBuffer(temporal_n, temporal_max_gap) if temporal_n else None
        self.temporal_share = 0.0
        if clip_order not in ("random", "sequential"):
            raise ValueError(f"clip_order must be 'random' or 'sequential', got {clip_order!r}")

    def _init_from(self, path: str) -> None:
        """Start the second model from ``path``'s (a ``fit`` checkpoint with the same architecture)."""
        meta, state = read_meta(path)
        if meta.get("kind") != "tracker":
            raise DataError("model.init_checkpoint must be a checkpoint of `adaptrack track fit`", path)
        theirs = {k: v for k, v in meta["subject_model"].items()}
        if theirs != self.subject_config:
            diff = sorted(k for k in set(theirs) | set(self.subject_config)
                          if theirs.get(k) != self.subject_config.get(k))
            raise DataError(f"model.init_checkpoint: its second model differs from this one in {diff}; "
                            "set the same model options as the run that wrote it", path)
        prefix = "subject_model."
        self.subject_model.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})

    def on_train_epoch_start(self) -> None:
        """An in-order pass starts new streams each epoch: forget the stored maps (not when the epoch
        restarts from a checkpoint saved inside it: the checkpoint's store is that epoch's past)."""
        if self.buffer is not None and fit_position(self.trainer)[1] == 0:
            self.buffer.clear()

    def on_train_start(self) -> None:
        """With an in-order pass, every stride the data draws must continue a stored stream."""
        dm = getattr(self.trainer, "datamodule", None)
        stride = getattr(getattr(dm, "hparams", None), "max_stride", None)
        if self.hparams.clip_order == "sequential" and self.buffer is not None and stride is not None \
                and stride > self.hparams.temporal_max_gap:
            raise ConfigError(f"data.max_stride {stride} > model.temporal_max_gap {self.hparams.temporal_max_gap}: "
                              "with clip_order sequential, clips of larger strides would never reach the "
                              "temporal term; lower data.max_stride or raise model.temporal_max_gap")

    def train(self, mode: bool = True) -> TrackerModule:
        """Like :meth:`nn.Module.train`, but the frozen part detector stays in eval mode."""
        super().train(mode)
        self.part_model.eval()
        return self

    # ---------------------------------------------------------------------------------- maps
    def prior_maps(self, boxes: torch.Tensor, map_hw: tuple[int, int], ratio: tuple[float, float],
                   ) -> torch.Tensor:
        """Motion prior (:func:`~adaptrack.track.inference.decoder.prior_maps`); ``(N, 4) -> (N, 1, h, w)``."""
        return prior_maps(boxes, map_hw, ratio, self.tracker.prior_sigma)

    def _previous_boxes(self, batch: ClipBatch, jitter: float) -> torch.Tensor:
        """Box each frame's prior is centred on: the previous frame's target (frame 0: the template)."""
        prev = torch.cat([batch.template_box[:, None], batch.target_box[:, :-1]], dim=1)  # (B, T, 4)
        # An absent previous target falls back to the template box.
        prev = torch.where(torch.isfinite(prev), prev, batch.template_box[:, None].expand_as(prev))
        if jitter > 0:
            shift = (torch.rand_like(prev[..., :2]) * 2 - 1) * jitter * prev[..., 2:]  # (B, T, 2)
            prev = torch.cat([prev[..., :2] + shift, prev[..., 2:]], dim=-1)
        return prev.reshape(-1, 4)  # (N, 4)

    @staticmethod
    def distractor_boxes(batch: ClipBatch, prob: float) -> torch.Tensor:
        """Swapped priors: per frame, with probability ``prob``, the previous-frame box of a random
        other person present in that frame; NaN rows elsewhere (keep the usual prior).

        Frame 0 is never swapped (its prior is the template box). Returns ``(B, T, 4)``.
        """
        B, T, M = batch.other_boxes.shape[:3]
        device = batch.other_boxes.device
        out = torch.full((B, T, 4), math.nan, device=device)
        if M == 0 or T < 2 or prob <= 0:
            return out
        previous = batch.other_boxes[:, :-1]  # (B, T-1, M, 4) boxes of the frame before frames 1..T-1
        present = torch.isfinite(previous).all(-1)  # (B, T-1, M)
        pick = torch.rand(present.shape, device=device).masked_fill(~present, -1.0).argmax(-1)  # (B, T-1)
        chosen = previous.gather(2, pick[..., None, None].expand(-1, -1, 1, 4))[:, :, 0]  # (B, T-1, 4)
        use = (torch.rand(B, T - 1, device=device) < prob) & present.any(-1)  # (B, T-1)
        out[:, 1:] = torch.where(use[..., None], chosen, out[:, 1:])
        return out

    def compute(self, batch: ClipBatch, jitter: float = 0.0, self_prior_prob: float = 0.0,
                distractor_prob: float = 0.0) -> dict[str, torch.Tensor]:
        """Run both models on a batch and return every map needed for the losses.

        With ``self_prior_prob > 0`` the frames of a clip are run in time order and each frame's
        prior is, with that probability per clip, centred on the previous frame's predicted box.
        With ``distractor_prob > 0`` a frame's prior is, with that probability, centred on another
        person instead (:meth:`distractor_boxes`); the targets of the losses do not change.

        Returns:
            ``part (N, K, h, w)`` frozen part likelihood and ``part_size (N, K, 2, h, w)``;
            ``heat (N, 1, h, w)``, ``size``,
            ``offset (N, 2, h, w)`` subject maps; ``region (N, K, h, w)``; ``product (N, K, h, w)``.
        """
        B, T = batch.frames.shape[:2]
        x = _images(batch.frames)  # (N, 3, H, W)
        with torch.no_grad():
            part, part_size, _ = self.part_model(x)  # (N, K, h, w), (N, K, 2, h, w)
        feat, fine = self.subject_model.features(x)  # (N, C, hb, wb), (N, C_fine, 2hb, 2wb) or None
        h, w = part.shape[-2:]  # map size (the part detector's, equal to the subject model's)
        ratio = size_ratio((x.shape[-1], x.shape[-2]), (w, h))
        feat0 = feat.reshape(B, T, *feat.shape[1:])[:, 0]  # (B, C, hb, wb)
        kernel = self.subject_model.template_from_features(feat0, batch.template_box, x.shape[-2:])
        prev = self._previous_boxes(batch, jitter)  # (N, 4)
        swapped = None  # (B, T, 4) priors on another person, NaN rows: no swap
        if distractor_prob > 0:
            swapped = self.distractor_boxes(batch, distractor_prob)
        if self_prior_prob > 0:
            heat, size, offset, region = self._rollout(feat, fine, kernel, prev.reshape(B, T, 4), (h, w), ratio,
                                                       self_prior_prob, swapped)
        else:
            if swapped is not None:
                swapped = swapped.reshape(-1, 4)  # (N, 4)
                prev = torch.where(torch.isfinite(swapped), swapped, prev)
            kernel = kernel[:, None].expand(B, T, *kernel.shape[1:]).reshape(B * T, *kernel.shape[1:])
            prior = self.prior_maps(prev, (h, w), ratio)  # (N, 1, h, w)
            heat, size, offset, region = self.subject_model.forward_features(feat, kernel, prior, fine)
        product = part.detach() * region  # (N, K, h, w)  S104: element product map
        return {"part": part, "part_size": part_size, "heat": heat, "size": size, "offset": offset,
                "region": region, "product": product, "ratio": torch.tensor(ratio)}

    def _rollout(self, feat: torch.Tensor, fine: torch.Tensor | None, kernel: torch.Tensor, prev: torch.Tensor,
                 map_hw: tuple[int, int], ratio: tuple[float, float], prob: float,
                 swapped: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Frame-by-frame subject model with scheduled sampling of the prior (see :meth:`compute`).

        Args:
            feat: ``(N, C, hb, wb)`` backbone features, N = B × T in clip-major order.
            fine: ``(N, C_fine, 2hb, 2wb)`` stride-s/2 features of a ``fine_maps`` model, else ``None``.
            kernel: ``(B, C, kh, kw)`` template kernels.
            prev: ``(B, T, 4)`` ground-truth (jittered) previous boxes.
            map_hw: Output map size ``(h, w)``.
            ratio: Image / map size ratio.
            prob: Per clip and frame probability of using the previous prediction.
            swapped: ``(B, T, 4)`` priors on another person that override both, NaN rows where none.

        Returns:
            heat, size, offset, region as from :meth:`SubjectModel.forward_features`, ``(N, ·, h, w)``.
        """
        B, T = prev.shape[:2]
        h, w = map_hw
        feat = feat.reshape(B, T, *feat.shape[1:])
        fine_t = None if fine is None else fine.reshape(B, T, *fine.shape[1:])
        outs = []
        pred = None
        for t in range(T):
            boxes = prev[:, t]  # (B, 4)
            if pred is not None:
                use = (torch.rand(B, device=boxes.device) < prob) & torch.isfinite(pred).all(-1)
                boxes = torch.where(use[:, None], pred, boxes)
            if swapped is not None:
                boxes = torch.where(torch.isfinite(swapped[:, t]), swapped[:, t], boxes)
            prior = self.prior_maps(boxes, (h, w), ratio)  # (B, 1, h, w)
            out = self.subject_model.forward_features(feat[:, t], kernel, prior,
                                                      None if fine_t is None else fine_t[:, t])
            outs.append(out)
            with torch.no_grad():  # decoded as the Tracker does, with its motion window
                pred, _, _ = decode_subject(out[0].detach(), out[1].detach(), out[2].detach(), prior, ratio,
                                            self.tracker.window_power)  # (B, 4)
        return tuple(torch.stack([o[i] for o in outs], dim=1).reshape(B * T, *outs[0][i].shape[1:])
                     for i in range(4))

    def correct_answer_maps(self, target_parts: torch.Tensor, map_hw: tuple[int, int],
                            ratio: tuple[float, float]) -> torch.Tensor:
        """Correct-answer maps of the tracked person's parts (¶38–44); ``(N, K, 4) -> (N, K, h, w)``."""
        N, K = target_parts.shape[:2]
        centres = box_centre(target_parts).reshape(N * K, 1, 2)  # (N*K, 1, 2)
        gt = gaussian_maps(centres, map_hw, ratio, sigma=self.hparams.gt_sigma,
                           normalization=self.hparams.gt_normalization)  # (N*K, h, w)
        return gt.reshape(N, K, *map_hw)

    # -------------------------------------------------------------------------------- losses
    def losses(self, batch: ClipBatch, maps: dict[str, torch.Tensor], temporal: bool,
               ) -> dict[str, torch.Tensor]:
        """S105 element-product loss, S106 subject loss, S110 consistency loss and their linear sum."""
        B, T = batch.frames.shape[:2]
        N, K, h, w = maps["region"].shape
        ratio = tuple(float(r) for r in maps["ratio"])
        gt_part = self.correct_answer_maps(batch.target_parts.reshape(N, K, 4), (h, w), ratio)
        weight = None
        if self.hparams.negative_boost > 0:  # emphasise other people's parts (hard negatives)
            others = box_centre(batch.other_parts.permute(0, 1, 3, 2, 4).reshape(N * K, -1, 4))  # (N*K, M, 2)
            weight = hard_negative_weights(others, (h, w), ratio, self.hparams.negative_boost).reshape(N, K, h, w)
        l_elem = map_bce(maps["product"], gt_part, weight)  # formula (2) over all elements
        g_heat, g_size, g_off, mask = centernet_targets(batch.target_box.reshape(N, 1, 4), (h, w), ratio)
        l_heat = focal_loss(maps["heat"][:, 0], g_heat)
        l_size = masked_l1(maps["size"], g_size, mask)
        l_off = masked_l1(maps["offset"], g_off, mask)
        l_subj = l_heat + self.hparams.size_weight * l_size + self.hparams.offset_weight * l_off
        loss = self.hparams.element_weight * l_elem + self.hparams.subject_weight * l_subj
        out = {"element": l_elem, "subject": l_subj, "subject_heat": l_heat, "subject_size": l_size,
               "subject_offset": l_off}
        if temporal and self.buffer is not None:
            l_tc = self.temporal_loss(batch, maps["region"].reshape(B, T, K, h, w))
            out["temporal"] = l_tc
            out["temporal_share"] = torch.tensor(self.temporal_share)  # frames that reached the term
            loss = loss + self.hparams.temporal_weight * l_tc
        out["loss"] = loss
        return out

    def temporal_loss(self, batch: ClipBatch, region: torch.Tensor) -> torch.Tensor:
        """Consistency with the moving average of the last n stored region maps (S108–S110).

        Frames are visited in time order; a frame's map is compared with the average of the n maps
        stored before it (if its stream has n), then stored. Streams are keyed by (sequence, track).
        Maps are stored on the full frame's map grid (:class:`RegionMapBuffer`), so clips cut from
        different windows or mirrored stay comparable. With ``clip_order: random`` the store is
        emptied before every training batch (its clips are unrelated); with ``sequential`` (an
        in-order pass, :class:`~adaptrack.track.data.clips.SequentialClips`) it is kept across
        batches, and emptied at each epoch's start, so every clip reaches the term.

        Args:
            batch: The clips (for sequence, track and frame indices).
            region: ``(B, T, K, h, w)`` current region maps.

        Returns:
            Mean formula-(2) BCE over the frames that had n past maps (0 if none had); the share
            of frames that had them is kept in ``temporal_share`` (logged as ``train/temporal_share``).
        """
        assert self.buffer is not None
        h, w = region.shape[-2:]
        rx, ry = batch.frames.shape[-1] / w, batch.frames.shape[-2] / h  # pixels per map element
        H, W = batch.full_size
        canvas = (round(H / ry), round(W / rx))
        origins = batch.origins
        terms = []
        for t in range(region.shape[1]):
            for b in range(region.shape[0]):
                key = (batch.sequences[b], int(batch.track_ids[b]))
                frame = int(batch.frame_indices[b][t])
                origin = (round(float(origins[b, 0]) / rx), round(float(origins[b, 1]) / ry))
                avg = self.buffer.average(key, frame, origin, batch.flipped, (h, w))
                if avg is not None:
                    covered = torch.isfinite(avg)
                    if bool(covered.any()):
                        terms.append(map_bce(region[b, t], avg.nan_to_num(0.0), covered))
                self.buffer.push(key, frame, region[b, t], origin, batch.flipped, canvas)
        self.temporal_share = len(terms) / max(1, region.shape[0] * region.shape[1])
        return torch.stack(terms).mean() if terms else region.sum() * 0.0

    # ------------------------------------------------------------------------------- lightning
    def training_step(self, batch: ClipBatch | dict[str, Any], batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):  # source + target streams: the part detector's adaptation only
            raise ConfigError("data.target_dir / data.target_frames / data.labeled_target adapt the part detector "
                              "(`adaptrack track fit-parts`); `fit` trains on data.train_dir (e.g. a `convert`ed "
                              "labeled clip)")
        clips = augment(batch, self.hparams.flip_prob, self.hparams.crop_size)
        if self.buffer is not None and self.hparams.clip_order == "random":
            self.buffer.clear()  # unrelated clips: nothing stored is their past
        maps = self.compute(clips, jitter=self.hparams.prior_jitter, self_prior_prob=self.hparams.self_prior_prob,
                            distractor_prob=self.hparams.distractor_prior_prob)
        losses = self.losses(clips, maps, temporal=True)
        check_finite(losses["loss"], self.global_step, losses)
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, on_step=True, on_epoch=True,
                      batch_size=clips.frames.shape[0])
        self.log("loss", losses["loss"], prog_bar=True, logger=False, batch_size=clips.frames.shape[0])
        return losses["loss"]

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        """Losses with the ground-truth prior; association rates both with that prior
        (``*_gt_prior``) and closed loop, each frame's prior on the model's own previous box as in
        the :class:`~adaptrack.track.inference.tracker.Tracker` (``val/part_hit``, ``val/wrong_person``: what
        checkpoints are chosen by)."""
        maps = self.compute(batch)
        losses = self.losses(batch, maps, temporal=False)
        bs = batch.frames.shape[0]
        # sync_dist: the epoch values are the means over all processes' batches (val/loss picks checkpoints)
        self.log_dict({f"val/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=bs, sync_dist=True)
        self.log("val/loss", losses["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        hit, wrong = self.association_rates(batch, maps)
        self.log_dict({"val/part_hit_gt_prior": hit, "val/wrong_person_gt_prior": wrong}, batch_size=bs,
                      sync_dist=True)
        hit, wrong = self.association_rates(batch, self.compute(batch, self_prior_prob=1.0),
                                            self.tracker.part_window)
        self.log("val/part_hit", hit, prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/wrong_person", wrong, prog_bar=True, batch_size=bs, sync_dist=True)

    @staticmethod
    def association_rates(batch: ClipBatch, maps: dict[str, torch.Tensor], part_window_sigma: float = 0.0,
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Share of visible target parts whose element-product peak lies in the right / another part box.

        With ``part_window_sigma > 0`` the frames of each clip are decoded in time order as the
        :class:`~adaptrack.track.inference.tracker.Tracker` does: frame 0 (the template frame) at the element
        product maximum, every later frame with the part window at the previous frame's part.
        """
        N, K, h, w = maps["product"].shape
        B, T = batch.frames.shape[:2]
        ratio = tuple(float(r) for r in maps["ratio"])
        product = maps["product"].reshape(B, T, K, h, w)
        part_size = maps["part_size"].reshape(B, T, K, 2, h, w)
        ones = product.new_ones(B, K, h, w)
        zeros = product.new_zeros(B, K, 2, h, w)
        # Offsets come from the part detector at inference; here the element position suffices.
        positions, centre, size = [], None, None
        for t in range(T):
            # the product as the part likelihood with a region map of ones: the tracker's decoding
            centre, size, _, _ = decode_parts(product[:, t], ones, part_size[:, t], zeros, ratio, 1.0, centre, size,
                                              part_window_sigma)  # (B, K, 2) x2
            positions.append(centre)
        pos = torch.stack(positions, dim=1).reshape(N * K, 2)  # (N*K, 2) clip-major like the batch
        target = batch.target_parts.reshape(N * K, 4)
        others = batch.other_parts.permute(0, 1, 3, 2, 4).reshape(N * K, -1, 4)  # (N*K, M, 4)
        visible = torch.isfinite(target).all(-1)
        hit = points_in_boxes(pos, target) & visible
        wrong = points_in_boxes(pos[:, None], others).any(-1) & visible & ~hit
        n = visible.sum().clamp(min=1)
        return hit.sum() / n, wrong.sum() / n

    def configure_optimizers(self) -> Any:
        return _adamw_cosine(self, backbone_parameter_groups(self.subject_model, self.hparams.lr,
                                                             self.hparams.backbone_lr_mult))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        check_finite_gradients(self.subject_model.named_parameters(), self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        plain_hyperparameters(checkpoint)
        checkpoint[META_KEY] = {
            "kind": "tracker", "parts": self.parts, "part_model": self.part_config,
            "subject_model": self.subject_config, "input_size": int(self.hparams.input_size),
            "tracker": self.tracker.as_meta()}
        if self.buffer is not None:  # storage unit 170: the past maps the next steps average
            checkpoint["region_map_store"] = self.buffer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.buffer is not None and "region_map_store" in checkpoint:
            self.buffer.load_state_dict(checkpoint["region_map_store"])

