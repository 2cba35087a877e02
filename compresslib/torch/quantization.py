"""Quantization of PyTorch models: dynamic and static int8, weight-only, half precision, QAT.

Paths, each chosen because it measured fastest (or is the only one) on this CPU:

* ``Int8Dynamic``: ``torch.ao.quantization.quantize_dynamic`` on Linear layers
  (int8 weights, activations quantized per batch at run time).
* ``Int8Static``: FX graph mode (``prepare_fx``/``convert_fx``, x86 backend):
  it fuses Conv-BN-ReLU and converts the residual ``+`` into a quantized add on
  its own, which eager mode only does through ``FloatFunctional``.
* ``WeightOnly(bits=8)``: torchao ``Int8WeightOnlyConfig`` on Linear layers;
  ``WeightOnly(bits=4)``: compresslib's own :class:`WeightOnlyLinear` /
  :class:`WeightOnlyConv2d` (torchao's int4 kernels need a GPU or ``mslk``), which
  store packed 4-bit integers and per-group scales and dequantize on the fly.
* ``Float16`` / ``BFloat16``: a converted copy.
* ``QAT``: ``prepare_qat_fx`` with fake-quantizers at ``weight_bits``/``activation_bits``
  (straight-through gradients), then :func:`convert` to a true int8 model.

Devices: ``WeightOnly``, ``Float16``/``BFloat16`` and QAT training run wherever the
model is (CPU or CUDA) and keep it there. ``Int8Dynamic`` and ``Int8Static`` are
CPU-only (torch's int8 kernels) and raise a ``ValueError`` naming ``model`` for a
model on another device; :func:`convert` always returns a CPU int8 model, and a
quantized model loaded with :func:`compresslib.load` is on CPU.

Every use of the deprecated ``torch.ao.quantization`` API stays in this module,
with its deprecation warning silenced narrowly around each call.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> q = quantize(m, cl.Int8Dynamic())
    >>> type(q[0]).__name__
    'Linear'
    >>> type(q[0]).__module__
    'torch.ao.nn.quantized.dynamic.modules.linear'
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from compresslib.configs import QAT, BFloat16, Float16, Int8Dynamic, Int8Static, QuantConfig, WeightOnly, check_config
from compresslib.core import quant as cq
from compresslib.io import register_class

# --------------------------------------------------------------------------- torch.ao, fenced


@contextlib.contextmanager
def _quiet_ao():
    """Silence only torch.ao.quantization's deprecation warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        yield


def _ao():
    with _quiet_ao():
        import torch.ao.quantization as ao
        import torch.ao.quantization.quantize_fx as qfx
    return ao, qfx


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _leaves_skipped(model: nn.Module, handled: tuple) -> None:
    """Warn once, naming the weighted layers that stay float."""
    skipped = [f"{n} ({type(m).__name__})" for n, m in model.named_modules()
               if not list(m.children()) and any(p.is_floating_point() for p in m.parameters(recurse=False))
               and not isinstance(m, handled) and not isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if skipped:
        warnings.warn(f"quantize: layers left in float (not supported by this mode): {', '.join(skipped)}",
                      UserWarning, stacklevel=3)


def _weight_observer(per_channel: bool, bits: int = 8, fake: bool = False):
    ao, _ = _ao()
    qmin, qmax = cq.qrange(bits)
    if per_channel:
        obs = ao.MovingAveragePerChannelMinMaxObserver if fake else ao.PerChannelMinMaxObserver
        kw = dict(dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=qmin, quant_max=qmax)
    else:
        obs = ao.MovingAverageMinMaxObserver if fake else ao.MinMaxObserver
        kw = dict(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric, quant_min=qmin, quant_max=qmax)
    if fake:
        return ao.FakeQuantize.with_args(observer=obs, **kw)
    return obs.with_args(**kw)


def _activation_observer(observer: str, percentile: float = 99.99, bits: int = 8, fake: bool = False):
    ao, _ = _ao()
    qmin, qmax = cq.qrange(bits, signed=False, reduce_range=(bits == 8))
    kw = dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=qmin, quant_max=qmax)
    if fake:
        return ao.FakeQuantize.with_args(observer=ao.MovingAverageMinMaxObserver, **kw)
    if observer == "minmax":
        return ao.MinMaxObserver.with_args(**kw)
    if observer == "moving_average":
        return ao.MovingAverageMinMaxObserver.with_args(**kw)
    if observer == "mse":  # torch's histogram observer minimises the L2 quantization error
        return ao.HistogramObserver.with_args(**kw)
    return _percentile_observer_class().with_args(percentile=percentile, **kw)


