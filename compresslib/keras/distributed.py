"""Compression-aware training on several devices with Keras 3: ``tf.distribute.MirroredStrategy``.

Which API: Keras 3's ``keras.distribution`` (DataParallel, ModelParallel) is implemented for the JAX
backend only, and JAX is not installed here; on the TensorFlow backend Keras 3's ``model.fit`` runs under
a ``tf.distribute`` strategy whose scope holds the model's variables. compresslib's Keras training (the
QAT fake-quant layers, the gradual-pruning callback, centroid layers, distillation) is ``model.fit`` with
callbacks, so ``compresslib.keras.train.fit(..., distributed=True)`` uses ``tf.distribute.MirroredStrategy``
(every visible device; on a CPU, split it into logical devices with
``tf.config.set_logical_device_configuration`` before TensorFlow starts).

What must agree on every replica, and how it is kept so:

* **weights**: mirrored variables; the gradients are summed across replicas before the one update;
* **pruning masks**: the callback runs once, in the cross-replica context, and assigns a mirrored variable:
  every replica receives the same masked kernel;
* **activation ranges of QAT**: compresslib's Keras fake-quantizer takes each batch's range; inside a
  replica, :func:`sync_max` all-reduces it (MAX), so every replica quantizes with the global batch's range;
* **files**: a Keras program under MirroredStrategy is one process, which writes them.

BatchNormalization under MirroredStrategy keeps one mirrored moving mean/variance, updated from replica 0's
shard (Keras's ``synchronized=True`` option makes it use the global batch).

Example:
    >>> world()
    (0, 1)
"""
from __future__ import annotations

from typing import Any

import keras


def world() -> tuple[int, int]:
    """``(replica id, replicas in sync)`` when called inside a replica of a strategy; ``(0, 1)`` elsewhere."""
    if keras.backend.backend() != "tensorflow":
        return 0, 1
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or not tf.distribute.has_strategy():
        return 0, 1
    rid = ctx.replica_id_in_sync_group
    return (rid if isinstance(rid, int) else 0), int(ctx.num_replicas_in_sync)


def is_writer() -> bool:
    """True in the process that writes files (a MirroredStrategy program is one process: always)."""
    return True


def setup(distributed: Any, model: Any) -> Any:
    """The strategy ``fit`` trains under: None (``distributed=False``), a new ``MirroredStrategy`` over every
    visible device (``True``), or the ``tf.distribute.Strategy`` given."""
    if distributed is False or distributed is None:
        return None
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"distributed: compresslib's Keras fit distributes with tf.distribute (TensorFlow "
                         f"backend); this Keras runs on {keras.backend.backend()!r}")
    import tensorflow as tf

    if isinstance(distributed, tf.distribute.Strategy):
        return distributed
    if distributed is not True:
        raise ValueError(f"distributed must be True, False or a tf.distribute.Strategy, got {distributed!r}")
    return tf.distribute.MirroredStrategy()


def placed(model: Any) -> bool:
    """True when ``model``'s variables were made under a strategy's scope (distributed variables)."""
    if keras.backend.backend() != "tensorflow" or not model.variables:
        return False
    import tensorflow as tf

    return isinstance(getattr(model.variables[0], "value", None), tf.distribute.DistributedValues)


def sync_max(x: Any) -> Any:
    """The maximum of ``x`` over the replicas in sync (``x`` itself outside a multi-replica step).

    Used by the QAT fake-quantizer: no gradient flows through a range, so it is all-reduced without one.
    """
    if keras.backend.backend() != "tensorflow":
        return x
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or not tf.distribute.has_strategy() or ctx.num_replicas_in_sync == 1:
        return x
    every = ctx.all_gather(tf.reshape(tf.stop_gradient(x), (1, -1)), axis=0)  # ReduceOp has no MAX
    return tf.reshape(tf.reduce_max(every, axis=0), tf.shape(x))


__all__ = ["world", "is_writer", "setup", "placed", "sync_max"]
