"""Auto: choice by measurement. Config errors, the table, the choice rule, never slower than the input.

Speed itself is not asserted (the machine is shared): the tests check that the choice is consistent
with the table the run measured, and force the "keep the input" paths with settings that make
them certain (``min_speedup`` no candidate can reach, a budget no candidate can meet).
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.configs import Config
from compresslib.core.selection import AutoTable, agreement, choose

FAST = dict(rounds=2, runs=3, warmup=1)  # enough to exercise the timer; speed is not what these tests check


def _mlp(device="cpu", width=256) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10)).to(device)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize("kwargs,match", [
    (dict(candidates=[], budget=0.99), r"Auto.candidates must be a non-empty list"),
    (dict(candidates=(), budget=0.99), r"Auto.candidates must be a non-empty list"),
    (dict(candidates=cl.Int8Dynamic(), budget=0.99), r"Auto.candidates must be a non-empty list"),
    (dict(candidates=[cl.Int8Dynamic()]), r"Auto.budget is required"),
    (dict(candidates=[cl.Int8Dynamic()], budget=0.0), r"Auto.budget must be in \(0, 1\]"),
    (dict(candidates=[cl.Int8Dynamic()], budget=1.5), r"Auto.budget must be in \(0, 1\]"),
    (dict(candidates=[cl.Int8Dynamic()], budget=0.9, metric="mse"), r"Auto.metric must be one of"),
    (dict(candidates=[cl.Int8Dynamic()], budget=0.9, min_speedup=0.5), r"Auto.min_speedup must be a number in \[1"),
    (dict(candidates=[cl.Int8Dynamic()], budget=0.9, batch_size=0), r"Auto.batch_size must be an integer"),
    (dict(candidates=[cl.Int8Dynamic()], budget=0.9, rounds=0), r"Auto.rounds must be an integer"),
    (dict(candidates=[cl.Int8Dynamic(), cl.Int8Dynamic()], budget=0.9), r"lists a config twice"),
])
def test_bad_auto_configs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cl.Auto(**kwargs)


@pytest.mark.parametrize("bad", [cl.QAT(), cl.NM(2, 4), "Int8Dynamic", cl.Auto([cl.BFloat16()], budget=0.9)])
def test_candidates_must_be_quantize_configs(bad):
    with pytest.raises(TypeError, match=r"Auto.candidates\[1\] must be a quantization config applied by quantize"):
        cl.Auto([cl.Int8Dynamic(), bad], budget=0.9)


def test_auto_round_trips_through_a_dict():
    a = cl.Auto([cl.Int8Static(observer="mse"), cl.Float8Dynamic(granularity="tensor"), cl.Sparse24()], budget=0.98,
                metric="top1", batch_size=16)
    d = a.to_dict()
    assert d["candidates"][0] == {"type": "Int8Static", "per_channel": True, "observer": "mse", "percentile": 99.99,
                                  "bias_correction": True, "float_output": False}
    assert Config.from_dict(d) == a and isinstance(Config.from_dict(d).candidates, tuple)


def test_calibration_data_is_required():
    with pytest.raises(ValueError, match="calibration_data: Auto needs input batches"):
        cl.quantize(_mlp(), cl.Auto([cl.BFloat16()], budget=0.99))


# --------------------------------------------------------------------------- the rule, on given numbers


def test_agreement_metrics():
    ref = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [3.0, 1.0, 0.0]])
    assert agreement(ref, 2 * ref, "cosine") == pytest.approx(1.0)
    assert agreement(ref, -ref, "cosine") == pytest.approx(-1 / 3)  # the zero row agrees, the others are opposite
    assert agreement(ref, ref[:, ::-1], "top1") == pytest.approx(0.0 + 1 / 3)  # only the all-zero row keeps arg-max 0
    assert math.isnan(agreement(ref, ref * np.nan, "cosine"))
    with pytest.raises(ValueError, match="differs from the reference"):
        agreement(ref, ref[:2], "cosine")


def test_choose_keeps_the_fastest_within_budget_that_beats_the_input():
    rows = [{"candidate": "slow_ok", "agreement": 0.999, "latency_ms": 8.0},
            {"candidate": "fast_ok", "agreement": 0.995, "latency_ms": 4.0},
            {"candidate": "fastest_bad", "agreement": 0.90, "latency_ms": 1.0},
            {"candidate": "noise", "agreement": 1.0, "latency_ms": 9.8},
            {"candidate": "nan", "agreement": float("nan"), "latency_ms": 1.0},
            {"candidate": "refused", "status": "refused", "agreement": None, "latency_ms": None}]
    assert choose(rows, input_ms=10.0, budget=0.99, min_speedup=1.05) == "fast_ok"
    assert [r["status"] for r in rows] == ["within budget, slower than the winner", "chosen", "below budget",
                                           "not faster than the input", "below budget", "refused"]
    assert rows[1]["speedup"] == pytest.approx(2.5)
    again = [dict(r, status=None) for r in rows[:1]]
    assert choose(again, input_ms=10.0, budget=0.99, min_speedup=2.0) is None  # 1.25x is not enough
    with pytest.raises(ValueError, match="input_ms must be a positive time"):
        choose([], input_ms=0.0, budget=0.9, min_speedup=1.0)


# --------------------------------------------------------------------------- the verb, measured


@pytest.fixture(scope="module")
def x():
    return torch.randn(64, 256, generator=torch.Generator().manual_seed(1))


def test_auto_on_cpu_chooses_consistently_with_its_table(x):
    m = _mlp()
    before = _state(m)
    candidates = [cl.Int8Dynamic(), cl.Int8Static(), cl.WeightOnly(bits=8), cl.BFloat16(), cl.Float8Dynamic()]
    q = cl.quantize(m, cl.Auto(candidates, budget=0.99, **FAST), calibration_data=x)
    table = q.compresslib_auto
    assert isinstance(table, AutoTable) and [r["candidate"] for r in table.rows] == [repr(c) for c in candidates]
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # input untouched
    fp8 = table.rows[-1]
    assert fp8["status"] == "refused" and "Float8Dynamic runs on CUDA GPUs only" in fp8["note"]
    for r in table.rows[:4]:  # all four CPU modes agree closely with fp32 on this model
        assert r["agreement"] > 0.99 and r["latency_ms"] > 0, r
        assert r["speedup"] == pytest.approx(table.setting["input_ms"] / r["latency_ms"])
    s = table.setting
    assert s["device"] == "cpu" and s["batch_size"] == 64 and s["metric"] == "cosine" and s["input_ms"] > 0
    timed = [r for r in table.rows if r["status"] in ("chosen", "within budget, slower than the winner")]
    if table.chosen is None:  # nothing was 1.05x faster on this (shared) machine: an unchanged copy comes back
        assert not timed and q is not m and all(torch.equal(before[k], v) for k, v in q.state_dict().items())
        assert "kept the input" in table.reason
    else:
        best = next(r for r in table.rows if r["status"] == "chosen")
        assert best["candidate"] == table.chosen and best["speedup"] >= 1.05
        assert best["latency_ms"] == min(r["latency_ms"] for r in timed)
        if hasattr(q, "compresslib_recipe"):  # int8 models carry the config they were made with
            assert q.compresslib_recipe["config"] == best["config"]
        dtype = next((p.dtype for p in q.parameters() if p.is_floating_point()), torch.float32)
        with torch.inference_mode():
            assert torch.nn.functional.cosine_similarity(q(x.to(dtype)).float(), m(x), dim=1).mean() > 0.99
    assert "| input | baseline |" in table.to_markdown() and "<table>" in table._repr_html_()


def test_never_slower_returns_an_unchanged_copy_and_says_why(x, tmp_path):
    m = _mlp()
    q = cl.quantize(m, cl.Auto([cl.BFloat16(), cl.WeightOnly(bits=8)], budget=0.99, min_speedup=99.0, **FAST),
                    calibration_data=x)
    table = q.compresslib_auto
    assert table.chosen is None and q is not m and type(q) is type(m)
    assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), m.state_dict().values()))
    assert [r["status"] for r in table.rows] == ["not faster than the input"] * 2
    assert table.reason.startswith("kept the input (an unchanged copy): no candidate reached cosine >= 0.99 while "
                                   "running at least 99.0× faster (2 not faster than the input)")
    cl.save(q, str(tmp_path / "q.clz"))  # the table does not stop a save
    back = cl.load(str(tmp_path / "q.clz"))
    assert torch.equal(back(x), m(x))


def test_a_budget_no_candidate_meets_keeps_the_input(x):
    q = cl.quantize(_mlp(), cl.Auto([cl.WeightOnly(bits=4, group_size=32)], budget=1.0, **FAST), calibration_data=x)
    row = q.compresslib_auto.rows[0]
    assert q.compresslib_auto.chosen is None and row["status"] == "below budget"
    assert 0.9 < row["agreement"] < 1.0 and row["latency_ms"] is None  # not timed: it could not be chosen


def test_top1_metric_and_batches_from_an_iterable(x):
    batches = [x[i:i + 16] for i in range(0, 64, 16)]  # a DataLoader-like iterable: the first batch is timed
    q = cl.quantize(_mlp(), cl.Auto([cl.BFloat16()], budget=0.9, metric="top1", **FAST), calibration_data=batches)
    t = q.compresslib_auto
    assert t.setting["batch_size"] == 16 and t.setting["metric"] == "top1"
    assert t.rows[0]["agreement"] >= 0.9 and t.rows[0]["agreement"] * 64 == round(t.rows[0]["agreement"] * 64)


def test_batch_size_cuts_the_timed_batch(x):
    q = cl.quantize(_mlp(), cl.Auto([cl.BFloat16()], budget=0.9, batch_size=8, **FAST), calibration_data=x)
    assert q.compresslib_auto.setting["batch_size"] == 8


def test_data_the_model_cannot_take_is_a_clear_error():
    with pytest.raises(ValueError, match=r"calibration_data: the model cannot run on tensor \(4, 3\)"):
        cl.quantize(_mlp(), cl.Auto([cl.BFloat16()], budget=0.9, **FAST), calibration_data=torch.zeros(4, 3))


def test_auto_on_the_model_device(torch_device, x):
    """On CUDA the CPU-only int8 modes are refused and the CUDA ones measured; the data moves to the GPU once."""
    m = _mlp(torch_device)
    candidates = [cl.Int8Dynamic(), cl.BFloat16(), cl.Int8DynamicCUDA()]
    q = cl.quantize(m, cl.Auto(candidates, budget=0.98, **FAST), calibration_data=x)
    rows = {r["candidate"]: r for r in q.compresslib_auto.rows}
    assert q.compresslib_auto.setting["device"].startswith(torch_device)
    assert {t.device.type for t in q.parameters()} <= {torch_device}  # an Int8Dynamic winner has no Parameters
    cpu_only, cuda_only = rows["Int8Dynamic(per_channel=True)"], rows["Int8DynamicCUDA()"]
    if torch_device == "cpu":
        assert cpu_only["agreement"] > 0.99 and cuda_only["status"] == "refused"
    else:
        assert cpu_only["status"] == "refused" and "runs on CPU only" in cpu_only["note"]
        assert cuda_only["agreement"] > 0.99 and cuda_only["latency_ms"] > 0
    assert rows["BFloat16()"]["agreement"] > 0.99


def test_compile_times_compiled_models_and_returns_an_uncompiled_one(x):
    q = cl.quantize(_mlp(width=64), cl.Auto([cl.BFloat16()], budget=0.99, compile=True, rounds=1, runs=2, warmup=1,
                                             min_speedup=1.0), calibration_data=x[:8, :64])
    t = q.compresslib_auto
    assert t.setting["compile"] is True and t.rows[0]["latency_ms"] > 0 and t.rows[0]["status"] != "failed"
    assert not isinstance(q, torch._dynamo.eval_frame.OptimizedModule) and isinstance(q, nn.Sequential)