_PERCENTILE_CLS = None


def _percentile_observer_class():
    """A MinMaxObserver whose range is the calibration data's percentiles (core math)."""
    global _PERCENTILE_CLS
    if _PERCENTILE_CLS is None:
        ao, _ = _ao()

        class PercentileObserver(ao.MinMaxObserver):
            def __init__(self, percentile: float = 99.99, **kw):
                super().__init__(**kw)
                self.percentile = float(percentile)

            def forward(self, x_orig):
                if x_orig.numel() == 0:
                    return x_orig
                lo, hi = cq.percentile_range(x_orig.detach().float().cpu().numpy(), self.percentile)
                lo_t = torch.tensor(float(lo), device=self.min_val.device)
                hi_t = torch.tensor(float(hi), device=self.max_val.device)
                self.min_val.copy_(torch.minimum(self.min_val, lo_t) if self.min_val.numel() and torch.isfinite(self.min_val) else lo_t)
                self.max_val.copy_(torch.maximum(self.max_val, hi_t) if self.max_val.numel() and torch.isfinite(self.max_val) else hi_t)
                return x_orig

        _PERCENTILE_CLS = PercentileObserver
    return _PERCENTILE_CLS


def _qconfig_mapping(weight, activation):
    ao, _ = _ao()
    with _quiet_ao():
        return ao.QConfigMapping().set_global(ao.QConfig(activation=activation, weight=weight))


def _calibration_tensor(model: nn.Module, calibration_data: Any) -> torch.Tensor:
    x = cq.check_calibration(calibration_data)
    return torch.as_tensor(x).to(_device(model))


# --------------------------------------------------------------------------- own weight-only layers


