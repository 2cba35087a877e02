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

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from compresslib.core.training import check_data, check_distill, check_teacher_logits, step_lr
from compresslib.progress import progress


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU if it has none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


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


@torch.inference_mode()
def predict(model: nn.Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of ``model`` on ``x`` as a NumPy array (model put in eval mode; runtime models run as they are)."""
    if not isinstance(model, nn.Module) and getattr(model, "__compresslib_runtime__", None):
        return np.asarray(model.predict(np.asarray(x), batch_size=batch_size), dtype=np.float32)
    model.eval()
    device = model_device(model)
    dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
    dtype = dtypes[0] if dtypes else torch.float32
    outs = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(np.asarray(x[start:start + batch_size])).to(device=device, dtype=dtype)
        outs.append(model(xb).float().cpu().numpy())
    return np.concatenate(outs)


def evaluate(model: nn.Module, data: Sequence[np.ndarray], batch_size: int = 500) -> float:
    """Top-1 accuracy (0..1) of ``model`` on ``data = (x, y)``."""
    x, y = _check_data(data)
    return float((predict(model, x, batch_size).argmax(1) == y).mean())
