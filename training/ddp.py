"""Process-group setup of distributed training runs.

``torchrun`` (``torch.distributed.run``, started by :mod:`training.launch`) starts one process
per GPU, or ``nproc`` CPU processes, on one or several nodes; every process then calls
:func:`init_distributed`, which reads the standard environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``) and joins the group with NCCL on GPUs and Gloo on CPUs. A single process on a
single node runs in-process, with no group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        """True on the process that logs, checkpoints and registers."""
        return self.rank == 0


def pick_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """``cuda:<local_rank>`` when a GPU is there (or asked for), else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but no GPU is available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(device)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by the torchrun environment, if there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    target = pick_device(device, local_rank)
    backend = None
    if world > 1:
        backend = "nccl" if target.type == "cuda" else "gloo"
        if target.type == "cuda":
            torch.cuda.set_device(target)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local_rank, target, backend)


def cleanup() -> None:
    """Leave the process group (no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks in place (identity without a group)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier() -> None:
    """Wait for every rank (no-op without a group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
