"""Training and evaluation helpers for Keras 3 models (same names as ``compresslib.torch.train``).

Example:
    >>> import compresslib as cl
    >>> from compresslib.keras import models, train
    >>> x, y = cl.datasets.load_mnist("test", layout="keras")
    >>> m = models.build("lenet300_100")
    >>> _ = train.fit(m, (x[:256], y[:256]), epochs=1)
    >>> 0.0 <= train.evaluate(m, (x, y)) <= 1.0
    True
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from typing import Any, Optional, Sequence

import keras
import numpy as np

from compresslib.core.training import (atomic_write, check_checkpoint, check_data as _check_data,
                                       check_distill, check_teacher_logits, rng_state, set_rng_state, step_lr)
from compresslib.keras import distributed as kdist
from compresslib.progress import interactive


def fit(
    model: keras.Model,
    data: Any,
    epochs: int = 3,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress_bar: Optional[bool] = None,
    callbacks: Optional[list] = None,
    lr_schedule: str = "constant",
    jit_compile: bool | str = "auto",
    teacher=None,
    distill_alpha: float = 0.7,
    temperature: float = 4.0,
    checkpoint: Optional[str | os.PathLike] = None,
    checkpoint_every: int = 0,
    distributed: Any = False,
) -> list[float]:
    """Train ``model`` in place with Adam and sparse cross-entropy on logits; return per-epoch loss.

    ``data``: ``(x, y)`` arrays (shuffled every epoch, batches of ``batch_size``), or a stream: a
    ``tf.data.Dataset`` of ``(x, y)`` batches, or any re-iterable of ``(x, y)`` batches (read through
    ``tf.data.Dataset.from_generator``, one batch at a time, never held whole).

    ``teacher``: knowledge distillation, as in ``compresslib.torch.train.fit`` — a
    Keras model (typically the uncompressed original) or its ``(N, classes)``
    logits on ``x``, computed once (per batch for a stream); the loss is
    :func:`compresslib.core.training.distillation_loss`. Each label travels with
    its teacher row through Keras's shuffling (they are packed into one target array).

    ``callbacks`` are Keras callbacks (gradual pruning passes one that keeps
    masks applied). Same seed, same data → same weights.

    ``checkpoint``: a file path (``.npz``, read back with ``allow_pickle=False``). Every ``checkpoint_every``
    steps (and at the end) the variables of the model and of the optimiser, the callbacks' state (pruning
    masks, step), the position in the data and the loss so far are written atomically; when the file
    exists, training resumes from it and ends bit-identical to an uninterrupted run with the same
    arguments. With ``(x, y)``, a checkpointed run shuffles with NumPy (seeded) instead of Keras, so that
    the order can be replayed; a stream must give the same order every epoch (a Dataset without
    ``reshuffle_each_iteration``). The checkpoint of a finished run makes ``fit`` return its history at
    once (delete the file to train again).

    ``distributed``: True or a ``tf.distribute.Strategy`` (True: ``MirroredStrategy`` over every visible
    device); ``batch_size`` (or the stream's batch) is the global batch, split between the replicas. The
    model is trained in place when its variables were made under the strategy's scope, else a copy made
    under it is trained and its weights copied back. See :mod:`compresslib.keras.distributed`.

    Example:
        >>> import compresslib as cl
        >>> x, y = cl.datasets.load_mnist("test", layout="keras")
        >>> m = cl.zoo.pretrained("lenet300_100", framework="keras")
        >>> len(fit(m, (x[:256], y[:256]), epochs=1))          # doctest: +SKIP
        1
    """
    streaming = _is_stream(data)
    if lr_schedule not in ("constant", "step"):
        raise ValueError(f"lr_schedule must be 'constant' or 'step', got {lr_schedule!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs}")
    path = check_checkpoint(checkpoint, checkpoint_every)
    strategy = kdist.setup(distributed, model)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x = y = ds = None
    if teacher is not None:
        check_distill(distill_alpha, temperature)
        if teacher is model:
            raise ValueError("teacher: must be another model (the uncompressed original), "
                             "not the model trained")
        if not (isinstance(teacher, (keras.Model, np.ndarray)) or hasattr(teacher, "predict_on_batch")):
            raise TypeError(f"teacher must be a Keras model or an array of logits, got {type(teacher).__name__}")
        loss = _distill_loss(distill_alpha, temperature)
    if streaming:
        if isinstance(teacher, np.ndarray):
            raise TypeError("teacher: logits as an array need data=(x, y) (one row per sample); "
                            "with a stream, give the teacher model")
        ds = _dataset(data, teacher, epochs)
    else:
        x, y = _check_data(data)
        if teacher is not None:
            t_logits = teacher if isinstance(teacher, np.ndarray) else predict(teacher, x)
            t_logits = check_teacher_logits(t_logits, len(x))
            y = np.concatenate([np.asarray(y, np.float32)[:, None], t_logits], axis=1)
    keras.utils.set_random_seed(seed)
    work = model
    scope = strategy.scope if strategy is not None else contextlib.nullcontext  # a new context at each use
    with scope():
        if strategy is not None and not kdist.placed(model):
            work = keras.models.clone_model(model)
            work.set_weights(model.get_weights())
        work.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, jit_compile=jit_compile)
    cbs = list(callbacks or [])
    verbose = 1 if (progress_bar if progress_bar is not None else interactive()) else 0
    if path is None:
        if lr_schedule == "step":
            cbs.append(keras.callbacks.LearningRateScheduler(lambda e: step_lr(lr, e, epochs)))
        if streaming:
            hist = work.fit(ds, epochs=epochs, verbose=verbose, callbacks=cbs, shuffle=False)
        else:
            hist = work.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose,
                            callbacks=cbs)
        history = [float(v) for v in hist.history["loss"]]
    else:
        run = _Resumable(work, path, checkpoint_every, cbs, seed, scope)
        history = run.fit((x, y) if ds is None else ds, epochs, batch_size, lr, lr_schedule, verbose)
    if work is not model:
        model.set_weights(work.get_weights())
    return history


def _is_stream(data: Any) -> bool:
    """True for a ``tf.data.Dataset`` or an iterable of ``(x, y)`` batches; False for ``(x, y)`` arrays."""
    if isinstance(data, (tuple, list)):
        return len(data) != 2 or all(isinstance(b, (tuple, list)) and len(b) == 2 for b in data)
    return isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict, np.ndarray))


def _dataset(data: Any, teacher: Any, epochs: int):
    """A ``tf.data.Dataset`` of ``(x, targets)`` batches (targets packed with the teacher's logits)."""
    import tensorflow as tf

    if not isinstance(data, tf.data.Dataset):
        if epochs > 1 and iter(data) is data:
            raise ValueError("data: a one-shot iterator (e.g. a generator) can be read once, for epochs=1; "
                             "give a re-iterable or a tf.data.Dataset for more epochs")
        first = next(iter(data), None)
        if not (isinstance(first, (tuple, list)) and len(first) == 2):
            raise ValueError(f"data: every batch must be a pair (x, y), got {type(first).__name__}")
        spec = tuple(tf.TensorSpec((None,) + np.shape(a)[1:], tf.as_dtype(np.asarray(a).dtype))
                     for a in first)
        source = data
        data = tf.data.Dataset.from_generator(lambda: ((np.asarray(a), np.asarray(b)) for a, b in source),
                                              output_signature=spec)
    if teacher is None:
        return data

    def pack(xb, yb):
        logits = tf.cast(teacher(xb, training=False), tf.float32)
        return xb, tf.concat([tf.cast(tf.reshape(yb, (-1, 1)), tf.float32), logits], axis=1)

    return data.map(pack)


class _Resumable(keras.callbacks.Callback):
    """``fit`` epoch by epoch with a checkpoint every ``every`` steps (a callback counting them)."""

    def __init__(self, work, path: str, every: int, callbacks: list, seed: int, scope) -> None:
        super().__init__()
        self.work, self.path, self.every, self.cbs, self.scope = work, path, every, callbacks, scope
        self.rng = np.random.default_rng(seed)
        self.at = {"epoch": 0, "batch": 0, "step": 0, "history": [], "total": 0.0, "count": 0}
        self.order: Optional[np.ndarray] = None
        self.sizes: list = []

    def fit(self, data: Any, epochs: int, batch_size: int, lr: float, lr_schedule: str, verbose: int) -> list:
        pair = isinstance(data, tuple)
        resume = os.path.exists(self.path)
        if resume:
            self._load(pair)
        at = self.at
        for epoch in range(at["epoch"], epochs):
            here = resume and epoch == at["epoch"]
            if not here:
                at.update(epoch=epoch, batch=0, total=0.0, count=0)
                if pair:
                    self.order = self.rng.permutation(len(data[0]))
            if lr_schedule == "step":
                self.work.optimizer.learning_rate.assign(step_lr(lr, epoch, epochs))
            if pair:
                rest = self.order[at["batch"] * batch_size:]
                n = len(rest)
                self.sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
                if n:
                    self.work.fit(data[0][rest], data[1][rest], batch_size=batch_size, epochs=1,
                                  shuffle=False, verbose=verbose, callbacks=self.cbs + [self])
            else:
                self.sizes = []
                self.work.fit(data.skip(at["batch"]), epochs=1, verbose=verbose, callbacks=self.cbs + [self],
                              shuffle=False)
            at["history"].append(at["total"] / max(at["count"], 1))
        at.update(epoch=epochs, batch=0, total=0.0, count=0)
        self._save()
        return list(at["history"])

    def on_train_begin(self, logs: Optional[dict] = None) -> None:
        self.seen, self.call_sum = 0, 0.0

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        at = self.at
        rows = self.sizes[batch] if batch < len(self.sizes) else 1  # a stream's loss is averaged per batch
        mean = float((logs or {}).get("loss", 0.0))
        running = mean * (self.seen + rows)  # Keras's logged loss: the mean of this call so far
        at["total"] += running - self.call_sum
        at["count"] += rows
        self.seen += rows
        self.call_sum = running
        at["batch"] += 1
        at["step"] += 1
        if self.every and at["step"] % self.every == 0:
            self._save()

    def _save(self) -> None:
        arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(self.work.variables)}
        opt = self.work.optimizer
        if opt.built:
            arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(opt.variables)})
        scalars = []
        for i, cb in enumerate(self.cbs):
            state = cb.state_dict() if hasattr(cb, "state_dict") else {}
            scalars.append({k: v for k, v in state.items() if not isinstance(v, dict)})
            for k, v in state.items():
                if isinstance(v, dict):
                    arrays.update({f"c{i}/{k}/{name}": np.asarray(a) for name, a in v.items()})
        if self.order is not None:
            arrays["order"] = self.order
        meta = {**self.at, "format": CHECKPOINT_FORMAT, "rng": rng_state(self.rng), "callbacks": scalars,
                "optimizer_built": bool(opt.built)}
        arrays["meta"] = np.array(json.dumps(meta))

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self.path, write)

    def _load(self, pair: bool) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            meta = json.loads(str(arrays.pop("meta")))
        except Exception as exc:  # noqa: BLE001 - not a checkpoint of ours
            raise ValueError(f"checkpoint: {self.path!r} is not a readable fit checkpoint "
                             f"({type(exc).__name__}: {str(exc)[:200]})") from None
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint: {self.path!r} was not written by compresslib's Keras fit")
        variables = self.work.variables
        if sum(k.startswith("v") for k in arrays) != len(variables) or any(
                tuple(arrays[f"v{i}"].shape) != tuple(v.shape) for i, v in enumerate(variables)):
            raise ValueError(f"checkpoint: {self.path!r} holds another model's variables")
        if len(meta["callbacks"]) != len(self.cbs):
            raise ValueError(f"checkpoint: {self.path!r} holds the state of {len(meta['callbacks'])} "
                             f"callback(s), this run has {len(self.cbs)}")
        for i, v in enumerate(variables):
            v.assign(arrays[f"v{i}"])
        opt = self.work.optimizer
        if meta["optimizer_built"]:
            with self.scope():
                opt.build(self.work.trainable_variables)
            for i, v in enumerate(opt.variables):
                v.assign(arrays[f"o{i}"])
        for i, cb in enumerate(self.cbs):
            if hasattr(cb, "load_state_dict"):
                state = dict(meta["callbacks"][i])
                for key in {k.split("/")[1] for k in arrays if k.startswith(f"c{i}/")}:
                    prefix = f"c{i}/{key}/"
                    state[key] = {k[len(prefix):]: a for k, a in arrays.items() if k.startswith(prefix)}
                state.setdefault("masks", {})
                cb.load_state_dict(state)
        set_rng_state(self.rng, meta["rng"])
        self.order = arrays.get("order") if pair else None
        self.at = {k: meta[k] for k in ("epoch", "batch", "step", "history", "total", "count")}


