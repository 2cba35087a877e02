"""Pruning for PyTorch models: unstructured magnitude, N:M, gradual, and structured.

* ``prune(model, Magnitude(...))`` / ``prune(model, NM(...))`` return a copy
  whose ``Linear``/``Conv`` weights hold exact zeros (plain tensors, no
  ``torch.nn.utils.prune`` hooks), so :func:`compresslib.save` can pack them.
  Masks come from :mod:`compresslib.core.masks` (the same code the Keras
  backend calls).
* ``prune(model, Structured(ratio), example_input=x)`` removes channels and
  neurons physically through Torch-Pruning's ``DependencyGraph``, which keeps
  residual additions consistent. The channel scores are compresslib's own
  (L1/L2 of the output weights of every layer in a coupled group, summed), so
  the Keras backend removes the same channels given the same weights.
* :class:`GradualPruning` is an ``on_step`` hook for
  :func:`compresslib.torch.train.fit` that follows a sparsity schedule and
  keeps masks applied; :meth:`GradualPruning.finalize` returns a plain model.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> p = cl.prune(m, cl.Magnitude(0.5))
    >>> int((p[0].weight == 0).sum()), int((m[0].weight == 0).sum())
    (16, 0)
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable, Optional

import numpy as np
import torch
import torch.nn.utils.prune  # noqa: F401  (masks-only pruning, for comparison)
from torch import nn

from compresslib.configs import NM, Magnitude, PruneConfig, Structured, check_config
from compresslib.core import masks as core_masks
from compresslib.core.schedules import Schedule, resolve

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# layers with weights that pruning leaves alone on purpose (no warning)
_QUIET = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def prunable_weights(model: nn.Module, warn: bool = True) -> dict[str, nn.Parameter]:
    """``{module_name: weight}`` of the layers unstructured pruning touches, in module order.

    Layers of other kinds that own weights (except normalisation layers) are
    skipped with one warning naming them.
    """
    out, skipped = {}, []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE) and not getattr(module, "transposed", False):
            out[name] = module.weight
        elif not isinstance(module, _QUIET) and any(p is not None for p in module._parameters.values()):
            skipped.append(f"{name} ({type(module).__name__})")
    if skipped and warn:
        warnings.warn(f"pruning skipped layers of unsupported kinds: {', '.join(skipped)}", stacklevel=3)
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def compute_masks(model: nn.Module, config: PruneConfig, sparsity: Optional[float] = None,
                  warn: bool = True) -> dict[str, torch.Tensor]:
    """Boolean masks ``{module_name: mask}`` for ``Magnitude`` or ``NM`` (``sparsity`` overrides the config's)."""
    weights = prunable_weights(model, warn=warn)
    if isinstance(config, Magnitude):
        s = config.sparsity if sparsity is None else sparsity
        arrays = [_np(w) for w in weights.values()]
        if config.scope == "global":
            found = core_masks.global_magnitude_masks(arrays, s)
        else:
            found = [core_masks.magnitude_mask(a, s) for a in arrays]
        return {n: torch.from_numpy(m).to(w.device) for (n, w), m in zip(weights.items(), found)}
    if isinstance(config, NM):
        out, skipped = {}, []
        for n, w in weights.items():
            fan_in = w[0].numel()
            if fan_in % config.m:
                skipped.append(f"{n} (fan-in {fan_in})")
                continue
            out[n] = torch.from_numpy(core_masks.nm_mask(_np(w), config.n, config.m)).to(w.device)
        if skipped and warn:
            warnings.warn(f"NM({config.n}:{config.m}) skipped layers whose fan-in is not a multiple of "
                          f"{config.m}: {', '.join(skipped)}", stacklevel=3)
        return out
    raise TypeError(f"config must be Magnitude or NM for masks, got {type(config).__name__}")


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out weights of ``model`` in place."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        w = modules[name].weight
        w.masked_fill_(~mask.to(device=w.device, dtype=torch.bool), 0.0)  # +0.0 (a product would leave -0.0)


def prune(model: nn.Module, config: PruneConfig, *, example_input: Any = None, ignored_layers: Iterable[str] = (),
          seed: int = 0, inplace: bool = False) -> nn.Module:
    """A pruned copy of ``model`` (see the module docstring).

    Args:
        model: a ``torch.nn.Module``; it is not changed unless ``inplace=True``.
        config: ``Magnitude``, ``NM`` or ``Structured``.
        example_input: an input batch (tensor or array) that ``Structured`` traces the graph with;
            when None, a zero batch shaped from the first Linear/Conv2d is tried.
        ignored_layers: module names ``Structured`` must not shrink (the layers producing the
            model's outputs are always kept).
        seed: for ``Structured(importance="random")``.

    Example:
        >>> import torch, compresslib as cl
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
        >>> s = cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 8))
        >>> s[0].out_features, s[2].in_features, s[2].out_features
        (3, 3, 2)
    """
    check_config(config, PruneConfig)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    new = model if inplace else copy.deepcopy(model)
    if isinstance(config, Structured):
        return _structured(new, config, example_input, tuple(ignored_layers), seed)
    if isinstance(config, Magnitude) and config.schedule is not None:
        s = resolve(config.schedule, config.sparsity)(0)
        apply_masks(new, compute_masks(new, config, sparsity=s))
        return new
    apply_masks(new, compute_masks(new, config))
    return new


# --------------------------------------------------------------------------- gradual
class GradualPruning:
    """Gradual magnitude pruning during fine-tuning: an ``on_step`` hook for ``compresslib.torch.train.fit``.

    At the steps its schedule says (``config.schedule``, or constant at
    ``config.sparsity``), the masks are recomputed from the current weights;
    after every optimiser step they are re-applied, so pruned weights stay
    zero. ``finalize()`` returns a plain copy (weights with zeros, no hooks).

    Example:
        >>> import compresslib as cl
        >>> from compresslib.core.schedules import PolynomialDecay
        >>> from compresslib.torch import models, train
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> m = models.build("lenet300_100")
        >>> hook = GradualPruning(cl.Magnitude(0.8, schedule=PolynomialDecay(0.0, 0.8, 0, 8, 2)), m)
        >>> _ = train.fit(m, (x[:512], y[:512]), epochs=1, on_step=hook)
        >>> round(hook.sparsity, 2)
        0.8
    """

    def __init__(self, config: Magnitude, model: Optional[nn.Module] = None) -> None:
        if not isinstance(config, (Magnitude, NM)):
            raise TypeError(f"config must be Magnitude or NM, got {type(config).__name__}")
        self.config = config
        self.schedule: Schedule = resolve(getattr(config, "schedule", None), getattr(config, "sparsity", 0.0))
        self.masks: dict[str, torch.Tensor] = {}
        self.sparsity = 0.0
        if model is not None:
            self.update(model, 0)

    def update(self, model: nn.Module, step: int) -> None:
        """Recompute the masks for ``step`` from the model's current weights and apply them."""
        self.sparsity = self.schedule(step)
        self.masks = compute_masks(model, self.config, sparsity=self.sparsity, warn=step == 0)
        apply_masks(model, self.masks)

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.schedule.should_update(step) or not self.masks:
            self.update(model, step)
        else:
            apply_masks(model, self.masks)

    def finalize(self, model: nn.Module) -> nn.Module:
        """A plain copy of ``model`` with the current masks applied (zeros stay zeros)."""
        out = copy.deepcopy(model)
        if self.masks:
            apply_masks(out, self.masks)
        return out.eval()


def finalize(model: nn.Module) -> nn.Module:
    """A plain copy of ``model`` with any ``torch.nn.utils.prune`` re-parametrisation made permanent."""
    out = copy.deepcopy(model)
    for module in out.modules():
        for name in [k[:-5] for k in list(module._parameters) if k.endswith("_orig")]:
            torch.nn.utils.prune.remove(module, name)
    return out


# --------------------------------------------------------------------------- sensitivity
def sensitivity(model: nn.Module, data, sparsities: Iterable[float] = (0.5, 0.7, 0.8, 0.9, 0.95),
                batch_size: int = 500) -> dict[str, list[float]]:
    """Accuracy against sparsity, one layer pruned at a time (one-shot magnitude, no fine-tuning).

    Returns ``{layer_name: [accuracy at each sparsity]}``; the model is not changed.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.torch import models
        >>> x, y = cl.datasets.load_mnist("test", layout="torch")
        >>> curves = sensitivity(models.build("lenet300_100"), (x[:200], y[:200]), sparsities=(0.5, 0.9))
        >>> sorted(curves), len(curves["1"])
        (['1', '3', '5'], 2)
    """
    from compresslib.torch.train import evaluate

    sparsities = [float(s) for s in sparsities]
    for s in sparsities:
        core_masks._check_sparsity(s, "sparsities")
    names = list(prunable_weights(model))
    curves: dict[str, list[float]] = {}
    for name in names:
        curves[name] = []
        for s in sparsities:
            m = copy.deepcopy(model)
            w = dict(m.named_modules())[name].weight
            apply_masks(m, {name: torch.from_numpy(core_masks.magnitude_mask(_np(w), s)).to(w.device)})
            curves[name].append(evaluate(m, data, batch_size))
    return curves


# --------------------------------------------------------------------------- structured
class _GroupScores:
    """compresslib's channel importance for a Torch-Pruning group: per coupled channel, the sum over the
    group's Conv/Linear layers of the L1 (or L2) norm of that channel's output weights."""

    def __init__(self, importance: str, seed: int) -> None:
        self.importance = importance
        self.rng = np.random.default_rng(seed)

    def __call__(self, group, n: int) -> np.ndarray:
        import torch_pruning as tp

        out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
        if self.importance == "random":
            return self.rng.random(n)
        scores = np.zeros(n)
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            if dep.pruning_fn in out_fns and isinstance(layer, PRUNABLE):
                w = _np(layer.weight)[list(idxs)]
                scores[list(group[i].root_idxs)] += core_masks.channel_scores(w, self.importance) ** (
                    2 if self.importance == "l2" else 1)
        return np.sqrt(scores) if self.importance == "l2" else scores


def _output_layers(model: nn.Module, example: torch.Tensor) -> set[str]:
    """Names of the Conv/Linear modules whose output is (one of) the model's output(s)."""
    produced: dict[int, str] = {}

    def hook(name):
        def fn(module, inputs, output):
            if isinstance(output, torch.Tensor):
                produced[id(output)] = name
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in handles:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else [out]
    return {produced[id(o)] for o in outs if id(o) in produced}


def _guess_example(model: nn.Module, device: torch.device) -> torch.Tensor:
    """A zero batch the model accepts, shaped from its first Linear/Conv2d (tries 28, 32, 64, 224 pixels).

    Torch-Pruning needs an input to trace the graph; pass ``example_input`` when this guess fails.
    """
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))), None)
    if isinstance(first, nn.Linear):
        candidates = [torch.zeros(1, first.in_features)]
    elif isinstance(first, nn.Conv2d):
        candidates = [torch.zeros(1, first.in_channels, s, s) for s in (28, 32, 64, 224)]
    else:
        candidates = []
    was_training = model.training
    model.eval()
    try:
        for ex in candidates:
            try:
                with torch.no_grad():
                    model(ex.to(device))
                return ex.to(device)
            except (RuntimeError, ValueError):
                continue
    finally:
        model.train(was_training)
    raise ValueError("example_input: could not guess an input this model accepts; pass an input batch "
                     "(e.g. example_input=x[:1]) so Torch-Pruning can trace the graph")


