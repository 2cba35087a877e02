"""``char_gpt`` in PyTorch: a small pre-LayerNorm GPT (see :mod:`compresslib.core.gpt`).

Input: int64 token ids (batch, T ≤ context); output: logits (batch, T, vocab).
The Keras twin is ``compresslib.keras.gpt``; ``cl.transfer`` maps one to the other.

Example:
    >>> import torch
    >>> m = char_gpt()
    >>> m(torch.zeros(2, 16, dtype=torch.long)).shape
    torch.Size([2, 16, 80])
    >>> sum(p.numel() for p in m.parameters()) == CHAR_GPT.parameters()
    True
"""
from __future__ import annotations

import torch
from torch import nn

from compresslib.core.gpt import CHAR_GPT, LAYER_NORM_EPS, GPTSpec, check_ids
from compresslib.torch.io import register as register_class


@register_class
class Block(nn.Module):
    """One pre-LayerNorm block: x + attention(norm1(x)), then x + fc2(gelu(fc1(norm2(x))))."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.q, self.k, self.v, self.o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.norm2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.fc1, self.fc2 = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.norm1(x)

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        att = nn.functional.scaled_dot_product_attention(
            split(self.q(h)), split(self.k(h)), split(self.v(h)), is_causal=True)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


@register_class
class GPT(nn.Module):
    """Token + position embeddings, ``spec.layers`` blocks, a final LayerNorm, a linear head."""

    def __init__(self, spec: GPTSpec = CHAR_GPT) -> None:
        super().__init__()
        self.context = spec.context  # plain values only: cl.save stores attributes, not objects
        self.tok = nn.Embedding(spec.vocab, spec.d_model)
        self.pos = nn.Embedding(spec.context, spec.d_model)
        self.blocks = nn.ModuleList(Block(spec.d_model, spec.heads) for _ in range(spec.layers))
        self.norm = nn.LayerNorm(spec.d_model, eps=LAYER_NORM_EPS)
        self.head = nn.Linear(spec.d_model, spec.vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        check_ids(tuple(ids.shape), self.context)
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def char_gpt(num_classes: int = CHAR_GPT.vocab) -> GPT:
    """A freshly initialised ``char_gpt`` (``num_classes``: the vocabulary, only 80 accepted)."""
    if num_classes != CHAR_GPT.vocab:
        raise ValueError(f"num_classes must be the vocabulary size {CHAR_GPT.vocab} for char_gpt, "
                         f"got {num_classes!r}")
    model = GPT(CHAR_GPT)
    model.arch_name = CHAR_GPT.name
    return model


__all__ = ["Block", "GPT", "char_gpt"]
