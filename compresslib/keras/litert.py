"""LiteRT (TFLite) conversion of Keras 3 models, and :class:`LiteRTModel`, the converted model behind a Keras-like call.

Used by ``quantize(model, Int8Dynamic())`` and ``quantize(model, Int8Static(), calibration_data=x)``.
What the converter cannot take is dealt with before or after it runs, never passed on as a
raw ``ConverterError``:

* **Recurrent layers** (LSTM, GRU, SimpleRNN, also inside ``Bidirectional``): the converter
  cannot turn their loop into builtin ops when the batch size is not fixed
  (``TensorListReserve``). compresslib converts a copy with ``unroll=True`` on them, which
  computes the same outputs and keeps the batch size free; the sequence length must then be
  fixed (the model's, or that of ``calibration_data``), and the result says so
  (``LiteRTModel.conversion``, and one warning).
* **Ops without an int8 kernel** in full-integer conversion: converted again with float
  fallback for those ops, said the same way.
* **Anything else**: a ``ValueError`` naming the TensorFlow ops and the layers they come from,
  with the ways out. The ``SELECT_TF_OPS`` fallback is tried and kept only when the converted
  model runs in this process's interpreter (the ``ai_edge_litert`` and ``tf.lite`` Python
  interpreters measured here cannot run Flex ops, so there it is reported, not returned).

Example:
    >>> import keras, numpy as np
    >>> i = keras.Input((5,), dtype="int32")
    >>> h = keras.layers.LSTM(4)(keras.layers.Embedding(10, 3)(i))
    >>> q = to_litert(keras.Model(i, keras.layers.Dense(2)(h)))     # doctest: +SKIP
    >>> q.conversion                                                 # doctest: +SKIP
    'recurrent layers lstm unrolled over 5 steps (...)'
"""
from __future__ import annotations

import os
import re
import warnings
from typing import Any, Callable, Optional

import keras
import numpy as np

from compresslib.registry import register_kind
from compresslib.keras.checks import check_batch, check_model, describe, is_subclassed, probe_input, single_input
from compresslib.keras.rebuild import functional_of, graph_layers, rebuild
from compresslib.report import LayerStats
from compresslib.runtimes import RuntimeModel
from compresslib.threads import get_threads

BUILTINS = "LiteRT builtin ops"


class LiteRTModel(RuntimeModel):
    """A LiteRT (TFLite) flatbuffer behind a Keras-like interface: a runtime model held in memory.

    ``conversion`` says how the model was converted (e.g. which layers were unrolled).

    Example:
        >>> q = quantize(keras_model, cl.Int8Static(), calibration_data=x[:256])   # doctest: +SKIP
        >>> q.predict(x[:10]).shape                                                # doctest: +SKIP
        (10, 10)
    """

    __compresslib_framework__ = "keras"
    __compresslib_runtime__ = "litert"

    def __init__(self, flatbuffer: bytes, name: str = "litert", stats: Optional[list] = None,
                 conversion: str = BUILTINS) -> None:
        from ai_edge_litert.interpreter import Interpreter

        super().__init__("", {"framework": "keras", "name": name})
        self.flatbuffer = bytes(flatbuffer)
        self.name = name
        self.threads = get_threads()
        self.conversion = conversion
        self._stats = stats or []
        self._interp = Interpreter(model_content=self.flatbuffer, num_threads=self.threads)
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = None
        self.input_shape = (None,) + tuple(int(d) for d in self._in["shape_signature"][1:])

    def _as_input(self, x: Any) -> np.ndarray:
        return np.asarray(x).astype(self._in["dtype"], copy=False)

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self._batch != x.shape:
            self._interp.resize_tensor_input(self._in["index"], list(x.shape))
            self._interp.allocate_tensors()
            self._batch = x.shape
        self._interp.set_tensor(self._in["index"], x)
        self._interp.invoke()
        return np.array(self._interp.get_tensor(self._out["index"]))

    def files(self) -> list[str]:
        return []

    def save_native(self, dirpath: str) -> tuple[str, str]:
        path = os.path.join(dirpath, "model.tflite")
        with open(path, "wb") as fh:
            fh.write(self.flatbuffer)
        return path, ".tflite"

    def layer_stats(self) -> list[LayerStats]:
        return list(self._stats)

    def __repr__(self) -> str:
        return f"LiteRTModel({self.name!r}, conversion={self.conversion!r})"

    def clz_spec(self) -> tuple[dict, dict[str, np.ndarray]]:
        return ({"kind": "litert", "name": self.name, "conversion": self.conversion},
                {"flatbuffer": np.frombuffer(self.flatbuffer, dtype=np.uint8).copy()})


