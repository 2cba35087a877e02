"""``torch.ao.quantization``, fenced: every use of the deprecated API goes through here.

Its deprecation warnings are silenced narrowly around each call, the quantized
engine is set only inside :func:`x86_engine` and restored afterwards, and the
observer and qconfig choices of compresslib's configs are made once.

Example:
    >>> import torch
    >>> before = torch.backends.quantized.engine
    >>> with x86_engine():
    ...     inside = torch.backends.quantized.engine
    >>> inside, torch.backends.quantized.engine == before
    ('x86', True)
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

import torch

from compresslib.core import quant as cq


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence only torch.ao.quantization's deprecation warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*")
        yield


@contextlib.contextmanager
def x86_engine() -> Iterator[None]:
    """Use torch's x86 quantized engine (fbgemm + oneDNN) inside the block; restore the previous one after.

    The int8 modules that ``convert_fx`` builds pack their weights for the engine
    active at conversion; at run time torch dispatches on the packed type.
    """
    before = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    try:
        yield
    finally:
        torch.backends.quantized.engine = before


def modules():
    """``(torch.ao.quantization, torch.ao.quantization.quantize_fx)``, imported quietly."""
    with quiet():
        import torch.ao.quantization as ao
        import torch.ao.quantization.quantize_fx as qfx
    return ao, qfx


def weight_observer(per_channel: bool, bits: int = 8, fake: bool = False):
    """Symmetric int8 (or ``bits``) weight observer, per output channel or per tensor; a fake-quantizer for QAT."""
    ao, _ = modules()
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


def activation_observer(observer: str, percentile: float = 99.99, bits: int = 8, fake: bool = False):
    """Affine unsigned activation observer named by ``Int8Static.observer`` (x86: 8-bit uses the reduced range)."""
    ao, _ = modules()
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
    return percentile_observer_class().with_args(percentile=percentile, **kw)


_PERCENTILE_CLS = None


def percentile_observer_class():
    """A MinMaxObserver whose range is the calibration data's percentiles (core math)."""
    global _PERCENTILE_CLS
    if _PERCENTILE_CLS is None:
        ao, _ = modules()

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


def qconfig_mapping(weight, activation):
    """A global ``QConfigMapping`` with these observer factories."""
    ao, _ = modules()
    with quiet():
        return ao.QConfigMapping().set_global(ao.QConfig(activation=activation, weight=weight))


def exported_train_eval(model: torch.nn.Module) -> torch.nn.Module:
    """Let ``.train()``/``.eval()`` of a ``torch.export`` graph switch its dropout and BatchNorm ops and return
    the model, as on any module (PT2E's own ``allow_exported_model_train_eval`` returns None)."""
    import types

    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    def train(self, mode: bool = True):
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self)
        self.training = bool(mode)
        return self

    def eval(self):
        return train(self, False)

    model.train = types.MethodType(train, model)
    model.eval = types.MethodType(eval, model)
    return model


def is_fake_quantized(model: torch.nn.Module) -> bool:
    """True when ``model`` holds torch.ao fake-quantizers (a model from ``prepare_qat``)."""
    ao, _ = modules()
    return any(isinstance(m, ao.FakeQuantizeBase) for m in model.modules())


__all__ = ["quiet", "x86_engine", "modules", "weight_observer", "activation_observer", "percentile_observer_class",
           "qconfig_mapping", "exported_train_eval", "is_fake_quantized"]
