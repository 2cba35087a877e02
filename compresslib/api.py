"""The public verbs. Each finds the model's framework and calls the matching backend.

``cl.compress`` (a recipe of these verbs with fine-tuning between them) lives one layer up, in
:mod:`compresslib.pipeline`, which builds on this module.

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

from typing import Any, Callable, Optional, Sequence

from compresslib import deploy, registry
from compresslib._dispatch import dispatch, framework_of
from compresslib.configs import QAT, Config, LowRankConfig, PruneConfig, QuantConfig, TransformConfig, check_config
from compresslib.report import Report
from compresslib.runtimes import is_runtime_model


def measure(model: Any, data: Any = None, example_input: Any = None, packed: bool = False, **kwargs: Any) -> Report:
    """Measure a model of either framework.

    Args:
        model: a ``torch.nn.Module`` or a Keras 3 model (or a compresslib model-like wrapper).
        data: optional ``(x, y)`` arrays; gives accuracy, and the latency batch is ``x[:batch_size]``.
        example_input: optional input batch used for MACs and latency when ``data`` is not given.
        packed: also write the model with :func:`save` to a temporary ``.clz`` file and set
            ``report.packed_bytes`` to its size (the file is deleted afterwards).
        **kwargs: ``name``, ``batch_size`` (32), ``runs`` (50), ``warmup`` (10), ``latency`` (True).

    Returns:
        A :class:`~compresslib.report.Report`: parameters, non-zeros, bytes of the native
        file and of it gzipped (and of the packed ``.clz`` file with ``packed=True``), MACs
        per layer and in total, latency (median and spread, batch size, threads, device) and
        accuracy.

    Example:
        >>> import compresslib as cl
        >>> m = cl.zoo.pretrained("lenet5", framework="torch")            # doctest: +SKIP
        >>> cl.measure(m, data=cl.datasets.load_mnist("test", layout="torch"))   # doctest: +SKIP
        >>> r = cl.measure(m, example_input=x[:1], latency=False, packed=True)  # doctest: +SKIP
        >>> r.file_bytes, r.packed_bytes         # state_dict .pt and .clz   # doctest: +SKIP
    """
    if not isinstance(packed, bool):
        raise TypeError(f"packed must be True or False, got {packed!r}")
    if is_runtime_model(model):  # an exported file in its runtime, either framework (LiteRT included)
        report = deploy.measure(model, data=data, example_input=example_input, **kwargs)
    else:
        report = dispatch(model, "measure").measure(model, data=data, example_input=example_input, **kwargs)
    if packed:
        import os
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            report.packed_bytes = save(model, os.path.join(tmp, "model.clz"))
    return report


def perplexity(model: Any, tokens: Any, batch_size: int = 16) -> float:
    """Perplexity of a causal language model (either framework) on ``tokens`` ``(batch, length)``.

    ``exp`` of the mean negative log-likelihood of each next token; ``model(ids)`` returns logits
    ``(batch, length, vocab)`` (a Hugging Face output's ``.logits`` is read). Lower is better; a model
    that knows nothing scores the vocabulary size.

    Example:
        >>> ppl = cl.perplexity(lm, held_out_tokens)                     # doctest: +SKIP
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return dispatch(model, "measure").perplexity(model, tokens, batch_size=batch_size)


def _check_verb(config: Config, verb: str) -> None:
    if config.verb != verb:
        then = " then convert(model) after training" if config.verb == "prepare_qat" else ""
        raise TypeError(f"config: {type(config).__name__} is applied by {config.verb}(model, config){then}, "
                        f"not by {verb}()")


def quantize(model: Any, config: QuantConfig, calibration_data: Any = None, **kwargs: Any) -> Any:
    """Post-training quantization: a new quantized model (see ``book/quantization.md``).

    ``calibration_data``: inputs for static int8 (a few hundred examples).
    """
    check_config(config, QuantConfig)
    _check_verb(config, "quantize")
    return registry.run("quantize", model, config, calibration_data=calibration_data, **kwargs)


def prepare_qat(model: Any, config: QAT = QAT(), **kwargs: Any) -> Any:
    """A copy of ``model`` with fake-quantization inserted, ready to train."""
    check_config(config, QAT)
    return registry.run("prepare_qat", model, config, **kwargs)


def convert(model: Any, **kwargs: Any) -> Any:
    """Turn a QAT-trained model from :func:`prepare_qat` into a quantized model."""
    return dispatch(model, "quantization").convert(model, **kwargs)


def prune(model: Any, config: PruneConfig, **kwargs: Any) -> Any:
    """A pruned copy of ``model`` (unstructured, N:M, or structured with channels removed)."""
    check_config(config, PruneConfig)
    return registry.run("prune", model, config, **kwargs)


def decompose(model: Any, config: LowRankConfig, layers: Optional[Any] = None, **kwargs: Any) -> Any:
    """A copy of ``model`` with layers replaced by low-rank factors (SVD, Tucker-2, CP)."""
    check_config(config, LowRankConfig)
    return registry.run("decompose", model, config, layers=layers, **kwargs)


def transform(model: Any, config: TransformConfig, calibration_data: Any = None, **kwargs: Any) -> Any:
    """A transformed float copy of ``model`` that computes the same function, prepared for a later step
    (``SmoothQuant``: activation outliers moved into the weights before int8 quantization).

    Example:
        >>> s = cl.transform(model, cl.SmoothQuant(alpha=0.5), calibration_data=x[:256])   # doctest: +SKIP
        >>> q = cl.quantize(s, cl.Int8Static(), calibration_data=x[:256])                  # doctest: +SKIP
    """
    check_config(config, TransformConfig)
    return registry.run("transform", model, config, calibration_data=calibration_data, **kwargs)


def fold_batchnorm(model: Any, **kwargs: Any) -> Any:
    """A copy of ``model`` with each BatchNorm folded into the convolution before it."""
    return dispatch(model, "fold").fold_batchnorm(model, **kwargs)


def apply(model: Any, config: Config, **kwargs: Any) -> Any:
    """Apply any config with the verb it belongs to (``config.verb``): what :func:`compress` does per step.

    Example:
        >>> import torch, compresslib as cl
        >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
        >>> int((cl.apply(m, cl.Magnitude(0.5))[0].weight == 0).sum())
        16
    """
    check_config(config, Config)
    if config.verb == "prepare_qat":
        return prepare_qat(model, config, **kwargs)
    if config.verb == "transform":
        return transform(model, config, **kwargs)
    return registry.run(config.verb, model, config, **kwargs)


def save(model: Any, path: str) -> int:
    """Write ``model`` to a packed ``.clz`` file (no pickle); return the bytes written."""
    from compresslib import io

    return io.save(model, path)


def load(path: str, *, model: Any = None, custom_objects: Optional[dict] = None, limits: Any = None) -> Any:
    """Read a ``.clz`` file written by :func:`save` into a new model of its framework.

    ``model``: a fresh instance of the saved model's class when its classes are your own
    (``cl.load(path, model=MyModel(...))``: code from you, compressed layers and tensors from
    the file). The file is untrusted: see :func:`compresslib.io.load` (``custom_objects``, ``limits``).
    """
    from compresslib import io

    return io.load(path, model=model, custom_objects=custom_objects, limits=limits)


__all__ = ["measure", "apply", "quantize", "prepare_qat", "convert", "prune", "decompose", "transform", "fold_batchnorm",
           "save", "load", "framework_of"]
