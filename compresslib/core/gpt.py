"""Framework-free description of the small causal language model ``char_gpt`` (both frameworks build it).

A GPT (Radford et al., 2018) in miniature: token and learned position embeddings,
``layers`` pre-LayerNorm blocks (causal multi-head self-attention, then a GELU MLP
four times as wide, each added back to the residual stream), a final LayerNorm and a
linear head to the vocabulary. The attention's query/key/value/output projections are
four separate ``Linear``/``Dense`` layers, so the calibrated quantizers and pruners
(``cl.GPTQ``, ``cl.AWQ``, ``cl.Wanda``, ``cl.SparseGPT``) see every weight matrix.

Layer names are the same in both frameworks: ``tok``, ``pos``, ``blocks.<i>.norm1``,
``blocks.<i>.q`` / ``k`` / ``v`` / ``o``, ``blocks.<i>.norm2``, ``blocks.<i>.fc1`` /
``fc2``, ``norm``, ``head``.

Example:
    >>> CHAR_GPT.d_model, CHAR_GPT.context, CHAR_GPT.parameters()
    (128, 128, 1226832)
"""
from __future__ import annotations

from dataclasses import dataclass

LAYER_NORM_EPS = 1e-5  # PyTorch's default; the Keras twin sets it (Keras's own default is 1e-3)


@dataclass(frozen=True)
class GPTSpec:
    """Sizes of a GPT: vocabulary, context length, width, blocks and heads."""

    vocab: int
    context: int
    d_model: int
    layers: int
    heads: int
    name: str = "gpt"

    def __post_init__(self) -> None:
        for field in ("vocab", "context", "d_model", "layers", "heads"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        if self.d_model % self.heads:
            raise ValueError(f"heads must divide d_model ({self.d_model}), got {self.heads}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def parameters(self) -> int:
        """The number of parameters (weights and biases)."""
        d = self.d_model
        block = 4 * (d * d + d) + (d * 4 * d + 4 * d) + (4 * d * d + d) + 4 * d
        return (self.vocab + self.context) * d + self.layers * block + 2 * d + d * self.vocab + self.vocab


# the vocabulary is that of the shipped Shakespeare corpus (compresslib/data/shakespeare.json)
CHAR_GPT = GPTSpec(vocab=80, context=128, d_model=128, layers=6, heads=4, name="char_gpt")


def check_ids(shape: tuple, context: int) -> None:
    """Refuse token batches that are not (batch, T) with 1 ≤ T ≤ ``context``.

    Example:
        >>> check_ids((2, 200), CHAR_GPT.context)
        Traceback (most recent call last):
        ...
        ValueError: ids must be (batch, T) token ids with 1 <= T <= 128, got shape (2, 200)
    """
    if len(shape) != 2 or not 1 <= shape[1] <= context:
        raise ValueError(f"ids must be (batch, T) token ids with 1 <= T <= {context}, "
                         f"got shape {tuple(shape)}")





def windows(ids, length: int, count: int | None = None, start: int = 0):
    """``count`` consecutive, non-overlapping windows of ``length`` tokens from ``ids[start:]``
    (all that fit when ``count`` is None), as an int64 array (count, length): the fixed
    evaluation slices of the held-out text.

    Example:
        >>> import numpy as np
        >>> windows(np.arange(10), 3, start=1).tolist()
        [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    """
    import numpy as np

    ids = np.asarray(ids)[start:]
    fit = len(ids) // length
    if count is None:
        count = fit
    if not 1 <= count <= fit:
        raise ValueError(f"count must be between 1 and {fit} windows of {length} tokens, got {count!r}")
    return ids[:count * length].reshape(count, length).astype(np.int64)
__all__ = ["CHAR_GPT", "GPTSpec", "LAYER_NORM_EPS", "check_ids", "windows"]
