"""compresslib.keras.train.fit on streamed data, and checkpoints that resume bit for bit (issue 26)."""
from __future__ import annotations

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

import compresslib as cl
from compresslib.core.schedules import PolynomialDecay
from compresslib.keras import train
from compresslib.keras.pruning import GradualPruning

from tests.fit_data import SCHEDULE, Stop, rows as _rows, run_killed


class Stream:
    """Re-iterable: the same batches every epoch, made one batch at a time."""

    def __init__(self, n: int, batch: int) -> None:
        self.n, self.batch = n, batch
        self.batches = self.most_rows = 0

    def __iter__(self):
        for s in range(0, self.n, self.batch):
            x, y = _rows(np.arange(s, min(s + self.batch, self.n)))
            self.batches += 1
            self.most_rows = max(self.most_rows, len(x))
            yield x, y


def _mlp(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inp = keras.Input((20,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inp)  # fixed names: the masks' keys
    return keras.Model(inp, keras.layers.Dense(4, name="out")(hidden))


def _same(a: keras.Model, b: keras.Model) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def test_stream_equals_in_memory_run_and_holds_one_batch():
    n, batch = 1000, 64
    stream = Stream(n, batch)
    streamed, held = _mlp(), _mlp()
    train.fit(streamed, stream, epochs=2)
    x, y = _rows(np.arange(n))
    # the same batches held in memory; a Dataset of known size would run Keras's other epoch loop (no
    # end-of-data probe), equal to the last bit only under XLA
    train.fit(held, [(x[s:s + batch], y[s:s + batch]) for s in range(0, n, batch)], epochs=2)
    assert stream.batches == 1 + 2 * 16          # one batch read for the signature, then 2 epochs of 16
    assert stream.most_rows == batch             # never more than one batch of the 1,000 rows at once
    assert _same(streamed, held)
    assert train.evaluate(streamed, Stream(n, batch)) == train.evaluate(streamed, (x, y))  # a stream, too


def test_stream_with_teacher_and_errors():
    x, y = _rows(np.arange(128))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    assert len(train.fit(_mlp(), ds, epochs=2, teacher=_mlp(1))) == 2
    with pytest.raises(ValueError, match="one-shot iterator"):
        train.fit(_mlp(), ((x[i:i + 32], y[i:i + 32]) for i in range(0, 128, 32)), epochs=2)
    with pytest.raises(TypeError, match="teacher: logits as an array need data=.x, y."):
        train.fit(_mlp(), ds, teacher=np.zeros((128, 4), np.float32))


class Interrupt(keras.callbacks.Callback):
    """After step ``at`` of this run: raise :class:`Stop`, or (``kill``) SIGKILL the process."""

    def __init__(self, at, kill=False):
        super().__init__()
        self.at, self.kill, self.step = at, kill, 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step == self.at:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Stop


def _run(path, stop_at=None, data=None, kill=False):
    """Gradual pruning + fine-tuning with a checkpoint every 3 steps; raise after step ``stop_at``
    (counted from the start of this call)."""
    model = _mlp()
    config = cl.Magnitude(0.75, schedule=PolynomialDecay(0.0, 0.75, **SCHEDULE))
    cb = GradualPruning(config, model)
    data = data if data is not None else _rows(np.arange(300))
    train.fit(model, data, epochs=3, batch_size=32, lr=3e-3, lr_schedule="step", checkpoint=path,
              checkpoint_every=3, callbacks=[cb, Interrupt(stop_at, kill)])
    return model, cb


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-epoch, and the last step of epoch 1
def test_interrupted_run_resumes_bit_identical(tmp_path, stop_at):
    ref, ref_cb = _run(str(tmp_path / "ref.npz"))
    path = str(tmp_path / "run.npz")
    with pytest.raises(Stop):
        _run(path, stop_at=stop_at)
    resumed, cb = _run(path)
    assert cb.step == ref_cb.step == 30
    assert _same(resumed, ref)
    assert all(np.array_equal(cb.masks[k], ref_cb.masks[k]) for k in ref_cb.masks)
    assert cb.sparsity == ref_cb.sparsity == 0.75


def test_resume_of_a_dataset_mid_epoch(tmp_path):
    x, y = _rows(np.arange(200))
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(200, seed=1, reshuffle_each_iteration=False).batch(32)  # the same order every epoch
    ref, _ = _run(str(tmp_path / "ref.npz"), data=ds)
    path = str(tmp_path / "run.npz")
    with pytest.raises(Stop):
        _run(path, stop_at=11, data=ds)
    resumed, _ = _run(path, data=ds)
    assert _same(resumed, ref)


def test_bad_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"half a file")
    with pytest.raises(ValueError, match="checkpoint: .* is not a readable fit checkpoint"):
        train.fit(_mlp(), _rows(np.arange(64)), checkpoint=str(bad))


KILLED = "import torch, tests.keras.test_fit_stream_resume as t; t._run({path!r}, stop_at=8, kill=True)"


def test_killed_process_resumes_bit_identical(tmp_path):
    ref, _ = _run(str(tmp_path / "ref.npz"))
    path = str(tmp_path / "run.npz")
    run_killed(KILLED.format(path=path))
    import json
    with np.load(path, allow_pickle=False) as f:
        assert json.loads(str(f["meta"]))["step"] == 6
    resumed, _ = _run(path)
    assert _same(resumed, ref)


def test_calibration_streams_a_dataset():
    x, y = _rows(np.arange(300))
    m = _mlp()
    config = cl.Int8Static(bias_correction=False)  # (bias correction reads the first batch only)
    held = cl.quantize(m, config, calibration_data=x)
    reads = []

    def batches():  # a re-iterable read through tf.data, one batch of 64 at a time
        for s in range(0, 300, 64):
            reads.append(s)
            yield _rows(np.arange(s, min(s + 64, 300)))

    ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((None, 20), tf.float32), tf.TensorSpec((None,), tf.int64)))
    streamed = cl.quantize(m, config, calibration_data=ds)
    np.testing.assert_array_equal(streamed.predict(x), held.predict(x))   # the same int8 model
    # the first batch (checks; tf.data may prefetch one more), then one pass over the five batches
    assert reads[:1] == [0] and reads[-5:] == list(range(0, 300, 64)) and len(reads) <= 7
