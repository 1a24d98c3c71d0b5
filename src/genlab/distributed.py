"""All rank logic lives here: torchrun environment, rank queries, rank-0 printing, barriers.

genlab never implements its own communication: it uses torch.distributed (NCCL on GPUs,
Gloo on CPUs) as launched by ``torchrun --nproc_per_node=N -m genlab train ...``.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from genlab.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        atexit.register(_destroy_process_group)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _destroy_process_group() -> None:
    """Tear down the group genlab created while the interpreter is still whole.

    Left to exit-time destructors, gloo's worker threads can outlive the interpreter and abort the
    process ("terminate called without an active exception", SIGABRT): before this, 3 of 4 runs of
    our test suite had one such abort among their two-process runs. PyTorch asks for
    destroy_process_group() before exit (its issue #190489).
    """
    if dist.is_initialized():
        dist.destroy_process_group()


def resolve_device(name: str) -> torch.device:
    """ "auto" picks this process's GPU (LOCAL_RANK under torchrun) when CUDA is available."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"train.device={name!r} needs CUDA GPU {device.index}, but this machine has "
            f"{torch.cuda.device_count()} CUDA GPUs; use auto or cpu"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"train.device={name!r}, but this machine has no MPS device; use auto or cpu")
    return device


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def print0(*args, **kwargs) -> None:
    if is_main():
        print(*args, **kwargs)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (e.g. the run folder rank 0 created)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks, on every rank (e.g. a moving average's update, so that every
    rank keeps the same state and a checkpoint of rank 0 resumes all of them)."""
    if not dist.is_initialized():
        return value
    tensor = torch.tensor([float(value)], dtype=torch.float64, device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop signal)."""
    if not dist.is_initialized():
        return flag
    tensor = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())
