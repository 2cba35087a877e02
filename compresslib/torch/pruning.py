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

import contextlib
import copy
import os
import signal
import threading
import time
import warnings
from typing import Any, Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.utils.prune  # noqa: F401  (masks-only pruning, for comparison)
from torch import nn
from torch.nn.utils import parametrize

from compresslib.configs import NM, Magnitude, PruneConfig, Structured
from compresslib.core import masks as core_masks
from compresslib.core.schedules import Schedule, resolve
from compresslib.core.sensitivity import scan
from compresslib.registry import Tuning, register, register_tuner
from compresslib.torch import distributed as tdist
from compresslib.torch import inputs

PRUNABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# layers with weights that pruning leaves alone on purpose (no warning)
_QUIET = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm)


def prunable_layers(model: nn.Module, warn: bool = True) -> dict[str, nn.Module]:
    """``{module_name: module}`` of the layers unstructured pruning touches, in module order.

    Layers of other kinds that own weights (except normalisation layers) are
    skipped with one warning naming them.
    """
    out, skipped = {}, []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE) and not getattr(module, "transposed", False) \
                and isinstance(module._parameters.get("weight"), torch.Tensor):
            out[name] = module
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
    layers = prunable_layers(model, warn=warn)
    found = core_masks.masks_for(config, {n: _np(m.weight) for n, m in layers.items()}, sparsity, warn)
    return {n: torch.from_numpy(mask).to(layers[n].weight.device) for n, mask in found.items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero the masked-out weights of ``model`` in place."""
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        w = modules[name].weight
        mask = torch.as_tensor(mask)
        w.masked_fill_(~mask.to(device=w.device, dtype=torch.bool), 0.0)  # +0.0 (a product would leave -0.0)


@register("prune", "torch", Magnitude, NM)
def prune_unstructured(model: nn.Module, config: PruneConfig, *, example_input: Any = None,
                       ignored_layers: Iterable[str] = (), seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose Linear/Conv weights hold exact zeros (plain tensors, no hooks).

    ``ignored_layers``: module names left dense. ``example_input`` and ``seed`` are unused
    (accepted so that every pruning config takes the same arguments).

    Example:
        >>> import torch, compresslib as cl
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
        >>> int((cl.prune(m, cl.NM(2, 4))[0].weight == 0).sum())
        16
    """
    _check_model(model)
    ignored = _check_ignored(model, ignored_layers)
    new = copy.deepcopy(model)
    sparsity = resolve(config.schedule, config.sparsity)(0) if isinstance(config, Magnitude) else None
    masks = compute_masks(new, config, sparsity=sparsity)
    apply_masks(new, {n: m for n, m in masks.items() if n not in ignored})
    return new


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_ignored(model: nn.Module, ignored_layers: Iterable[str]) -> set[str]:
    if isinstance(ignored_layers, str):
        raise TypeError("ignored_layers must be a list of module names, not a string")
    names = set(ignored_layers)
    modules = {n for n, _ in model.named_modules() if n}
    unknown = sorted(names - modules)
    if unknown:
        raise ValueError(f"ignored_layers: no modules named {unknown}; modules are {sorted(modules)}")
    return names


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
        """Recompute the masks for ``step`` from the model's current weights and apply them.

        Under ``torch.distributed`` every rank computes them and rank 0's are broadcast, so they are
        identical everywhere (call it on every rank, at the same step).
        """
        model = tdist.unwrap(model)
        self.sparsity = self.schedule(step)
        self.masks = compute_masks(model, self.config, sparsity=self.sparsity, warn=step == 0)
        if tdist.world()[1] > 1:
            masks = {n: m.to(torch.uint8) for n, m in self.masks.items()}
            tdist.broadcast([masks[n] for n in sorted(masks)])
            self.masks = {n: masks[n].bool() for n in self.masks}
        apply_masks(model, self.masks)

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.schedule.should_update(step) or not self.masks:
            self.update(model, step)
        else:
            apply_masks(tdist.unwrap(model), self.masks)

    def state_dict(self) -> dict:
        """The masks and current sparsity (what a checkpoint of ``fit`` keeps to resume exactly)."""
        return {"masks": {n: m.clone() for n, m in self.masks.items()}, "sparsity": float(self.sparsity)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.masks = {n: torch.as_tensor(m).bool() for n, m in state["masks"].items()}
        self.sparsity = float(state["sparsity"])

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

    sparsities = [core_masks.check_sparsity(s, "sparsities") for s in sparsities]

    def score(name: str, s: float) -> float:
        m = copy.deepcopy(model)
        w = m.get_submodule(name).weight
        apply_masks(m, {name: torch.from_numpy(core_masks.magnitude_mask(_np(w), s)).to(w.device)})
        return evaluate(m, data, batch_size)

    return scan(prunable_layers(model), sparsities, score)


# --------------------------------------------------------------------------- structured
class _GroupScores:
    """compresslib's channel importance for a Torch-Pruning group (:func:`compresslib.core.masks.group_scores`
    over the output weights of the group's Conv/Linear layers), so Keras removes the same channels."""

    def __init__(self, importance: str, seed: int) -> None:
        self.importance = importance
        self.rng = np.random.default_rng(seed)

    def __call__(self, group, n: int) -> np.ndarray:
        import torch_pruning as tp

        rows = []
        for i, (dep, idxs) in enumerate(group):
            layer = dep.layer
            is_out = dep.pruning_fn in (tp.prune_conv_out_channels, tp.prune_linear_out_channels) or \
                getattr(dep.pruning_fn, "__name__", "") == "prune_out_channels" and isinstance(layer, PRUNABLE)
            if is_out and isinstance(layer, PRUNABLE):
                full = np.zeros((n,) + tuple(layer.weight.shape[1:]))
                full[list(group[i].root_idxs)] = _np(layer.weight)[list(idxs)]
                rows.append(full)
        return core_masks.group_scores(rows or [np.zeros((n, 1))], self.importance, self.rng, n)


def _factored_pruner():
    """A Torch-Pruning pruner for compresslib's factored layers: output channels are cut from the last
    factor, input channels from the first; the rank in between stays."""
    import torch_pruning as tp
    from torch_pruning.pruner import function

    from compresslib.torch.layers import FactoredConv2d, FactoredLinear

    conv, linear = function.ConvPruner(), function.LinearPruner()

    class FactoredPruner(function.BasePruningFunc):
        TARGET_MODULES = (FactoredLinear, FactoredConv2d)

        @staticmethod
        def _ends(layer):
            factors = list(layer)
            return factors[0], factors[-1]

        def prune_out_channels(self, layer, idxs):
            _, last = self._ends(layer)
            (linear if isinstance(last, nn.Linear) else conv).prune_out_channels(last, idxs)
            if isinstance(layer, FactoredLinear):
                layer.out_features = last.out_features
            else:
                layer.out_channels = last.out_channels
            return layer

        def prune_in_channels(self, layer, idxs):
            first, _ = self._ends(layer)
            (linear if isinstance(first, nn.Linear) else conv).prune_in_channels(first, idxs)
            if isinstance(layer, FactoredLinear):
                layer.in_features = first.in_features
            else:
                layer.in_channels = first.in_channels
            return layer

        def get_out_channels(self, layer):
            return layer.out_features if isinstance(layer, FactoredLinear) else layer.out_channels

        def get_in_channels(self, layer):
            return layer.in_features if isinstance(layer, FactoredLinear) else layer.in_channels

    del tp
    return FactoredPruner()


def _output_layers(model: nn.Module, example: Any) -> set[str]:
    """Names of the Conv/Linear modules whose output is (a view of) one of the model's output tensors.

    Outputs of any type are read (tensors, tuples, dicts, ``ModelOutput``, dataclasses);
    a view (``squeeze``, ``flatten``, slicing) still points at the layer's storage.
    """
    produced: dict[int, str] = {}

    def hook(name):
        def fn(module, args, output):
            for t in inputs.flatten(output):
                produced[t.untyped_storage().data_ptr()] = name
        return fn

    out = inputs.call_hooked(model, example, [(m, hook(n)) for n, m in model.named_modules() if isinstance(m, PRUNABLE)])
    return {produced[t.untyped_storage().data_ptr()] for t in inputs.flatten(out)
            if t.untyped_storage().data_ptr() in produced}


def _example(model: nn.Module, example_input: Any) -> Any:
    if example_input is None:
        return inputs.guess_example(model)
    return inputs.first_batch(example_input, 1, model)


@register("prune", "torch", Structured)
def prune_structured(model: nn.Module, config: Structured, *, example_input: Any = None,
                     ignored_layers: Iterable[str] = (), seed: int = 0) -> nn.Module:
    """A copy of ``model`` with a ``ratio`` of the channels of every prunable group physically removed.

    Torch-Pruning's ``DependencyGraph`` finds the coupled layers (residual adds,
    concatenations, BatchNorms); compresslib scores the channels and keeps the
    layers that produce the model's outputs whole, whatever the output's type.

    Args:
        example_input: one input batch to trace the graph with (a tensor, a tuple of positional
            arguments or a dict of keyword arguments); guessed from the first layer when None.
        ignored_layers: module names whose output channels must not shrink.
        seed: for ``Structured(importance="random")``.

    Raises ``ValueError`` naming the outputs when the pruned copy would return a different
    shape or cannot run (e.g. a ``forward`` that hard-codes a channel count); the input
    model is untouched either way.

    Example:
        >>> import torch, compresslib as cl
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 2))
        >>> s = cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 8))
        >>> s[0].out_features, s[2].in_features, s[2].out_features
        (3, 3, 2)
    """
    import torch_pruning as tp

    _check_model(model)
    ignored = _check_ignored(model, ignored_layers)
    work = copy.deepcopy(model).eval()
    example = _example(work, example_input)
    try:
        with torch.no_grad():
            before = inputs.output_shapes(inputs.call(work, example))
    except Exception as exc:  # noqa: BLE001 - the user's forward on the example: say which argument to fix
        raise ValueError(f"example_input: {type(model).__name__} cannot run on {inputs.describe(example)} "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    keep_names = ignored | _output_layers(work, example)
    new, graph = _traced_copy(work, example)
    held: dict[str, str] = {}
    plans = _plans(new, graph, config, keep_names, seed, held)
    if held:
        warnings.warn("prune(Structured): kept whole the channel groups of "
                      + "; ".join(f"{root} ({why})" for root, why in held.items()),
                      UserWarning, stacklevel=3)
    if not plans:
        why = [f"{len(held)} group(s) kept whole, named in the warning before"] if held else []
        why += [f"the layers producing the outputs stay whole ({', '.join(sorted(keep_names))})"] if keep_names else []
        warnings.warn("prune(Structured): the model comes back unchanged: no channel group of its Conv1d/Conv2d/"
                      "Conv3d/Linear layers can be cut" + (f" ({'; '.join(why)})" if why else ""),
                      UserWarning, stacklevel=3)
    for group, _, remove in plans:  # decide everything first, then cut
        group.prune(idxs=remove)
    if _output_problem(new, example, before):
        new = _prune_safe_groups(work, example, before, plans)
    new.train(model.training)
    return new


def _traced_copy(model: nn.Module, example: Any):
    """A deep copy of ``model`` and Torch-Pruning's dependency graph of it."""
    import torch_pruning as tp

    from compresslib.torch.layers import FactoredConv2d, FactoredLinear

    new = copy.deepcopy(model)
    frozen = [p for p in new.parameters() if not p.requires_grad]
    for p in frozen:  # Torch-Pruning follows autograd: every parameter must take part in the trace
        p.requires_grad_(True)
    pruner = _factored_pruner()
    try:
        graph = tp.DependencyGraph().build_dependency(
            new, example_inputs=example, forward_fn=lambda m, ex: inputs.call(m, ex),
            output_transform=inputs.flatten, verbose=False,
            customized_pruners={FactoredLinear: pruner, FactoredConv2d: pruner})
    except Exception as exc:  # noqa: BLE001 - Torch-Pruning's errors come from deep inside its tracer
        raise ValueError(f"model: Torch-Pruning could not trace it with example_input "
                         f"{inputs.describe(example)} ({type(exc).__name__}: {exc})") from None
    finally:
        for p in frozen:
            p.requires_grad_(False)
    graph.compresslib_pruner = pruner
    return new, graph


# Torch-Pruning's walk from one root layer through the graph's index mappings can grow without bound (a reshape
# that folds channels into a spatial axis, as attention over a feature map does: > 240 s on a 0.4 M-parameter
# UNet); a root whose walk takes longer is kept whole, and the whole search is bounded
GROUP_SECONDS = 5.0
SEARCH_SECONDS = 25.0
# the same walk also grows its memory without bound (about 20 GB in a few seconds on that UNet): a root whose
# walk has taken this many more bytes of resident memory is stopped like a slow one
GROUP_BYTES = 1 << 30
_CHECK_EVERY = 0.05  # seconds between two looks at the clock and the memory during a walk


def _resident_bytes() -> int:
    """This process's resident memory in bytes (Linux ``/proc/self/statm``; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class _WalkTimeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[bool]:
    """Raise :class:`_WalkTimeout` in the block after ``seconds``, or once it has taken :data:`GROUP_BYTES` more
    resident memory (a SIGALRM timer looking every :data:`_CHECK_EVERY` s; only in the main thread and when no
    other timer is set, else the block runs unbounded). Yields whether the bound is armed."""
    if (threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer")
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield False
        return

    start, base, root = time.perf_counter(), _resident_bytes(), []

    def on_alarm(signum, frame):
        # raised again at every tick until it leaves the block: a signal handler's exception that lands in a
        # C call which swallows errors (a dict lookup calling __eq__) is lost, and the walk would go on
        if time.perf_counter() - start >= seconds or (base and _resident_bytes() - base > GROUP_BYTES):
            root[:] = root or [_root_in_frames(frame)]
            raise _WalkTimeout(root[0])

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, min(seconds, _CHECK_EVERY) or _CHECK_EVERY, _CHECK_EVERY)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _root_in_frames(frame: Any) -> Any:
    """The root layer of the ``get_all_groups`` frame at or above ``frame`` (None if there is none)."""
    while frame is not None:
        if frame.f_code.co_name == "get_all_groups":
            return frame.f_locals.get("m")
        frame = frame.f_back
    return None


def _walking_root(exc: BaseException) -> Any:
    """The root layer Torch-Pruning's ``get_all_groups`` was walking from when ``exc`` interrupted it."""
    if exc.args and exc.args[0] is not None:  # found by the alarm handler from its frame
        return exc.args[0]
    tb, root = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "get_all_groups":
            root = tb.tb_frame.f_locals.get("m", root)
        tb = tb.tb_next
    return root


def _groups(graph, ignored: list, names: dict, held: dict) -> Iterator:
    """Torch-Pruning's groups (Conv1d/2d/3d and Linear roots), each root's walk bounded by :data:`GROUP_SECONDS`
    (a root over it is kept whole, its reason in ``held``) and the whole search by :data:`SEARCH_SECONDS`."""
    start, slow, seen = time.perf_counter(), [], set()
    while True:
        walk = graph.get_all_groups(ignored_layers=ignored + slow,
                                    root_module_types=[nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear])
        try:
            while True:
                if time.perf_counter() - start > SEARCH_SECONDS:
                    raise ValueError(f"model: Structured: Torch-Pruning's channel-dependency search took more than "
                                     f"{SEARCH_SECONDS:.0f} s (layers whose walk did not end in {GROUP_SECONDS:.0f} s: "
                                     f"{', '.join(names.get(m, '?') for m in slow) or 'none'}); keep the blocks that "
                                     f"reshape channels (attention over feature maps) whole with ignored_layers=[...], "
                                     f"or use Magnitude or NM pruning")
                with _deadline(GROUP_SECONDS):
                    group = next(walk)
                root = group[0].dep.target.module
                if root in seen:  # its channels were in a group yielded before a restart
                    continue
                seen.update(dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler))
                yield group
        except StopIteration:
            return
        except _WalkTimeout as exc:
            root = _walking_root(exc)
            if root is None or root in slow:
                raise ValueError(f"model: Structured: Torch-Pruning's channel-dependency walk did not end in "
                                 f"{GROUP_SECONDS:.0f} s within {GROUP_BYTES / 2**30:.0f} GiB; use Magnitude or "
                                 "NM pruning") from None
            slow.append(root)
            held[names.get(root, "?")] = (f"Torch-Pruning's walk of its channel dependencies did not end in "
                                         f"{GROUP_SECONDS:.0f} s within {GROUP_BYTES / 2**30:.0f} GiB of memory "
                                         "(channels reshaped into another axis)")


def _plans(model: nn.Module, graph, config: Structured, keep_names: set, seed: int,
           held: Optional[dict] = None) -> list:
    """``[(group, root name, channels to remove)]`` for every prunable group, scored on ``model``'s weights.

    ``held`` (filled in): ``{root name: why its group is kept whole}``.
    """
    import torch_pruning as tp

    modules = dict(model.named_modules())
    names = {m: n for n, m in modules.items()}
    scorer = _GroupScores(config.importance, seed)
    out_fns = (tp.prune_conv_out_channels, tp.prune_linear_out_channels, graph.compresslib_pruner.prune_out_channels)
    plans = []
    for group in _groups(graph, [modules[n] for n in keep_names], names, held if held is not None else {}):
        root = group[0].dep.target.module
        n = graph.get_out_channels(root)
        member_names = sorted({names.get(dep.layer, "?") for dep, _ in group if dep.pruning_fn in out_fns})
        if any(mn in keep_names for mn in member_names):
            continue
        parametrized = sorted({names[dep.target.module] for dep, _ in group
                               if isinstance(dep.target.module, nn.Module) and dep.target.module in names
                               and parametrize.is_parametrized(dep.target.module)})
        if parametrized:  # Torch-Pruning assigns .weight, which a parametrization (weight_norm) owns
            if held is not None:
                held[names[root]] = (f"it reaches the parametrized layer(s) {', '.join(parametrized)}: Torch-Pruning "
                                     "cannot cut a weight that a parametrization such as weight_norm computes")
            continue
        keep = core_masks.channels_to_keep(scorer(group, n), config.ratio, name=f"{names[root]} (group {member_names})")
        remove = sorted(set(range(n)) - set(keep.tolist()))
        if remove:
            plans.append((group, names[root], remove))
    return plans


def _regroup(model: nn.Module, graph, root: str, remove: list):
    """The group of ``root`` in another copy's graph (same channels to remove)."""
    import torch_pruning as tp

    layer = model.get_submodule(root)
    fn = (graph.compresslib_pruner.prune_out_channels if hasattr(layer, "__getitem__") and
          type(layer).__name__.startswith("Factored") else
          tp.prune_linear_out_channels if isinstance(layer, nn.Linear) else tp.prune_conv_out_channels)
    return graph.get_pruning_group(layer, fn, idxs=remove)


def _prune_safe_groups(model: nn.Module, example: Any, before: list, plans: list) -> nn.Module:
    """Cutting every group broke the outputs: try each group alone, keep whole the ones that break them."""
    bad = []
    for _, root, remove in plans:
        trial, graph = _traced_copy(model, example)
        _regroup(trial, graph, root, remove).prune()
        if _output_problem(trial, example, before):
            bad.append(root)
    new, graph = _traced_copy(model, example)
    groups = [_regroup(new, graph, root, remove) for _, root, remove in plans if root not in bad]
    for group in groups:
        group.prune()
    problem = _output_problem(new, example, before)
    if problem:
        raise ValueError(f"model: {problem}; keep the layers involved whole with ignored_layers=[...]")
    if bad:
        warnings.warn(f"prune(Structured): kept whole the channel groups of {', '.join(bad)}: removing their "
                      "channels changes the model's outputs or breaks its forward", UserWarning, stacklevel=4)
    return new


def _output_problem(model: nn.Module, example: Any, before: list[tuple]) -> str:
    """Why the pruned copy is not acceptable ('' when it runs and returns the original's output shapes)."""
    try:
        with torch.no_grad():
            after = inputs.output_shapes(inputs.call(model, example))
    except Exception as exc:  # noqa: BLE001 - the user's forward failing on fewer channels
        return (f"after removing channels its forward fails ({type(exc).__name__}: {str(exc)[:200]}); its code "
                "probably depends on a channel count")
    if after != before:
        return f"structured pruning would change its output shapes from {before} to {after}"
    return ""


@register_tuner("torch", Magnitude, NM)
def keep_masks(model, config: PruneConfig) -> Tuning:
    """Fine-tuning after unstructured or N:M pruning: :class:`GradualPruning` (hook(model, step) after each optimiser step) re-applies the
    masks during training, following ``config.schedule`` when there is one; the result keeps the zeros."""
    hook = GradualPruning(config, model)
    return Tuning(model, [hook], hook.finalize)


__all__ = ["prune_unstructured", "prune_structured", "GradualPruning", "keep_masks", "finalize", "sensitivity", "compute_masks",
           "apply_masks", "prunable_layers"]
