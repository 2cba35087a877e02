"""fit(..., distributed=True) under ``torchrun --nproc-per-node 2`` (gloo, CPU): what must agree agrees.

``ddp_run.py`` runs every rank; this test compares the ranks with each other (bit for bit) and with a
one-process run over the same global batches (equal up to the order of a floating-point sum: DDP averages
two half-batch gradients where one process takes the mean of the whole batch).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from compresslib.torch import distributed as tdist
from compresslib.torch import train
from tests.fit_data import ROOT, rows

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_run  # noqa: E402


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("ddp"))
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    script = os.path.join(ROOT, "tests", "torch", "ddp_run.py")
    proc = subprocess.run(torchrun + [script, out], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    names = ("qat", "pruning", "stream", "own_loop", "centroids", "resumed")
    found = {n: [torch.load(os.path.join(out, f"{n}_rank{r}.pt"), weights_only=True) for r in (0, 1)]
             for n in names}
    found["checkpoint"] = torch.load(os.path.join(out, "pruning.ckpt"), weights_only=True)
    return found


def _equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _equal(a[k], b[k])
        else:
            assert torch.equal(a[k], b[k]), k


def test_every_rank_ends_with_the_same_weights_masks_and_scales(ranks):
    for name in ("qat", "pruning", "stream", "own_loop", "centroids"):
        _equal(*ranks[name])
    shared = ranks["centroids"][0]
    assert [len(torch.unique(shared[k])) for k in ("0.weight", "2.weight")] == [8, 8]  # 3-bit clusters kept
    scales = [k for k in ranks["qat"][0] if k.endswith(".scale")]
    assert len(scales) >= 4  # input, two weights, activations: all identical on both ranks (above)
    masks = ranks["pruning"][0]["masks"]
    assert sorted(masks) == ["0", "2"]
    assert [round(1 - m.float().mean().item(), 2) for m in masks.values()] == [0.75, 0.75]


def test_two_processes_match_one_process_on_the_same_global_batches(ranks):
    one = ddp_run.qat(False).state_dict()
    for k, v in ranks["qat"][0].items():
        if v.is_floating_point():
            torch.testing.assert_close(v, one[k], rtol=1e-4, atol=1e-5, msg=k)
    model, hook = ddp_run.pruned(False)
    assert all(torch.equal(hook.masks[k], ranks["pruning"][0]["masks"][k]) for k in hook.masks)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ranks["pruning"][0]["state"][k], v, rtol=1e-4, atol=1e-5, msg=k)


def test_interrupted_distributed_run_resumes_bit_identical(ranks):
    _equal(*ranks["resumed"])
    _equal(ranks["resumed"][0], ranks["pruning"][0]["state"])


def test_rank_0_wrote_the_checkpoint_at_the_end(ranks):
    ck = ranks["checkpoint"]
    assert ck["world"] == 2 and ck["step"] == 2 * 256 // 32 and ck["epoch"] == 2
    _equal(ck["model"], ranks["pruning"][0]["state"])


def test_fsdp_is_refused_and_a_missing_process_group_is_named(monkeypatch):
    class FullyShardedDataParallel(nn.Module):
        pass

    with pytest.raises(TypeError, match="FSDP"):
        tdist.setup(True, nn.Sequential(FullyShardedDataParallel()))
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="distributed=True needs a process group"):
        train.fit(ddp_run.mlp(), rows(range(64)), distributed=True)
    with pytest.raises(ValueError, match="distributed must be"):
        train.fit(ddp_run.mlp(), rows(range(64)), distributed="mpi")
