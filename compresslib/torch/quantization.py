"""Quantization handlers for PyTorch models: dynamic and static int8, weight-only, half precision, QAT.

Paths, each chosen because it measured fastest (or is the only one) on this CPU:

* ``Int8Dynamic``: ``torch.ao.quantization.quantize_dynamic`` on Linear layers
  (int8 weights, activations quantized per batch at run time).
* ``Int8Static``: FX graph mode (``prepare_fx``/``convert_fx``, x86 backend):
  it fuses Conv-BN-ReLU and converts the residual ``+`` into a quantized add on
  its own, which eager mode only does through ``FloatFunctional``.
* ``WeightOnly(bits=8)``: torchao ``Int8WeightOnlyConfig`` on Linear layers;
  ``WeightOnly(bits=4)`` or with a group size: compresslib's own
  :class:`~compresslib.torch.layers.WeightOnlyLinear` / ``WeightOnlyConv2d``.
* ``Float16`` / ``BFloat16``: a converted copy.
* ``QAT``: ``prepare_qat_fx`` with fake-quantizers at ``weight_bits``/``activation_bits``
  (straight-through gradients), then :func:`convert` to a true int8 model.

Each mode is one handler registered in :mod:`compresslib.registry`; the
``torch.ao`` calls live in :mod:`compresslib.torch.ao`, the layers in
:mod:`compresslib.torch.layers`, and saving int8 models in
:mod:`compresslib.torch.replay`.

Devices: ``WeightOnly``, ``Float16``/``BFloat16`` and QAT training run wherever the
model is (CPU or CUDA) and keep it there. ``Int8Dynamic`` and ``Int8Static`` are
CPU-only (torch's int8 kernels) and raise a ``ValueError`` naming ``model`` for a
model on another device; :func:`convert` always returns a CPU int8 model, and a
quantized model loaded with :func:`compresslib.load` is on CPU.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> q = cl.quantize(m, cl.Int8Dynamic())
    >>> type(q[0]).__module__
    'torch.ao.nn.quantized.dynamic.modules.linear'
"""
from __future__ import annotations

import copy
import functools
import warnings
from typing import Any, Optional

import torch
from torch import nn

