"""Measure a Keras 3 model: parameters, non-zeros, file bytes, MACs, latency, accuracy.

Also accepts compresslib's model-like wrappers (e.g. a LiteRT int8 model)
that provide ``__compresslib_framework__ = "keras"``, ``save_native(path)``,
``__call__`` and, optionally, ``layer_stats()``.

Example:
    >>> import keras
    >>> from compresslib.keras.measure import measure
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> r = measure(m, latency=False)
    >>> r.params, r.macs
    (15, 12)
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

import keras
import numpy as np

from compresslib.core.measure import assemble, check_measure_args, file_sizes, time_calls
from compresslib.keras.macs import macs_by_call, symbolic_macs
from compresslib.keras.train import evaluate
from compresslib.report import LayerStats, Report

_NOT_PARAMETERS = ("moving_mean", "moving_variance", "seed_generator")


def is_parameter(variable) -> bool:
    """True for weights that count as parameters (BatchNorm running statistics and RNG state do not)."""
    path = getattr(variable, "path", getattr(variable, "name", ""))
    return not any(s in path for s in _NOT_PARAMETERS)


def _own_variables(layer) -> list:
    if isinstance(layer, keras.Model):
        return []
    return [v for v in layer.weights if is_parameter(v)]


def _flat_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _counted_variables(model) -> tuple[list, int]:
    """``[(layer, variables)]`` counting each variable once, at the first layer holding it, and how many
    parameters a later layer holds too (tied weights: an output layer reusing the embedding matrix).
    Each layer's variables are Keras's ``layer.weights``, which lists a variable once per layer.

    Example:
        >>> class Tied(keras.layers.Layer):
        ...     def __init__(self, embedding, **kw):
        ...         super().__init__(**kw)
        ...         self.embedding = embedding
        ...     def call(self, h):
        ...         return h @ keras.ops.transpose(self.embedding.embeddings)
        >>> i = keras.Input((3,), dtype="int32")
        >>> emb = keras.layers.Embedding(10, 4)
        >>> m = keras.Model(i, Tied(emb)(emb(i)))
        >>> [len(v) for _, v, _ in _counted_variables(m)[0]], _counted_variables(m)[1]  # input, embedding, head
        ([0, 1, 0], 40)
    """
    seen: set = set()
    out, shared = [], 0
    for layer in _flat_layers(model):
        variables = _own_variables(layer)
        fresh = [v for v in variables if id(v) not in seen]
        shared += sum(int(np.prod(v.shape)) for v in variables if id(v) in seen)
        seen.update(id(v) for v in variables)
        out.append((layer, fresh, bool(variables)))
    return out, shared


def layer_stats(model, steps: Optional[int] = None, example: Any = None) -> list[LayerStats]:
    """Per-layer parameters, non-zeros and MACs of a built Keras model.

    MACs come from one forward pass on ``example[:1]`` (:func:`compresslib.keras.macs.macs_by_call`:
    every layer call, nested and subclassed models included); without an example, or when the
    model cannot run on it, from the shapes its graph recorded (``steps``: the length of a time
    axis built as ``None``). Layers that only a forward pass finds (inside a custom layer) get
    their own row with 0 parameters (their weights are counted in their parent's row). A variable
    held by several layers (a tied output layer) is counted once, in the first layer's row.
    """
    if hasattr(model, "layer_stats"):
        return model.layer_stats()
    counted: Optional[dict] = None
    if example is not None:
        try:
            counted = macs_by_call(model, example)
        except Exception:  # noqa: BLE001 - fall back to the graph's recorded shapes
            counted = None
    stats = []
    for layer, variables, holds in _counted_variables(model)[0]:
        arrays = [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]
        macs = counted.pop(id(layer), (layer, 0))[1] if counted is not None else symbolic_macs(layer, steps)
        if holds or macs:  # a layer holding only shared variables keeps its row (0 parameters)
            stats.append(LayerStats(layer.name, type(layer).__name__, sum(a.size for a in arrays),
                                    sum(int(np.count_nonzero(a)) for a in arrays), macs))
    for layer, macs in (counted or {}).values():
        if macs:
            stats.append(LayerStats(layer.name, type(layer).__name__, 0, 0, macs))
    return stats


def macs_by_layer(model, example: Any) -> dict[str, int]:
    """MACs per sample of each layer that does any, from one forward pass on a row of ``example``
    (same name and meaning as ``compresslib.torch.measure.macs_by_layer``; a layer name that repeats,
    as in two attention layers' projections, is given as the layer's path).

    Example:
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
        >>> macs_by_layer(m, np.zeros((2, 4), "float32"))
        {'d': 12}
    """
    counted = [(layer, n) for layer, n in macs_by_call(model, example).values() if n]
    names = [layer.name for layer, _ in counted]
    return {(layer.name if names.count(layer.name) == 1 else layer.path): n for layer, n in counted}


def native_file_bytes(model) -> tuple[int, int, str]:
    """Bytes of the model's native file and of it gzipped: ``.keras``, the wrapper's own format, or
    ``.weights.h5`` for a subclassed model without ``get_config`` (Keras cannot write its ``.keras``)."""
    with tempfile.TemporaryDirectory() as tmp:
        if hasattr(model, "save_native"):
            path, fmt = model.save_native(tmp)
        else:
            path, fmt = os.path.join(tmp, "model.keras"), ".keras"
            try:
                model.save(path)
            except NotImplementedError:  # a subclassed model without get_config: its weights file
                path, fmt = os.path.join(tmp, "model.weights.h5"), ".weights.h5"
                model.save_weights(path)
        size, gz = file_sizes(path)
    return size, gz, fmt


def _call_fn(model):
    """A fast inference callable: a traced tf.function on the TensorFlow backend, else ``__call__``."""
    if isinstance(model, keras.Model) and keras.backend.backend() == "torch":  # no autograd; GPU tensors to host
        import torch

        def call(x):
            with torch.no_grad():
                return keras.ops.convert_to_numpy(model(x, training=False))
        return call
    if not isinstance(model, keras.Model) or keras.backend.backend() != "tensorflow":
        return lambda x: np.asarray(model(x))
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(x).numpy()


def make_timer(model, example: np.ndarray):
    """``timer(runs, warmup) -> milliseconds``: one traced callable and one input tensor, made once.

    Timing single calls in turn (:func:`compresslib.timing.paired_ratio`) calls the timer once per call;
    a callable made per call would trace a new ``tf.function`` every time and time the tracing.

    Example:
        >>> import keras
        >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        >>> timer = make_timer(m, np.zeros((1, 4), "float32"))
        >>> len(timer(3, 1)) == 3 and len(timer(2, 0)) == 2
        True
    """
    call = _call_fn(model)
    if isinstance(model, keras.Model) and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        example = tf.constant(example)
    elif isinstance(model, keras.Model) and keras.backend.backend() == "torch":
        example = keras.ops.convert_to_tensor(example)  # on Keras's torch device once, not a copy per call

    def timer(runs: int, warmup: int, max_seconds: float = 10.0) -> list[float]:
        return time_calls(call, example, runs=runs, warmup=warmup, max_seconds=max_seconds)
    return timer


def time_model(model, example: np.ndarray, runs: int = 50, warmup: int = 10, max_seconds: float = 10.0) -> list[float]:
    """Wall-clock milliseconds of ``runs`` inference calls after ``warmup`` (result copied to host)."""
    return make_timer(model, example)(runs, warmup, max_seconds)


def _threads() -> int:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads() or (os.cpu_count() or 1)
    return os.cpu_count() or 1


def _device(model) -> str:
    variables = getattr(model, "weights", None) or []
    for v in variables:
        dev = str(getattr(getattr(v, "value", v), "device", "") or "").upper()  # TF: '/GPU:0'; torch: 'cuda:0'
        return "cuda" if "GPU" in dev or "CUDA" in dev else "cpu"
    return getattr(model, "device", "cpu")


def _example_from(model, data, example_input, batch_size: int) -> np.ndarray:
    if example_input is not None:
        ex = np.asarray(example_input)
        arg = "example_input"
    elif data is not None:
        ex = np.asarray(data[0][:batch_size])
        arg = "data"
    else:
        shape = getattr(model, "input_shape", None)
        if shape is None or not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
            raise ValueError("measure needs data=(x, y) or example_input= for a model without a fixed input shape")
        ex = np.zeros((batch_size,) + tuple(shape[1:]), dtype=np.float32)
        arg = "model"
    expected = getattr(model, "input_shape", None)
    if isinstance(expected, tuple) and ex.ndim >= 1:
        if len(expected) != ex.ndim or any(e is not None and e != g for e, g in zip(expected[1:], ex.shape[1:])):
            raise ValueError(f"{arg}: the model expects inputs of shape {expected}, got {ex.shape}")
    return ex.astype(np.float32) if ex.dtype.kind == "f" else ex


def measure(model, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
            batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """Measure ``model`` (see :func:`compresslib.measure`)."""
    if not (isinstance(model, keras.Model) or getattr(model, "__compresslib_framework__", None) == "keras"):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
        raise ValueError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    check_measure_args(batch_size)
    example = _example_from(model, data, example_input, batch_size)
    steps = int(example.shape[1]) if example.ndim >= 2 else None
    report = assemble(
        Report,
        framework="keras", name=name or getattr(model, "name", type(model).__name__),
        layers=layer_stats(model, steps, example), native=native_file_bytes(model), device=_device(model),
        threads=_threads(), time=(lambda: time_model(model, example, runs=runs, warmup=warmup)) if latency else None,
        batch_size=int(example.shape[0]), accuracy=(lambda: evaluate(model, data, per_sample=True)) if data is not None else None,
        shared_params=0 if hasattr(model, "layer_stats") else _counted_variables(model)[1])
    # a layer whose variables are all counted at another layer (a tied output layer) still does work:
    # listed when its MACs are not counted, as a layer with parameters of its own is
    report.macs_not_counted += [f"{l.name} ({l.kind})" for l in report.layers
                                if not l.params and not l.macs and "Embedding" not in l.kind]
    return report


def perplexity(model: Any, tokens: Any, batch_size: int = 16) -> float:
    """Perplexity of a causal LM on ``tokens`` ``(batch, length)``: ``exp`` of the mean next-token NLL.

    ``model(ids)`` must return logits ``(batch, length, vocab)``.

    Example:
        >>> import keras, numpy as np
        >>> i = keras.Input((5,), dtype="int32")
        >>> m = keras.Model(i, keras.layers.Embedding(7, 7, embeddings_initializer="zeros")(i))
        >>> round(perplexity(m, np.random.default_rng(0).integers(0, 7, (3, 5))), 4)
        7.0
    """
    from compresslib.core.lm import check_tokens, nll_sum, perplexity_of

    ids = check_tokens(tokens)
    return perplexity_of(nll_sum(np.asarray(model(ids[s:s + batch_size], training=False)), ids[s:s + batch_size])
                         for s in range(0, len(ids), batch_size))
