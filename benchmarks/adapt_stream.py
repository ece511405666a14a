"""Throughput and memory of the streaming training loader on a generated folder set of 100,000+ JPEGs.

    python benchmarks/adapt_stream.py                                  # 100,000 64x64 JPEGs, 2 workers
    python benchmarks/adapt_stream.py --images 20000 --batches 100    # a quicker look

Writes an Office-like layout ``<root>/<domain>/<class>/*.jpg`` (two domains, ten classes, each
image a class colour plus noise; written by ``--writers`` processes; under ``/tmp``, reused when it
is already complete), builds the data module with ``data.stream.cache=disk`` (``office31`` layout by
name), then iterates its training loader (the :class:`~adaptrack.adapt.data.stream.StreamingPairs`
of ``--batch`` source + ``--batch`` target images per step, decoded, random-resized-cropped and
flipped by ``--workers`` worker processes) for ``--batches`` batches. Every ``--every`` batches it
prints a row: images/s so far and the resident memory (VmRSS from ``/proc``) of the main process,
of the workers together and of all; the last row gives the peaks over the run (sampled every
0.2 s). Flat memory means the rows stay level while the images seen grow; the in-memory cache of
the same set would need the ``cache`` column's bytes.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import threading
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = [f"class_{k:02d}" for k in range(10)]
DOMAINS = ("amazon", "webcam")


def _write_chunk(job: tuple[str, int, int, int, int, int]) -> int:
    """Write images ``[start, stop)`` of one domain/class folder; returns how many were written."""
    folder, domain, cls, start, stop, size = job
    rng = np.random.default_rng([domain, cls, start])
    base = np.array([(37 * cls) % 256, (91 * cls + 120 * domain) % 256, (53 * cls + 40) % 256], np.uint8)
    for i in range(start, stop):
        noise = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        Image.fromarray(base + noise).save(f"{folder}/{i:05d}.jpg", quality=85)
    return stop - start


def generate(root: Path, images: int, size: int, writers: int) -> float:
    """Write ``images`` JPEGs (split evenly over domains and classes) unless already there; seconds taken."""
    per_class = images // (len(DOMAINS) * len(CLASSES))
    marker = root / f".complete-{per_class}-{size}"
    if marker.is_file():
        return 0.0
    start = time.perf_counter()
    jobs = []
    for d, domain in enumerate(DOMAINS):
        for c, cls in enumerate(CLASSES):
            folder = root / domain / cls
            folder.mkdir(parents=True, exist_ok=True)
            for lo in range(0, per_class, 500):
                jobs.append((str(folder), d, c, lo, min(per_class, lo + 500), size))
    with Pool(writers) as pool:
        written = sum(pool.imap_unordered(_write_chunk, jobs))
    marker.write_text(f"{written}\n")
    return time.perf_counter() - start


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (``VmRSS`` of ``/proc/<pid>/status``), 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size (``Pss`` of ``/proc/<pid>/smaps_rollup``): shared pages split among their
    sharers, so that the sum over processes is the memory they use together; 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def children(pid: int) -> list[int]:
    """Child processes of ``pid`` (``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


class MemorySampler(threading.Thread):
    """Samples the resident memory of this process and its children every ``interval`` seconds."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.peak_main = self.peak_workers = self.peak_total = self.peak_pss = 0
        self.workers_seen = 0

    def sample(self) -> tuple[int, int, int]:
        """``(main RSS, workers' RSS, PSS of all)`` bytes now; updates the peaks."""
        me = os.getpid()
        kids = children(me)
        main, workers = rss_bytes(me), sum(rss_bytes(k) for k in kids)
        pss = pss_bytes(me) + sum(pss_bytes(k) for k in kids)
        self.workers_seen = max(self.workers_seen, len(kids))
        self.peak_main, self.peak_workers = max(self.peak_main, main), max(self.peak_workers, workers)
        self.peak_total, self.peak_pss = max(self.peak_total, main + workers), max(self.peak_pss, pss)
        return main, workers, pss

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            time.sleep(self.interval)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/adaptrack_stream_bench"),
                        help="where the JPEGs are written (never inside the repository)")
    parser.add_argument("--images", type=int, default=100_000, help="JPEGs in all (two domains, ten classes)")
    parser.add_argument("--size", type=int, default=64, help="side of the generated JPEGs")
    parser.add_argument("--image-size", type=int, default=56, help="data.image_size (crop output side)")
    parser.add_argument("--batch", type=int, default=64, help="data.batch_size (source and target each)")
    parser.add_argument("--batches", type=int, default=400, help="training batches to read")
    parser.add_argument("--every", type=int, default=50, help="a table row every this many batches")
    parser.add_argument("--workers", type=int, default=2, help="data.stream.num_workers")
    parser.add_argument("--writers", type=int, default=2, help="processes writing the JPEGs")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if args.root.resolve().is_relative_to(repo):
        parser.error(f"--root {args.root} is inside the repository; use a folder under /tmp")
    sys.path.insert(0, str(repo / "src"))
    from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule
    from adaptrack.adapt.data.stream import StreamConfig

    gen_s = generate(args.root, args.images, args.size, args.writers)
    written = f"written in {gen_s:.0f} s" if gen_s else "already there"
    print(f"JPEGs: {args.images:,} of {args.size}x{args.size} under {args.root} ({written})")
    start = time.perf_counter()
    dm = DomainAdaptationDataModule(
        source="office31", target="office31", source_dir=str(args.root), target_dir=str(args.root),
        source_domain=DOMAINS[0], target_domain=DOMAINS[1], channels=3, image_size=args.image_size,
        batch_size=args.batch, stream=StreamConfig(cache="disk", num_workers=args.workers))
    sets = dm.training_sets()
    loader = dm.train_dataloader()
    listed_s = time.perf_counter() - start
    n = sum(len(s) for s in sets.values())
    cache_bytes = n * 3 * args.image_size ** 2
    print(f"listed {n:,} files in {listed_s:.1f} s; {len(loader)} steps per epoch; the in-memory cache of "
          f"these sets at {args.image_size}x{args.image_size} would hold {mib(cache_bytes)} MiB")
    sampler = MemorySampler()
    sampler.start()
    rows = []
    start = time.perf_counter()
    seen = 0
    it = iter(loader)
    first = None
    for number in range(1, args.batches + 1):
        try:
            batch = next(it)
        except StopIteration:  # next epoch
            it = iter(loader)
            batch = next(it)
        if first is None:
            first = time.perf_counter() - start
        seen += batch.source.shape[0] + batch.target.shape[0] + batch.labeled.shape[0]
        if number % args.every == 0 or number == args.batches:
            main_rss, workers_rss, pss = sampler.sample()
            wall = time.perf_counter() - start
            rows.append((number, seen, wall, seen / wall, main_rss, workers_rss, pss))
    sampler.stop.set()
    sampler.join()
    shape = tuple(batch.source.shape)
    del it, loader
    header = ("batches", "images", "wall s", "images/s", "main RSS MiB", "workers RSS MiB", "RSS sum MiB",
              "PSS sum MiB")
    print(f"\nstreaming training loader: {args.workers} workers, batch {args.batch} source + {args.batch} target, "
          f"source batch {shape} {batch.source.dtype}, first batch after {first:.2f} s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in header) + "|")
    for number, images, wall, rate, main_rss, workers_rss, pss in rows:
        cells = (f"{number}", f"{images:,}", f"{wall:.1f}", f"{rate:,.0f}", mib(main_rss), mib(workers_rss),
                 mib(main_rss + workers_rss), mib(pss))
        print("| " + " | ".join(cells) + " |")
    print(f"| peak | | | | {mib(sampler.peak_main)} | {mib(sampler.peak_workers)} | {mib(sampler.peak_total)} | "
          f"{mib(sampler.peak_pss)} |")
    self_max = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"\nworkers seen: {sampler.workers_seen}; getrusage max RSS of the main process: {mib(self_max)} MiB; "
          f"peak RSS sum {mib(sampler.peak_total)} MiB (counts pages the forked workers share with the main "
          f"process once per process), peak PSS sum {mib(sampler.peak_pss)} MiB "
          f"({'under' if sampler.peak_total < 2 * 2**30 else 'OVER'} 2 GiB); in-memory cache would be "
          f"{mib(cache_bytes)} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
