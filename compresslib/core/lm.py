"""Language-model quality, framework-free: the negative log-likelihood of next tokens and perplexity.

A causal LM maps tokens ``(batch, length)`` to logits ``(batch, length, vocab)``; position ``t``
predicts token ``t + 1``. Perplexity is ``exp`` of the mean negative log-likelihood over all
predicted tokens (``length - 1`` per sequence), computed in float64 with a stable log-softmax.

Example:
    >>> import numpy as np
    >>> tokens = np.array([[0, 1, 2, 3]])
    >>> uniform = np.zeros((1, 4, 10))                  # every token equally likely: perplexity = vocab
    >>> round(perplexity_of([nll_sum(uniform, tokens)]), 6)
    10.0
"""
from __future__ import annotations

from typing import Iterable

import numpy as np


def check_tokens(tokens: object, argument: str = "tokens") -> np.ndarray:
    """``tokens`` as an int64 array ``(batch, length)`` with ``length >= 2``; ``ValueError`` naming ``argument``."""
    try:
        arr = np.asarray(tokens)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argument} must be an integer array (batch, length), got {type(tokens).__name__}") from exc
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{argument} must be a non-empty integer array (batch, length >= 2), got "
                         f"{arr.dtype} {arr.shape}")
    if arr.min() < 0:
        raise ValueError(f"{argument} must hold token ids >= 0, got {int(arr.min())}")
    return arr.astype(np.int64)


def nll_sum(logits: np.ndarray, tokens: np.ndarray) -> tuple[float, int]:
    """``(sum of -log p(token_{t+1} | ..t), count)`` for one batch of logits ``(batch, length, vocab)``."""
    logits = np.asarray(logits, dtype=np.float64)
    tokens = np.asarray(tokens)
    if logits.ndim != 3 or logits.shape[:2] != tokens.shape:
        raise ValueError(f"the model must return logits (batch, length, vocab) for tokens {tokens.shape}, "
                         f"got {logits.shape}")
    if tokens.max() >= logits.shape[-1]:
        raise ValueError(f"tokens: id {int(tokens.max())} is outside the model's vocabulary of {logits.shape[-1]}")
    pred, target = logits[:, :-1], tokens[:, 1:]
    top = pred.max(-1, keepdims=True)
    log_z = np.log(np.exp(pred - top).sum(-1)) + top[..., 0]
    picked = np.take_along_axis(pred, target[..., None], -1)[..., 0]
    return float((log_z - picked).sum()), int(target.size)


def perplexity_of(parts: Iterable[tuple[float, int]]) -> float:
    """``exp(total NLL / total count)`` over batches' :func:`nll_sum` results."""
    total, count = 0.0, 0
    for s, n in parts:
        total, count = total + s, count + n
    if count == 0:
        raise ValueError("no tokens to predict")
    return float(np.exp(total / count))


__all__ = ["check_tokens", "nll_sum", "perplexity_of"]
