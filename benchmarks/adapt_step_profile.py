"""Profile one training step of ``adaptrack adapt`` (data, augmentation, forward, backward, optimiser) beside a
plain PyTorch LeNet loop on the same batch sizes, measured in the same run.

Usage::

    python benchmarks/adapt_step_profile.py                       # MNIST -> USPS from ../shared/data
    python benchmarks/adapt_step_profile.py --task default        # embedded default, no files
    python benchmarks/adapt_step_profile.py --threads 1 --steps 100

Prints a table of milliseconds per step for each phase. ``plain LeNet`` rows are a hand-written
PyTorch loop (same LeNet widths as the ``lenet`` preset, contiguous NCHW tensors, AdamW, cross
entropy) on the source batch alone and on all the images our step feeds (source + two target views).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from adaptrack.adapt.config import GateConfig, PseudoLabelConfig
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.networks import grl_coefficient
from adaptrack.common.paths import shared_data_dir
from adaptrack.common.report import format_table


def timed(fn: Callable[[], object], steps: int) -> float:
    """Milliseconds per call of ``fn`` over ``steps`` calls, after two warm-up calls."""
    fn()
    fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps * 1000.0


def plain_lenet() -> nn.Module:
    """The ``lenet`` preset's layers written out by hand (no GRL, no domain head)."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(1024, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 128), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 10))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=["mnist_usps", "default"], default="mnist_usps")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    ns = parser.parse_args()
    torch.set_num_threads(ns.threads)
    torch.manual_seed(0)
    if ns.task == "mnist_usps":
        root = ns.data_root or shared_data_dir()
        if root is None:
            print("no data root: pass --data-root (MNIST and USPS files) or use --task default", file=sys.stderr)
            return 2
        dm = DomainAdaptationDataModule(source="mnist", target="usps", data_root=str(Path(root)),
                                        batch_size=ns.batch_size)
    else:
        dm = DomainAdaptationDataModule(batch_size=ns.batch_size, synthetic_size=4000)
    dm.setup("fit")
    loader = iter(dm.train_dataloader())

    def next_raw() -> object:
        nonlocal loader
        try:
            return next(loader)
        except StopIteration:
            loader = iter(dm.train_dataloader())
            return next(loader)

    raw = next_raw()
    batch = dm.on_after_batch_transfer(raw, 0)
    rows = []
    coef = grl_coefficient(0.5)
    for method in ("source_only", "dann", "self_learning"):
        model = DomainAdaptationModule(method=method, gate=GateConfig(start_ratio=0.0),
                                       pseudo=PseudoLabelConfig(threshold=0.9))
        opt = torch.optim.AdamW(model.net.parameters(), 1e-3)
        self_learning = model.method.self_learns

        def forward(model: DomainAdaptationModule = model, sl: bool = self_learning) -> torch.Tensor:
            step = model._step(batch, coef, supervised=True, self_learning=sl)
            terms = {**model.method.supervised(step), **(model.method.self_learning(step) if sl else {})}
            return sum(terms.values(), start=torch.zeros(()))

        def full(forward: Callable[[], torch.Tensor] = forward, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            forward().backward()
            opt.step()

        def backward_only(forward: Callable[[], torch.Tensor] = forward, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            forward().backward()

        t_data = timed(next_raw, ns.steps)
        t_aug = timed(lambda: dm.on_after_batch_transfer(raw, 0), ns.steps)
        t_fwd = timed(forward, ns.steps)
        t_fb = timed(backward_only, ns.steps)
        t_full = timed(full, ns.steps)
        n_images = batch.source.shape[0] + (batch.target.shape[0] * (2 if self_learning else 1)
                                            if model.method.domain_adversarial else 0)
        rows.append({"step": f"adaptrack {method}", "images": n_images, "data ms": t_data, "augment ms": t_aug,
                     "forward ms": t_fwd, "backward ms": t_fb - t_fwd, "optimiser ms": t_full - t_fb,
                     "s/step": (t_data + t_aug + t_full) / 1000.0})
    for n_views in (1, 3):
        net = plain_lenet()
        opt = torch.optim.AdamW(net.parameters(), 1e-3)
        x = torch.cat([batch.source, batch.target, batch.target_strong][:n_views]).contiguous()
        y = batch.source_labels.repeat(n_views)

        def plain_forward(net: nn.Module = net, x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
            return F.cross_entropy(net(x), y)

        def plain_full(fwd: Callable[[], torch.Tensor] = plain_forward, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            fwd().backward()
            opt.step()

        def plain_fb(fwd: Callable[[], torch.Tensor] = plain_forward, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad(set_to_none=True)
            fwd().backward()

        t_fwd, t_fb, t_full = timed(plain_forward, ns.steps), timed(plain_fb, ns.steps), timed(plain_full, ns.steps)
        rows.append({"step": f"plain LeNet, {x.shape[0]} images", "images": x.shape[0], "data ms": float("nan"),
                     "augment ms": float("nan"), "forward ms": t_fwd, "backward ms": t_fb - t_fwd,
                     "optimiser ms": t_full - t_fb, "s/step": t_full / 1000.0})
    print(format_table(rows, precision=3, title=f"one training step, {ns.task}, batch {ns.batch_size} per domain, "
                                   f"{ns.threads} torch thread(s), mean of {ns.steps} steps"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
