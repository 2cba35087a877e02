"""SmoothQuant (Xiao et al. 2023) for torch models: ``cl.transform(model, cl.SmoothQuant(alpha), calibration_data=x)``.

The pairs are found from the model's own forward, not from attribute names (:func:`find_pairs`):
one call on a few calibration rows records, through forward hooks, which ``LayerNorm`` and
``Linear`` modules run in which order and which tensor each ``Linear`` reads. Linear layers that
read the same tensor form a group of readers; their producer is the LayerNorm or Linear whose
output *is* that tensor (a pre-LayerNorm block's attention and MLP inputs) or, failing that, the
last of them called before the group, with as many output channels as the readers have inputs
(an attention block's value projection before its output projection: ``softmax(QKᵀ) V`` is linear
in ``V``). Each candidate is then tested: its channels are scaled by random factors in [¼, 4]
(producer ÷ s, readers' weight columns × s) and kept only if the model's outputs stay the same
(relative change below :data:`EXACT`). So a post-LayerNorm model's LayerNorms (their output also
feeds the residual ``+``, BERT's layout) and a Linear followed by GELU are rejected, whatever the
model calls them. A model with no pair left is refused before anything is changed, naming each
candidate and why. The scales come from :func:`compresslib.core.smoothing.smoothing_scales` on
the readers' input maxima over ``calibration_data``.

:func:`layernorm_pairs` reads the same LayerNorm → Linear pairs from a ``torch.fx`` graph, for
models fx traces.

Example:
    >>> import torch, compresslib as cl
    >>> class Block(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.norm, self.fc = torch.nn.LayerNorm(8), torch.nn.Linear(8, 4)
    ...     def forward(self, x):
    ...         return self.fc(self.norm(x))
    >>> m = Block().eval(); x = torch.randn(16, 8) * torch.tensor([20.0] + [1.0] * 7)
    >>> s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    >>> bool(torch.allclose(s(x), m(x), atol=1e-5)), find_pairs(m, x), layernorm_pairs(m)
    (True, {'norm': ['fc']}, {'norm': ['fc']})
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from compresslib.configs import SmoothQuant
from compresslib.core.smoothing import check_alpha, check_calibration, smoothing_scales
from compresslib.registry import register
from compresslib.torch import inputs


def layernorm_pairs(model: nn.Module) -> dict[str, list[str]]:
    """``{LayerNorm name: [Linear names]}`` for every LayerNorm (with scale and shift) read only by Linear layers.

    Raises ``ValueError`` naming the reason when ``torch.fx`` cannot trace ``model``.
    """
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is the model's, reported by name
        raise ValueError(f"model: SmoothQuant reads the module graph with torch.fx, which cannot trace "
                         f"{type(model).__name__} ({type(exc).__name__}: {str(exc)[:200]}); pass the "
                         f"(producer, readers) pairs to compresslib.torch.smoothing.smooth_pairs instead") from None
    modules = dict(gm.named_modules())
    out = {}
    for node in gm.graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not (isinstance(norm, nn.LayerNorm) and norm.elementwise_affine and norm.bias is not None
                and len(norm.normalized_shape) == 1):
            continue
        readers = [modules.get(u.target) if u.op == "call_module" else None for u in node.users]
        if readers and all(isinstance(r, nn.Linear) and r.in_features == norm.normalized_shape[0] for r in readers) \
                and all(u.args == (node,) and not u.kwargs for u in node.users):
            out[str(node.target)] = [str(u.target) for u in node.users]
    return out


def smooth_pairs(model: nn.Module, pairs: dict[str, Sequence[str]], calibration_data: Any, alpha: float) -> nn.Module:
    """Smooth ``model`` in place for ``{producer name: [reader names]}`` and return it.

    A producer is a ``LayerNorm`` or a ``Linear`` layer whose output channel ``j`` is input channel
    ``j`` of every reader (``Linear`` layers), and of nothing else (the caller guarantees it: that is
    what keeps the function unchanged). The readers' input maxima are recorded on ``calibration_data``.
    """
    alpha = check_alpha(alpha)
    amax: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def record(module: nn.Module, args: tuple) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
            amax[name] = torch.maximum(amax[name], x) if name in amax else x
        return record

    handles = [model.get_submodule(readers[0]).register_forward_pre_hook(recorder(p)) for p, readers in pairs.items()]
    try:
        with torch.no_grad():
            for batch in inputs.iter_batches(calibration_data, 64, model):
                inputs.call(model, batch)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for producer_name, reader_names in pairs.items():
            producer = model.get_submodule(producer_name)
            readers = [model.get_submodule(n) for n in reader_names]
            wmax = torch.stack([r.weight.detach().abs().amax(0).float() for r in readers]).amax(0)
            scale = torch.from_numpy(smoothing_scales(amax[producer_name].cpu().numpy(), wmax.cpu().numpy(), alpha))
            scale = scale.to(producer.weight.device)
            if isinstance(producer, nn.Linear):
                producer.weight.div_(scale[:, None].to(producer.weight.dtype))
            else:
                producer.weight.div_(scale.to(producer.weight.dtype))
            if producer.bias is not None:
                producer.bias.div_(scale.to(producer.bias.dtype))
            for r in readers:
                r.weight.mul_(scale.to(r.weight.dtype))
    return model


EXACT = 1e-4  # a candidate pair is kept when random scales change the outputs by less than this (relative)
PROBE_ROWS = 2  # calibration rows the pair search runs on (one forward per candidate)


def _producers(module: nn.Module) -> bool:
    return (isinstance(module, nn.LayerNorm) and module.elementwise_affine and module.bias is not None
            and len(module.normalized_shape) == 1) or _is_linear(module)


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) and type(module).forward is nn.Linear.forward


def _width(module: nn.Module) -> int:
    return module.out_features if isinstance(module, nn.Linear) else module.normalized_shape[0]


def _trace(model: nn.Module, example: Any) -> tuple[list, dict, Any]:
    """One forward: ``[(name, output id)]`` of the producers in call order, ``{input id: [(order, reader)]}``
    of the Linear layers, and the outputs. The tensors are held until the end (their ids stay unique)."""
    names = {id(m): n for n, m in model.named_modules()}
    calls: list = []
    reads: dict[int, list] = {}
    held: list = []

    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        name = names[id(module)]
        held.extend([args[0] if args else None, output])
        if _is_linear(module) and args and isinstance(args[0], torch.Tensor):
            reads.setdefault(id(args[0]), []).append((len(calls), name))
        calls.append((name, id(output)))

    out = inputs.call_hooked(model, example, [(m, hook) for m in model.modules() if _producers(m)])
    return calls, reads, out


def _outputs(model: nn.Module, example: Any) -> list[torch.Tensor]:
    with torch.no_grad():
        return [t.detach().float().clone() for t in inputs.flatten(inputs.call(model, example))
                if t.is_floating_point()]


def _change(ref: list[torch.Tensor], new: list[torch.Tensor]) -> float:
    num = max((float((a - b).abs().max()) for a, b in zip(ref, new) if a.numel()), default=0.0)
    den = max((float(a.abs().max()) for a in ref if a.numel()), default=1.0)
    return num / max(den, 1e-12)


def _scale_pair(model: nn.Module, producer: str, readers: list[str], scale: torch.Tensor) -> None:
    """Producer's output channels ÷ ``scale``, readers' input columns × ``scale`` (in place)."""
    p = model.get_submodule(producer)
    with torch.no_grad():
        s = scale.to(p.weight.device, p.weight.dtype)
        p.weight.div_(s[:, None] if isinstance(p, nn.Linear) else s)
        if p.bias is not None:
            p.bias.div_(s)
        for r in readers:
            model.get_submodule(r).weight.mul_(s)


def find_pairs(model: nn.Module, calibration_data: Any) -> dict[str, list[str]]:
    """``{producer name: [reader names]}`` whose smoothing keeps ``model``'s function (see the module docstring).

    ``model`` is only read (the tests run on a copy). ``ValueError`` naming every candidate, and why it
    was rejected, when none is left.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    example = inputs.first_batch(calibration_data, PROBE_ROWS, model)
    work = copy.deepcopy(model).eval()
    calls, reads, _ = _trace(work, example)
    ref = _outputs(work, example)
    modules = dict(work.named_modules())
    by_output = {out: name for name, out in calls}
    found: dict[str, list[str]] = {}
    rejected: list[str] = []
    gen = torch.Generator().manual_seed(0)
    for tensor, group in reads.items():
        readers = list(dict.fromkeys(name for _, name in group))
        width = modules[readers[0]].in_features
        producer = by_output.get(tensor)
        if producer is None:  # the last producer called before the group, of the readers' width
            first = min(order for order, _ in group)
            before = [n for n, _ in calls[:first] if n not in readers and _width(modules[n]) == width]
            producer = before[-1] if before else None
        if producer is None or producer in found or producer in readers:
            continue
        what = f"{type(modules[producer]).__name__} {producer!r} -> {', '.join(repr(r) for r in readers)}"
        if _width(modules[producer]) != width or any(modules[r].in_features != width for r in readers):
            rejected.append(f"{what} (widths differ)")
            continue
        scale = torch.exp(torch.empty(width).uniform_(-1.386, 1.386, generator=gen))  # [1/4, 4]
        saved = {n: {k: v.detach().clone() for k, v in modules[n].state_dict().items()} for n in [producer, *readers]}
        _scale_pair(work, producer, readers, scale)
        change = _change(ref, _outputs(work, example))
        for n, state in saved.items():
            modules[n].load_state_dict(state)
        if change < EXACT:
            found[producer] = readers
        else:
            rejected.append(f"{what} (scaling its channels changes the outputs by {change:.2g}: its output "
                            "feeds more than these layers, or passes a non-linearity)")
    if not found:
        seen = "; ".join(rejected[:8]) or "no LayerNorm or Linear output is read by a Linear layer"
        raise ValueError(f"model: SmoothQuant found no pair it can smooth exactly in {type(model).__name__} "
                         f"(a LayerNorm or Linear whose output channels only Linear layers read): {seen}")
    return found


@register("transform", "torch", SmoothQuant)
def smooth_quant(model: nn.Module, config: SmoothQuant, *, calibration_data: Any = None) -> nn.Module:
    """A smoothed copy of ``model`` (see the module docstring); ``model`` is never changed."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_calibration(calibration_data)
    pairs = find_pairs(model, calibration_data)
    return smooth_pairs(copy.deepcopy(model).eval(), pairs, calibration_data, config.alpha)


__all__ = ["EXACT", "find_pairs", "layernorm_pairs", "smooth_pairs", "smooth_quant"]
