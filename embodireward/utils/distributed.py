"""Thin helpers over ``torch.distributed``; every helper is a no-op in a single process.

A run launched by ``torchrun`` (``WORLD_SIZE`` > 1) joins the process group in
:func:`process_group`: NCCL when the ranks use GPUs, gloo on CPUs.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, List

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def local_world_size() -> int:
    """Processes torchrun started on this node (1 outside torchrun)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", 1))


def launched_world_size() -> int:
    """Processes torchrun started in all (1 outside torchrun), known before the group exists."""
    return int(os.environ.get("WORLD_SIZE", 1))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place) and return the tensor.

    NCCL reduces GPU tensors only, so there a CPU tensor makes a round trip through this rank's GPU.
    """
    if is_distributed():
        if tensor.device.type == "cpu" and dist.get_backend() == dist.Backend.NCCL:
            tensor.copy_(all_reduce_sum(tensor.cuda()))
        else:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(tensor).div_(world_size())


def all_gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not is_distributed():
        return [obj]
    gathered: List[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, so every rank
    evaluates, and rank 0 saves, the same model."""
    for buffer in module.buffers():
        if buffer.is_floating_point():
            all_reduce_mean(buffer.data)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers to every rank (a common start without DDP)."""
    if is_distributed():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src)


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over ranks, in one all-reduce of the flattened gradients.

    Call after ``backward()`` and before the optimizer step. Parameters without a gradient are
    skipped, so every rank must have gradients for the same parameters.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        flat = all_reduce_mean(torch.cat([g.flatten() for g in grads]))
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()


def data_parallel(module: nn.Module, device: torch.device, **ddp_kwargs: Any) -> nn.Module:
    """``module`` in DistributedDataParallel when distributed (it starts every rank from rank 0's
    weights and averages gradients during ``backward()``), else ``module`` itself."""
    if not is_distributed():
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, **ddp_kwargs)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextmanager
def process_group(device_spec: str) -> Iterator[None]:
    """Join the process group when launched by torchrun with ``WORLD_SIZE`` > 1; leave it on exit.

    A group that already exists (created by the caller) is used as is and left alone.
    """
    joined = launched_world_size() > 1 and not is_distributed()
    if joined:
        use_nccl = device_spec != "cpu" and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    try:
        yield
    finally:
        if joined and is_distributed():
            dist.destroy_process_group()
