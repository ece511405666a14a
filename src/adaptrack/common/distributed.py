"""Multi-process training (Lightning DDP): the strategy a module needs, and exact evaluation shards.

Both systems train with ``--trainer.strategy ddp`` (one machine: ``--trainer.devices N``; several:
``torchrun`` or SLURM, which Lightning detects from their environment variables). What each part
does under DDP:

* **strategy**: a module whose backward passes leave some trainable parameters without a gradient
  on some steps (the adapt module's second stage of ``update: two_stage`` does not touch the domain
  classifier) makes DDP's reducer fail with ``find_unused_parameters=False``, Lightning's default
  for ``ddp``. :func:`resolve_ddp_strategy` turns the plain ``ddp`` the user typed into Lightning's
  registered ``ddp_find_unused_parameters_true`` when the module says it needs it, so the user
  never has to know; every other strategy value is left as given.
* **training data**: each rank reads its own share of every source
  (:class:`~adaptrack.common.resume.ResumableSampler`,
  :class:`~adaptrack.adapt.data.datamodule.PairedBatches`).
* **evaluation data**: :class:`EvalShardSampler` (map-style sets) and :func:`batch_shard` give
  each rank a disjoint, contiguous run of one process's evaluation batches with no padding
  (Lightning's own ``DistributedSampler`` repeats a few items to even the ranks out), so metrics
  reduced over the ranks (torchmetrics, ``self.log(..., sync_dist=True)``) equal a one-process
  evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from torch.utils.data import DistributedSampler

from adaptrack.common.errors import ConfigError

if TYPE_CHECKING:
    from jsonargparse import Namespace

UNUSED_PARAMETERS_DDP = "ddp_find_unused_parameters_true"
"""Lightning's registered name of ``DDPStrategy(find_unused_parameters=True)``."""


def resolve_ddp_strategy(config: Namespace, find_unused_parameters: bool) -> None:
    """Replace ``trainer.strategy: ddp`` by :data:`UNUSED_PARAMETERS_DDP` when the module needs it.

    Call from ``LightningCLI.before_instantiate_classes``. Only the plain string ``ddp`` is
    translated (a ``DDPStrategy`` given with its own ``init_args``, or any other name, is the
    user's explicit choice and stays).

    Args:
        config: The parsed config of the subcommand (with a ``trainer`` group).
        find_unused_parameters: Whether some training steps leave trainable parameters without a
            gradient (the module's declaration).
    """
    trainer = config.get("trainer")
    if trainer is None or not find_unused_parameters:
        return
    if trainer.get("strategy") == "ddp":
        trainer.strategy = UNUSED_PARAMETERS_DDP


def shard_range(n: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous part of ``range(n)``; the ``world`` parts partition it, sizes differ by ≤ 1.

    Raises:
        ConfigError: ``rank`` is not in ``[0, world)``.
    """
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"rank {rank} of {world} processes is not a valid shard")
    return range(n * rank // world, n * (rank + 1) // world)


def batch_shard(n: int, batch_size: int, rank: int, world: int, what: str = "the evaluation set") -> range:
    """Item indices of rank ``rank``'s whole batches of ``range(n)`` cut into batches of ``batch_size``.

    The batches are those of one process (``[0, b)``, ``[b, 2b)``, …, the last one shorter); each
    rank takes a contiguous run of them (:func:`shard_range` over the batch numbers). The ranks
    then evaluate exactly one process's batches, so even a per-batch statistic (a batch's mean
    loss, weighted by its size) reduces over the ranks to the one-process value.

    Raises:
        ConfigError: Fewer batches than processes (a rank without a batch would leave the others
            waiting for it when the metrics are reduced); the message says what to lower.
    """
    batches = -(-n // batch_size)
    if 0 < batches < world:
        raise ConfigError(f"{what} has {n} items, {batches} batch(es) of {batch_size}: fewer than the {world} "
                          f"processes; lower its batch size (or use more items) so that every process gets one")
    part = shard_range(batches, rank, world)
    return range(min(n, part.start * batch_size), min(n, part.stop * batch_size))


class EvalShardSampler(DistributedSampler):
    """Indices of an evaluation set: this rank's whole batches (:func:`batch_shard`), in order, no padding.

    The ranks' parts partition the set, batch for batch, so a metric reduced over the ranks is the
    one-process metric. A :class:`~torch.utils.data.DistributedSampler` subclass only so that
    Lightning does not replace it under DDP (its own sampler pads the ranks to equal length by
    repeating items). Ranks may get a batch more or less than each other (Lightning does not need
    the same number of evaluation batches on every rank).

    Args:
        dataset: The map-style dataset (only its length is used).
        batch_size: The loader's batch size.
        rank: This process's rank.
        world: Number of processes.
        what: The set's name, for the error message.
    """

    def __init__(self, dataset: Any, batch_size: int, rank: int = 0, world: int = 1,
                 what: str = "the evaluation set") -> None:
        self.dataset = dataset
        self.part = batch_shard(len(dataset), batch_size, rank, world, what)
        self.rank, self.num_replicas = rank, world
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.part)

    def __iter__(self) -> Iterator[int]:  # type: ignore[override]
        return iter(self.part)

    def set_epoch(self, epoch: int) -> None:
        """Ignored: evaluation order does not depend on the epoch."""
