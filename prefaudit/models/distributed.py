"""The process group under ``torchrun`` / ``accelerate launch``: this process's rank, the
number of processes, and the collectives the reference pass and the trainer share.

Launched alone (no ``WORLD_SIZE`` above 1), nothing here imports torch.
"""

from __future__ import annotations

import os


class ProcessGroup:
    """The torch.distributed process group this process belongs to (torchrun, accelerate)."""

    def __init__(self, dist):
        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def broadcast(self, value):
        box = [value]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value) -> list:
        out = [None] * self.world
        self.dist.all_gather_object(out, value)
        return out


def launched() -> tuple[int, int]:
    """(rank, world size) as the launcher set them in the environment, read without torch
    and without joining the process group: (0, 1) when launched alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def process_group() -> ProcessGroup | None:
    """The process group when launched with several processes (initialised here if the
    launcher set the environment but nobody called ``init_process_group``), else None."""
    if launched()[1] <= 1:
        return None
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return None
    if not dist.is_initialized():
        # CPU tensors (metric sums, gathered objects) over gloo, CUDA tensors over NCCL: an
        # NCCL-only group refuses CPU tensors.
        dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    return ProcessGroup(dist) if dist.get_world_size() > 1 else None


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) when launched alone; under torchrun /
    accelerate launch the process group is set up."""
    group = process_group()
    return (group.rank, group.world) if group is not None else (0, 1)


def barrier(world: int) -> None:
    """Wait for every process (nothing to wait for when alone)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
