"""The same model in the other framework: ``transfer(model, framework=...)``.

A PyTorch model becomes its Keras twin (or the reverse) carrying the same weights,
BatchNorm running statistics included, so that both frameworks compress *the same
trained network*. The twin's architecture comes from the model's name — a reference
model of the zoo (``lenet5``, ``resnet8``, ...) or a residual-family member
(``resnet20_w16``, ``invres_x0.5``; see :mod:`compresslib.core.architectures`) — or
from ``like=``, a model of the target framework to fill (copied, not changed).

How: each backend lists its weight layers in one canonical layout, PyTorch's
(``compresslib.torch.transfer`` / ``compresslib.keras.transfer`` do the layout
changes: HWIO ↔ OIHW kernels, depthwise kernels, transposed Dense kernels, the
H·W·C ↔ C·H·W row order of a Dense after a Flatten). Layers pair up by name
(family members have the same names in both frameworks; the reference models
use a fixed table); kind, shapes, strides, groups and BatchNorm epsilon must
agree, or a ``ValueError`` names the first layer that differs. With
``check=True`` (default) both models then run on the same batch, and a
difference above ``tolerance`` is reported with the first layer whose *output*
differs (padding or activations that the weights do not show).

A decomposed model (``cl.decompose``: Tucker-2, CP, SVD) transfers too: PyTorch keeps the factors as
the children of a ``FactoredConv2d``/``FactoredLinear`` (``conv1.0``, ``conv1.1``, …), Keras as
layers ``conv1_tucker0..2``/``_cp0..3``/``fc_svd0..1``; both list them as
:class:`~compresslib.core.layer_weights.Factored` (the backends' ``factored``). The built twin is
decomposed to the same ranks (``Tucker(ranks=…)``, ``SVD(rank=…)``, ``CP(rank=…)`` on those layers)
and factor ``i`` goes to factor ``i``; with ``like=``, ``like`` must be decomposed the same way, or
the first factor whose shape differs is named.

The module is ``compresslib.twin`` rather than ``compresslib.transfer``: importing a
submodule binds its name on the package, which would shadow the function
``compresslib.transfer``.

Written here rather than taken from a converter (ONNX → TF/torch tools): those
produce graphs of their own ops, not the Keras/torch model the book compresses.

Example:
    >>> import torch, numpy as np, compresslib as cl
    >>> from compresslib.torch.models import build
    >>> m = build("resnet8_w8").eval()
    >>> k = cl.transfer(m, framework="keras")                           # doctest: +SKIP
    >>> x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    >>> with torch.no_grad():                                            # doctest: +SKIP
    ...     ref = m(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    >>> float(np.abs(np.asarray(k(x)) - ref).max()) < 1e-5              # doctest: +SKIP
    True
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import numpy as np

from compresslib import configs

from compresslib._dispatch import backend, check_framework, framework_of
from compresslib.core.layer_weights import (KINDS, REFERENCE_NAMES, Factored, LayerWeights, keras_name_fn,
                                            known_architecture)


def _check_pair(src: LayerWeights, dst: Optional[LayerWeights], dst_name: str, framework: str) -> Optional[str]:
    """Why ``src`` cannot go into ``dst`` (None when it can)."""
    if dst is None:
        return f"the {framework} model has no weight layer named {dst_name!r}"
    if src.kind != dst.kind:
        return f"it is a {src.kind} layer, {dst_name!r} in the {framework} model is a {dst.kind} layer"
    for key, value in src.arrays.items():
        other = dst.arrays.get(key)
        if other is None:
            return f"its {key} has no counterpart in {dst_name!r} (e.g. a bias on one side only)"
        if tuple(value.shape) != tuple(other.shape):
            return f"{key} shape {tuple(value.shape)} vs {tuple(other.shape)} in the {framework} model"
    missing = sorted(set(dst.arrays) - set(src.arrays))
    if missing:
        return f"{dst_name!r} in the {framework} model also has {missing}"
    for key, value in src.attrs.items():
        other = dst.attrs.get(key)
        same = np.isclose(value, other, rtol=1e-6, atol=0) if key == "eps" else value == other
        if not same:
            return f"{key} {value} vs {other} in the {framework} model"
    return None


def _target(model: Any, source: str, framework: str, like: Any) -> tuple[Any, Optional[str]]:
    src_io = backend(source, "transfer")
    arch_name = src_io.arch_name(model)
    if like is not None:
        if framework_of(like) != framework:
            raise TypeError(f"like must be a {framework} model (the twin to fill), got a {framework_of(like)} model")
        dst_io = backend(framework, "transfer")
        return dst_io.copy_model(like), arch_name or dst_io.arch_name(like)
    if not known_architecture(arch_name):
        raise ValueError(f"model: cannot tell which architecture this {source} model is (it is neither a reference "
                         f"model {tuple(REFERENCE_NAMES)} nor a family member such as 'resnet20_w16'); pass "
                         f"like=<a {framework} model with the same layers> to fill that model instead")
    layers = src_io.read_layers(model)
    linears = [lw for lw in layers if lw.kind == "linear"]
    num_classes = int(linears[-1].arrays["weight"].shape[0]) if linears else 10
    return backend(framework, "models").build(arch_name, num_classes=num_classes), arch_name


def _config(f: Factored) -> configs.LowRankConfig:
    """The config that factors a dense layer into exactly the shapes of ``f``."""
    if f.kind == "tucker":
        return configs.Tucker(ranks=tuple(int(r) for r in f.rank))
    return configs.SVD(rank=int(f.rank)) if f.kind == "svd" else configs.CP(rank=int(f.rank))


def _decomposed_like(target: Any, factored: dict[str, Factored], parent: Callable[[str], str],
                     framework: str) -> Any:
    """``target`` (a dense twin) with the layers of ``factored`` (source names; ``parent`` gives the
    target's) decomposed to the same ranks, one ``decompose`` per config."""
    names = {lw.name for lw in backend(framework, "transfer").read_layers(target)}
    groups: dict[configs.LowRankConfig, list[str]] = {}
    for name, f in factored.items():
        if parent(name) not in names:
            raise ValueError(f"model: layer {name!r} is decomposed ({f.kind}) and the {framework} twin has no "
                             f"layer {parent(name)!r} to decompose the same way")
        groups.setdefault(_config(f), []).append(parent(name))
    decompose = backend(framework, "lowrank").decompose
    with warnings.catch_warnings():  # the layers are named, their ranks valid: nothing to warn about
        warnings.simplefilter("ignore", UserWarning)
        for config, layers in groups.items():
            target = decompose(target, config, layers=layers)
    return target


def _factor_names(src: dict[str, Factored], dst: dict[str, Factored], parent: Callable[[str], str],
                  framework: str) -> dict[str, str]:
    """``{source factor layer: target factor layer}``; a ``ValueError`` names a layer decomposed differently."""
    out = {}
    for name, f in src.items():
        g = dst.get(parent(name))
        if g is None or g.kind != f.kind or set(g.factors) != set(f.factors):
            theirs = "not decomposed" if g is None else f"{g.kind} with factors {sorted(g.factors)}"
            raise ValueError(f"model: layer {name!r} is decomposed ({f.kind}, factors {sorted(f.factors)}); "
                             f"{parent(name)!r} in the {framework} twin is {theirs}")
        out.update({f.factors[i]: g.factors[i] for i in f.factors})
    return out


def transfer(model: Any, framework: str, *, like: Any = None, check: bool = True, tolerance: float = 1e-4) -> Any:
    """The twin of ``model`` in ``framework`` ("torch" or "keras") with the same weights and BN statistics.

    Args:
        model: a torch or Keras model: a reference model, a family member, or any
            model when ``like`` is given. It is not changed.
        framework: the *other* framework.
        like: optional model of ``framework`` with the same layers (names as the family's,
            or the reference tables); a copy of it is filled and returned.
        check: run both models on one batch afterwards and refuse a difference above
            ``tolerance`` × max(1, largest output), naming the first layer whose output differs.

    Returns:
        A new model of ``framework`` in inference mode (torch: ``eval()``, on CPU).

    Raises:
        ValueError: unknown architecture, or a layer that differs (named in the message).
    """
    source = framework_of(model)
    check_framework(framework)
    if framework == source:
        raise ValueError(f"framework: model is already a {source} model; transfer goes to the other framework "
                         f"({'keras' if source == 'torch' else 'torch'})")
    if not isinstance(check, bool):
        raise TypeError(f"check must be True or False, got {check!r}")
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
    target, arch_name = _target(model, source, framework, like)
    src_io, dst_io = backend(source, "transfer"), backend(framework, "transfer")
    to_keras = keras_name_fn(arch_name)

    def parent_names(torch_model: Any) -> Callable[[str], str]:
        if source == "torch":
            return to_keras
        # keras -> torch: invert the table over the torch model's names (decomposed layers included)
        names = [lw.name for lw in dst_io.read_layers(torch_model)] + list(dst_io.factored(torch_model))
        inverse = {to_keras(n): n for n in names}
        return lambda n: inverse.get(n, n)

    src_factored = src_io.factored(model)
    if src_factored and like is None:
        target = _decomposed_like(target, src_factored, parent_names(target), framework)
    parent = parent_names(target)
    factors = _factor_names(src_factored, dst_io.factored(target), parent, framework)
    rename = lambda n: factors.get(n) or parent(n)  # noqa: E731
    src_layers = src_io.read_layers(model)
    dst_layers = {lw.name: lw for lw in dst_io.read_layers(target)}
    assignments, used = {}, set()
    for lw in src_layers:
        dst_name = rename(lw.name)
        why = _check_pair(lw, dst_layers.get(dst_name), dst_name, framework)
        if why:
            raise ValueError(f"model: layer {lw.name!r} differs from the {framework} twin: {why}")
        assignments[dst_name] = lw
        used.add(dst_name)
    extra = [n for n in dst_layers if n not in used]
    if extra:
        raise ValueError(f"model: the {framework} twin has weight layer {extra[0]!r} that the {source} model lacks"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
    dst_io.write_layers(target, assignments)
    if check:
        _check_outputs(model, target, source, framework, rename, tolerance)
    return target


def _check_outputs(model: Any, target: Any, source: str, framework: str, rename: Callable[[str], str],
                   tolerance: float) -> None:
    """Run both models on one batch; on a mismatch, name the first layer whose output differs."""
    io = {source: backend(source, "transfer"), framework: backend(framework, "transfer")}
    keras_model = model if source == "keras" else target
    x = io["keras"].check_batch(keras_model, np.random.default_rng(0))  # NHWC digits, or token ids
    outs = {f: io[f].outputs(m, x) for f, m in ((source, model), (framework, target))}
    scale = max(1.0, float(np.abs(outs[source]).max()))
    diff = float(np.abs(outs[source] - outs[framework]).max())
    if diff <= tolerance * scale:
        return
    names = [lw.name for lw in io[source].read_layers(model)]
    mine = io[source].layer_outputs(model, x, names)
    theirs = io[framework].layer_outputs(target, x, [rename(n) for n in names])
    for n in names:
        a, b = mine.get(n), theirs.get(rename(n))
        if a is None or b is None or a.shape != b.shape:
            continue
        if float(np.abs(a - b).max()) > tolerance * max(1.0, float(np.abs(a).max())):
            raise ValueError(f"model: the {framework} twin computes something else from layer {n!r} on "
                             f"(max difference {float(np.abs(a - b).max()):.3g}; same weights, so padding, "
                             "strides or the layers between differ)")
    raise ValueError(f"model: the {framework} twin's outputs differ by {diff:.3g} although every weight layer "
                     "agrees (an activation, pooling or shortcut differs)")


__all__ = ["transfer", "LayerWeights", "REFERENCE_NAMES", "known_architecture"]
