"""Training and evaluation helpers for PyTorch models.

Example:
    >>> import compresslib as cl
    >>> from compresslib.torch import models, train
    >>> x, y = cl.datasets.load_mnist("test", layout="torch")
    >>> m = models.build("lenet300_100")
    >>> _ = train.fit(m, (x[:256], y[:256]), epochs=1)
    >>> 0.0 <= train.evaluate(m, (x, y)) <= 1.0
    True
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from compresslib.core.training import (atomic_write, check_checkpoint, check_data, check_distill,
                                       check_teacher_logits, rng_state, set_rng_state, step_lr)
from compresslib.progress import progress
from compresslib.torch import distributed as tdist
from compresslib.torch import inputs


model_device = inputs.model_device


def _to_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_data(data, argument: str = "data") -> tuple[np.ndarray, np.ndarray]:
    return check_data(data, argument, to_numpy=_to_numpy)


def fit(
    model: nn.Module,
    data: Any,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
    progress_bar: Optional[bool] = None,
    on_step: Optional[Callable[[nn.Module, int], None] | Sequence[Callable]] = None,
    lr_schedule: str = "constant",
    teacher: Optional[nn.Module | np.ndarray] = None,
    distill_alpha: float = 0.7,
    temperature: float = 4.0,
    checkpoint: Optional[str | os.PathLike] = None,
    checkpoint_every: int = 0,
    distributed: bool | str = False,
) -> list[float]:
    """Train ``model`` in place with Adam and cross-entropy; return the mean loss of each epoch.

    ``data``: ``(x, y)`` arrays held in memory (shuffled every epoch, batches of ``batch_size``), or a
    stream: a ``DataLoader`` or any re-iterable of ``(x, y)`` batches, read once per epoch and never
    held whole (``batch_size`` is then the loader's business). A one-shot generator is accepted for
    ``epochs=1`` only.

    ``lr_schedule``: "constant" or "step" (see :func:`compresslib.core.training.step_lr`).

    ``on_step(model, step)`` (or a list of such hooks) runs after every optimiser step (used by gradual
    pruning to re-apply masks). Same seed, same data → same weights.

    ``teacher``: knowledge distillation (Hinton et al. 2015) — typically the
    uncompressed model, or its logits on ``x`` as an ``(N, classes)`` array. Its
    logits are computed once for ``(x, y)`` (there is no augmentation, so they do not change), batch by
    batch for a stream, and the loss becomes :func:`compresslib.core.training.distillation_loss`
    with ``distill_alpha`` and ``temperature``. Fine-tuning a pruned or
    decomposed model against its original recovers more accuracy than labels alone.

    ``checkpoint``: a file path. Every ``checkpoint_every`` optimiser steps (and at the end) the model,
    the optimiser, the hooks' state (pruning masks, sparsity), the position in the data, the loss so far
    and the RNG states are written there atomically (temporary file, then ``os.replace``) by rank 0 only.
    When the file exists, training resumes from it and ends with the same weights, bit for bit, as an
    uninterrupted run (CPU, same data order: ``(x, y)``, or a loader whose order depends only on torch's
    RNG). It is read with ``torch.load(weights_only=True)``: nothing is unpickled. The checkpoint of a finished
    run makes ``fit`` return its history at once (delete the file to train again).

    ``distributed``: True (or a backend name) under ``torchrun``: the model is wrapped in
    DistributedDataParallel, observers are synchronised and only rank 0 writes (see
    :mod:`compresslib.torch.distributed`). With ``(x, y)``, ``batch_size`` is the global batch: every rank
    draws the same permutation and takes its share of each batch, so the gradient is that of the global
    batch; give a stream a ``DistributedSampler`` (its ``set_epoch`` is called every epoch).

    Example:
        >>> import compresslib as cl
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> big = cl.zoo.pretrained("lenet300_100", framework="torch")
        >>> small = cl.prune(big, cl.Structured(0.5))
        >>> losses = fit(small, (x[:512], y[:512]), epochs=1, teacher=big)
        >>> len(losses)
        1
    """
    streaming = _is_stream(data)
    if not streaming:
        x, y = _check_data(data)
    if lr_schedule not in ("constant", "step"):
        raise ValueError(f"lr_schedule must be 'constant' or 'step', got {lr_schedule!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs}")
    if streaming and epochs > 1 and iter(data) is data:
        raise ValueError("data: a one-shot iterator (e.g. a generator) can be read once, for epochs=1; "
                         "give a re-iterable (a DataLoader, or an object whose __iter__ starts over) "
                         "for more epochs")
    path = check_checkpoint(checkpoint, checkpoint_every)
    hooks = _hooks(on_step)
    rank, world = tdist.setup(distributed, model)
    model = tdist.unwrap(model)
    device = model_device(model)
    soft, live_teacher = None, None
    if teacher is not None:
        check_distill(distill_alpha, temperature)
        if isinstance(teacher, nn.Module):
            if teacher is model:
                raise ValueError("teacher: must be another model (the uncompressed original), not the model trained")
            if streaming:
                live_teacher = teacher.eval()
            else:
                soft = torch.as_tensor(check_teacher_logits(predict(teacher, x), len(x)))
        elif isinstance(teacher, (np.ndarray, torch.Tensor)):
            if streaming:
                raise TypeError("teacher: logits as an array need data=(x, y) (one row per sample); with a "
                                "stream, give the teacher model")
            soft = torch.as_tensor(check_teacher_logits(_to_numpy(teacher), len(x)))
        else:
            raise TypeError(f"teacher must be a torch.nn.Module or an array of logits, got {type(teacher).__name__}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    at = {"epoch": 0, "batch": 0, "step": 0, "history": [], "total": 0.0, "count": 0}
    resume = None
    if path and os.path.exists(path):
        resume = _load_checkpoint(path, model, opt, hooks, world, device)
    if resume is not None:
        at = {k: resume[k] for k in at}
        at["history"] = list(at["history"])
    net = tdist.wrap(model)
    handles = tdist.sync_observers(model) if world > 1 else []
    loss_fn = nn.CrossEntropyLoss()
    if not streaming:
        xt = torch.as_tensor(x, dtype=torch.float32)
        yt = torch.as_tensor(y, dtype=torch.long)
    step, history = at["step"], at["history"]
    model.train()
    try:
        for epoch in range(at["epoch"], epochs):
            if lr_schedule == "step":
                for group in opt.param_groups:
                    group["lr"] = step_lr(lr, epoch, epochs)
            here = resume is not None and epoch == resume["epoch"]
            skip = at["batch"] if here else 0
            total, count = (at["total"], at["count"]) if here else (0.0, 0)
            extra: dict[str, Any] = {}
            if streaming:
                sampler = getattr(data, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(epoch)
                if here:
                    torch.set_rng_state(resume["epoch_torch_rng"])
                extra["epoch_torch_rng"] = torch.get_rng_state()
                batches = _skip(_stream(data, live_teacher), skip)
                if here:
                    torch.set_rng_state(resume["torch_rng"])
            else:
                if here:
                    order = resume["order"]
                    set_rng_state(rng, resume["numpy_rng"])
                else:
                    order = torch.as_tensor(rng.permutation(len(x)))
                extra["order"] = order
                batches = (_share(order[s:s + batch_size], rank, world, xt, yt, soft, f"epoch {epoch + 1}")
                           for s in range(skip * batch_size, len(x), batch_size))
            if rank == 0:
                batches = progress(batches, progress_bar, desc=f"epoch {epoch + 1}/{epochs}", leave=False)
            b = skip
            for xb, yb, sb, share in batches:
                xb, yb = xb.to(device), yb.to(device)
                opt.zero_grad(set_to_none=True)
                out = net(xb)
                loss = loss_fn(out, yb)
                if sb is not None:
                    loss = _distill(out, loss, sb.to(device), distill_alpha, temperature)
                (loss if share == 1.0 else loss * share).backward()
                opt.step()
                step += 1
                b += 1
                for hook in hooks:
                    hook(model, step)
                total += float(loss.detach()) * len(yb)
                count += len(yb)
                if path and checkpoint_every and step % checkpoint_every == 0:
                    _save_checkpoint(path, model, opt, hooks, dict(
                        epoch=epoch, batch=b, step=step, history=history, total=total, count=count,
                        world=world, numpy_rng=rng_state(rng), torch_rng=torch.get_rng_state(), **extra))
            total, count = tdist.all_sum([total, count])
            history.append(total / count)
        if path:
            _save_checkpoint(path, model, opt, hooks, dict(
                epoch=epochs, batch=0, step=step, history=history, total=0.0, count=0, world=world,
                numpy_rng=rng_state(rng), torch_rng=torch.get_rng_state()))
    finally:
        for h in handles:
            h.remove()
    model.eval()
    return history


def _is_stream(data: Any) -> bool:
    """True for an iterable of ``(x, y)`` batches (a DataLoader, a generator); False for ``(x, y)`` arrays."""
    if _is_pair(data):
        return False
    if isinstance(data, (tuple, list)):
        return len(data) != 2 or all(isinstance(b, (tuple, list)) and len(b) == 2 for b in data)
    return isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict, np.ndarray, torch.Tensor))


def _hooks(on_step: Any) -> list:
    if on_step is None:
        return []
    hooks = list(on_step) if isinstance(on_step, (list, tuple)) else [on_step]
    for h in hooks:
        if not callable(h):
            raise TypeError("on_step must be a callable hook(model, step) or a list of them, "
                            f"got {type(h).__name__}")
    return hooks


def _share(idx: torch.Tensor, rank: int, world: int, xt: torch.Tensor, yt: torch.Tensor,
           soft: Optional[torch.Tensor], where: str) -> tuple:
    """This rank's rows of one global batch, and the factor that makes DDP's mean the global batch's mean."""
    if world > 1:
        if len(idx) < world:
            raise ValueError(f"batch_size: a batch of {where} has {len(idx)} rows for {world} processes; "
                             "choose batch_size and the data size so that every batch has a row per process")
        n = len(idx)
        idx = torch.tensor_split(idx, world)[rank]
        share = len(idx) * world / n
    else:
        share = 1.0
    return xt[idx], yt[idx], None if soft is None else soft[idx], share


def _stream(data: Any, teacher: Optional[nn.Module]) -> Iterator[tuple]:
    for xb, yb in labelled_batches(data):
        xb = torch.as_tensor(xb, dtype=torch.float32) if not isinstance(xb, torch.Tensor) else xb
        yb = torch.as_tensor(yb, dtype=torch.long)
        sb = None
        if teacher is not None:
            with torch.no_grad():
                sb = teacher(xb.to(model_device(teacher))).float()
        yield xb, yb, sb, 1.0


def _skip(batches: Iterator, n: int) -> Iterator:
    """``batches`` without its first ``n`` items (read and dropped: how a stream is resumed mid-epoch)."""
    for _ in range(n):
        next(batches, None)
    return batches


def _save_checkpoint(path: str, model: nn.Module, opt: torch.optim.Optimizer, hooks: list, at: dict) -> None:
    if tdist.is_writer():
        state = {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "hooks": [h.state_dict() if hasattr(h, "state_dict") else {} for h in hooks], **at}
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    tdist.barrier()


def _load_checkpoint(path: str, model: nn.Module, opt: torch.optim.Optimizer, hooks: list, world: int,
                     device: torch.device) -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a checkpoint of ours
        raise ValueError(f"checkpoint: {path!r} is not a readable fit checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint: {path!r} was not written by compresslib's torch fit")
    if state["world"] != world:
        raise ValueError(f"checkpoint: {path!r} was written by {state['world']} process(es), this run has "
                         f"{world}; resume with the same number of processes (the data shares depend on it)")
    if len(state["hooks"]) != len(hooks):
        raise ValueError(f"checkpoint: {path!r} holds the state of {len(state['hooks'])} on_step hook(s), "
                         f"this run has {len(hooks)}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise ValueError(f"checkpoint: {path!r} holds another model's weights ({str(exc)[:300]})") from None
    opt.load_state_dict(state["optimizer"])
    for h, s in zip(hooks, state["hooks"]):
        if hasattr(h, "load_state_dict"):
            h.load_state_dict(s)
    for key in ("torch_rng", "epoch_torch_rng"):
        if key in state:
            state[key] = state[key].cpu()
    return state


CHECKPOINT_FORMAT = "compresslib-torch-fit-1"


def _distill(out: torch.Tensor, hard: torch.Tensor, teacher: torch.Tensor, alpha: float, t: float) -> torch.Tensor:
    """(1 - alpha)·CE + alpha·T²·KL(teacher ‖ student), as in ``core.training.distillation_loss``."""
    kl = nn.functional.kl_div(torch.log_softmax(out / t, 1), torch.log_softmax(teacher / t, 1),
                              reduction="batchmean", log_target=True)
    return (1 - alpha) * hard + alpha * t * t * kl


def _is_pair(data: Any) -> bool:
    """``(x, y)`` with ``x`` one batched example (array, tensor, dict or tuple of them) and ``y`` the labels."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        return False
    labels = data[1]
    labels_ok = isinstance(labels, (np.ndarray, torch.Tensor)) or (
        isinstance(labels, list) and (not labels or isinstance(labels[0], (int, float, np.integer))))
    return labels_ok and inputs.is_batched_example(data[0])


def labelled_batches(data: Any, batch_size: int = 500, argument: str = "data") -> Iterator[tuple[Any, np.ndarray]]:
    """``(inputs, labels)`` batches of ``data``: a pair ``(x, y)`` sliced into batches, or an iterable of pairs."""
    if _is_pair(data):
        x, y = data
        y = _to_numpy(y)
        n = inputs.leading_size(x)
        if n != len(y) or n == 0:
            raise ValueError(f"{argument}: x and y must be non-empty and of equal length, got {n} and {len(y)}")
        for start in range(0, n, batch_size):
            yield inputs.take(x, start, start + batch_size), y[start:start + batch_size]
        return
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise ValueError(f"{argument} must be a pair (x, y) or an iterable of (x, y) batches (e.g. a DataLoader), "
                         f"got {type(data).__name__}")
    seen = False
    for item in data:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ValueError(f"{argument}: every batch must be a pair (x, y), got {type(item).__name__}")
        seen = True
        yield item[0], _to_numpy(item[1])
    if not seen:
        raise ValueError(f"{argument} is empty")


def first_inputs(data: Any, batch_size: int, model: Optional[nn.Module] = None) -> Any:
    """The inputs of the first ``batch_size`` rows of ``data`` (or of its first batch)."""
    x, _ = next(labelled_batches(data, batch_size))
    return x


def recalibrate_batchnorm(model: nn.Module, x: Any, batch_size: int = 256) -> int:
    """Re-estimate every BatchNorm's running mean and variance from ``x``, in place; return how many.

    After structured pruning or a low-rank step the layers feeding a BatchNorm compute something else, and
    its running statistics, measured on the original, no longer fit: the Fashion-MNIST ResNet-20 at
    ``Structured(0.25)`` falls from 94.7 % to 25 % on 1,000 test images, and re-estimating the statistics
    on 2,048 training images (no gradient step, labels not needed) brings it back to 73.8 % (measured in
    this project). Each BatchNorm's statistics become the plain average over all batches of ``x``
    (``momentum=None``); weights and biases do not change; the model is left in eval mode.

    Example:
        >>> import torch
        >>> m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
        >>> recalibrate_batchnorm(m, torch.randn(64, 3) + 5)
        1
        >>> bool(m[1].running_mean.abs().sum() > 0), m.training
        (True, False)
    """
    layers = [m for m in model.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not layers:
        return 0
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    saved = [m.momentum for m in layers]
    device = model_device(model)
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    model.train()
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                batch = torch.as_tensor(np.asarray(x[start:start + batch_size]), dtype=torch.float32)
                model(batch.to(device))
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum
        model.eval()
    return len(layers)


@torch.inference_mode()
def predict(model: nn.Module, x: Any, batch_size: int = 500) -> np.ndarray:
    """Logits of ``model`` on ``x`` as a NumPy array (model put in eval mode; runtime models run as they are).

    ``x``: an array or tensor, or a dict/tuple of them sharing the batch dimension; the
    logits are the first tensor of whatever the model returns (``ModelOutput``, tuple, …).
    """
    if not isinstance(model, nn.Module) and getattr(model, "__compresslib_runtime__", None):
        return np.asarray(model.predict(np.asarray(x), batch_size=batch_size), dtype=np.float32)
    model.eval()
    outs = [inputs.logits(inputs.call(model, inputs.take(x, s, s + batch_size))).float().cpu().numpy()
            for s in range(0, inputs.leading_size(x), batch_size)]
    return np.concatenate(outs)


@torch.inference_mode()
def evaluate(model: nn.Module, data: Any, batch_size: int = 500, per_sample: bool = False) -> float | np.ndarray:
    """Top-1 accuracy (0..1) of ``model`` on ``data``: ``(x, y)`` or an iterable of ``(x, y)`` batches.

    ``per_sample=True`` returns the boolean correctness of every sample instead (what the paired test of
    :mod:`compresslib.core.stats` compares between two models).
    """
    runtime = not isinstance(model, nn.Module) and getattr(model, "__compresslib_runtime__", None)
    if not runtime:
        model.eval()
    hits = []
    for xb, yb in labelled_batches(data, batch_size):
        if runtime:
            pred = predict(model, xb, batch_size).argmax(-1)
        else:
            pred = inputs.logits(inputs.call(model, xb)).argmax(-1).cpu().numpy()
        hits.append(pred.reshape(-1) == yb.reshape(-1))
    correct = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    return correct if per_sample else int(correct.sum()) / int(correct.size)