from compresslib.configs import QAT, BFloat16, Float16, Int8Dynamic, Int8Static, QuantConfig, WeightOnly
from compresslib.core import quant as cq
from compresslib.core.sensitivity import scan
from compresslib.registry import register, register_kind
from compresslib.torch import ao, bias_correction, inputs, replay
from compresslib.torch.layers import WeightOnlyConv2d, WeightOnlyLinear


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _leaves_skipped(model: nn.Module, handled: tuple) -> None:
    """Warn once, naming the weighted layers that stay float."""
    skipped = [f"{n} ({type(m).__name__})" for n, m in model.named_modules()
               if not list(m.children()) and any(p.is_floating_point() for p in m.parameters(recurse=False))
               and not isinstance(m, handled) and not isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if skipped:
        warnings.warn(f"quantize: layers left in float (not supported by this mode): {', '.join(skipped)}",
                      UserWarning, stacklevel=4)


def _require_cpu(model: nn.Module, config: QuantConfig) -> None:
    """Int8Dynamic and Int8Static produce torch.ao int8 modules, whose kernels exist on CPU only."""
    device = inputs.model_device(model)
    if device.type != "cpu":
        raise ValueError(f"model: {type(config).__name__} runs on CPU only (torch's x86 int8 kernels), but the "
                         f"model is on {device}; quantize model.cpu() (WeightOnly, Float16 and BFloat16 "
                         "work on any device; QAT trains on any device and convert() returns a CPU model)")


# --------------------------------------------------------------------------- handlers


@register("quantize", "torch", Int8Dynamic)
def quantize_dynamic(model: nn.Module, config: Int8Dynamic, *, calibration_data: Any = None) -> nn.Module:
    """Int8 Linear weights; activations quantized per batch at run time (``torch.ao`` dynamic)."""
    _check_model(model)
    _require_cpu(model, config)
    float_model = copy.deepcopy(model).eval()
    _leaves_skipped(float_model, (nn.Linear,))
    torch_ao, _ = ao.modules()
    qconfig = torch_ao.QConfig(activation=torch_ao.PlaceholderObserver.with_args(dtype=torch.quint8, is_dynamic=True),
                               weight=ao.weight_observer(config.per_channel))
    kept = _read_as_tensors(float_model)
    if kept:
        warnings.warn(f"quantize(Int8Dynamic): layers left in float because their parent reads their .weight as a "
                      f"tensor (torch's fused Transformer layers), which torch.ao's int8 Linear does not have: "
                      f"{', '.join(kept)}", UserWarning, stacklevel=3)
    spec = {n: qconfig for n, m in float_model.named_modules() if type(m) is nn.Linear and n not in kept}
    with ao.quiet(), ao.x86_engine():
        q = torch_ao.quantize_dynamic(copy.deepcopy(float_model), spec, dtype=torch.qint8)
    return replay.attach(q, float_model, config, None)


def _read_as_tensors(model: nn.Module) -> list[str]:
    """Linear layers inside ``nn.TransformerEncoderLayer``/``DecoderLayer``: their fast-path check reads
    ``linear.weight.device``, so they must keep a weight tensor."""
    fused = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return [f"{n}.{c}" if n else c for n, m in model.named_modules() if isinstance(m, fused)
            for c, child in m.named_children() if isinstance(child, nn.Linear)]


@register("quantize", "torch", Int8Static)
def quantize_static(model: nn.Module, config: Int8Static, *, calibration_data: Any = None) -> nn.Module:
    """Int8 weights and activations calibrated on ``calibration_data``.

    Path: FX graph mode (``prepare_fx``/``convert_fx``, x86 backend), which runs fast in
    eager PyTorch. A model that ``torch.fx`` cannot trace (Python control flow on
    shapes, dict inputs, ``ModelOutput`` returns — most Hugging Face models) goes through
    ``torch.export`` and PT2E (``torchao.quantization.pt2e`` with the ``X86InductorQuantizer``)
    instead, with one warning saying so: its int8 arithmetic is fast under
    ``torch.compile``, emulated in eager mode. ``q.compresslib_recipe["path"]`` says which.
    A model neither can capture (control flow on tensor *values*) is refused naming both reasons.
    """
    _check_model(model)
    _require_cpu(model, config)
    if calibration_data is None:
        raise ValueError("calibration_data: Int8Static needs example inputs to calibrate activation ranges "
                         "(a few hundred rows, or an iterable of batches)")
    float_model = copy.deepcopy(model).eval()
    batches = inputs.Batches(calibration_data, 256, float_model)  # a DataLoader is streamed at each pass
    example = inputs.take(batches.first, 0, 1) if inputs.is_batched_example(batches.first) else batches.first
    _leaves_skipped(float_model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    try:
        (q, notes), path = _static_fx(float_model, config, batches, example), "fx"
    except _FxTraceFailed as fx_error:
        q, notes, path = _static_pt2e(float_model, config, batches, example, str(fx_error)), {}, "pt2e"
    q = replay.attach(q, float_model, config, example)
    q.compresslib_recipe["path"] = path
    q.compresslib_recipe.update(notes)
    return q


class _FxTraceFailed(Exception):
    """torch.fx could not trace the model (the message says where)."""


def _static_fx(float_model: nn.Module, config: Int8Static, batches: inputs.Batches,
               example: Any) -> tuple[nn.Module, dict]:
    """The FX int8 model and what was done beyond torch's recipe (layers kept float, bias correction)."""
    mapping = ao.qconfig_mapping(ao.weight_observer(config.per_channel),
                                 ao.activation_observer(config.observer, config.percentile))
    _, qfx = ao.modules()
    args, kwargs = inputs.to_call(example)
    kept: list[str] = []
    with ao.quiet(), ao.x86_engine():
        try:
            if config.float_output:
                kept = output_layers(float_model)
                for name in kept:
                    mapping.set_module_name(name, None)
            prepared = qfx.prepare_fx(copy.deepcopy(float_model), mapping, example_inputs=args)
            with torch.inference_mode():
                inputs.call(prepared, example)
        except Exception as exc:  # noqa: BLE001 - TraceError, TypeError, … from symbolic tracing
            raise _FxTraceFailed(f"{type(exc).__name__}: {exc}") from None
        means, unhook = ({}, lambda: None)
        if config.bias_correction:
            means, unhook = bias_correction.float_means_hooks(prepared)
        with torch.inference_mode():
            for batch in batches:
                inputs.call(prepared, batch)
        unhook()
        q = qfx.convert_fx(prepared)
        notes: dict[str, Any] = {"float_output": kept}
        if config.bias_correction:
            notes["bias_correction"] = bias_correction.correct(q, means, batches.first)
        return q, notes


_FLOAT_WITH_OUTPUT = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AvgPool1d, nn.AvgPool2d,
                      nn.AvgPool3d, nn.Flatten, nn.Dropout, nn.Identity)


def output_layers(model: nn.Module) -> list[str]:
    """Names of the Conv/Linear layers whose outputs reach the model's outputs through parameter-free ops only,
    and of the parameter-free modules on that way (pooling, flatten, dropout), which stay float with them.

    Example:
        >>> output_layers(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)))
        ['2']
    """
    traced = torch.fx.symbolic_trace(model)
    layers = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)

    def module(node: torch.fx.Node) -> Optional[nn.Module]:
        return traced.get_submodule(node.target) if node.op == "call_module" else None

    found: list[torch.fx.Node] = []
    seen: set = set()
    stack = [n for n in traced.graph.nodes if n.op == "output"]
    while stack:  # back from the outputs to the first Conv/Linear on each way
        node = stack.pop()
        if node in seen or node.op in ("placeholder", "get_attr"):
            continue
        seen.add(node)
        m = module(node)
        if isinstance(m, layers):
            found.append(node)
        elif m is None or not any(True for _ in m.parameters()):
            stack.extend(node.all_input_nodes)
    passed: list[str] = []
    stack = [i for n in found for i in n.all_input_nodes]
    while stack:  # the parameter-free modules (pooling, flatten) feeding only those layers
        node = stack.pop()
        m = module(node)
        if not isinstance(m, _FLOAT_WITH_OUTPUT) or len(node.users) != 1:
            continue
        passed.append(str(node.target))
        stack.extend(node.all_input_nodes)
    return sorted({str(n.target) for n in found}) + sorted(set(passed))