def _load_litert(spec: dict, tensors: dict[str, np.ndarray]) -> LiteRTModel:
    if not set(spec) <= {"kind", "name", "conversion"} or set(tensors) != {"flatbuffer"}:
        raise ValueError("a LiteRT model is described by 'kind', 'name', 'conversion' and one 'flatbuffer' tensor")
    if not all(isinstance(spec.get(k, ""), str) for k in ("name", "conversion")):
        raise ValueError("a LiteRT model's name and conversion must be strings")
    flat = tensors["flatbuffer"]
    if flat.dtype != np.uint8 or flat.ndim != 1:
        raise ValueError("the LiteRT flatbuffer must be a 1-D uint8 tensor")
    return LiteRTModel(tensors["flatbuffer"].tobytes(), name=spec.get("name", "litert"),
                       conversion=spec.get("conversion", BUILTINS))


register_kind("keras", "litert", LiteRTModel.clz_spec, _load_litert)


# --------------------------------------------------------------------------- recurrent layers


def _has_unroll(config: Any) -> bool:
    if isinstance(config, dict):
        return "unroll" in config or any(_has_unroll(v) for v in config.values())
    if isinstance(config, (list, tuple)):
        return any(_has_unroll(v) for v in config)
    return False


def _set_unroll(config: Any) -> Any:
    if isinstance(config, dict):
        return {k: (True if k == "unroll" else _set_unroll(v)) for k, v in config.items()}
    if isinstance(config, list):
        return [_set_unroll(v) for v in config]
    return config


def recurrent_layers(model: keras.Model) -> list[str]:
    """Names of the layers that run a recurrent loop (LSTM, GRU, SimpleRNN, RNN, or a wrapper of one)."""
    layers = (model._flatten_layers(include_self=False, recursive=True) if is_subclassed(model)
              else graph_layers(model))
    out = []
    for layer in layers:
        try:
            config = layer.get_config()
        except NotImplementedError:
            config = {"unroll": None} if isinstance(layer, keras.layers.RNN) else {}
        if isinstance(layer, keras.layers.RNN) or _has_unroll(config):
            out.append(layer.name)
    return out


def unrolled(model: keras.Model, steps: int) -> keras.Model:
    """A functional copy of ``model`` with ``unroll=True`` on every recurrent layer and the time axis fixed
    to ``steps`` (outputs equal the original's on sequences of that length)."""
    names = set(recurrent_layers(model))

    def unroll(layer):
        new = layer.__class__.from_config(_set_unroll(layer.get_config()))
        weights = [np.array(w) for w in layer.get_weights()]

        def apply(*args, **kwargs):
            out = new(*args, **kwargs)
            new.set_weights(weights)
            return out
        return apply

    graph = functional_of(model)
    shapes = [(steps,) + tuple(t.shape[2:]) for t in graph.inputs]  # token ids (N, T) or features (N, T, F)
    return rebuild(model, {name: unroll for name in names}, input_shapes=shapes)


# --------------------------------------------------------------------------- conversion


def _converter_error():
    import tensorflow as tf

    return getattr(tf.lite, "ConverterError", None) or getattr(
        __import__("tensorflow.lite.python.convert_phase", fromlist=["ConverterError"]), "ConverterError")


def _ops_and_layers(text: str, model: keras.Model) -> tuple[list[str], list[str]]:
    """TensorFlow op names and the model's layer names that a converter message mentions."""
    ops = sorted(set(re.findall(r"'tf\.(\w+)'", text)) | set(re.findall(r"\btf\.(\w+) ", text)))
    layers = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if re.search(rf"(?:^|[/\"']){re.escape(layer.name)}(?:_\d+)?/", text, flags=re.M):
            layers.append(layer.name)
    return ops, layers


