"""Low-rank decomposition of PyTorch models: SVD for ``nn.Linear``, Tucker-2 and CP for ``nn.Conv2d``.

Each chosen layer is replaced by a :class:`~compresslib.torch.layers.FactoredLinear` or
:class:`~compresslib.torch.layers.FactoredConv2d`: a subclass of the original layer type
that keeps its attributes (``in_features``, ``stride``, ``padding``, …; ``.weight`` is the
product of the factors) so a model's own code that reads them still runs, and that holds
the factors as ordinary child layers, so the result trains, saves
(``compresslib.save``), quantizes and exports like any model:

* ``SVD``: ``Linear(n→m)`` becomes ``Linear(n→r, bias=False)`` → ``Linear(r→m)``;
* ``Tucker``: ``Conv2d(C_in→C_out, k×k)`` becomes ``1×1 (C_in→R1)`` → ``k×k (R1→R2)`` → ``1×1 (R2→C_out)``
  (a mode at full rank, ``R1 = C_in`` or ``R2 = C_out``, has no 1×1 layer: Tucker-1);
* ``CP``: ``1×1 (C_in→R)`` → depthwise ``kh×1`` → depthwise ``1×kw`` → ``1×1 (R→C_out)``.

The factors come from ``compresslib.core.lowrank`` (NumPy SVD; TensorLy's
``partial_tucker`` and ``parafac``), which also holds the rule that refuses a
rank that would not make the layer smaller. Refused or unsupported layers are
left as they are and named in one warning. TensorLy-Torch (``tltorch``) offers
``FactorizedConv``/``FactorizedLinear`` modules instead; compresslib keeps the factors
as plain ``nn`` layers so the rest of the toolchain sees nothing new. The one exception:
the 1×1 factors are ``compresslib.torch.layers.PointwiseConv2d``, an
``nn.Conv2d`` subclass that runs as ``torch.bmm`` at CPU inference, because
oneDNN's NCHW 1×1 convolutions with few channels cost more in layout reorders
than in arithmetic (measured there).

Example:
    >>> import torch, compresslib as cl
    >>> from compresslib.torch.models import build
    >>> m = build("mlp_wide")
    >>> d = cl.decompose(m, cl.SVD(rank=64), layers=["1", "3"])
    >>> d[3]
    FactoredLinear(
      in_features=1024, out_features=1024, rank=64
      (0): Linear(in_features=1024, out_features=64, bias=False)
      (1): Linear(in_features=64, out_features=1024, bias=True)
    )
    >>> sum(p.numel() for p in d.parameters()) < sum(p.numel() for p in m.parameters())
    True
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from compresslib.configs import CP, SVD, LowRankConfig, Tucker, check_config
from compresslib.core import lowrank as core
from compresslib.registry import register
from compresslib.torch.layers import FactoredConv2d, FactoredLinear, PointwiseConv2d

LayerFilter = Union[None, str, Sequence[str], Callable[[str, nn.Module], bool]]


def _target_type(config: LowRankConfig) -> type:
    return nn.Linear if isinstance(config, SVD) else nn.Conv2d


def _unsupported(module: nn.Module, config: LowRankConfig) -> str:
    """Why ``module`` cannot be factored by ``config`` ('' if it can)."""
    want = _target_type(config)
    if type(module) is not want:
        return f"{type(module).__name__} is not a {want.__name__} ({type(config).__name__} factors {want.__name__} layers)"
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            return f"grouped convolution (groups={module.groups})"
        if isinstance(config, CP) and module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r} (CP needs zeros)"
    return ""


def select(model: nn.Module, config: LowRankConfig, layers: LayerFilter = None) -> tuple[list[str], dict[str, str]]:
    """Names of the layers ``config`` would factor, and ``{name: reason}`` for those it must skip.

    ``layers``: None (every Linear for SVD, every Conv2d for Tucker/CP), a name,
    a list of names (as in ``model.named_modules()``), or ``fn(name, module) -> bool``.
    """
    modules = {n: m for n, m in model.named_modules() if n}
    return core.select_layers(modules, config, layers, lambda m: type(m) is _target_type(config),
                              lambda m: _unsupported(m, config))


def _weight(module: nn.Module) -> np.ndarray:
    return module.weight.detach().cpu().double().numpy()


def plan(model: nn.Module, config: LowRankConfig, layers: LayerFilter = None) -> dict[str, core.Plan]:
    """What :func:`decompose` would do to each selected layer: ranks, weights before/after, accepted.

    Raises ``ValueError`` when a rank is invalid for a layer named explicitly in
    ``layers``; for layers chosen automatically an invalid rank becomes a refused plan.

    Example:
        >>> from compresslib.torch.models import build
        >>> p = plan(build("mlp_wide"), SVD(rank=64))
        >>> {n: (q.params_after, q.accepted) for n, q in p.items()}
        {'1': (115712, True), '3': (131072, True), '5': (10240, False)}
    """
    check_config(config, LowRankConfig)
    names, _ = select(model, config, layers)
    return core.plan_layers(config, {n: _weight(model.get_submodule(n)) for n in names},
                            explicit=layers is not None and not callable(layers))


def _to(module: nn.Module, like: torch.Tensor) -> nn.Module:
    return module.to(device=like.device, dtype=like.dtype)


def _tensor(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=like.dtype, device=like.device)


def factor_svd(layer: nn.Linear, rank: int) -> FactoredLinear:
    """``Linear(n→m)`` as ``Linear(n→r, bias=False)`` → ``Linear(r→m)`` from the truncated SVD."""
    w = layer.weight.detach()
    a, b = core.svd_factors(w.cpu().double().numpy(), rank)
    first = _to(nn.Linear(layer.in_features, rank, bias=False), w)
    last = _to(nn.Linear(rank, layer.out_features, bias=layer.bias is not None), w)
    with torch.no_grad():
        first.weight.copy_(_tensor(b, w))
        last.weight.copy_(_tensor(a, w))
        if layer.bias is not None:
            last.bias.copy_(layer.bias.detach())
    return FactoredLinear(first, last)


def factor_tucker(layer: nn.Conv2d, ranks: tuple[int, int]) -> FactoredConv2d:
    """``Conv2d`` as 1×1 (C_in→R1) → k×k (R1→R2, the original stride/padding/dilation) → 1×1 (R2→C_out).

    A full-rank mode (``R1 = C_in`` or ``R2 = C_out``) gets no 1×1 layer: its
    factor is absorbed into the k×k core (:func:`compresslib.core.lowrank.absorb_full_modes`).
    """
    w = layer.weight.detach()
    first_w, core_w, last_w = core.absorb_full_modes(*core.tucker2(w.cpu().double().numpy(), ranks))
    c_mid_out, c_mid_in = core_w.shape[:2]
    has_bias = layer.bias is not None
    parts: list[nn.Module] = []
    if first_w is not None:
        parts.append(_to(PointwiseConv2d(layer.in_channels, c_mid_in, bias=False), w))
    middle = _to(nn.Conv2d(c_mid_in, c_mid_out, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                           dilation=layer.dilation, bias=has_bias and last_w is None,
                           padding_mode=layer.padding_mode), w)
    parts.append(middle)
    if last_w is not None:
        parts.append(_to(PointwiseConv2d(c_mid_out, layer.out_channels, bias=has_bias), w))
    with torch.no_grad():
        if first_w is not None:
            parts[0].weight.copy_(_tensor(first_w[:, :, None, None], w))
        middle.weight.copy_(_tensor(core_w, w))
        if last_w is not None:
            parts[-1].weight.copy_(_tensor(last_w[:, :, None, None], w))
        if has_bias:
            parts[-1].bias.copy_(layer.bias.detach())
    return FactoredConv2d(layer, parts, "tucker", has_first=first_w is not None, has_last=last_w is not None)


def factor_cp(layer: nn.Conv2d, rank: int) -> FactoredConv2d:
    """``Conv2d`` as 1×1 (C_in→R) → depthwise kh×1 → depthwise 1×kw → 1×1 (R→C_out) (Lebedev et al. 2015)."""
    w = layer.weight.detach()
    first_w, vert, horiz, last_w = core.cp(w.cpu().double().numpy(), rank)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    pad = layer.padding
    pad_v, pad_h = (pad, pad) if isinstance(pad, str) else ((pad[0], 0), (0, pad[1]))
    first = _to(PointwiseConv2d(layer.in_channels, rank, bias=False), w)
    vertical = _to(nn.Conv2d(rank, rank, (kh, 1), stride=(sh, 1), padding=pad_v, dilation=(dh, 1),
                             groups=rank, bias=False), w)
    horizontal = _to(nn.Conv2d(rank, rank, (1, kw), stride=(1, sw), padding=pad_h, dilation=(1, dw),
                               groups=rank, bias=False), w)
    last = _to(PointwiseConv2d(rank, layer.out_channels, bias=layer.bias is not None), w)
    with torch.no_grad():
        first.weight.copy_(_tensor(first_w[:, :, None, None], w))
        vertical.weight.copy_(_tensor(vert[:, None, :, None], w))
        horizontal.weight.copy_(_tensor(horiz[:, None, None, :], w))
        last.weight.copy_(_tensor(last_w[:, :, None, None], w))
        if layer.bias is not None:
            last.bias.copy_(layer.bias.detach())
    return FactoredConv2d(layer, [first, vertical, horizontal, last], "cp")


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


@register("decompose", "torch", SVD, Tucker, CP)
def decompose(model: nn.Module, config: LowRankConfig, *, layers: LayerFilter = None) -> nn.Module:
    """A copy of ``model`` with the selected layers replaced by their low-rank factors.

    Args:
        model: any ``nn.Module``; it is not changed.
        config: ``SVD(rank=|energy=|ratio=)``, ``Tucker(ranks=|energy=)`` or ``CP(rank=)``.
        layers: which layers (see :func:`select`); default every Linear (SVD) or Conv2d (Tucker, CP).

    Layers whose factors would not be smaller (see :func:`plan`) or that cannot be
    factored are kept and named in one ``UserWarning``.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.torch.models import build
        >>> d = decompose(build("lenet5"), cl.Tucker(ranks=(4, 8)), layers=["3"])
        >>> [type(m).__name__ for m in d[3]]
        ['PointwiseConv2d', 'Conv2d', 'PointwiseConv2d']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _, skipped = select(model, config, layers)
    plans = plan(model, config, layers)
    out = copy.deepcopy(model)
    for name, p in plans.items():
        if not p.accepted:
            skipped[name] = p.reason
            continue
        layer = out.get_submodule(name)
        if isinstance(config, SVD):
            new = factor_svd(layer, p.rank)
        elif isinstance(config, Tucker):
            new = factor_tucker(layer, p.rank)
        else:
            new = factor_cp(layer, p.rank)
        new.train(layer.training)
        _replace(out, name, new)
    core.warn_skipped(config, skipped)
    return out


def finetune(model: nn.Module, data: Any, epochs: int = 1, lr: float = 1e-4, **kwargs: Any) -> nn.Module:
    """A fine-tuned copy of a decomposed model (Adam, cross-entropy; ``compresslib.torch.train.fit``).

    A small learning rate keeps the factors near the truncation they start from.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.torch.models import build
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> d = decompose(build("lenet300_100"), cl.SVD(rank=16), layers=["1"])
        >>> f = finetune(d, (x[:128], y[:128]), epochs=1)
        >>> f is d
        False
    """
    from compresslib.torch.train import fit

    out = copy.deepcopy(model)
    fit(out, data, epochs=epochs, lr=lr, **kwargs)
    out.eval()
    return out
