"""Configuration dataclasses for every compression verb, validated on creation.

A config says *what* to do; the verbs (``quantize``, ``prune``,
``decompose``) do it for either framework. Bad values raise ``ValueError``
naming the field and the allowed values.

Example:
    >>> from compresslib.configs import Magnitude
    >>> Magnitude(sparsity=0.9, scope="global")
    Magnitude(sparsity=0.9, scope='global', schedule=None)
    >>> Magnitude(sparsity=1.0)
    Traceback (most recent call last):
    ...
    ValueError: Magnitude.sparsity must be in [0, 1), got 1.0
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Optional

from compresslib.core import checks
from compresslib.core.quant import OBSERVERS
from compresslib.core.smoothing import check_alpha


def _choice(cls: str, field: str, value: Any, allowed: tuple) -> None:
    checks.choice(f"{cls}.{field}", value, allowed)


def _int_in(cls: str, field: str, value: Any, lo: int, hi: Optional[int] = None) -> None:
    checks.int_in(f"{cls}.{field}", value, lo, hi)


def _bool(cls: str, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{cls}.{field} must be True or False, got {value!r}")


def _fraction(cls: str, field: str, value: Any, *, low_open: bool, high_open: bool) -> None:
    checks.fraction(f"{cls}.{field}", value, low_open=low_open, high_open=high_open)


CONFIG_FORMAT_VERSION = 1

# config class name -> class, filled as subclasses are defined (the inverse of ``to_dict``)
CONFIG_CLASSES: dict[str, type] = {}


class Config:
    """Base class of all configs: validated on creation, serialisable, tied to the verb that applies it.

    ``verb`` names the public function that applies a config (``quantize``, ``prepare_qat``,
    ``prune``, ``decompose``); the handler registry (:mod:`compresslib.registry`) maps
    ``(verb, framework, config type)`` to the backend function.

    Example:
        >>> d = Magnitude(0.9, scope="global").to_dict()
        >>> d
        {'type': 'Magnitude', 'version': 1, 'sparsity': 0.9, 'scope': 'global', 'schedule': None}
        >>> Config.from_dict(d) == Magnitude(0.9, scope="global")
        True
    """

    verb: ClassVar[str] = ""
    # a recipe holding a step of this config ends, by default, with an entropy-coding stage
    entropy_coding: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        CONFIG_CLASSES[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        """``{"type": class name, "version": CONFIG_FORMAT_VERSION, field: value, ...}`` in plain JSON types."""
        out: dict[str, Any] = {"type": type(self).__name__, "version": CONFIG_FORMAT_VERSION}
        for f in fields(self):  # type: ignore[arg-type]
            out[f.name] = _plain(getattr(self, f.name), f"{type(self).__name__}.{f.name}")
        return out

    @staticmethod
    def from_dict(data: Any) -> "Config":
        """The config a :meth:`to_dict` dict describes; a clear ``ValueError`` for anything else."""
        if not isinstance(data, dict):
            raise ValueError(f"config must be a dict with a 'type' key, got {type(data).__name__}")
        data = dict(data)
        name = data.pop("type", None)
        version = data.pop("version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ValueError(f"config version {version!r} is not supported (this compresslib reads "
                             f"version {CONFIG_FORMAT_VERSION})")
        cls = CONFIG_CLASSES.get(name) if isinstance(name, str) else None
        if cls is None or not hasattr(cls, "__dataclass_fields__"):
            known = sorted(n for n, c in CONFIG_CLASSES.items() if hasattr(c, "__dataclass_fields__"))
            raise ValueError(f"config type must be one of {known}, got {name!r}")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValueError(f"{name} has no field(s) {unknown}; fields are {sorted(allowed)}")
        return cls(**{k: _unplain(v) for k, v in data.items()})


def _plain(value: Any, where: str) -> Any:
    """JSON form of a config field (tuples become lists; schedules become their own dicts)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if hasattr(value, "__dataclass_fields__"):  # a schedule (compresslib.core.schedules)
        return {"type": type(value).__name__, **{f.name: _plain(getattr(value, f.name), where) for f in fields(value)}}
    raise TypeError(f"{where}: cannot serialise a {type(value).__name__}")