CHECKPOINT_FORMAT = "compresslib-keras-fit-1"


def _distill_loss(alpha: float, t: float):
    """A Keras loss on targets ``[label, teacher logits...]``: (1 - alpha)·CE + alpha·T²·KL(teacher ‖ student)."""
    ops = keras.ops

    def loss(y_true, y_pred):
        labels = ops.cast(y_true[:, 0], "int32")
        teacher = y_true[:, 1:]
        hard = keras.losses.sparse_categorical_crossentropy(labels, y_pred, from_logits=True)
        log_p_t = ops.log_softmax(teacher / t, axis=-1)
        kl = ops.sum(ops.exp(log_p_t) * (log_p_t - ops.log_softmax(y_pred / t, axis=-1)), axis=-1)
        return (1 - alpha) * hard + alpha * t * t * kl

    return loss


def recalibrate_batchnorm(model, x: np.ndarray, batch_size: int = 256) -> int:
    """Re-estimate every BatchNormalization's moving mean and variance from ``x``, in place; return how many.

    As ``compresslib.torch.train.recalibrate_batchnorm`` (why: pruned layers no longer match the statistics
    measured on the original). Keras keeps an exponential average, so the statistics are accumulated here
    over the batches of ``x`` (each batch's mean and variance of the layer's input, averaged with equal
    weights, the variance by the law of total variance) and written into the moving averages; the model
    runs in inference mode except for these layers' inputs, which are read through a sub-model.

    Example:
        >>> import keras, numpy as np
        >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4),
        ...                       keras.layers.BatchNormalization()])
        >>> recalibrate_batchnorm(m, np.random.default_rng(0).normal(5, 1, (64, 3)).astype("float32"))
        1
    """
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    if not layers:
        return 0
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs  # the structure calls give it
    probe = keras.Model(inputs, [l.input for l in layers])
    sums = [None] * len(layers)
    count = 0
    for start in range(0, len(x), batch_size):
        outs = probe(np.asarray(x[start:start + batch_size], dtype=np.float32), training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        count += 1
        for i, (layer, out) in enumerate(zip(layers, outs)):
            a = keras.ops.convert_to_numpy(out).astype(np.float64)
            channel = (layer.axis[0] if isinstance(layer.axis, (list, tuple)) else layer.axis) % a.ndim
            axes = tuple(d for d in range(a.ndim) if d != channel)
            mean, mean_sq = a.mean(axis=axes), (a * a).mean(axis=axes)
            sums[i] = (mean, mean_sq) if sums[i] is None else (sums[i][0] + mean, sums[i][1] + mean_sq)
    for layer, (total, total_sq) in zip(layers, sums):
        mean = total / count
        var = np.maximum(total_sq / count - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(var.astype(np.float32))
    return len(layers)


def predict(model, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Logits of ``model`` on ``x`` as a NumPy array (works for Keras models and compresslib wrappers)."""
    outs = []
    for start in range(0, len(x), batch_size):
        xb = np.asarray(x[start:start + batch_size])
        xb = xb if xb.dtype.kind in "biu" else xb.astype(np.float32)  # token ids stay integers
        if hasattr(model, "predict_on_batch"):
            outs.append(np.asarray(model.predict_on_batch(xb)))
        else:
            outs.append(np.asarray(model(xb)))
    return np.concatenate(outs)


def evaluate(model, data: Sequence[np.ndarray], batch_size: int = 500, per_sample: bool = False) -> float | np.ndarray:
    """Top-1 accuracy (0..1) of ``model`` on ``data``: ``(x, y)``, or a stream of ``(x, y)`` batches (a
    ``tf.data.Dataset``, any iterable), read batch by batch; ``per_sample=True``: each sample's correctness."""
    if _is_stream(data):
        hits = [predict(model, np.asarray(xb), batch_size).argmax(1) == np.asarray(yb).reshape(-1)
                for xb, yb in data]
        if not hits:
            raise ValueError("data is empty")
        correct = np.concatenate(hits)
        return correct if per_sample else float(correct.mean())
    x, y = _check_data(data)
    correct = predict(model, x, batch_size).argmax(1) == y
    return correct if per_sample else float(correct.mean())
