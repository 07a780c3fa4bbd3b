"""Data-parallel training with PyTorch's own DistributedDataParallel under ``torchrun`` (issue 11).

``torchrun --nproc_per_node N -m loihic train ...`` starts N copies of ``loihic train``; each finds
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment and joins one process group (gloo on CPU, NCCL when
training on CUDA).  Every rank builds the same seeded model and the same seeded batch order; each step's
global batch (``--batch-size``, unchanged) is cut into ``WORLD_SIZE`` consecutive slices, rank r trains on
slice r, and DDP averages the gradients, so each step's update is the one-process update of the whole batch
(exactly so when the slices are equal, up to float summation order).  Only rank 0 prints progress and writes
the checkpoint.  Without torchrun (``WORLD_SIZE`` unset or 1) nothing changes: the model is not wrapped, the
batches are not cut, and the weights are bit for bit those of a plain run.

What a second rank changes beyond summation order: dropout masks, the injected noise of noise training and
STDB's Poisson input spikes are drawn per rank from the same seeds, so those runs are statistically, not
numerically, equal to one process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from loihic.compiler.errors import InputError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, idx: torch.Tensor) -> torch.Tensor:
        """Rank r's consecutive slice of a global batch's indices (all of them in one process)."""
        if self.size == 1:
            return idx
        return torch.tensor_split(idx, self.size)[self.rank]

    def wrap(self, module: nn.Module, forward: Callable[..., Any] | None = None) -> Callable[..., Any]:
        """``module`` (or ``forward``, a function computing with ``module``'s parameters) as DDP, whose
        backward pass averages the gradients over the ranks; unchanged in one process."""
        if self.size == 1:
            return forward or module
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(_Call(module, forward) if forward is not None else module)

    def total(self, value: float) -> float:
        """``value`` summed over the ranks (epoch losses and counts for the log)."""
        if self.size == 1:
            return value
        t = torch.tensor([float(value)], dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return float(t.item())


class _Call(nn.Module):
    """A module whose forward is ``fn`` (a training loop's functional forward over ``net``'s stages), so that
    DDP sees ``net``'s parameters and the forward that uses them."""

    def __init__(self, net: nn.Module, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.net = net
        self._fn = fn

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(*args, **kwargs)


_WORLD: World | None = None


def world(device: str | None = None) -> World:
    """This process's place in a torchrun job (joining the process group on first call), or a world of one."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        raise InputError("WORLD_SIZE / RANK: expected integers (as torchrun sets them)") from None
    if size <= 1:
        _WORLD = World()
        return _WORLD
    import torch.distributed as dist

    cuda = device is not None and str(device).startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    _WORLD = World(rank=rank, size=size)
    return _WORLD


def finish() -> None:
    """Leave the process group (at the end of ``loihic train``)."""
    import torch.distributed as dist

    if _WORLD is not None and _WORLD.size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
