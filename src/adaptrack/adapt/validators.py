"""Label-free validators: numbers computed on each validation pass that select checkpoints without target labels.

Every validator reads :class:`ValidationInputs`, the outputs of one validation pass gathered over
all DDP ranks (in the one-process order), and returns one number logged as ``val/<name>``, so that
``--checkpoint.monitor val/<name>`` selects checkpoints by it. Each states its contract: what it
reads, the math, which direction is better (``mode``, the ``--checkpoint.mode`` it needs) and a
reference. None of them reads a target label.

Which target images: entropy and SND read the *unlabeled target training pool* (the images training
draws from, :meth:`~adaptrack.adapt.data.datamodule.DomainAdaptationDataModule.unlabeled_target`),
never the target test split: the test split is what the report scores, and selecting on it, even
without its labels, would tune to the images the result is measured on.

``--checkpoint.mode auto`` (the default) takes the mode of the monitored validator
(:func:`resolve_checkpoint_mode`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F

from adaptrack.common.errors import ConfigError

Mode = Literal["max", "min"]

SND_TEMPERATURE = 0.05
"""Temperature τ of SND's similarity softmax: Saito et al. (2021) use 0.05."""

SND_MAX_POINTS = 4096
"""SND reads at most this many target predictions: an evenly spaced subset of the pool (every
``N / 4096``-th row, the same on every run and rank) when it is larger. SND costs ``N²``
similarities; on MNIST's 60,000 training images that is 3.6·10⁹ per validation (minutes on a CPU),
on 4,096 it is 1.7·10⁷ (a fraction of a second). Pools up to the cap are read whole."""

DEV_PRIOR_RATIO = 1.0
"""``N_s / N_t`` of You et al.'s density ratio: the domain classifier is trained on mini-batches of
``data.batch_size`` source and ``data.batch_size`` unlabeled target images, so the ratio of the two
classes' priors it learned is 1 (the few labeled and pseudo-labeled target images that also enter
its target side are ignored)."""


@dataclass
class ValidationInputs:
    """One validation pass, gathered over the ranks (rows in the one-process order).

    Attributes:
        source_logits: ``(Ns, K)`` class logits of the source validation images (source ``test``).
        source_labels: ``(Ns,)`` their labels.
        source_domain_logits: ``(Ns, 2)`` domain classifier logits (column 1 = target) of the same
            images, or ``None`` when the method has no domain classifier.
        target_probs: ``(Nt, K)`` softmax of the unlabeled target pool's class logits.
    """

    source_logits: torch.Tensor
    source_labels: torch.Tensor
    source_domain_logits: torch.Tensor | None
    target_probs: torch.Tensor


def source_accuracy(inputs: ValidationInputs) -> torch.Tensor:
    """Share of source validation images classified correctly (higher is better).

    ``mean_i [argmax_k s_ik == y_i]`` over the source validation split: the usual, label-free for the
    target, selection criterion (it assumes the source and target risks move together).
    """
    if inputs.source_labels.numel() == 0:
        return torch.tensor(float("nan"))
    return (inputs.source_logits.argmax(1) == inputs.source_labels).double().mean()


