"""Weight layers in one canonical layout (PyTorch's), shared by the backends' ``transfer`` modules.

:func:`compresslib.twin.transfer` pairs the layers of a model with those of its twin in the other
framework; each backend lists its layers as :class:`LayerWeights` (``compresslib/<framework>/transfer.py``).

Example:
    >>> import numpy as np
    >>> w = LayerWeights("fc1", "linear", {"weight": np.zeros((10, 4))})
    >>> w.kind, w.arrays["weight"].shape, known_architecture("lenet5"), keras_name_fn("lenet5")("7")
    ('linear', (10, 4), True, 'fc1')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from compresslib.core import architectures

KINDS = ("conv", "linear", "batchnorm", "embedding", "layernorm")


@dataclass
class LayerWeights:
    """One weight layer in PyTorch's layout.

    ``kind``: "conv" (``weight`` O×I/groups×kh×kw, optional ``bias``), "linear" (``weight``
    out×in with inputs in C·H·W order, optional ``bias``), "batchnorm" (``weight``,
    ``bias``, ``running_mean``, ``running_var``), "embedding" (``weight`` rows × width: a
    token or position table) or "layernorm" (``weight``, ``bias``). ``attrs``: ``stride``
    and ``groups`` (conv), ``eps`` (batchnorm, layernorm).
    """

    name: str
    kind: str
    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Factored:
    """A layer that ``decompose`` replaced by factor layers, as one backend holds it.

    ``kind``: "tucker", "svd" or "cp"; ``rank``: Tucker's ``(R1, R2)`` (the k×k core's input and
    output channels), SVD's or CP's ``r``; ``factors``: ``{canonical index: layer name}`` — Tucker
    0 (1×1 in), 1 (k×k core), 2 (1×1 out), a full-rank 1×1 absorbed and absent; SVD 0, 1; CP 0..3.
    Keras names factor ``i`` ``<layer>_<kind><i>``; PyTorch keeps the factors as the children of a
    ``FactoredConv2d``/``FactoredLinear`` in that order.

    Example:
        >>> Factored("svd", 8, {0: "fc1.0", 1: "fc1.1"}).factors[1]
        'fc1.1'
    """

    kind: str
    rank: Any
    factors: dict[int, str]


def resnet8_keras_name(torch_name: str) -> str:
    return (torch_name.replace("shortcut.0", "sc_conv").replace("shortcut.1", "sc_bn")
            .replace("stem.0", "stem_conv").replace("stem.1", "stem_bn").replace(".", "_"))


_MLP = {"1": "fc1", "3": "fc2", "5": "fc3"}
# torch module name -> keras layer name, for the reference models (their names predate the families)
REFERENCE_NAMES: dict[str, Callable[[str], str]] = {
    "lenet300_100": lambda n: _MLP.get(n, n),
    "mlp_wide": lambda n: _MLP.get(n, n),
    "lenet5": lambda n: {"0": "conv1", "3": "conv2", "7": "fc1", "9": "fc2", "11": "fc3"}.get(n, n),
    "resnet8": resnet8_keras_name,
    "lenet5_caffe": lambda n: {"0": "conv1", "2": "conv2", "5": "fc1", "7": "fc2"}.get(n, n),
    "char_gpt": lambda n: n,  # compresslib.core.gpt: the same names in both frameworks
}


def known_architecture(name: Optional[str]) -> bool:
    """True for a reference model name or a family member name."""
    return isinstance(name, str) and (name in REFERENCE_NAMES or architectures.is_family_name(name))


def keras_name_fn(arch_name: Optional[str]) -> Callable[[str], str]:
    """torch module name -> Keras layer name for ``arch_name`` (identity for family members and others)."""
    return REFERENCE_NAMES.get(arch_name or "", lambda n: n)


__all__ = ["KINDS", "Factored", "LayerWeights", "REFERENCE_NAMES", "known_architecture", "keras_name_fn", "resnet8_keras_name"]
