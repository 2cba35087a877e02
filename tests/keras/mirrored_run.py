"""The Keras distributed tests' process (``tests/keras/test_mirrored.py`` runs it): TensorFlow must see two
logical CPU devices, which can only be set before it starts.

Trains, under ``tf.distribute.MirroredStrategy`` over ``/cpu:0`` and ``/cpu:1`` with
``compresslib.keras.train.fit(..., distributed=strategy)``: QAT, gradual pruning with distillation and a
checkpoint (and the same run interrupted, then resumed), and a plain model given outside the strategy's
scope; the same with no strategy on the same global batches. Prints one JSON line of what the test asserts.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys

import torch  # noqa: F401  (torch before tensorflow)
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib.core.schedules import PolynomialDecay  # noqa: E402
from compresslib.keras import train  # noqa: E402
from compresslib.keras.pruning import GradualPruning  # noqa: E402
from tests.fit_data import SCHEDULE, Stop, rows  # noqa: E402
from tests.keras.test_fit_stream_resume import Interrupt  # noqa: E402

N, BATCH = 256, 32


def mlp(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((20,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inp)
    return keras.Model(inp, keras.layers.Dense(4, name="out")(hidden))


def data():
    x, y = rows(range(N))
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def replicas_differ(model) -> float:
    """The largest difference between the replicas' copies of any variable (0.0: identical)."""
    worst = 0.0
    for v in model.variables:
        copies = [np.asarray(r) for r in getattr(v.value, "values", [v.value])]
        assert len(copies) == 2, (v.path, len(copies))
        worst = max(worst, float(np.abs(copies[0] - copies[1]).max()) if copies[0].size else 0.0)
    return worst


def runs(strategy):
    """QAT, then gradual pruning with a teacher; under ``strategy`` when given (model made in its scope)."""
    scope = (lambda: strategy.scope()) if strategy is not None else contextlib.nullcontext
    with scope():
        q = cl.prepare_qat(mlp(), cl.QAT())
    train.fit(q, data(), epochs=2, lr=3e-3, distributed=strategy or False)
    with scope():
        p = mlp()
        cb = GradualPruning(cl.Magnitude(0.75, schedule=PolynomialDecay(0.0, 0.75, **SCHEDULE)), p)
    ckpt = os.path.join(sys.argv[1], f"pruning{'2' if strategy else '1'}.npz")
    train.fit(p, data(), epochs=2, lr=3e-3, callbacks=[cb], teacher=mlp(1), distributed=strategy or False,
              checkpoint=ckpt, checkpoint_every=5)
    return q, p, cb


def resumed(strategy, folder: str) -> keras.Model:
    """The distributed pruning run of :func:`runs`, stopped after step 7 (checkpoint at 5), then resumed."""
    path = os.path.join(folder, "interrupted.npz")
    for stop_at in (7, None):
        with strategy.scope():
            p = mlp()
            cb = GradualPruning(cl.Magnitude(0.75, schedule=PolynomialDecay(0.0, 0.75, **SCHEDULE)), p)
        try:
            train.fit(p, data(), epochs=2, lr=3e-3, callbacks=[cb, Interrupt(stop_at)], teacher=mlp(1),
                      distributed=strategy, checkpoint=path, checkpoint_every=5)
        except Stop:
            pass
    return p


def main() -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    q2, p2, cb2 = runs(strategy)
    p3 = resumed(strategy, sys.argv[1])
    q1, p1, cb1 = runs(None)
    outside = mlp()
    before = [w.copy() for w in outside.get_weights()]
    train.fit(outside, data(), epochs=1, distributed=strategy)   # cloned under the scope, weights copied back
    diff = lambda a, b: max(float(np.abs(u - v).max())  # noqa: E731
                            for u, v in zip(a.get_weights(), b.get_weights()))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "qat_replicas_differ": replicas_differ(q2), "pruning_replicas_differ": replicas_differ(p2),
        "qat_vs_one": diff(q1, q2), "pruning_vs_one": diff(p1, p2),
        "masks_equal_one": all(np.array_equal(cb1.masks[k], cb2.masks[k]) for k in cb1.masks),
        "sparsity": {k: float(1 - m.mean()) for k, m in cb2.masks.items()},
        "zeros_kept": all(bool((np.asarray(p2.get_layer(k).kernel) == 0)[~cb2.masks[k]].all())
                          for k in cb2.masks),
        "resumed_equal": all(np.array_equal(a, b) for a, b in zip(p2.get_weights(), p3.get_weights())),
        "outside_trained": any(not np.array_equal(a, b) for a, b in zip(before, outside.get_weights())),
    }))


if __name__ == "__main__":
    main()