def prediction_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of predictions ``probs`` ``(N, K)``: ``mean_i -Σ_k p_ik log p_ik``.

    0 for one-hot predictions, ``log K`` for uniform ones (``0 log 0 = 0``).
    """
    p = probs.double()  # (N, K)
    return -(torch.special.xlogy(p, p).sum(1)).mean()


def target_entropy(inputs: ValidationInputs) -> torch.Tensor:
    """Mean entropy of the target pool's predictions (lower is better).

    Confident target predictions are taken as a sign of adapted features (Grandvalet & Bengio,
    "Semi-supervised learning by entropy minimization", NeurIPS 2004; used for validation by
    Morerio et al., "Minimal-entropy correlation alignment", ICLR 2018). It rewards over-confident
    collapse as well, which SND is designed to notice.
    """
    if inputs.target_probs.shape[0] == 0:
        return torch.tensor(float("nan"))
    return prediction_entropy(inputs.target_probs)


def evenly_spaced(n: int, at_most: int) -> torch.Tensor:
    """``min(n, at_most)`` indices ``(m,)`` spread evenly over ``0 … n-1`` (all of them when ``n <= at_most``)."""
    if n <= at_most:
        return torch.arange(n)
    return torch.linspace(0, n - 1, at_most, dtype=torch.float64).round().long()  # (at_most,), distinct


def soft_neighborhood_density(probs: torch.Tensor, temperature: float = SND_TEMPERATURE,
                              chunk: int = 2048, max_points: int | None = SND_MAX_POINTS) -> torch.Tensor:
    """SND of predictions ``probs`` ``(N, K)`` (Saito et al., "Tune it the right way: unsupervised
    validation of domain adaptation via soft neighborhood density", ICCV 2021).

    With ``f_i = p_i / ||p_i||``: ``s_ij = f_i·f_j / τ`` for ``j ≠ i``, ``P_ij = softmax_j(s_ij)`` and
    ``SND = mean_i -Σ_j P_ij log P_ij``. Predictions in dense clusters (each image with many
    similar neighbours) spread each row's softmax over many images: high entropy (higher is
    better). Its blind spot: predictions that are all alike (collapsed, or near-uniform ones whose
    cosines all come close to 1) spread every row evenly too; identical predictions reach the
    maximum ``log(N - 1)``. Computed in row chunks, so memory is ``chunk × N``; with more than
    ``max_points`` rows, on an evenly spaced subset of ``max_points`` of them (:data:`SND_MAX_POINTS`;
    ``None``: every row).
    """
    if max_points is not None:
        probs = probs[evenly_spaced(probs.shape[0], max_points)]  # (min(N, max_points), K)
    n = probs.shape[0]
    if n < 2:
        return torch.tensor(float("nan"))
    f = F.normalize(probs.double(), dim=1)  # (N, K)
    total = f.new_zeros(())
    for start in range(0, n, chunk):
        rows = f[start:start + chunk]  # (c, K)
        sim = rows @ f.T / temperature  # (c, N)
        idx = torch.arange(start, start + rows.shape[0])
        sim[idx - start, idx] = -math.inf  # no image is its own neighbour
        log_p = sim.log_softmax(1)  # (c, N)
        total = total - torch.special.xlogy(log_p.exp(), log_p.exp()).sum()
    return total / n


def target_snd(inputs: ValidationInputs) -> torch.Tensor:
    """SND of the target pool's softmax predictions (higher is better; at most :data:`SND_MAX_POINTS` of
    them); see :func:`soft_neighborhood_density`."""
    return soft_neighborhood_density(inputs.target_probs)


def deep_embedded_validation(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """DEV risk of per-image source validation ``losses`` ``(N,)`` and density ratios ``weights`` ``(N,)``.

    You et al., "Towards accurate model selection in deep unsupervised domain adaptation", ICML 2019
    (Algorithm 1): ``L_i = w_i ℓ_i``, ``η = -Cov(L, w) / Var(w)`` (sample estimates, ``ddof=1``) and
    ``DEV = mean(L) + η mean(w) - η``. The control variate ``w`` (whose expectation is 1) removes
    part of the importance-weighted mean's variance. ``η = 0`` when ``Var(w) = 0`` (every ratio equal):
    with every ratio 1 DEV is the plain mean loss. Lower is better.
    """
    if losses.numel() == 0:
        return torch.tensor(float("nan"))
    w, loss = weights.double(), losses.double()  # (N,), (N,)
    weighted = w * loss  # (N,)
    if w.numel() < 2:
        return weighted.mean()
    var_w = w.var(correction=1)
    cov = ((weighted - weighted.mean()) * (w - w.mean())).sum() / (w.numel() - 1)
    eta = -cov / var_w if bool(var_w > 0) else var_w.new_zeros(())
    return weighted.mean() + eta * w.mean() - eta


def density_ratios(domain_logits: torch.Tensor, prior_ratio: float = DEV_PRIOR_RATIO) -> torch.Tensor:
    """``w(x) = p_t(x) / p_s(x) = N_s/N_t · P(target | x) / P(source | x)`` from domain logits ``(N, 2)``.

    The odds of a two-logit softmax are ``exp(z_target - z_source)``; computed in float64.
    """
    z = domain_logits.double()  # (N, 2)
    return prior_ratio * torch.exp(z[:, 1] - z[:, 0])  # (N,)


def dev(inputs: ValidationInputs) -> torch.Tensor:
    """DEV with the model's own domain classifier as the density-ratio estimator (lower is better).

    Reads the source validation images' cross entropy and their domain logits; NaN without a
    domain classifier (the CLI refuses to monitor it then). See :func:`deep_embedded_validation`.
    """
    if inputs.source_domain_logits is None:
        return torch.tensor(float("nan"))
    losses = F.cross_entropy(inputs.source_logits.double(), inputs.source_labels, reduction="none")  # (Ns,)
    return deep_embedded_validation(losses, density_ratios(inputs.source_domain_logits))


@dataclass(frozen=True)
class Validator:
    """A registered validator: ``val/<name>`` is ``compute(inputs)``.

    Attributes:
        name: Registry key; logged as ``val/<name>``.
        mode: ``max`` or ``min``: the direction that is better (the ``--checkpoint.mode`` it needs).
        compute: The function of :class:`ValidationInputs`.
        description: One line for tables and the HTML report.
        needs_domain_classifier: Only meaningful for methods that train the domain classifier.
    """

    name: str
    mode: Mode
    compute: Callable[[ValidationInputs], torch.Tensor] = field(repr=False)
    description: str
    needs_domain_classifier: bool = False

    @property
    def key(self) -> str:
        """The logged metric name, ``val/<name>``."""
        return f"val/{self.name}"


VALIDATORS: dict[str, Validator] = {v.name: v for v in (
    Validator("source_acc", "max", source_accuracy, "source validation accuracy"),
    Validator("entropy", "min", target_entropy, "mean entropy of the target pool's predictions"),
    Validator("snd", "max", target_snd, "soft neighbourhood density of the target pool (Saito et al. 2021)"),
    Validator("dev", "min", dev, "deep embedded validation risk (You et al. 2019)", needs_domain_classifier=True),
)}
"""The validators by name; ``--checkpoint.monitor val/<name>`` selects by one of them."""


def validator_of(monitor: str | None) -> Validator | None:
    """The validator logged as ``monitor`` (``val/<name>``), or ``None``."""
    if monitor and monitor.startswith("val/"):
        return VALIDATORS.get(monitor.removeprefix("val/"))
    return None


def active_validators(domain_adversarial: bool) -> list[Validator]:
    """The validators a method computes (DEV only with a trained domain classifier)."""
    return [v for v in VALIDATORS.values() if domain_adversarial or not v.needs_domain_classifier]


def resolve_checkpoint_mode(checkpoint: Any, domain_adversarial: bool | None) -> None:
    """Check ``--checkpoint.monitor`` and fill ``--checkpoint.mode auto`` with the validator's mode.

    Args:
        checkpoint: The ``checkpoint`` group of the parsed config (``monitor``, ``mode``), edited in place.
        domain_adversarial: Whether the configured method trains a domain classifier (``None``: unknown).

    Raises:
        ConfigError: The monitor reads target labels (``report/…``), is DEV for a method without a
            domain classifier, or is not a validator while the mode is ``auto``.
    """
    monitor = checkpoint.get("monitor")
    mode = checkpoint.get("mode")
    if monitor and str(monitor).startswith("report/"):
        raise ConfigError(f"--checkpoint.monitor {monitor} reads target labels, which never select a checkpoint; "
                          f"monitor a validator: {', '.join(v.key for v in VALIDATORS.values())}")
    validator = validator_of(monitor)
    if validator is not None and validator.needs_domain_classifier and domain_adversarial is False:
        raise ConfigError(f"--checkpoint.monitor {monitor} needs a trained domain classifier, which this method "
                          "does not have; monitor val/source_acc, val/entropy or val/snd")
    if mode == "auto":
        if validator is None:
            if monitor:
                raise ConfigError(f"--checkpoint.monitor {monitor} is not a validator "
                                  f"({', '.join(v.key for v in VALIDATORS.values())}): give --checkpoint.mode "
                                  "max or min")
            checkpoint["mode"] = "max"  # nothing monitored: the mode is unused
        else:
            checkpoint["mode"] = validator.mode
    elif validator is not None and mode != validator.mode:
        better = "higher" if validator.mode == "max" else "lower"
        raise ConfigError(f"--checkpoint.monitor {monitor} is better when {better}: "
                          f"--checkpoint.mode {mode} would keep the worst checkpoint; use {validator.mode} or auto")


class ValidationBuffer:
    """Per-pass outputs collected by ``validation_step`` and gathered over the ranks at the epoch end.

    Dataloader 0 adds source rows (logits, labels, domain logits), dataloader 2 target pool rows
    (softmax). :meth:`gather` concatenates each rank's rows and, under DDP, every rank's in rank
    order (each rank holds a contiguous run of the one-process batches), so every rank computes the
    validators on the same, one-process, tensors.
    """

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {}

    def reset(self) -> None:
        """Forget the pass (call at the start of each validation or test epoch)."""
        self.parts = {}

    def add(self, name: str, rows: torch.Tensor) -> None:
        """Append ``rows`` ``(b, …)`` to the part ``name``."""
        self.parts.setdefault(name, []).append(rows.detach())

    def _local(self, name: str, like: torch.Tensor) -> torch.Tensor:
        parts = self.parts.get(name)
        return torch.cat(parts) if parts else like

    def gather(self, module: L.LightningModule, name: str, like: torch.Tensor) -> torch.Tensor:
        """The rows of ``name`` over all ranks; ``like`` (an empty ``(0, …)`` tensor) when none were added."""
        local = self._local(name, like)
        trainer = module._trainer
        if trainer is None or trainer.world_size == 1:
            return local
        sizes = module.all_gather(torch.tensor([local.shape[0]], device=module.device))  # (world, 1)
        sizes = sizes.reshape(-1).tolist()
        longest = max(sizes)
        padded = local.new_zeros((longest, *local.shape[1:]))  # (n_max, …)
        padded[:local.shape[0]] = local
        everything = module.all_gather(padded)  # (world, n_max, …)
        return torch.cat([everything[r, :n] for r, n in enumerate(sizes)])

    def inputs(self, module: L.LightningModule, num_classes: int, domain: bool) -> ValidationInputs:
        """The gathered :class:`ValidationInputs` (``domain``: domain logits were added)."""
        dev_ = module.device
        logits = self.gather(module, "source_logits", torch.zeros((0, num_classes), device=dev_))
        labels = self.gather(module, "source_labels", torch.zeros((0,), dtype=torch.long, device=dev_))
        dom = self.gather(module, "source_domain_logits", torch.zeros((0, 2), device=dev_)) if domain else None
        target = self.gather(module, "target_probs", torch.zeros((0, num_classes), device=dev_))
        return ValidationInputs(logits.cpu(), labels.cpu(), None if dom is None else dom.cpu(), target.cpu())