def _static_pt2e(float_model: nn.Module, config: Int8Static, batches: inputs.Batches, example: Any,
                 fx_error: str) -> nn.Module:
    """``torch.export`` (batch dimension dynamic) → ``prepare_pt2e`` → calibrate → ``convert_pt2e``."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    exported = export_module(float_model, batches.first, f"Int8Static: torch.fx could not trace it ({fx_error})")
    # the x86 Inductor recipe: per-channel symmetric weights (whatever config.per_channel says), full 8-bit activations
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(reduce_range=False))
    with ao.quiet():
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for batch in batches:
                inputs.call(prepared, batch)
        q = ao.exported_train_eval(convert_pt2e(prepared))
    warnings.warn(f"quantize(Int8Static): torch.fx could not trace {type(float_model).__name__} ({fx_error[:160]}); "
                  "quantized through torch.export + PT2E (X86InductorQuantizer) instead; run it under "
                  "torch.compile for int8 speed", UserWarning, stacklevel=4)
    return q


def export_module(model: nn.Module, example: Any, why: str) -> nn.Module:
    """``torch.export.export(model, example).module()`` with a dynamic batch dimension; ``ValueError`` naming
    ``model`` (and ``why`` another path was not taken) when it cannot be exported."""
    from torch.export import Dim, export

    rows = inputs.leading_size(example) if inputs.is_batched_example(example) else 2
    # a batch of 1 would be specialised (0/1 specialisation): export with two rows or more
    example = inputs.take(example, 0, 4) if rows >= 2 else inputs.repeat(example, 2)
    args, kwargs = inputs.to_call(example, inputs.model_device(model))
    dims = {0: Dim.AUTO}
    dynamic = ({k: dims for k in kwargs} if kwargs else tuple(dims for _ in args))
    try:
        with ao.quiet():
            return export(model, args, kwargs, dynamic_shapes=dynamic).module()
    except Exception as exc:  # noqa: BLE001 - export errors are many and deep
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ValueError(f"model: {why}, and torch.export could not capture it either ({type(exc).__name__}: "
                         f"{first}); a forward with Python control flow on tensor values cannot be quantized "
                         "statically — use Int8Dynamic or WeightOnly") from None


@register("quantize", "torch", WeightOnly)
def quantize_weight_only(model: nn.Module, config: WeightOnly, *, calibration_data: Any = None) -> nn.Module:
    """Weights stored in 8 or 4 bits; 8-bit per channel through torchao, the rest with compresslib's layers."""
    _check_model(model)
    model = copy.deepcopy(model).eval()
    if config.bits == 8 and config.group_size is None:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_

        _leaves_skipped(model, (nn.Linear,))
        float_model = copy.deepcopy(model)
        quantize_(model, Int8WeightOnlyConfig())
        return replay.attach(model, float_model, config, None)
    _leaves_skipped(model, (nn.Linear, nn.Conv2d))
    skipped = _replace_weight_only(model, config.bits, config.group_size)
    if skipped:
        warnings.warn(f"quantize: layers left in float (group_size {config.group_size} does not divide "
                      f"their fan-in): {', '.join(skipped)}", UserWarning, stacklevel=3)
    return model


