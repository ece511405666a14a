"""ONNX export of an ``adaptrack adapt`` classifier against PyTorch on the real USPS test set (2,007 images).

Usage::

    python benchmarks/adapt_onnx.py                                # a short MNIST -> USPS fit first
    python benchmarks/adapt_onnx.py --checkpoint runs/adapt/logs/version_0/checkpoints/last.ckpt
    python benchmarks/adapt_onnx.py --data-root ../shared/data --steps 50 --out runs/adapt_onnx

Without ``--checkpoint`` it trains one short model on the real data (``configs/adapt/mnist_usps.yaml``,
one epoch of ``--steps`` steps) under ``OUT/fit``. It then exports the checkpoint with ``adaptrack adapt
export`` to ``OUT/onnx``, loads both through :func:`adaptrack.adapt.load` (PyTorch from the ``.ckpt``,
onnxruntime from the folder), classifies every USPS test image with each and prints how many get the
same class, the largest softmax difference, each backend's accuracy and its images/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import adaptrack.adapt
from adaptrack.adapt.cli import main as adapt_main
from adaptrack.adapt.data.registry import load_dataset
from adaptrack.adapt.export import export
from adaptrack.common.paths import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]


def train(data_root: Path, out: Path, steps: int, threads: int) -> Path:
    """A short MNIST -> USPS fit; returns its ``last.ckpt``."""
    code = adapt_main(["fit", "--config", str(ROOT / "configs/adapt/mnist_usps.yaml"), "--data.data_root",
                       str(data_root), "--trainer.max_epochs", "1", "--data.steps_per_epoch", str(steps),
                       "--threads", str(threads), "--trainer.default_root_dir", str(out / "fit"),
                       "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    if code != 0:
        sys.exit(f"fit failed with exit code {code}")
    return max((out / "fit").rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint of `adaptrack adapt fit` (default: train one)")
    parser.add_argument("--data-root", type=Path, default=shared_data_dir(), help="folder holding usps/usps.h5")
    parser.add_argument("--out", type=Path, default=Path("runs/adapt_onnx"))
    parser.add_argument("--steps", type=int, default=50, help="training steps of the short fit")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.data_root is None or not (args.data_root / "usps" / "usps.h5").is_file():
        sys.exit(f"USPS not found under --data-root {args.data_root}: expected usps/usps.h5")
    torch.set_num_threads(args.threads)
    ckpt = args.checkpoint or train(args.data_root, args.out, args.steps, args.threads)
    diffs = export(str(ckpt), str(args.out / "onnx"))
    test = load_dataset("usps", "test", root=args.data_root)
    images, labels = test.images, test.labels  # (2007, 1, 16, 16) uint8, (2007,)
    results = {}
    for name, source in (("pytorch", ckpt), ("onnxruntime", args.out / "onnx")):
        clf = adaptrack.adapt.load(source, threads=args.threads)
        start = time.perf_counter()
        results[name] = clf.predict(images)
        seconds = time.perf_counter() - start
        acc = float((results[name].labels == labels).float().mean()) * 100
        print(f"{name:>11} ({type(clf.backend).__name__}): USPS test accuracy {acc:.2f} %, "
              f"{images.shape[0] / seconds:.0f} images/s ({args.threads} thread(s))")
    a, b = results["pytorch"], results["onnxruntime"]
    same = int((a.labels == b.labels).sum())
    print(f"checkpoint: {ckpt}")
    print(f"export check (random images): max |onnxruntime - PyTorch| logits {diffs['logits']:.2e}, "
          f"probs {diffs['probs']:.2e}")
    print(f"USPS test: same class for {same} / {images.shape[0]} images; "
          f"max |softmax difference| {float((a.probs - b.probs).abs().max()):.2e}")


if __name__ == "__main__":
    main()
