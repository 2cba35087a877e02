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

from typing import Optional, Sequence

import keras
import numpy as np

from compresslib.core.training import check_data as _check_data, check_distill, check_teacher_logits, step_lr
from compresslib.progress import interactive


def fit(
    model: keras.Model,
    data: Sequence[np.ndarray],
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
) -> list[float]:
    """Train ``model`` in place with Adam and sparse cross-entropy on logits; return per-epoch loss.

    ``teacher``: knowledge distillation, as in ``compresslib.torch.train.fit`` — a
    Keras model (typically the uncompressed original) or its ``(N, classes)``
    logits on ``x``, computed once; the loss is
    :func:`compresslib.core.training.distillation_loss`. Each label travels with
    its teacher row through Keras's shuffling (they are packed into one target array).

    ``callbacks`` are Keras callbacks (gradual pruning passes one that keeps
    masks applied). Same seed, same data → same weights.
    """
    x, y = _check_data(data)
    if lr_schedule not in ("constant", "step"):
        raise ValueError(f"lr_schedule must be 'constant' or 'step', got {lr_schedule!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if teacher is not None:
        check_distill(distill_alpha, temperature)
        if isinstance(teacher, keras.Model) or hasattr(teacher, "predict_on_batch"):
            if teacher is model:
                raise ValueError("teacher: must be another model (the uncompressed original), not the model trained")
            t_logits = predict(teacher, x)
        elif isinstance(teacher, np.ndarray):
            t_logits = teacher
        else:
            raise TypeError(f"teacher must be a Keras model or an array of logits, got {type(teacher).__name__}")
        t_logits = check_teacher_logits(t_logits, len(x))
        y = np.concatenate([np.asarray(y, np.float32)[:, None], t_logits], axis=1)
        loss = _distill_loss(distill_alpha, temperature)
    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss, jit_compile=jit_compile)
    cbs = list(callbacks or [])
    if lr_schedule == "step":
        cbs.append(keras.callbacks.LearningRateScheduler(lambda e: step_lr(lr, e, epochs)))
    verbose = 1 if (progress_bar if progress_bar is not None else interactive()) else 0
    hist = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose, callbacks=cbs)
    return [float(v) for v in hist.history["loss"]]


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
    """Top-1 accuracy (0..1) of ``model`` on ``data = (x, y)``; ``per_sample=True``: each sample's correctness."""
    x, y = _check_data(data)
    correct = predict(model, x, batch_size).argmax(1) == y
    return correct if per_sample else float(correct.mean())