@register_class
class WeightOnlyLinear(nn.Module):
    """A Linear layer whose weight is stored as packed ``bits``-bit integers with per-group scales.

    compresslib's own (torchao's int4 kernels need a GPU here): the weight is
    dequantized on each call, so it saves memory and file size, not time.

    Example:
        >>> lin = torch.nn.Linear(8, 2)
        >>> q = WeightOnlyLinear.from_float(lin, bits=4, group_size=4)
        >>> tuple(q.packed.shape), tuple(q.scale.shape)
        ((8,), (4,))
    """

    def __init__(self, in_features: int, out_features: int, bits: int = 4, group_size: int = 0,
                 has_bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.bits, self.group_size, self.has_bias = int(bits), int(group_size), bool(has_bias)
        n = self.out_features * self.in_features
        groups = n // (self.group_size or self.in_features)
        self.register_buffer("packed", torch.zeros((n + 1) // 2 if bits == 4 else n,
                                                   dtype=torch.uint8 if bits == 4 else torch.int8))
        self.register_buffer("scale", torch.ones(groups))
        self.bias = nn.Parameter(torch.zeros(out_features)) if has_bias else None

    @classmethod
    def from_float(cls, layer: nn.Linear, bits: int = 4, group_size: Optional[int] = None) -> "WeightOnlyLinear":
        w = layer.weight.detach().float().cpu().numpy()
        new = cls(layer.in_features, layer.out_features, bits, group_size or 0, layer.bias is not None)
        new = new.to(layer.weight.device)  # packed weight, scales and bias on the layer's device
        _pack_into(new, w, bits, group_size)
        if layer.bias is not None:
            new.bias.data.copy_(layer.bias.detach())
        return new

    def dequantized_weight(self) -> torch.Tensor:
        return _unpack(self, (self.out_features, self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.dequantized_weight().to(x.dtype), self.bias)


@register_class
class WeightOnlyConv2d(nn.Module):
    """A Conv2d whose weight is stored as packed ``bits``-bit integers with per-group scales (see :class:`WeightOnlyLinear`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple = (1, 1), stride: tuple = (1, 1),
                 padding: tuple = (0, 0), dilation: tuple = (1, 1), groups: int = 1, bits: int = 4,
                 group_size: int = 0, has_bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.bits, self.group_size, self.has_bias = int(bits), int(group_size), bool(has_bias)
        fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
        n = self.out_channels * fan_in
        self.register_buffer("packed", torch.zeros((n + 1) // 2 if bits == 4 else n,
                                                   dtype=torch.uint8 if bits == 4 else torch.int8))
        self.register_buffer("scale", torch.ones(n // (self.group_size or fan_in)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if has_bias else None

    @classmethod
    def from_float(cls, layer: nn.Conv2d, bits: int = 4, group_size: Optional[int] = None) -> "WeightOnlyConv2d":
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  layer.dilation, layer.groups, bits, group_size or 0, layer.bias is not None)
        new = new.to(layer.weight.device)
        w = layer.weight.detach().float().cpu().numpy()
        _pack_into(new, w.reshape(w.shape[0], -1), bits, group_size)
        if layer.bias is not None:
            new.bias.data.copy_(layer.bias.detach())
        return new

    def dequantized_weight(self) -> torch.Tensor:
        fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
        w = _unpack(self, (self.out_channels, fan_in))
        return w.reshape(self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.dequantized_weight().to(x.dtype), self.bias, self.stride,
                                    self.padding, self.dilation, self.groups)


def _pack_into(module: nn.Module, w2d: np.ndarray, bits: int, group_size: Optional[int]) -> None:
    """Quantize a (out, fan_in) weight per group along fan_in (per row if no group size); store it."""
    gs = group_size or w2d.shape[1]
    if w2d.shape[1] % gs:
        raise ValueError(f"WeightOnly.group_size must divide the layer's fan-in {w2d.shape[1]}, got {gs}")
    qt = cq.quantize_tensor(w2d, bits=bits, symmetric=True, axis=1, group_size=gs)
    q = qt.q.reshape(-1)
    packed = cq.pack_int4(q) if bits == 4 else q.astype(np.int8)
    module.packed.copy_(torch.from_numpy(packed).to(module.packed.device))
    module.scale.copy_(torch.from_numpy(qt.scale.astype(np.float32)).to(module.scale.device))


def _unpack(module: nn.Module, shape: tuple) -> torch.Tensor:
    n = int(np.prod(shape))
    if module.bits == 4:
        p = module.packed
        q = torch.stack([(p & 0x0F).to(torch.int8) - 8, (p >> 4).to(torch.int8) - 8], dim=1).reshape(-1)[:n]
    else:
        q = module.packed
    gs = module.group_size or shape[1]
    return (q.reshape(-1, gs).float() * module.scale.reshape(-1, 1)).reshape(shape)


def _replace_weight_only(model: nn.Module, bits: int, group_size: Optional[int], prefix: str = "",
                         skipped: Optional[list] = None) -> list:
    """Swap Linear/Conv2d children for weight-only layers; return the names left float (group size misfit)."""
    skipped = [] if skipped is None else skipped
    for name, child in list(model.named_children()):
        full = f"{prefix}{name}"
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            fan_in = child.weight[0].numel()
            if group_size and fan_in % group_size:
                skipped.append(f"{full} (fan-in {fan_in})")
                continue
            cls = WeightOnlyLinear if isinstance(child, nn.Linear) else WeightOnlyConv2d
            setattr(model, name, cls.from_float(child, bits, group_size))
        else:
            _replace_weight_only(child, bits, group_size, f"{full}.", skipped)
    return skipped


# --------------------------------------------------------------------------- the verbs


def quantize(model: nn.Module, config: QuantConfig, calibration_data: Any = None) -> nn.Module:
    """A quantized copy of ``model`` (``model`` itself is not changed).

    Args:
        model: a float ``nn.Module``.
        config: ``Int8Dynamic``, ``Int8Static``, ``WeightOnly``, ``Float16`` or ``BFloat16``.
        calibration_data: inputs (N, ...) for ``Int8Static`` (a few hundred examples suffice).

    Example:
        >>> import compresslib as cl
        >>> m = cl.zoo.pretrained("resnet8", framework="torch")                       # doctest: +SKIP
        >>> q = quantize(m, cl.Int8Static(), calibration_data=x[:256])               # doctest: +SKIP
    """
    _check_model(model)
    check_config(config, QuantConfig)
    if isinstance(config, QAT):
        raise TypeError("config: QAT is not a post-training config; use prepare_qat then convert")
    if isinstance(config, (Int8Static, Int8Dynamic)):
        _require_cpu(model, config)
    if isinstance(config, Int8Static):
        x = _calibration_tensor(model, calibration_data)
        return _static(model, config, x)
    model = copy.deepcopy(model).eval()
    if isinstance(config, Int8Dynamic):
        ao, _ = _ao()
        _leaves_skipped(model, (nn.Linear,))
        weight = _weight_observer(config.per_channel)
        qconfig = ao.QConfig(activation=ao.PlaceholderObserver.with_args(dtype=torch.quint8, is_dynamic=True),
                             weight=weight)
        with _quiet_ao():
            q = ao.quantize_dynamic(copy.deepcopy(model), {nn.Linear: qconfig}, dtype=torch.qint8)
        return _attach_recipe(q, model, "dynamic", {"per_channel": config.per_channel}, None)
    if isinstance(config, WeightOnly):
        if config.bits == 8 and config.group_size is None:
            from torchao.quantization import Int8WeightOnlyConfig, quantize_

            _leaves_skipped(model, (nn.Linear,))
            float_model = copy.deepcopy(model)
            quantize_(model, Int8WeightOnlyConfig())
            return _attach_recipe(model, float_model, "torchao_int8_weight_only", {}, None)
        _leaves_skipped(model, (nn.Linear, nn.Conv2d))
        skipped = _replace_weight_only(model, config.bits, config.group_size)
        if skipped:
            warnings.warn(f"quantize: layers left in float (group_size {config.group_size} does not divide "
                          f"their fan-in): {', '.join(skipped)}", UserWarning, stacklevel=2)
        return model
    if isinstance(config, Float16):
        return model.half()
    if isinstance(config, BFloat16):
        return model.to(torch.bfloat16)
    raise TypeError(f"config: unsupported quantization config {type(config).__name__}")  # pragma: no cover


def _require_cpu(model: nn.Module, config: QuantConfig) -> None:
    """Int8Dynamic and Int8Static produce torch.ao int8 modules, whose kernels exist on CPU only."""
    device = _device(model)
    if device.type != "cpu":
        raise ValueError(f"model: {type(config).__name__} runs on CPU only (torch's x86 int8 kernels), but the "
                         f"model is on {device}; quantize model.cpu() (WeightOnly, Float16 and BFloat16 "
                         "work on any device; QAT trains on any device and convert() returns a CPU model)")


def _static(model: nn.Module, config: Int8Static, x: torch.Tensor) -> nn.Module:
    ao, qfx = _ao()
    model = copy.deepcopy(model).eval()
    _leaves_skipped(model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    mapping = _qconfig_mapping(_weight_observer(config.per_channel),
                               _activation_observer(config.observer, config.percentile))
    torch.backends.quantized.engine = "x86"
    float_model = copy.deepcopy(model)
    with _quiet_ao():
        prepared = qfx.prepare_fx(model, mapping, example_inputs=(x[:1],))
        with torch.inference_mode():
            for start in range(0, len(x), 256):
                prepared(x[start:start + 256])
        q = qfx.convert_fx(prepared)
    cfg = {"per_channel": config.per_channel, "observer": config.observer, "percentile": config.percentile}
    return _attach_recipe(q, float_model, "static", cfg, tuple(x[:1].shape))


def prepare_qat(model: nn.Module, config: QAT = QAT()) -> nn.Module:
    """A copy of ``model`` with fake-quantizers on weights and activations, ready to train.

    Train it with :func:`compresslib.torch.train.fit` (gradients pass straight through
    the rounding), then call :func:`convert`.
    """
    _check_model(model)
    check_config(config, QAT)
    if config.activation_bits is None:
        raise ValueError("config.activation_bits: the torch backend fake-quantizes activations too; "
                         "give an integer in [2, 8] (8 is the usual choice)")
    ao, qfx = _ao()
    model = copy.deepcopy(model).train()
    _leaves_skipped(model, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d))
    mapping = _qconfig_mapping(_weight_observer(config.per_channel, config.weight_bits, fake=True),
                               _activation_observer("moving_average", bits=config.activation_bits, fake=True))
    example = _example_input(model)
    float_model = copy.deepcopy(model)
    with _quiet_ao():
        prepared = qfx.prepare_qat_fx(model, mapping, example_inputs=(example,))
    cfg = {"weight_bits": config.weight_bits, "activation_bits": config.activation_bits,
           "per_channel": config.per_channel}
    return _attach_recipe(prepared, float_model, "qat", cfg, tuple(example.shape))


def _example_input(model: nn.Module) -> torch.Tensor:
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    if isinstance(first, nn.Conv2d):
        return torch.zeros(1, first.in_channels, 28, 28, device=_device(model))
    if isinstance(first, nn.Linear):
        return torch.zeros(1, first.in_features, device=_device(model))
    raise ValueError("model: no Conv2d or Linear layer to quantize")


def convert(model: nn.Module) -> nn.Module:
    """The int8 model of a QAT-trained ``model`` from :func:`prepare_qat` (the input is not changed).

    The result is always a **CPU** model, wherever ``model`` lives: torch's int8
    kernels exist on CPU only. Training the QAT model on a GPU and converting it
    to a CPU int8 model for inference is the intended workflow; ``model`` itself
    stays on its device (it is copied before the move).
    """
    ao, qfx = _ao()
    if not isinstance(model, torch.fx.GraphModule) or not any(
            isinstance(m, ao.FakeQuantizeBase) for m in model.modules()):
        raise TypeError("model must come from prepare_qat(model, QAT(...)) (no fake-quantizers found)")
    weight_fq = next(m.weight_fake_quant for m in model.modules() if hasattr(m, "weight_fake_quant"))
    qrange = (int(weight_fq.quant_min), int(weight_fq.quant_max))
    recipe = getattr(model, "compresslib_recipe", None)
    model = copy.deepcopy(model).cpu().eval()
    torch.backends.quantized.engine = "x86"
    with _quiet_ao():
        converted = qfx.convert_fx(model)
    _clamp_weights(converted, qrange)
    if recipe is not None:
        converted.compresslib_recipe = recipe
    return converted


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


# --------------------------------------------------------------------------- sensitivity


def fake_quantize_weights(model: nn.Module, bits: int, layers: Optional[list[str]] = None,
                          per_channel: bool = True) -> nn.Module:
    """A float copy of ``model`` whose Conv/Linear weights (all, or only ``layers``) are rounded to ``bits``.

    The same core math as every other path; used by :func:`sensitivity` and for 4-bit PTQ baselines.
    """
    cq.check_bits(bits)
    model = copy.deepcopy(_check_model(model))
    names = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    if layers is not None:
        unknown = set(layers) - names
        if unknown:
            raise ValueError(f"layers: unknown layer names {sorted(unknown)}; quantizable: {sorted(names)}")
        names = set(layers)
    with torch.no_grad():
        for n, m in model.named_modules():
            if n in names:
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

    names = [n for n, m in _check_model(model).named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return {n: evaluate(fake_quantize_weights(model, bits, [n]), data) for n in names}


# --------------------------------------------------------------------------- .clz save/load of int8 models
# An int8 model from torch.ao holds packed C++ objects that compresslib.io cannot describe
# generically. Instead the file stores a *recipe*: the float architecture (no float weights),
# the quantization mode and config, and the quantized state (int8 arrays, scales, zero points).
# Loading rebuilds the float skeleton, re-runs the same recipe on it, and loads the state.


def _attach_recipe(q: nn.Module, float_model: nn.Module, mode: str, config: dict,
                   example_shape: Optional[tuple]) -> nn.Module:
    from compresslib.torch import io as tio

    spec, tensors = tio.export(float_model)
    shapes = {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()}
    q.compresslib_recipe = {"mode": mode, "config": config, "shapes": shapes, "float_spec": spec,
                            "example_shape": None if example_shape is None else list(example_shape)}
    return q


def export_quantized(model: nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, tensors)`` of an int8 model made by :func:`quantize` or :func:`convert`."""
    tensors: dict[str, np.ndarray] = {}
    state: dict[str, Any] = {}

    def put(key: str, value: Any) -> Any:
        if isinstance(value, torch.dtype):
            return {"type": "dtype"}
        if value is None:
            return {"type": "none"}
        if isinstance(value, (tuple, list)):
            return {"type": "tuple", "items": [put(f"{key}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, nn.Parameter) \
                and hasattr(value, "__tensor_flatten__"):  # torchao tensor subclass: its inner tensors
            names, _ = value.__tensor_flatten__()
            for n in names:
                tensors[f"{key}#{n}"] = getattr(value, n).detach().cpu().numpy()
            return {"type": "subclass", "names": list(names)}
        if isinstance(value, torch.Tensor) and value.is_quantized:
            tensors[key + "#q"] = value.int_repr().cpu().numpy()
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                tensors[key + "#scale"] = value.q_per_channel_scales().cpu().numpy()
                tensors[key + "#zp"] = value.q_per_channel_zero_points().cpu().numpy()
                return {"type": "qchannel", "axis": int(value.q_per_channel_axis()), "dtype": str(value.dtype)}
            return {"type": "qtensor", "scale": float(value.q_scale()), "zp": int(value.q_zero_point()),
                    "dtype": str(value.dtype)}
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().numpy()
            return {"type": "tensor"}
        raise TypeError(f"cannot save state entry {key!r} of type {type(value).__name__}")

    for key, value in model.state_dict().items():
        state[key] = put(key, value)
    return {"kind": "torch_quantized", "recipe": model.compresslib_recipe, "state": state}, tensors


def rebuild_quantized(spec: dict, tensors: dict[str, np.ndarray]) -> nn.Module:
    """Inverse of :func:`export_quantized`: rebuild the float skeleton, re-run the recipe, load the state.

    Like every model :func:`compresslib.load` returns, the result is on CPU, whatever
    device the saved model was on; move a torchao weight-only model back with ``.to("cuda")``.
    """
    from compresslib.torch import io as tio

    recipe = spec["recipe"]
    zeros = {k: np.zeros(shape, dtype=np.dtype(dt)) for k, (shape, dt) in recipe["shapes"].items()}
    skeleton = tio.rebuild(recipe["float_spec"], zeros).eval()
    mode, cfg = recipe["mode"], recipe["config"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if mode == "dynamic":
            q = quantize(skeleton, Int8Dynamic(**cfg))
        elif mode == "static":
            q = quantize(skeleton, Int8Static(**cfg), calibration_data=np.zeros(recipe["example_shape"], np.float32))
        elif mode == "torchao_int8_weight_only":
            q = quantize(skeleton, WeightOnly(bits=8))
        elif mode == "qat":
            p = prepare_qat(skeleton, QAT(**cfg))
            with torch.no_grad():
                p(torch.zeros(recipe["example_shape"]))
            q = convert(p)
        else:
            raise ValueError(f"unknown quantized model mode {mode!r} in file")
    fresh = q.state_dict()

    def get(key: str, meta: dict) -> Any:
        kind = meta["type"]
        if kind == "dtype":
            return fresh[key] if key in fresh else torch.qint8
        if kind == "none":
            return None
        if kind == "tuple":
            return tuple(get(f"{key}.{i}", m) for i, m in enumerate(meta["items"]))
        if kind == "qchannel":
            return torch._make_per_channel_quantized_tensor(
                torch.from_numpy(tensors[key + "#q"]), torch.from_numpy(tensors[key + "#scale"]),
                torch.from_numpy(tensors[key + "#zp"]), meta["axis"])
        if kind == "qtensor":
            return torch._make_per_tensor_quantized_tensor(torch.from_numpy(tensors[key + "#q"]), meta["scale"], meta["zp"])
        return torch.from_numpy(np.array(tensors[key], copy=True))

    from collections import OrderedDict

    subclass = {k: m for k, m in spec["state"].items() if m["type"] == "subclass"}
    with torch.no_grad():
        for key, meta in subclass.items():  # torchao tensors: fill their inner tensors in place
            target = fresh[key]
            for n in meta["names"]:
                getattr(target, n).copy_(torch.from_numpy(np.array(tensors[f"{key}#{n}"], copy=True)))
    state = OrderedDict((k, get(k, m)) for k, m in spec["state"].items() if k not in subclass)
    state._metadata = getattr(fresh, "_metadata", None)  # module versions decide the state layout
    missing, unexpected = q.load_state_dict(state, strict=False)
    if set(missing) != set(subclass) or unexpected:
        raise ValueError(f"file does not match the rebuilt model: missing {missing}, unexpected {unexpected}")
    q.compresslib_recipe = recipe
    return q