def _structured(model: nn.Module, config: Structured, example_input: Any, ignored: tuple, seed: int) -> nn.Module:
    import torch_pruning as tp

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if example_input is None:
        example = _guess_example(model, device)
    else:
        example = torch.as_tensor(np.asarray(example_input) if not isinstance(example_input, torch.Tensor)
                                  else example_input).float().to(device)
    modules = dict(model.named_modules())
    unknown = [n for n in ignored if n not in modules]
    if unknown:
        raise ValueError(f"ignored_layers: no modules named {unknown}; modules are {sorted(k for k in modules if k)}")
    keep_names = set(ignored) | _output_layers(model, example)
    was_training = model.training
    model.eval()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    scorer = _GroupScores(config.importance, seed)
    names = {m: n for n, m in modules.items()}
    plans = []
    for group in graph.get_all_groups(ignored_layers=[modules[n] for n in keep_names],
                                      root_module_types=[nn.Conv2d, nn.Linear]):
        root = group[0].dep.target.module
        n = graph.get_out_channels(root)
        out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels)
        member_names = sorted({names.get(dep.layer, "?") for dep, _ in group if dep.pruning_fn in out_fns})
        if any(mn in keep_names for mn in member_names):
            continue
        keep = core_masks.channels_to_keep(scorer(group, n), config.ratio, name=f"{names[root]} (group {member_names})")
        plans.append((group, sorted(set(range(n)) - set(keep.tolist()))))
    for group, remove in plans:  # decide everything first, then cut
        if remove:
            group.prune(idxs=remove)
    model.train(was_training)
    return model


__all__ = ["prune", "GradualPruning", "finalize", "sensitivity", "compute_masks", "apply_masks", "prunable_weights"]
