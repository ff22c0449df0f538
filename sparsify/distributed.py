"""Calibration spread over ranks with ``torch.distributed`` (gloo on CPU, NCCL on GPUs).

Each rank runs its share of the calibration windows (window ``i`` goes to rank ``i % world``) through every
block; the activation statistics are summed over ranks with ``all_reduce`` before pruning, rank 0's pruned
weights are broadcast so every rank continues from the very same block, and rank 0 alone writes output.
The result equals a single-process run up to the order of floating-point additions in the statistics.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist

from polysparse.sparsify.calibration import TokenWindows
from polysparse.sparsify.config import ConfigError
from polysparse.sparsify.stats import LayerStatistics

log = logging.getLogger("polysparse.sparsify")


def rank_and_world() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_environment() -> bool:
    """Join the process group torchrun describes in the environment; False when not launched that way."""
    if not dist.is_available() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined (%s)", dist.get_rank(), dist.get_world_size(), backend)
    return True


def shard_windows(windows: TokenWindows, rank: int, world: int) -> TokenWindows:
    """This rank's share of the windows."""
    if len(windows) < world:
        raise ConfigError(f"{len(windows)} calibration windows cannot be shared by {world} ranks")
    return TokenWindows(
        windows.input_ids[rank::world],
        windows.attention_mask[rank::world],
        f"{windows.description} (rank {rank} of {world})",
        languages=windows.languages[rank::world] if windows.languages is not None else None,
    )


def all_reduce_statistics(stats: dict[str, LayerStatistics], device: torch.device) -> None:
    """Sum every layer's running sums over all ranks (in a fixed order of layer names)."""
    for name in sorted(stats):
        entry = stats[name]
        count = torch.tensor([entry.ntokens], dtype=torch.float64, device=device)
        dist.all_reduce(count)
        entry.ntokens = int(count.item())
        for field, shape in (("sq_norms", (entry.in_features,)), ("xtx", (entry.in_features,) * 2)):
            wanted = entry.want_norms if field == "sq_norms" else entry.want_hessian
            if not wanted:
                continue
            value = getattr(entry, field)
            if value is None:  # this rank saw no tokens for the layer
                value = torch.zeros(shape, dtype=entry.dtype, device=device)
            value = value.to(device)
            dist.all_reduce(value)
            setattr(entry, field, value)


def broadcast_from_first(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor on every rank (in place)."""
    dist.broadcast(tensor, src=0)
    return tensor


def union_of_names(names: Sequence[str]) -> list[str]:
    """The sorted union of ``names`` over all ranks (each rank may hold only some of them)."""
    if not (dist.is_available() and dist.is_initialized()):
        return sorted(set(names))
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sorted(set(names)))
    return sorted(set().union(*gathered))


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