def _unplain(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value:
        from compresslib.core import schedules

        kinds = {c.__name__: c for c in schedules.Schedule.__subclasses__()}
        if value["type"] not in kinds:
            raise ValueError(f"schedule type must be one of {sorted(kinds)}, got {value['type']!r}")
        try:
            return kinds[value["type"]](**{k: v for k, v in value.items() if k != "type"})
        except TypeError as exc:
            raise ValueError(f"schedule: {exc}") from None
    return value


# --------------------------------------------------------------------------- quantization
class QuantConfig(Config):
    """Base class of quantization configs (applied by ``quantize``)."""

    verb = "quantize"


@dataclass(frozen=True)
class Int8Dynamic(QuantConfig):
    """Int8 weights, activations quantized on the fly per batch (Linear/Dense layers)."""

    per_channel: bool = True

    def __post_init__(self) -> None:
        _bool("Int8Dynamic", "per_channel", self.per_channel)


@dataclass(frozen=True)
class Int8Static(QuantConfig):
    """Int8 weights and activations with scales calibrated on ``calibration_data``.

    ``bias_correction``: remove the mean output error rounding causes, per channel. PyTorch (FX
    path): after calibration each int8 layer's mean error on the first calibration batch, seen
    through the int8 layers before it, is added back to its bias (as NNCF does by default).
    Keras (LiteRT): the converter gets a BN-folded copy whose biases absorb the mean error of
    rounding the weights. ``float_output`` (PyTorch FX path only; Keras refuses it): the
    Conv/Linear layers that produce the model's outputs stay in float, so the outputs are not
    rounded to uint8 (PT2E and NNCF leave outputs float too); costs those layers' int8 speed and size.
    """

    per_channel: bool = True
    observer: str = "minmax"
    percentile: float = 99.99
    bias_correction: bool = True
    float_output: bool = False

    def __post_init__(self) -> None:
        _bool("Int8Static", "per_channel", self.per_channel)
        _bool("Int8Static", "bias_correction", self.bias_correction)
        _bool("Int8Static", "float_output", self.float_output)
        _choice("Int8Static", "observer", self.observer, OBSERVERS)
        if isinstance(self.percentile, bool) or not isinstance(self.percentile, (int, float)) or \
                not 50.0 < float(self.percentile) <= 100.0:
            raise ValueError(f"Int8Static.percentile must be in (50, 100], got {self.percentile!r}")


@dataclass(frozen=True)
class WeightOnly(QuantConfig):
    """Weights stored in ``bits`` (8 or 4) per group of ``group_size`` input channels; activations float."""

    bits: int = 8
    group_size: Optional[int] = None

    def __post_init__(self) -> None:
        _choice("WeightOnly", "bits", self.bits, (4, 8))
        if self.group_size is not None:
            _int_in("WeightOnly", "group_size", self.group_size, 1)


def _check_group(cls: str, group_size: Any) -> None:
    if group_size is not None:
        _int_in(cls, "group_size", group_size, 1)


@dataclass(frozen=True)
class GPTQ(QuantConfig):
    """GPTQ (Frantar et al., ICLR 2023): weight-only ``bits`` (3, 4 or 8; 2 allowed) with group scales,
    each rounding error spread over the weights not yet rounded, weighted by the inverse input Hessian.

    Needs ``calibration_data``. Layers are quantized one after the other in the order the model calls
    them; each sees the outputs of the layers already quantized. ``group_size``: input channels per
    scale (``None``: one scale per output row); a layer whose fan-in it does not divide stays float,
    named in one warning. ``act_order``: channels with the largest inputs first. ``damping``: added
    to the Hessian's diagonal, as a fraction of its mean. Stored packed (bits + one float32 scale per
    group), the same layers as ``WeightOnly``.

    Example:
        >>> GPTQ(bits=3, group_size=64)
        GPTQ(bits=3, group_size=64, act_order=False, damping=0.01)
        >>> GPTQ(bits=5)
        Traceback (most recent call last):
        ...
        ValueError: GPTQ.bits must be one of (2, 3, 4, 8), got 5
    """

    bits: int = 4
    group_size: Optional[int] = 128
    act_order: bool = False
    damping: float = 0.01

    def __post_init__(self) -> None:
        _choice("GPTQ", "bits", self.bits, (2, 3, 4, 8))
        _check_group("GPTQ", self.group_size)
        _bool("GPTQ", "act_order", self.act_order)
        _fraction("GPTQ", "damping", self.damping, low_open=False, high_open=True)


@dataclass(frozen=True)
class AWQ(QuantConfig):
    """AWQ (Lin et al., MLSys 2024): per-input-channel scales ``s = mean|x|^α`` searched on calibration
    data before round-to-nearest of ``W · s``; the layer keeps ``s`` and computes ``(x / s)(W s)ᵀ``.

    Needs ``calibration_data``; sequential like :class:`GPTQ`; ``bits`` 3, 4 or 8.

    Example:
        >>> AWQ(group_size=64)
        AWQ(bits=4, group_size=64)
    """

    bits: int = 4
    group_size: Optional[int] = 128

    def __post_init__(self) -> None:
        _choice("AWQ", "bits", self.bits, (2, 3, 4, 8))
        _check_group("AWQ", self.group_size)


@dataclass(frozen=True)
class Float16(QuantConfig):
    """Half precision (IEEE float16) weights."""


@dataclass(frozen=True)
class BFloat16(QuantConfig):
    """bfloat16 weights (float32 range, 8-bit mantissa)."""


@dataclass(frozen=True)
class QAT(QuantConfig):
    """Quantization-aware training: fake-quantize weights (and activations) while training.

    Applied by ``prepare_qat`` (then train, then ``convert``), not by ``quantize``.
    """

    verb = "prepare_qat"

    weight_bits: int = 8
    activation_bits: Optional[int] = 8
    per_channel: bool = True

    def __post_init__(self) -> None:
        _bool("QAT", "per_channel", self.per_channel)
        _int_in("QAT", "weight_bits", self.weight_bits, 2, 8)
        if self.activation_bits is not None:
            _int_in("QAT", "activation_bits", self.activation_bits, 2, 8)


@dataclass(frozen=True)
class WeightSharing(QuantConfig):
    """Weight sharing by k-means (Han et al. 2016): each layer's non-zero weights become at most 2**bits centroids.

    ``bits`` applies to every Linear/Dense and convolution weight, ``conv_bits`` (when given) to
    convolutions instead (the paper: 8 for conv, 5 for fully connected layers), and
    ``per_layer_bits`` overrides both for the named layers (torch module names, Keras layer names).
    ``init``: "linear" (the paper's default), "density" or "random" (seeded by ``seed``). Pruned
    zeros stay zero and are no cluster; biases and normalisation layers are left as they are.

    Example:
        >>> WeightSharing(bits=5, conv_bits=8).bits_for("conv1", conv=True)
        8
        >>> WeightSharing(bits=9)
        Traceback (most recent call last):
        ...
        ValueError: WeightSharing.bits must be an integer in [1, 8], got 9
    """

    entropy_coding: ClassVar[bool] = True  # Han et al.: share, then entropy-code the indices

    bits: int = 5
    per_layer_bits: Optional[dict] = None
    conv_bits: Optional[int] = None
    init: str = "linear"
    seed: int = 0

    def __post_init__(self) -> None:
        _int_in("WeightSharing", "bits", self.bits, 1, 8)
        if self.conv_bits is not None:
            _int_in("WeightSharing", "conv_bits", self.conv_bits, 1, 8)
        if self.per_layer_bits is not None:
            if not isinstance(self.per_layer_bits, dict):
                raise ValueError("WeightSharing.per_layer_bits must be a dict {layer name: bits}, "
                                 f"got {type(self.per_layer_bits).__name__}")
            for name, b in self.per_layer_bits.items():
                if not isinstance(name, str):
                    raise ValueError(f"WeightSharing.per_layer_bits keys must be layer names (str), got {name!r}")
                _int_in("WeightSharing", f"per_layer_bits[{name!r}]", b, 1, 8)
            object.__setattr__(self, "per_layer_bits", dict(self.per_layer_bits))  # the caller's dict stays theirs
        _choice("WeightSharing", "init", self.init, ("linear", "density", "random"))
        _int_in("WeightSharing", "seed", self.seed, 0)

    def bits_for(self, name: str, conv: bool = False) -> int:
        """Bits of the layer ``name`` (``conv``: whether it is a convolution)."""
        if self.per_layer_bits and name in self.per_layer_bits:
            return self.per_layer_bits[name]
        return self.conv_bits if conv and self.conv_bits is not None else self.bits
# --------------------------------------------------------------------------- quantization for GPUs
#
# Names. Each CUDA path is named by its number format and scheme, as the field says it:
# ``Float8Dynamic`` is "FP8 dynamic" (vLLM's ``FP8_DYNAMIC``, torchao's ``float8dq``: FP8 weights and
# FP8 activations scaled per batch), ``Sparse24`` is "2:4 sparsity" (NVIDIA's Sparse Tensor Cores,
# PyTorch's semi-structured sparsity). Where compresslib already names the same scheme for CPU kernels
# (``Int8Dynamic``: torch.ao's x86 int8; ``WeightOnly(bits=4)``: compresslib's packed layers), the CUDA
# kernel gets that name plus ``CUDA`` (``Int8DynamicCUDA``, ``Int4WeightOnlyCUDA``), so that a reader
# sees the scheme and where its kernel runs, and a recipe saved from one is never replayed as the other.
# All four refuse, before any work, a model that is not on a CUDA GPU able to run them.


@dataclass(frozen=True)
class Float8Dynamic(QuantConfig):
    """FP8 (e4m3) Linear weights and activations, activations scaled per batch at run time (CUDA, sm ≥ 8.9).

    torchao's ``Float8DynamicActivationFloat8WeightConfig`` on Linear layers whose sides are
    multiples of 16. ``granularity="row"`` (one scale per output row and per token; needs a
    bfloat16 model) keeps accuracy closest; ``"tensor"`` (one scale per tensor) works in any
    float dtype. Needs a GPU with FP8 tensor cores (Ada, Hopper, Blackwell; AMD MI300+).

    Example:
        >>> Float8Dynamic().granularity
        'row'
    """

    granularity: str = "row"

    def __post_init__(self) -> None:
        _choice("Float8Dynamic", "granularity", self.granularity, ("row", "tensor"))


@dataclass(frozen=True)
class Int8DynamicCUDA(QuantConfig):
    """Int8 Linear weights (per output channel) and int8 activations per token, on CUDA int8 tensor cores.

    torchao's ``Int8DynamicActivationInt8WeightConfig`` (``torch._int_mm``) on Linear layers whose
    sides are multiples of 8. The CPU path of the same scheme is :class:`Int8Dynamic`.

    Example:
        >>> Int8DynamicCUDA()
        Int8DynamicCUDA()
    """


@dataclass(frozen=True)
class Int4WeightOnlyCUDA(QuantConfig):
    """Int4 Linear weights in groups of ``group_size`` input channels, bfloat16 activations (CUDA tinygemm).

    torchao's ``Int4WeightOnlyConfig`` with the tile-packed layout that torch's own
    ``_weight_int4pack_mm`` kernel reads (no extra package). Pays at small batches, where a
    Linear layer waits on reading its weights. Needs a bfloat16 model. The CPU/any-device path
    of the scheme is ``WeightOnly(bits=4, group_size=...)``.

    Example:
        >>> Int4WeightOnlyCUDA(group_size=100)
        Traceback (most recent call last):
        ...
        ValueError: Int4WeightOnlyCUDA.group_size must be one of (32, 64, 128, 256), got 100
    """

    group_size: int = 128

    def __post_init__(self) -> None:
        _choice("Int4WeightOnlyCUDA", "group_size", self.group_size, (32, 64, 128, 256))


@dataclass(frozen=True)
class Sparse24(QuantConfig):
    """2:4 sparse Linear weights run by the sparse tensor cores (cuSPARSELt or CUTLASS; CUDA, sm ≥ 8.0).

    Converts a model whose Linear weights already hold at most 2 non-zeros in every 4
    consecutive inputs — ``cl.prune(model, cl.NM(2, 4))``, then fine-tune — with
    ``torch.sparse.to_sparse_semi_structured``. The conversion is exact: it changes how the
    zeros are stored, not the values. Applied by ``cl.quantize`` because, like a
    quantizer, it converts trained weights into a kernel's format for inference. Needs a
    float16 or bfloat16 model; Linear layers that are not 2:4 or whose shapes the kernels do
    not take stay dense (one warning names them).

    Example:
        >>> Sparse24().to_dict()
        {'type': 'Sparse24', 'version': 1}
    """


# --------------------------------------------------------------------------- choice by measurement
AGREEMENT_METRICS = ("cosine", "top1")


@dataclass(frozen=True)
class Auto(QuantConfig):
    """Try every config in ``candidates`` and keep the fastest whose outputs agree with the input model's.

    ``cl.quantize(model, Auto(candidates=[...], budget=0.99), calibration_data=x)`` quantizes
    ``model`` with each candidate, measures *agreement* with the unquantized model on ``x``
    (``metric="cosine"``: mean cosine similarity of each sample's outputs; ``"top1"``: the
    fraction of samples whose arg-max matches, i.e. accuracy against the unquantized model),
    times the candidates that reach ``budget`` against the input model in interleaved rounds on
    the model's own device and batch, and returns the fastest one at least ``min_speedup`` times
    faster than the input. When none is, it returns an unchanged copy of the input. Either way
    the result carries the table of every candidate in ``result.compresslib_auto``.

    Args:
        candidates: quantization configs to try (a candidate the device or the installed packages
            cannot run is listed as refused, with the reason).
        budget: the least agreement a candidate must reach, in (0, 1] (required).
        metric: ``"cosine"`` or ``"top1"``.
        min_speedup: how much faster than the input the winner must be (>= 1; the default 1.05
            keeps timing noise from choosing a model that is not really faster).
        batch_size: rows per timed batch; None times the first batch of the data as given.
        rounds, runs, warmup: interleaved timing: every model first runs ``warmup`` untimed calls
            (compiling, if asked), then ``rounds`` passes over all models time ``runs`` calls each.
        compile: time each model under ``torch.compile`` (the returned model is not compiled).

    Example:
        >>> Auto(candidates=[Int8Dynamic(), BFloat16()], budget=0.99).metric
        'cosine'
        >>> Auto(candidates=[Int8Dynamic()])
        Traceback (most recent call last):
        ...
        ValueError: Auto.budget is required: the least agreement with the unquantized model a candidate must reach, in (0, 1] (e.g. budget=0.99 with metric='cosine')
    """

    candidates: tuple = ()
    budget: Optional[float] = None
    metric: str = "cosine"
    min_speedup: float = 1.05
    batch_size: Optional[int] = None
    rounds: int = 5
    runs: int = 20
    warmup: int = 5
    compile: bool = False

    def __post_init__(self) -> None:
        items = self.candidates
        if isinstance(items, (QuantConfig, dict, str)) or not isinstance(items, (tuple, list)) or not items:
            raise ValueError("Auto.candidates must be a non-empty list of quantization configs, e.g. "
                             f"[Int8Dynamic(), WeightOnly(bits=8), BFloat16()]; got {items!r}")
        items = tuple(Config.from_dict(c) if isinstance(c, dict) else c for c in items)  # from_dict gives dicts
        for i, c in enumerate(items):
            if not isinstance(c, QuantConfig) or c.verb != "quantize" or isinstance(c, Auto):
                raise TypeError(f"Auto.candidates[{i}] must be a quantization config applied by quantize() "
                                f"(not Auto, not QAT), got {c!r}")
        if len(set(items)) != len(items):
            raise ValueError(f"Auto.candidates lists a config twice: {items!r}")
        object.__setattr__(self, "candidates", items)
        if self.budget is None:
            raise ValueError("Auto.budget is required: the least agreement with the unquantized model a candidate "
                             "must reach, in (0, 1] (e.g. budget=0.99 with metric='cosine')")
        _fraction("Auto", "budget", self.budget, low_open=True, high_open=False)
        _choice("Auto", "metric", self.metric, AGREEMENT_METRICS)
        if isinstance(self.min_speedup, bool) or not isinstance(self.min_speedup, (int, float)) or \
                not 1.0 <= self.min_speedup < 100:
            raise ValueError(f"Auto.min_speedup must be a number in [1, 100), got {self.min_speedup!r}")
        if self.batch_size is not None:
            _int_in("Auto", "batch_size", self.batch_size, 1)
        _int_in("Auto", "rounds", self.rounds, 1)
        _int_in("Auto", "runs", self.runs, 1)
        _int_in("Auto", "warmup", self.warmup, 0)
        if not isinstance(self.compile, bool):
            raise ValueError(f"Auto.compile must be True or False, got {self.compile!r}")


# --------------------------------------------------------------------------- pruning
class PruneConfig(Config):
    """Base class of pruning configs (applied by ``prune``)."""

    verb = "prune"


@dataclass(frozen=True)
class Magnitude(PruneConfig):
    """Unstructured magnitude pruning to ``sparsity``, per layer or globally, optionally gradual."""

    sparsity: float = 0.5
    scope: str = "layer"
    schedule: Any = None

    def __post_init__(self) -> None:
        _fraction("Magnitude", "sparsity", self.sparsity, low_open=False, high_open=True)
        _choice("Magnitude", "scope", self.scope, ("layer", "global"))


@dataclass(frozen=True)
class Structured(PruneConfig):
    """Remove a ``ratio`` of channels/neurons physically, keeping residual adds consistent."""

    ratio: float = 0.5
    importance: str = "l1"

    def __post_init__(self) -> None:
        _fraction("Structured", "ratio", self.ratio, low_open=False, high_open=True)
        _choice("Structured", "importance", self.importance, ("l1", "l2", "random"))


@dataclass(frozen=True)
class NM(PruneConfig):
    """N:M semi-structured sparsity: at most ``n`` non-zeros in every ``m`` consecutive weights."""

    n: int = 2
    m: int = 4

    def __post_init__(self) -> None:
        _int_in("NM", "m", self.m, 1)
        _int_in("NM", "n", self.n, 1, self.m - 1 if self.m > 1 else 1)


class _DataAwarePruning(PruneConfig):
    """Shared validation of ``Wanda`` and ``SparseGPT``: a ``sparsity`` or an N:M pattern, not both."""

    # a recipe step of this config is given the recipe's calibration_data (compresslib.pipeline)
    needs_calibration: ClassVar[bool] = True

    def _check_target(self) -> None:
        name = type(self).__name__
        if self.n is None and self.m is None and self.sparsity is None:
            object.__setattr__(self, "sparsity", 0.5)
        if self.sparsity is not None and (self.n is not None or self.m is not None):
            raise ValueError(f"{name} takes either sparsity or n and m, got sparsity={self.sparsity!r}, "
                             f"n={self.n!r}, m={self.m!r}")
        if self.sparsity is not None:
            _fraction(name, "sparsity", self.sparsity, low_open=False, high_open=True)
            return
        _int_in(name, "m", self.m, 2)
        _int_in(name, "n", self.n, 1, self.m - 1)

    @property
    def pattern(self) -> str:
        """``"50%"`` or ``"2:4"`` (for tables)."""
        return f"{self.n}:{self.m}" if self.sparsity is None else f"{round(100 * self.sparsity)}%"


@dataclass(frozen=True)
class Wanda(_DataAwarePruning):
    """Wanda (Sun et al., ICLR 2024): prune the weights of smallest ``|W| · ‖x‖`` per output row.

    ``sparsity`` (unstructured, per row) or ``n`` of every ``m`` inputs kept (N:M, e.g. 2:4); needs
    ``calibration_data``. Linear (Dense, EinsumDense) layers only; sequential like :class:`GPTQ`.

    Example:
        >>> Wanda(n=2, m=4).pattern, Wanda().sparsity
        ('2:4', 0.5)
        >>> Wanda(0.5, n=2, m=4)
        Traceback (most recent call last):
        ...
        ValueError: Wanda takes either sparsity or n and m, got sparsity=0.5, n=2, m=4
    """

    sparsity: Optional[float] = None
    n: Optional[int] = None
    m: Optional[int] = None

    def __post_init__(self) -> None:
        self._check_target()


@dataclass(frozen=True)
class SparseGPT(_DataAwarePruning):
    """SparseGPT (Frantar & Alistarh, ICML 2023): prune with the OBS update of the kept weights (GPTQ's
    Hessian machinery), unstructured ``sparsity`` or N:M; needs ``calibration_data``.

    Example:
        >>> SparseGPT(0.5)
        SparseGPT(sparsity=0.5, n=None, m=None, damping=0.01)
    """

    sparsity: Optional[float] = None
    n: Optional[int] = None
    m: Optional[int] = None
    damping: float = 0.01

    def __post_init__(self) -> None:
        self._check_target()
        _fraction("SparseGPT", "damping", self.damping, low_open=False, high_open=True)


# --------------------------------------------------------------------------- float transforms
class TransformConfig(Config):
    """Base class of float-to-float transforms that prepare a model for a later step (applied by ``transform``)."""

    verb = "transform"


@dataclass(frozen=True)
class SmoothQuant(TransformConfig):
    """SmoothQuant (Xiao et al. 2023): move activation outliers into the weights before int8 quantization.

    Every LayerNorm whose output feeds only Linear (Dense) layers gets its scale and shift divided by
    per-channel factors ``s`` and those layers' weight columns multiplied by them: the float function
    is unchanged, the activations are flatter. In PyTorch the pairs come from the model's forward and a
    Linear producer counts too (an attention block's value projection before its output projection);
    in Keras, EinsumDense and MultiHeadAttention readers too. A model with no such pair is refused,
    naming its layers. ``alpha`` (0..1) is the migration strength:
    ``s = max|x|^alpha / max|W|^(1 - alpha)``. Needs ``calibration_data``; then quantize as usual.

    Example:
        >>> SmoothQuant(alpha=0.5)
        SmoothQuant(alpha=0.5)
        >>> SmoothQuant(alpha=1.5)
        Traceback (most recent call last):
        ...
        ValueError: SmoothQuant.alpha must be in [0, 1], got 1.5
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        check_alpha(self.alpha, "SmoothQuant.alpha")


# --------------------------------------------------------------------------- low rank
class LowRankConfig(Config):
    """Base class of low-rank decomposition configs (applied by ``decompose``)."""

    verb = "decompose"


@dataclass(frozen=True)
class SVD(LowRankConfig):
    """Factor a Linear/Dense layer W (m×n) into two layers of rank r: cost r(m+n) instead of mn."""

    rank: Optional[int] = None
    energy: Optional[float] = None
    ratio: Optional[float] = None

    def __post_init__(self) -> None:
        checks.exactly_one("SVD", rank=self.rank, energy=self.energy, ratio=self.ratio)
        if self.rank is not None:
            _int_in("SVD", "rank", self.rank, 1)
        if self.energy is not None:
            _fraction("SVD", "energy", self.energy, low_open=True, high_open=False)
        if self.ratio is not None:
            _fraction("SVD", "ratio", self.ratio, low_open=True, high_open=False)


@dataclass(frozen=True)
class Tucker(LowRankConfig):
    """Tucker-2 of a conv kernel: 1×1 (C_in→R1), k×k (R1→R2), 1×1 (R2→C_out)."""

    ranks: Optional[tuple] = None
    energy: Optional[float] = None

    def __post_init__(self) -> None:
        checks.exactly_one("Tucker", ranks=self.ranks, energy=self.energy)
        if self.ranks is not None:
            if not isinstance(self.ranks, (tuple, list)) or len(self.ranks) != 2:
                raise ValueError(f"Tucker.ranks must be a pair (R1, R2), got {self.ranks!r}")
            object.__setattr__(self, "ranks", tuple(self.ranks))  # from_dict gives a list
            for r in self.ranks:
                _int_in("Tucker", "ranks", r, 1)
        if self.energy is not None:
            _fraction("Tucker", "energy", self.energy, low_open=True, high_open=False)


@dataclass(frozen=True)
class CP(LowRankConfig):
    """CP decomposition of a conv kernel into rank-``rank`` factor convolutions."""

    rank: int = 8

    def __post_init__(self) -> None:
        _int_in("CP", "rank", self.rank, 1)


# --------------------------------------------------------------------------- what cl.optimize aims for
@dataclass(frozen=True)
class Budget:
    """What ``compresslib.optimize`` must reach: up to three limits, each optional (None: no limit).

    ``latency_ms``: median milliseconds of one batch in the target runtime; ``size_bytes``: bytes of the
    deployed file; ``max_drop``: accuracy drop against the original in percentage points, on the test data.
    Not a technique (no verb, no handler): it says what to look for, the search says how.

    Example:
        >>> Budget(latency_ms=2.0, max_drop=0.5)
        Budget(latency_ms=2.0, size_bytes=None, max_drop=0.5)
        >>> Budget(size_bytes=-1)
        Traceback (most recent call last):
        ...
        ValueError: Budget.size_bytes must be a finite number > 0 or None, got -1
    """

    latency_ms: Optional[float] = None
    size_bytes: Optional[float] = None
    max_drop: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("latency_ms", "size_bytes", "max_drop"):
            v = getattr(self, name)
            low = ">= 0" if name == "max_drop" else "> 0"
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"),) \
                    or v < 0 or (v == 0 and name != "max_drop"):
                raise ValueError(f"Budget.{name} must be a finite number {low} or None, got {v!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"latency_ms": self.latency_ms, "size_bytes": self.size_bytes, "max_drop": self.max_drop}


def check_config(config: Any, base: type, argument: str = "config") -> Any:
    """Raise ``TypeError`` unless ``config`` is an instance of ``base``."""
    if not isinstance(config, base):
        allowed = ", ".join(sorted(c.__name__ for c in leaf_subclasses(base)))
        raise TypeError(f"{argument} must be one of {allowed}; got {type(config).__name__}")
    return config


def leaf_subclasses(base: type) -> list[type]:
    """The classes derived from ``base`` that have no subclass themselves (the configs a user makes).

    Example:
        >>> sorted(c.__name__ for c in leaf_subclasses(LowRankConfig))
        ['CP', 'SVD', 'Tucker']
    """
    out = []
    for sub in base.__subclasses__():
        out.extend(leaf_subclasses(sub) or [sub])
    return out