def _source(model: keras.Model, spec: tuple) -> tuple:
    """``(trackable, concrete function)`` of ``model``'s inference call for the converter.

    Built in memory with Keras's ``ExportArchive``: the same graph ``model.export`` writes as a
    SavedModel, without writing and re-reading it (measured here: 5× less time on MobileNetV3,
    bit-identical LiteRT outputs).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = archive.add_endpoint("serve", lambda x: model(x, training=False),
                                  input_signature=[keras.InputSpec(shape=spec[0], dtype=spec[1])])
        return archive, fn.get_concrete_function()


class Stream:
    """Calibration read from a stream of batches (a ``tf.data.Dataset``, a re-iterable of ``x`` or ``(x, y)``
    batches), again at every conversion attempt and never held whole; a one-shot iterator is read once.

    Example:
        >>> s = Stream([np.zeros((2, 3)), np.ones((1, 3))], np.float32)
        >>> s.first.shape, [b.shape[0] for b in s]
        ((2, 3), [2, 1])
    """

    def __init__(self, data: Any, dtype: Any) -> None:
        self.data, self.dtype = data, dtype
        if iter(data) is data:
            self.data = list(self._batches(data))
        self.first = next(iter(self), None)
        if self.first is None:
            raise ValueError("calibration_data is empty")

    def _batches(self, data: Any):
        for item in data:
            x = item[0] if isinstance(item, (tuple, list)) and len(item) == 2 else item
            yield np.asarray(x, dtype=self.dtype)

    def __iter__(self):
        return self._batches(self.data)

    @staticmethod
    def wanted(data: Any) -> bool:
        """True for a stream of batches (not an array, a tensor or a list of rows)."""
        return (not isinstance(data, (np.ndarray, list, tuple, str, bytes, dict)) and hasattr(data, "__iter__")
                and not hasattr(data, "shape"))


def _convert(source: tuple, calibration: Optional[np.ndarray | Stream], ops: Optional[list],
             flex: bool = False) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([source[1]], source[0])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is not None:
        def representative():
            for batch in (calibration if isinstance(calibration, Stream) else [calibration]):
                for i in range(len(batch)):
                    yield [batch[i:i + 1]]
        conv.representative_dataset = representative
    if ops is not None:
        conv.target_spec.supported_ops = ops
    if flex:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        conv._experimental_lower_tensor_list_ops = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conv.convert()


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line:
            return line.split("error:", 1)[1].strip()[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else ""


def to_litert(model: keras.Model, calibration: Any = None, *, what: str = "Int8Dynamic",
              example: Any = None, transform: Optional[Callable[[keras.Model, np.ndarray], keras.Model]] = None
              ) -> LiteRTModel:
    """Convert ``model`` with LiteRT: dynamic-range int8, or full-integer int8 calibrated on ``calibration``.

    ``what`` names the config in messages; ``example`` (inputs, for dynamic-range conversion)
    fixes a free sequence length; ``transform(model, calibration)`` returns the model actually
    converted, once every check has passed (bias correction). See the module docstring for
    what is handled.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"model: {what} converts Keras models with TensorFlow's LiteRT converter, which needs "
                         f"KERAS_BACKEND=tensorflow; this Keras runs on the {keras.backend.backend()!r} backend. "
                         "Here use WeightOnly(bits=8) (Keras's own int8), QAT or Float16/BFloat16, or run the "
                         "conversion in a TensorFlow process")
    import tensorflow as tf

    from compresslib.keras.measure import layer_stats

    check_model(model)
    outputs = None if is_subclassed(model) else len(keras.tree.flatten(model.outputs))
    if outputs not in (None, 1):
        raise ValueError(f"model: {what}: compresslib's LiteRT wrapper returns one output; {model.name} has {outputs}")
    stream = None
    if calibration is not None and Stream.wanted(calibration):  # checked on its first batch, streamed to LiteRT
        stream = Stream(calibration, None)
        calibration = stream.first
    data = calibration if calibration is not None else example
    shape, dtype = single_input(model, f"{what} (LiteRT)", data)
    x = None if data is None else check_batch(data, (shape, dtype), "calibration_data")
    work, spec, notes = model, None, []
    rnn = recurrent_layers(model)
    if rnn:
        steps = shape[1] if len(shape) >= 2 else None
        steps = steps if steps is not None else (None if x is None else int(x.shape[1]))
        if len(shape) < 2 or steps is None:
            raise ValueError(
                f"model: {what}: LiteRT cannot convert the loop of the recurrent layer(s) {describe(rnn)} while "
                f"the batch size is free, so compresslib unrolls them, which needs a fixed sequence length; "
                f"{model.name}'s input shape is {shape}. Pass calibration_data= with sequences of the length "
                f"to convert for, or build the model with keras.Input(shape=(length, ...))")
        if is_subclassed(model):
            raise ValueError(
                f"model: {what}: LiteRT cannot convert the loop of the recurrent layer(s) {describe(rnn)} while "
                f"the batch size is free; compresslib unrolls them in Sequential and functional models, but "
                f"{type(model).__name__} is subclassed. Create them with unroll=True, or build the model with "
                f"the functional API")
        work = unrolled(model, steps)
        spec = ((None, steps) + tuple(shape[2:]), dtype)
        notes.append(f"recurrent layer(s) {describe(rnn)} unrolled over {steps} steps (LiteRT cannot convert "
                     f"their loop with a free batch size; the outputs are the same, for sequences of length {steps})")
    probe = x[:1] if x is not None else probe_input(spec or (shape, dtype))
    x = x if calibration is not None else None  # dynamic range: the example only fixed the length
    if transform is not None and x is not None:
        work = transform(work, x)
    int8_only = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if x is not None else None
    error = _converter_error()
    source = _source(work, spec or (shape, dtype))
    if stream is not None and x is not None:
        stream.dtype = x.dtype
        x = stream  # every batch of the stream calibrates (bias correction above saw the first one)
    try:
        flat = _convert(source, x, int8_only)
    except error as exc:
        first = str(exc)
        flat = None
        if x is not None:  # full integer failed: let the ops without an int8 kernel stay float
            ops, _ = _ops_and_layers(first, work)
            try:
                flat = _convert(source, x, [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
                notes.append(f"op(s) without an int8 kernel{' (' + ', '.join(ops) + ')' if ops else ''} "
                             f"kept in float (full-integer conversion failed)")
            except error as exc2:
                first = str(exc2)
        if flat is None:
            flat = _flex_or_raise(source, work, x, first, what, probe)
            notes.append("SELECT_TF_OPS: TensorFlow ops the builtins lack run through the Flex delegate")
    conversion = "; ".join(notes) or BUILTINS
    result = LiteRTModel(flat, name=f"{model.name}_litert", stats=layer_stats(model, example=probe),
                         conversion=conversion)
    if len(result._interp.get_output_details()) != 1:
        raise ValueError(f"model: {what}: compresslib's LiteRT wrapper returns one output; {model.name} has "
                         f"{len(result._interp.get_output_details())}")
    if notes:
        warnings.warn(f"{what}: {conversion}", UserWarning, stacklevel=3)
    return result


def _flex_or_raise(source: tuple, model: keras.Model, x: Optional[np.ndarray], text: str, what: str,
                   example: np.ndarray) -> bytes:
    """The SELECT_TF_OPS conversion if it converts and runs here; else a ``ValueError`` that explains."""
    ops, layers = _ops_and_layers(text, model)
    tried = ""
    try:
        flat = _convert(source, x, None, flex=True)
        LiteRTModel(flat).predict_on_batch(example)
        return flat
    except Exception as exc:  # noqa: BLE001 - the fallback is best effort; its failure is reported below
        tried = _first_error(str(exc)) or type(exc).__name__
    where = f" in layer(s) {describe(layers)}" if layers else ""
    op_text = f"TensorFlow op(s) {', '.join(ops)}{where}" if ops else f"the graph{where}"
    raise ValueError(
        f"model: {what}: LiteRT cannot convert {model.name}: {op_text} have no LiteRT builtin"
        f"{' int8' if x is not None else ''} kernel (converter: {_first_error(text)}). Ways out: give the "
        f"model fixed input shapes; create recurrent layers with unroll=True; or convert yourself with "
        f"converter.target_spec.supported_ops = [TFLITE_BUILTINS, SELECT_TF_OPS], which needs a LiteRT runtime "
        f"with the Flex delegate (compresslib tried it: {tried[:200]})")


__all__ = ["LiteRTModel", "to_litert", "recurrent_layers", "unrolled", "BUILTINS"]
