"""The public verbs. Each finds the model's framework and calls the matching backend.

The input model is never changed: every verb returns a new model of the same
framework. Backends live in ``compresslib/torch/<module>.py`` and
``compresslib/keras/<module>.py`` with the same function names.

Example:
    >>> import compresslib as cl
    >>> cl.prune(object(), cl.Magnitude(0.5))
    Traceback (most recent call last):
    ...
    TypeError: model must be a torch.nn.Module or a Keras 3 model, got object
"""
from __future__ import annotations

from typing import Any, Optional

from compresslib._dispatch import dispatch, framework_of
from compresslib.configs import LowRankConfig, PruneConfig, QAT, QuantConfig, check_config
from compresslib.report import Report


def measure(model: Any, data: Any = None, example_input: Any = None, **kwargs: Any) -> Report:
    """Measure a model of either framework.

    Args:
        model: a ``torch.nn.Module`` or a Keras 3 model (or a compresslib model-like wrapper).
        data: optional ``(x, y)`` arrays; gives accuracy, and the latency batch is ``x[:batch_size]``.
        example_input: optional input batch used for MACs and latency when ``data`` is not given.
        **kwargs: ``name``, ``batch_size`` (32), ``runs`` (50), ``warmup`` (10), ``latency`` (True).

    Returns:
        A :class:`~compresslib.report.Report`: parameters, non-zeros, bytes of the native
        file and of it gzipped, MACs per layer and in total, latency (median and spread,
        batch size, threads, device) and accuracy.

    Example:
        >>> import compresslib as cl
        >>> m = cl.zoo.pretrained("lenet5", framework="torch")            # doctest: +SKIP
        >>> cl.measure(m, data=cl.datasets.load_mnist("test", layout="torch"))   # doctest: +SKIP
    """
    return dispatch(model, "measure").measure(model, data=data, example_input=example_input, **kwargs)


def quantize(model: Any, config: QuantConfig, calibration_data: Any = None, **kwargs: Any) -> Any:
    """Post-training quantization: a new quantized model (see ``book/quantization.md``)."""
    check_config(config, QuantConfig)
    if isinstance(config, QAT):
        raise TypeError("config: QAT is not a post-training config; use prepare_qat(model, config) then convert(model)")
    return dispatch(model, "quantization").quantize(model, config, calibration_data=calibration_data, **kwargs)


def prepare_qat(model: Any, config: QAT = QAT(), **kwargs: Any) -> Any:
    """A copy of ``model`` with fake-quantization inserted, ready to train."""
    check_config(config, QAT)
    return dispatch(model, "quantization").prepare_qat(model, config, **kwargs)


def convert(model: Any, **kwargs: Any) -> Any:
    """Turn a QAT-trained model from :func:`prepare_qat` into a quantized model."""
    return dispatch(model, "quantization").convert(model, **kwargs)


def prune(model: Any, config: PruneConfig, **kwargs: Any) -> Any:
    """A pruned copy of ``model`` (unstructured, N:M, or structured with channels removed)."""
    check_config(config, PruneConfig)
    return dispatch(model, "pruning").prune(model, config, **kwargs)


def decompose(model: Any, config: LowRankConfig, layers: Optional[Any] = None, **kwargs: Any) -> Any:
    """A copy of ``model`` with layers replaced by low-rank factors (SVD, Tucker-2, CP)."""
    check_config(config, LowRankConfig)
    return dispatch(model, "lowrank").decompose(model, config, layers=layers, **kwargs)


def fold_batchnorm(model: Any, **kwargs: Any) -> Any:
    """A copy of ``model`` with each BatchNorm folded into the convolution before it."""
    return dispatch(model, "fold").fold_batchnorm(model, **kwargs)


def save(model: Any, path: str) -> int:
    """Write ``model`` to a packed ``.clz`` file (no pickle); return the bytes written."""
    from compresslib import io

    return io.save(model, path)


def load(path: str) -> Any:
    """Read a ``.clz`` file written by :func:`save` into a new model of its framework."""
    from compresslib import io

    return io.load(path)


__all__ = ["measure", "quantize", "prepare_qat", "convert", "prune", "decompose", "fold_batchnorm",
           "save", "load", "framework_of"]