@register("quantize", "torch", Float16, BFloat16)
def quantize_half(model: nn.Module, config: QuantConfig, *, calibration_data: Any = None) -> nn.Module:
    """A copy in float16 or bfloat16 (parameters and buffers)."""
    _check_model(model)
    dtype = torch.float16 if isinstance(config, Float16) else torch.bfloat16
    return copy.deepcopy(model).eval().to(dtype)


def _replace_weight_only(model: nn.Module, bits: int, group_size: Optional[int], prefix: str = "",
                         skipped: Optional[list] = None) -> list:
    """Swap Linear/Conv2d children for weight-only layers; return the names left float (group size misfit)."""
    skipped = [] if skipped is None else skipped
    for name, child in list(model.named_children()):
        full = f"{prefix}{name}"
        if type(child) in (nn.Linear, nn.Conv2d):
            fan_in = child.weight[0].numel()
            if group_size and fan_in % group_size:
                skipped.append(f"{full} (fan-in {fan_in})")
                continue
            cls = WeightOnlyLinear if isinstance(child, nn.Linear) else WeightOnlyConv2d
            setattr(model, name, cls.from_float(child, bits, group_size))
        else:
            _replace_weight_only(child, bits, group_size, f"{full}.", skipped)
    return skipped


@register("prepare_qat", "torch", QAT)
def prepare_qat(model: nn.Module, config: QAT = QAT(), *, example_input: Any = None) -> nn.Module:
    """A copy of ``model`` with fake-quantizers on weights and activations, ready to train.

    Train it with :func:`compresslib.torch.train.fit` (gradients pass straight through
    the rounding), then call :func:`convert`. ``example_input``: one batch the model
    takes (guessed from the first layer for image and vector models that torch.fx traces; a model only
    ``torch.export`` captures has its input shape fixed by the example, so it needs one of your batches).
    """
    _check_model(model)
    if config.activation_bits is None:
        raise ValueError("config.activation_bits: the torch backend fake-quantizes activations too; "
                         "give an integer in [2, 8] (8 is the usual choice)")
    float_model = copy.deepcopy(model).train()
    example = (inputs.guess_example(float_model) if example_input is None
               else inputs.first_batch(example_input, 1, float_model))
    _leaves_skipped(float_model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    mapping = ao.qconfig_mapping(ao.weight_observer(config.per_channel, config.weight_bits, fake=True),
                                 ao.activation_observer("moving_average", bits=config.activation_bits, fake=True))
    for kind in (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d):  # torch.ao has no per-channel
        mapping.set_object_type(kind, None)  # transposed conv: they stay float (named by _leaves_skipped above)
    _, qfx = ao.modules()
    args, _ = inputs.to_call(example, inputs.model_device(float_model), model=float_model)
    try:
        with ao.quiet():
            prepared, path = qfx.prepare_qat_fx(copy.deepcopy(float_model), mapping, example_inputs=args), "fx"
    except Exception as exc:  # noqa: BLE001 - torch.fx could not trace: try torch.export + PT2E
        fx_error = f"{type(exc).__name__}: {exc}"
        if example_input is None:  # torch.export would fix the guessed shape (28 px for an image) into the graph
            raise ValueError(f"example_input: prepare_qat(QAT) captures {type(float_model).__name__} with "
                             f"torch.export (torch.fx could not trace it: {fx_error[:200]}), which fixes the input's "
                             f"shape to the example's; pass one batch of the data you will train it on "
                             f"(a guessed {inputs.describe(example)} would refuse any other size)") from None
        prepared, path = _qat_pt2e(float_model, config, example, fx_error), "pt2e"
    prepared = replay.attach(prepared, float_model.eval(), config, example)
    prepared.compresslib_recipe["path"] = path
    return prepared


def _qat_pt2e(float_model: nn.Module, config: QAT, example: Any, fx_error: str) -> nn.Module:
    """``torch.export`` in training mode → ``prepare_qat_pt2e`` with the x86 Inductor QAT recipe (8-bit)."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    why = f"prepare_qat: torch.fx could not trace it ({fx_error[:300]})"
    if (config.weight_bits, config.activation_bits) != (8, 8):
        raise ValueError(f"model: {why}; the torch.export + PT2E path fake-quantizes at 8 bits only, "
                         f"got weight_bits={config.weight_bits}, activation_bits={config.activation_bits}")
    exported = export_module(copy.deepcopy(float_model).train(), example, why)
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=True))
    with ao.quiet():
        prepared = prepare_qat_pt2e(exported, quantizer)
    ao.exported_train_eval(prepared)
    warnings.warn(f"prepare_qat: torch.fx could not trace {type(float_model).__name__} ({fx_error[:160]}); "
                  "fake-quantized through torch.export + PT2E (X86InductorQuantizer, 8-bit) instead",
                  UserWarning, stacklevel=4)
    return prepared


def convert(model: nn.Module) -> nn.Module:
    """The int8 model of a QAT-trained ``model`` from :func:`prepare_qat` (the input is not changed).

    The result is always a **CPU** model, wherever ``model`` lives: torch's int8
    kernels exist on CPU only. Training the QAT model on a GPU and converting it
    to a CPU int8 model for inference is the intended workflow; ``model`` itself
    stays on its device (it is copied before the move).
    """
    if getattr(model, "compresslib_recipe", {}).get("path") == "pt2e":
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

        from torchao.quantization.pt2e import move_exported_model_to_eval

        work = copy.deepcopy(model).cpu()
        move_exported_model_to_eval(work)
        with ao.quiet():
            converted = convert_pt2e(work)
        return replay.carry(model, ao.exported_train_eval(converted))
    if not isinstance(model, torch.fx.GraphModule) or not ao.is_fake_quantized(model):
        raise TypeError("model must come from prepare_qat(model, QAT(...)) (no fake-quantizers found)")
    weight_fq = next(m.weight_fake_quant for m in model.modules() if hasattr(m, "weight_fake_quant"))
    qrange = (int(weight_fq.quant_min), int(weight_fq.quant_max))
    work = copy.deepcopy(model).cpu().eval()  # a GraphModule's deepcopy drops extra attributes like the recipe
    _, qfx = ao.modules()
    with ao.quiet(), ao.x86_engine():
        converted = qfx.convert_fx(work)
    _clamp_weights(converted, qrange)
    return replay.carry(model, converted)


def _clamp_weights(model: nn.Module, qrange: tuple[int, int]) -> None:
    """Clamp converted integer weights to the fake-quantizer's range, as the fake-quantizer did in training.

    ``convert_fx`` re-rounds the weights with the observer's last scale and clamps only
    to int8, so an edge value can land one step outside a 4-bit range.
    """
    qmin, qmax = qrange
    for m in model.modules():
        if not (hasattr(m, "set_weight_bias") and callable(getattr(m, "weight", None))):
            continue
        w = m.weight()
        q = w.int_repr().clamp(qmin, qmax)
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            new = torch._make_per_channel_quantized_tensor(q, w.q_per_channel_scales(),
                                                           w.q_per_channel_zero_points(), w.q_per_channel_axis())
        else:
            new = torch._make_per_tensor_quantized_tensor(q, w.q_scale(), w.q_zero_point())
        m.set_weight_bias(new, m.bias())


# --------------------------------------------------------------------------- weights rounded in float


def quantizable_layers(model: nn.Module) -> list[str]:
    """Names of the layers whose weights quantization rounds (Conv2d and Linear), in module order."""
    return [n for n, m in _check_model(model).named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def fake_quantize_weights(model: nn.Module, bits: int, layers: Optional[list[str]] = None,
                          per_channel: bool = True) -> nn.Module:
    """A float copy of ``model`` whose Conv/Linear weights (all, or only ``layers``) are rounded to ``bits``.

    The same core math as every other path; used by sensitivity scans and for 4-bit PTQ baselines.
    """
    cq.check_bits(bits)
    names = quantizable_layers(model)
    chosen = set(names) if layers is None else set(layers)
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"layers: unknown layer names {sorted(unknown)}; quantizable: {names}")
    model = copy.deepcopy(model)
    with torch.no_grad():
        for n, m in model.named_modules():
            if n in chosen:
                w = m.weight.detach().float().cpu().numpy()
                qt = cq.quantize_tensor(w, bits, symmetric=True, axis=0 if per_channel else None)
                m.weight.copy_(torch.from_numpy(qt.dequantize()).to(m.weight))
    return model


def sensitivity(model: nn.Module, data: Any, bits: int = 4) -> dict[str, float]:
    """Accuracy of ``model`` when only one layer at a time has its weights quantized to ``bits``.

    Example:
        >>> accs = sensitivity(cl.zoo.pretrained("lenet5", "torch"), test, bits=2)   # doctest: +SKIP
    """
    from compresslib.torch.train import evaluate

    return scan(quantizable_layers(model), [bits],
                lambda name, b: evaluate(fake_quantize_weights(model, b, [name]), data), flat=True)

# int8 models are saved as a recipe replayed on a float skeleton; replaying a QAT recipe needs convert
register_kind("torch", replay.KIND, replay.to_spec, functools.partial(replay.from_spec, convert=convert))


__all__ = ["quantize_dynamic", "quantize_static", "quantize_weight_only", "quantize_half", "prepare_qat", "convert",
           "quantizable_layers", "fake_quantize_weights", "sensitivity"]
