"""Compression-aware training on several processes: ``torch.distributed`` (DDP, launched by ``torchrun``).

What must agree on every rank, and how it is kept so:

* **weights**: DistributedDataParallel averages the gradients, so every rank takes the same step;
* **QAT observers**: every rank sees another shard of the batch, so each ``torch.ao`` observer's
  ``min_val``/``max_val`` are all-reduced (MIN/MAX) right after it runs, before its fake-quantizer turns
  them into a scale (:func:`sync_observers`). A moving average is monotone in the batch minimum, so the
  synchronised statistic is exactly the one a single process sees on the whole global batch;
* **pruning masks**: ``compresslib.torch.pruning.GradualPruning`` recomputes them at the same step
  on every rank (the step counter is shared) and broadcasts rank 0's masks (``broadcast``), so a tie
  in magnitudes cannot split the ranks;
* **files**: only rank 0 writes (``is_writer``); every rank reads a checkpoint to resume.

BatchNorm: on CUDA, ``torch.nn.SyncBatchNorm`` is the exact answer (convert the model with
``torch.nn.SyncBatchNorm.convert_sync_batchnorm`` before ``fit``); torch's SyncBatchNorm refuses CPU
tensors, so on CPU (gloo) DDP's default ``broadcast_buffers=True`` copies rank 0's running statistics to
every rank at each forward: identical on every rank, estimated from rank 0's shard. FSDP shards the
parameters, which every compression hook reads whole: :func:`setup` refuses an FSDP model by name.

Example (each process of ``torchrun --nproc-per-node 2 train.py``)::

    >>> from compresslib.torch import train                                       # doctest: +SKIP
    >>> train.fit(model, loader, epochs=2, distributed=True)                       # doctest: +SKIP

In your own DDP loop: ``handles = sync_observers(model)`` after wrapping, ``hook(model, step)`` after each
optimiser step as usual; ``for h in handles: h.remove()`` before evaluating on one rank only.

    >>> world()
    (0, 1)
"""
from __future__ import annotations

import os
from typing import Any, Iterable

import torch
from torch import nn
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_writer() -> bool:
    """True in the one process that writes files (rank 0, or the only process)."""
    return world()[0] == 0


def _is_fsdp(model: nn.Module) -> bool:
    return any(type(m).__name__ in ("FullyShardedDataParallel", "FSDPModule") or
               type(m).__name__.startswith("FSDP") for m in model.modules())


def setup(distributed: Any, model: nn.Module) -> tuple[int, int]:
    """Check ``distributed`` and make sure a process group exists; return ``(rank, world size)``.

    ``distributed``: False (one process), True (the default backend: ``nccl`` for a CUDA model, else
    ``gloo``) or a backend name. Without a process group, one is started from the environment ``torchrun``
    sets (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).
    """
    if distributed is False or distributed is None:
        return 0, 1
    if not (distributed is True or distributed in ("gloo", "nccl")):
        raise ValueError(f"distributed must be True, False, 'gloo' or 'nccl', got {distributed!r}")
    if _is_fsdp(model):
        raise TypeError("model: FSDP (FullyShardedDataParallel) shards the parameters, and masks, observers "
                        "and centroids need whole tensors; compresslib's fit supports DDP only: pass the plain "
                        "module (or gather it with FSDP's full state dict, compress, then shard again)")
    if not dist.is_available():
        raise RuntimeError("distributed: this torch build has no torch.distributed")
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise ValueError("distributed=True needs a process group: launch with `torchrun "
                             "--nproc-per-node N script.py` or call torch.distributed.init_process_group first")
        cuda = next((p.is_cuda for p in model.parameters()), False)
        backend = distributed if isinstance(distributed, str) else ("nccl" if cuda else "gloo")
        dist.init_process_group(backend)
    return world()


def sync_observers(model: nn.Module) -> list:
    """Keep every ``torch.ao`` observer of ``model`` identical on all ranks; return the hook handles.

    After an observer runs in training mode, its ``min_val`` is all-reduced with MIN and its ``max_val``
    with MAX, before its fake-quantizer computes the scale: every rank then quantizes with the scale of the
    whole global batch. Call it on every rank (the all-reduces must match); remove the handles before
    running the model on one rank only.
    """
    from torch.ao.quantization.observer import ObserverBase

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        if not module.training or world()[1] == 1:
            return
        for name, op in (("min_val", dist.ReduceOp.MIN), ("max_val", dist.ReduceOp.MAX)):
            t = getattr(module, name, None)
            if isinstance(t, torch.Tensor) and t.numel():
                dist.all_reduce(t, op=op)

    return [m.register_forward_hook(hook) for m in model.modules()
            if isinstance(m, ObserverBase) and hasattr(m, "min_val")]


def broadcast(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Copy rank ``src``'s tensors into every rank's (in place; nothing happens in one process)."""
    if world()[1] == 1:
        return
    for t in tensors:
        dist.broadcast(t, src)


def all_sum(values: list[float]) -> list[float]:
    """The sum over all ranks of each number (the numbers themselves in one process)."""
    if world()[1] == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    """Wait for every rank (nothing in one process)."""
    if world()[1] > 1:
        dist.barrier()


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` wrapper (the model itself otherwise)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def wrap(model: nn.Module) -> nn.Module:
    """``model`` in DistributedDataParallel (rank 0's weights broadcast to all ranks).

    Nothing to wrap in one process. Observers are synchronised by ``fit`` (:func:`sync_observers`).
    """
    if world()[1] == 1:
        return model
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


__all__ = ["world", "is_writer", "setup", "sync_observers", "broadcast", "all_sum", "barrier", "unwrap",
           "wrap"]
