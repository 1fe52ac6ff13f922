"""Training on several processes or machines, with PyTorch's own engine (torch.distributed + DDP).

`torchrun` starts one copy of the program per process and tells each copy who it is through
environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...):

    torchrun --standalone --nproc_per_node=2 -m gptviz train --preset gpt --global-batch 32

    if distributed.launched():
        device = distributed.init("auto")     # joins the process group: gloo on CPU, nccl on GPUs
    ...                                       # the Trainer sees the group and wraps its model in DDP
    distributed.cleanup()

Every copy builds the same model and trains it on its own random batches; after each step's
backward pass DDP averages the gradients of all copies, so every copy makes the same update and
the weights stay identical. Nothing here is imported or started by a single-process run: the
functions reach torch.distributed only when called.
"""

from __future__ import annotations

import hashlib
import os
import sys

import torch

from .errors import ConfigError


def launched() -> bool:
    """True when started by torchrun (or any launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    """True when a process group is set up in this process (after init())."""
    dist = sys.modules.get("torch.distributed")  # never import it just to ask
    return dist is not None and dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's number, 0 .. world_size() - 1 (0 in a single-process run)."""
    if active():
        import torch.distributed as dist

        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    """How many processes train together (1 in a single-process run)."""
    if active():
        import torch.distributed as dist

        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    """This process's number on its own machine: which GPU it uses."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0 logs, evaluates and writes the checkpoint; every other rank only trains."""
    return rank() == 0


def training_device(name: str = "auto") -> torch.device:
    """The device of this rank: its own GPU (by LOCAL_RANK) when there are GPUs, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but this machine has no CUDA GPU.")
        n = torch.cuda.device_count()
        if local_rank() >= n:
            raise ConfigError(f"This machine has {n} GPU(s) but torchrun started process {local_rank()} "
                              f"on it: use --nproc_per_node={n} or fewer.")
        return torch.device("cuda", local_rank())
    if device.type != "cpu":
        raise ConfigError(f"Training on several processes works on CPUs (gloo) and CUDA GPUs (nccl), "
                          f"not on {device.type!r}.")
    return device


def init(device: str = "auto") -> torch.device:
    """Join the process group torchrun prepared; returns this rank's device."""
    import torch.distributed as dist

    dev = training_device(device)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl", device_id=dev)
        else:
            dist.init_process_group(backend="gloo")
    return dev


def barrier():
    if active():
        import torch.distributed as dist

        dist.barrier()


def cleanup():
    """Leave the process group (safe to call when there is none)."""
    if active():
        import torch.distributed as dist

        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """The sum over all ranks of a few numbers (one small collective)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def check_same(what: str, data: bytes):
    """Raise ConfigError on every rank unless all ranks hold the same `data` (e.g. the tokenized text).

    On several machines each one reads its own copy of the corpus; a different file there would
    otherwise train silently on a mix of two texts.
    """
    if not active():
        return
    import torch.distributed as dist

    digest = hashlib.sha256(data).hexdigest()
    digests: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, digest)
    differ = [r for r, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise ConfigError(f"The processes do not have the same {what}: rank(s) {', '.join(map(str, differ))} "
                          "differ from rank 0. Give every machine the same corpus file and options.")
