"""One ResNet training step on CPU (forward + backward + optimiser) and a backbone weight-file round trip.

Usage::

    python benchmarks/resnet_step.py                              # resnet50, batch 2, 224x224
    python benchmarks/resnet_step.py --preset resnet18 --batch 8 --threads 2 --steps 5

The step is the adversarial step of FIG. 1 on one batch: features of source and target images, the
class loss on the source half, the domain loss through the gradient reversal layer on both, one
backward and one SGD step with the backbone at ``lr × 0.1`` (``model.optim.backbone_lr_mult``).
Then the backbone's state dict is saved (``.pth``, and ``.safetensors`` when installed), loaded into a
freshly initialised model with :func:`~adaptrack.adapt.networks.load_backbone_weights`, and the
eval-mode outputs of both models are compared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from adaptrack.adapt.config import NetworkConfig, OptimConfig
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.networks import load_backbone_weights


def build(preset: str, seed: int, num_classes: int) -> DomainAdaptationModule:
    """A module with the preset at 224×224 RGB and backbone lr × 0.1."""
    torch.manual_seed(seed)
    return DomainAdaptationModule(method="dann", network=NetworkConfig(preset=preset),  # type: ignore[arg-type]
                                  optim=OptimConfig(optimizer="sgd", lr=0.01, backbone_lr_mult=0.1),
                                  num_classes=num_classes, in_channels=3, image_size=224)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="resnet50", choices=["resnet18", "resnet34", "resnet50"])
    parser.add_argument("--batch", type=int, default=2, help="source images per step (as many target images)")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    module = build(args.preset, 0, num_classes=31)
    net = module.net.train()
    groups = module.parameter_groups()
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    g = torch.Generator().manual_seed(0)
    source = torch.randn(args.batch, 3, args.size, args.size, generator=g)  # (B, 3, S, S)
    target = torch.randn(args.batch, 3, args.size, args.size, generator=g)  # (B, 3, S, S)
    labels = torch.randint(0, 31, (args.batch,), generator=g)  # (B,)
    domains = torch.cat([torch.zeros(args.batch), torch.ones(args.batch)]).long()  # (2B,)

    def step() -> float:
        z = net.features(torch.cat([source, target]))  # (2B, D)
        loss = F.cross_entropy(net.classifier(z[:args.batch]), labels) + \
            F.cross_entropy(net.domain_logits(z, 1.0), domains)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    step()  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - start)
    n_backbone = sum(p.numel() for p in net.backbone.parameters())
    print(f"{args.preset}: {n_backbone / 1e6:.2f} M backbone parameters; lr groups "
          + ", ".join(f"{grp['name']}={grp['lr']:g}" for grp in opt.param_groups))
    print(f"one step (forward + backward + SGD) on {2 * args.batch} images of {args.size}x{args.size} "
          f"({args.batch} source + {args.batch} target), {args.threads} thread(s): "
          f"mean {sum(times) / len(times):.2f} s, min {min(times):.2f} s over {args.steps} steps (loss {loss:.3f})")

    net.eval()
    probe = torch.randn(2, 3, args.size, args.size, generator=g)  # (2, 3, S, S)
    with torch.no_grad():
        expected = net.backbone(probe)  # (2, D_backbone)
    suffixes = [".pth"]
    try:
        from safetensors.torch import save_file
        suffixes.append(".safetensors")
    except ImportError:
        print("safetensors not installed: .pth only")
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in suffixes:
            path = Path(tmp) / f"backbone{suffix}"
            state = net.backbone.state_dict()
            if suffix == ".pth":
                torch.save(state, path)
            else:
                save_file({k: v.contiguous() for k, v in state.items()}, str(path))
            fresh = build(args.preset, 1, num_classes=31).net.eval()
            with torch.no_grad():
                before = float((fresh.backbone(probe) - expected).abs().max())
                start = time.perf_counter()
                load_backbone_weights(fresh.backbone, path)
                took = time.perf_counter() - start
                after = float((fresh.backbone(probe) - expected).abs().max())
            print(f"round trip {suffix}: {path.stat().st_size / 2**20:.1f} MiB, loaded in {took:.2f} s; "
                  f"max |fresh - saved| features: {before:.3g} before loading, {after:.3g} after "
                  f"({'identical' if after == 0 else 'DIFFERENT'})")


if __name__ == "__main__":
    main()
