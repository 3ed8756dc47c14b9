"""Multi-GPU through ``torchrun``: process-group set-up from the environment, rank helpers."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment variables ((0, 0, 1) otherwise)."""
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))


def init(device_type: str) -> tuple[int, int, int]:
    """Join the process group when launched by torchrun with more than one process (env:// init)."""
    rank, local_rank, size = world()
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method="env://")
    return rank, local_rank, size


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def mean(value: float, device: torch.device) -> float:
    """The mean of a scalar over all processes (the value itself without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return float(value)
    t = torch.tensor([float(value)], device=device)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
