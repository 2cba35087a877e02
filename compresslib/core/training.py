"""Learning-rate schedule shared by both frameworks' training helpers.

Example:
    >>> [step_lr(1e-3, e, 10) for e in (0, 6, 9)]
    [0.001, 0.0003, 0.0001]
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, Optional

import numpy as np


def step_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Step decay: ``base_lr`` for the first 60 % of epochs, ×0.3 until 85 %, then ×0.1."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    frac = epoch / epochs
    factor = 1.0 if frac < 0.6 else 0.3 if frac < 0.85 else 0.1
    return round(base_lr * factor, 12)


def check_data(data: Any, argument: str = "data",
               to_numpy: Callable[[Any], np.ndarray] = np.asarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``data = (x, y)``: a pair of non-empty arrays of equal length; return them as NumPy.

    Example:
        >>> x, y = check_data((np.zeros((3, 2)), [0, 1, 1]))
        >>> x.shape, y.shape
        ((3, 2), (3,))
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{argument} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = (to_numpy(a) for a in data)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{argument}: x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    return x, y


def check_checkpoint(checkpoint: Any, checkpoint_every: Any) -> Optional[str]:
    """Validate ``fit``'s ``checkpoint`` (a file path or None) and ``checkpoint_every`` (steps, >= 0).

    Returns the path as a string (None without checkpointing). ``checkpoint_every=0`` with a path writes
    the checkpoint only at the end of training (and still resumes from it).

    Example:
        >>> check_checkpoint("run.ckpt", 10), check_checkpoint(None, 0)
        ('run.ckpt', None)
    """
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
            or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be an integer >= 0 (steps), got {checkpoint_every!r}")
    if checkpoint is None:
        if checkpoint_every:
            raise ValueError("checkpoint_every needs checkpoint=<file path> to write to")
        return None
    if not isinstance(checkpoint, (str, os.PathLike)) or not str(checkpoint):
        raise TypeError("checkpoint must be a file path (str or os.PathLike), "
                        f"got {type(checkpoint).__name__}")
    path = os.fspath(checkpoint)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"checkpoint: the folder {parent!r} does not exist")
    return path


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Write ``path`` so that a reader never sees half a file: ``write(tmp)`` then ``os.replace(tmp, path)``.

    A process killed while writing leaves the previous file intact (and a stray ``.tmp`` file, removed
    on the next write), never a truncated checkpoint.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "f.txt")
        >>> atomic_write(p, lambda tmp: open(tmp, "w").write("done"))
        >>> open(p).read()
        'done'
    """
    tmp = f"{path}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def rng_state(rng: np.random.Generator) -> str:
    """A NumPy generator's state as JSON text (stored in checkpoints without pickling).

    Example:
        >>> a = np.random.default_rng(3); _ = a.random(); b = np.random.default_rng(0)
        >>> set_rng_state(b, rng_state(a)); bool(a.random() == b.random())
        True
    """
    return json.dumps(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: str) -> None:
    """Restore a state written by :func:`rng_state` into ``rng`` (same bit generator)."""
    rng.bit_generator.state = json.loads(state)


def check_distill(alpha: float, temperature: float) -> None:
    """Validate the knowledge-distillation settings (see :func:`distillation_loss`)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distill_alpha must be in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def check_teacher_logits(logits: np.ndarray, n: int) -> np.ndarray:
    """Teacher logits must be a finite float array of shape ``(n, classes)`` (one row per training sample)."""
    logits = np.asarray(logits, dtype=np.float32)
    if logits.ndim != 2 or len(logits) != n:
        raise ValueError(f"teacher: expected logits of shape ({n}, classes) (one row per training sample), "
                         f"got {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("teacher: logits contain NaN or infinity")
    return logits


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def distillation_loss(logits: np.ndarray, labels: np.ndarray, teacher_logits: np.ndarray,
                      alpha: float = 0.7, temperature: float = 4.0) -> float:
    """Knowledge-distillation loss (Hinton et al. 2015), the NumPy reference of both frameworks' ``fit``.

    ``(1 - alpha) · CE(logits, labels) + alpha · T² · KL(softmax(teacher/T) ‖ softmax(logits/T))``,
    averaged over the batch. The ``T²`` keeps the soft term's gradients on the scale of the hard one.

    Example:
        >>> z = np.array([[2.0, 0.0, -1.0]]); y = np.array([0])
        >>> round(distillation_loss(z, y, z, alpha=1.0), 6)   # student == teacher: no soft loss
        0.0
        >>> round(distillation_loss(z, y, z, alpha=0.0), 4)   # plain cross-entropy
        0.1698
    """
    check_distill(alpha, temperature)
    logits, teacher_logits = np.asarray(logits, np.float64), np.asarray(teacher_logits, np.float64)
    labels = np.asarray(labels).astype(int)
    ce = -_log_softmax(logits)[np.arange(len(labels)), labels].mean()
    log_p_t = _log_softmax(teacher_logits / temperature)
    kl = (np.exp(log_p_t) * (log_p_t - _log_softmax(logits / temperature))).sum(axis=1).mean()
    return float((1 - alpha) * ce + alpha * temperature ** 2 * kl)
