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

from collections.abc import Iterable
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn

from compresslib.core.training import check_data, check_distill, check_teacher_logits, step_lr
from compresslib.progress import progress
from compresslib.torch import inputs


model_device = inputs.model_device


def _to_numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _check_data(data, argument: str = "data") -> tuple[np.ndarray, np.ndarray]:
    return check_data(data, argument, to_numpy=_to_numpy)


def fit(
    model: nn.Module,
    data: Sequence[np.ndarray],
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    weight_decay: float = 0.0,
    progress_bar: Optional[bool] = None,
    on_step: Optional[Callable[[nn.Module, int], None]] = None,
    lr_schedule: str = "constant",
    teacher: Optional[nn.Module | np.ndarray] = None,
    distill_alpha: float = 0.7,
    temperature: float = 4.0,
) -> list[float]:
    """Train ``model`` in place with Adam and cross-entropy; return the mean loss of each epoch.

    ``lr_schedule``: "constant" or "step" (see :func:`compresslib.core.training.step_lr`).

    ``on_step(model, step)`` runs after every optimiser step (used by gradual
    pruning to re-apply masks). Same seed, same data → same weights.

    ``teacher``: knowledge distillation (Hinton et al. 2015) — typically the
    uncompressed model, or its logits on ``x`` as an ``(N, classes)`` array. Its
    logits are computed once (there is no augmentation, so they do not change)
    and the loss becomes :func:`compresslib.core.training.distillation_loss`
    with ``distill_alpha`` and ``temperature``. Fine-tuning a pruned or
    decomposed model against its original recovers more accuracy than labels alone.

    Example:
        >>> import compresslib as cl
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> big = cl.zoo.pretrained("lenet300_100", framework="torch")
        >>> small = cl.prune(big, cl.Structured(0.5))
        >>> losses = fit(small, (x[:512], y[:512]), epochs=1, teacher=big)
        >>> len(losses)
        1
    """
    x, y = _check_data(data)
    if lr_schedule not in ("constant", "step"):
        raise ValueError(f"lr_schedule must be 'constant' or 'step', got {lr_schedule!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = model_device(model)
    soft = None
    if teacher is not None:
        check_distill(distill_alpha, temperature)
        if isinstance(teacher, nn.Module):
            if teacher is model:
                raise ValueError("teacher: must be another model (the uncompressed original), not the model trained")
            t_logits = predict(teacher, x)
        elif isinstance(teacher, (np.ndarray, torch.Tensor)):
            t_logits = _to_numpy(teacher)
        else:
            raise TypeError(f"teacher must be a torch.nn.Module or an array of logits, got {type(teacher).__name__}")
        soft = torch.as_tensor(check_teacher_logits(t_logits, len(x)))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    history, step = [], 0
    model.train()
    for epoch in range(epochs):
        if lr_schedule == "step":
            for group in opt.param_groups:
                group["lr"] = step_lr(lr, epoch, epochs)
        order = torch.as_tensor(rng.permutation(len(x)))
        total, count = 0.0, 0
        batches = range(0, len(x), batch_size)
        for start in progress(batches, progress_bar, desc=f"epoch {epoch + 1}/{epochs}", leave=False):
            idx = order[start:start + batch_size]
            xb, yb = xt[idx].to(device), yt[idx].to(device)
            opt.zero_grad(set_to_none=True)
            out = model(xb)
            loss = loss_fn(out, yb)
            if soft is not None:
                loss = _distill(out, loss, soft[idx].to(device), distill_alpha, temperature)
            loss.backward()
            opt.step()
            step += 1
            if on_step is not None:
                on_step(model, step)
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history.append(total / count)
    model.eval()
    return history


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
