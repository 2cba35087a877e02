"""compresslib.torch.train.fit on streamed data, and checkpoints that resume bit for bit (issue 26)."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core.schedules import PolynomialDecay
from compresslib.torch import train
from compresslib.torch.pruning import GradualPruning

from tests.fit_data import SCHEDULE, Stop, rows as _rows, run_killed


class Stream:
    """Re-iterable: each epoch, the batches of ``fit``'s own permutation, made one batch at a time."""

    def __init__(self, n: int, batch: int, seed: int, epochs: int) -> None:
        rng = np.random.default_rng(seed)
        self.orders = [rng.permutation(n) for _ in range(epochs)]
        self.n, self.batch, self.epoch = n, batch, 0
        self.batches = self.most_rows = 0

    def __iter__(self):
        order = self.orders[self.epoch]
        self.epoch += 1
        for s in range(0, self.n, self.batch):
            x, y = _rows(order[s:s + self.batch])
            self.batches += 1
            self.most_rows = max(self.most_rows, len(x))
            yield torch.from_numpy(x), torch.from_numpy(y)


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_stream_equals_in_memory_run_and_holds_one_batch():
    n, batch, epochs = 1200, 64, 2
    stream = Stream(n, batch, seed=5, epochs=epochs)
    streamed, held = _mlp(), _mlp()
    h_stream = train.fit(streamed, stream, epochs=epochs, seed=5)
    h_held = train.fit(held, _rows(np.arange(n)), epochs=epochs, batch_size=batch, seed=5)
    assert stream.batches == epochs * -(-n // batch) == 38
    assert stream.most_rows == batch          # never more than one batch of the 1,200 rows at once
    assert _same(streamed, held)              # bit-identical weights
    assert h_stream == pytest.approx(h_held, rel=1e-6)


def test_stream_from_dataloader_with_teacher_and_errors():
    x, y = _rows(np.arange(256))
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)
    m = _mlp()
    losses = train.fit(m, loader, epochs=2, teacher=_mlp(1))
    assert len(losses) == 2 and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="one-shot iterator"):
        train.fit(_mlp(), (b for b in loader), epochs=2)
    with pytest.raises(TypeError, match="teacher: logits as an array need data=.x, y."):
        train.fit(_mlp(), loader, epochs=1, teacher=np.zeros((256, 4), np.float32))
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint"):
        train.fit(_mlp(), (x, y), checkpoint_every=3)


def _run(path, stop_at=None, data=None, model=None, kill=False):
    """Gradual pruning + fine-tuning with a checkpoint every 3 steps; after step ``stop_at``, raise
    :class:`Stop` (or, ``kill``: the process kills itself with SIGKILL, no clean-up, no exception)."""
    model = model or _mlp()
    config = cl.Magnitude(0.75, schedule=PolynomialDecay(0.0, 0.75, **SCHEDULE))
    hook = GradualPruning(config, model)

    def interrupt(m, step):
        if step == stop_at:
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise Stop

    data = data if data is not None else _rows(np.arange(300))
    train.fit(model, data, epochs=3, batch_size=32, lr=3e-3, lr_schedule="step", checkpoint=path,
              checkpoint_every=3, on_step=[hook, interrupt])
    return model, hook


@pytest.mark.parametrize("stop_at", [7, 10])  # mid-epoch, and the last step of epoch 1
def test_interrupted_run_resumes_bit_identical(tmp_path, stop_at):
    ref, ref_hook = _run(str(tmp_path / "ref.ckpt"))
    path = str(tmp_path / "run.ckpt")
    with pytest.raises(Stop):
        _run(path, stop_at=stop_at)
    assert torch.load(path, weights_only=True)["step"] == stop_at // 3 * 3
    resumed, hook = _run(path)                 # a fresh model: everything comes from the checkpoint
    assert _same(resumed, ref)
    assert all(torch.equal(hook.masks[k], ref_hook.masks[k]) for k in ref_hook.masks)
    assert hook.sparsity == ref_hook.sparsity == 0.75


def test_resume_of_a_dataloader_stream_mid_epoch(tmp_path):
    x, y = _rows(np.arange(200))

    def loader():
        ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        return torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True)  # order from torch's RNG

    ref, _ = _run(str(tmp_path / "ref.ckpt"), data=loader())
    path = str(tmp_path / "run.ckpt")
    with pytest.raises(Stop):
        _run(path, stop_at=11, data=loader())
    resumed, _ = _run(path, data=loader())
    assert _same(resumed, ref)


def test_bad_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"half a file")
    with pytest.raises(ValueError, match="checkpoint: .* is not a readable fit checkpoint"):
        train.fit(_mlp(), _rows(np.arange(64)), checkpoint=str(bad))
    with pytest.raises(ValueError, match="checkpoint: the folder"):
        train.fit(_mlp(), _rows(np.arange(64)), checkpoint=str(tmp_path / "no" / "x.ckpt"))


KILLED = "import torch, tests.torch.test_fit_stream_resume as t; t._run({path!r}, stop_at=8, kill=True)"


def test_killed_process_resumes_bit_identical(tmp_path):
    ref, _ = _run(str(tmp_path / "ref.ckpt"))
    path = str(tmp_path / "run.ckpt")
    run_killed(KILLED.format(path=path))
    assert torch.load(path, weights_only=True)["step"] == 6
    resumed, _ = _run(path)
    assert _same(resumed, ref)


def test_calibration_streams_a_dataloader():
    x, y = _rows(np.arange(600))
    reads = []

    class Rows(torch.utils.data.Dataset):   # rows made when asked for: the set is never held
        def __len__(self):
            return 600

        def __getitem__(self, i):
            reads.append(i)
            return torch.from_numpy(_rows([i])[0][0]), int(_rows([i])[1][0])

    loader = torch.utils.data.DataLoader(Rows(), batch_size=256)
    m = _mlp()
    streamed = cl.quantize(m, cl.Int8Static(), calibration_data=loader)
    held = cl.quantize(m, cl.Int8Static(), calibration_data=torch.from_numpy(x))
    scales = {k: v for k, v in held.state_dict().items() if k.endswith("scale")}
    assert scales and all(torch.equal(streamed.state_dict()[k], v) for k, v in scales.items())
    assert len(reads) == 256 + 600   # the first batch (the example), then one pass over the 600 rows
