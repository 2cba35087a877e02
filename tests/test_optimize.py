"""cl.optimize: the front holds no dominated candidate, the budget's choice, infeasible budgets, the caller's
model untouched, the cache, both frameworks (PyTorch in torch eager and ONNX Runtime, Keras in LiteRT).

A tiny CNN on a toy task it learns in a second (three stripe patterns in noise); runtimes time a few pairs
only, so no assertion depends on a latency's value.
"""
import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
from torch import nn

import compresslib as cl
from compresslib.core import pareto

PAIRS = 5


def toy(n: int, seed: int, layout: str) -> tuple:
    """Horizontal stripes, vertical stripes or a checkerboard (classes 0, 1, 2) in Gaussian noise, 8x8."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    patterns = np.stack([(i % 2), (j % 2), (i + j) % 2]).astype(np.float32) * 2 - 1
    y = rng.integers(0, 3, n)
    x = patterns[y] + rng.normal(0, 2.5, (n, 8, 8)).astype(np.float32)
    x = x[:, None] if layout == "torch" else x[..., None]
    return np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64)


@pytest.fixture(scope="module")
def torch_case():
    from compresslib.torch.train import fit

    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    train, test = toy(512, 0, "torch"), toy(300, 1, "torch")
    fit(m, train, epochs=4, lr=3e-3, progress_bar=False)
    m.train()  # the caller's mode: optimize must leave it so
    state = {k: v.clone() for k, v in m.state_dict().items()}
    out = cl.optimize(m, test, cl.Budget(max_drop=3.0), runtime="torch", train_data=train, prune=(0.0, 0.5),
                      pairs=PAIRS)
    return m, state, train, test, out


def _check_front(out):
    measured = [r for r in out.candidates if r["accuracy"] is not None]
    names = {r["candidate"] for r in out.front}
    for r in out.front:  # no candidate dominates a front member
        assert not any(pareto.dominates(o, r) for o in measured)
    for r in measured:
        assert (r["status"] == "front") == (r["candidate"] in names)
        if r["status"] == "dominated":
            assert any(pareto.dominates(o, r) or (o["accuracy"], o["latency_ms"], o["bytes"]) ==
                       (r["accuracy"], r["latency_ms"], r["bytes"]) for o in out.front)
    assert out.chosen in names


def test_torch_front_choice_and_rows(torch_case):
    m, state, train, test, out = torch_case
    assert [r["candidate"] for r in out.candidates] == [
        "original, BN folded", "int8", "Structured(0.5) + distilled 1 ep + fp32, BN folded",
        "Structured(0.5) + distilled 1 ep + int8"]
    _check_front(out)
    rows = {r["candidate"]: r for r in out.candidates}
    folded = rows["original, BN folded"]
    assert folded["drop_pt"] == 0.0 and folded["paired_p"] == 1.0  # folding keeps every prediction here
    for r in rows.values():
        lo, hi = r["accuracy_interval"]
        assert lo <= r["accuracy"] <= hi and r["latency_ms"] > 0 and r["speedup"] > 0
        assert r["drop_interval_pt"][0] <= r["drop_pt"] <= r["drop_interval_pt"][1]
    assert rows["int8"]["bytes"] < folded["bytes"] / 2  # int8 .clz, fp32 .clz
    pruned = rows["Structured(0.5) + distilled 1 ep + fp32, BN folded"]
    assert pruned["finetuned"] and pruned["bytes"] < folded["bytes"] / 2
    # the choice: the fastest candidate within the drop limit, among the front
    within = [r for r in out.front if r["drop_pt"] <= 3.0]
    fastest = min(within, key=lambda r: (r["latency_ms"], r["bytes"]))
    assert out.feasible and out.chosen == fastest["candidate"]
    assert out.report.name == out.chosen
    assert out.report.latency_ms == rows[out.chosen]["latency_ms"]
    assert out.report.accuracy == rows[out.chosen]["accuracy"]
    assert out.comparison.rows[1]["paired_verdict"] in ("within noise", "lower", "higher")
    assert out.setting["runtime"] == "torch" and out.setting["search_seconds"] > 0
    assert out.setting["load_average"] is not None and out.setting["aa_ratio"] > 0
    assert "**(chosen)**" in out.to_markdown()
    import matplotlib

    matplotlib.use("Agg")
    ax = out.plot(peers={"peer int8": (1.0, 0.9)})
    assert ax.get_ylabel() == "accuracy, %" and len(ax.get_legend().get_texts()) == 4
    assert out.to_dict()["front"] == [r["candidate"] for r in out.front]


def test_torch_caller_model_unchanged(torch_case):
    m, state, *_ = torch_case
    assert m.training  # still in the mode the caller left it
    assert all(torch.equal(v, state[k]) for k, v in m.state_dict().items())
    assert [type(x).__name__ for x in m] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU",
                                             "AdaptiveAvgPool2d", "Flatten", "Linear"]


def test_infeasible_budget_returns_the_closest_and_says_so(torch_case):
    m, _, train, test, _ = torch_case
    with pytest.warns(UserWarning, match="no candidate meets the budget") as caught:
        out = cl.optimize(m, test, cl.Budget(size_bytes=10, max_drop=0.0), runtime="torch", prune=(0.0,),
                          pairs=PAIRS)
    assert not out.feasible
    rows = {r["candidate"]: r for r in out.candidates}
    assert out.chosen == "int8"  # the smallest file; no drop limit is broken by more
    assert f"the closest is {out.chosen!r}" in out.message and str(caught[0].message) == out.message
    assert all(not r["within_budget"] and "size_bytes" in r["excess"] for r in rows.values())


def test_cache_reuses_the_fine_tuned_branch(torch_case, tmp_path):
    m, _, train, test, _ = torch_case
    kw = dict(runtime="torch", train_data=train, prune=(0.5,), int8=(False,), pairs=PAIRS,
              cache_dir=tmp_path, finetune_samples=128)
    first = cl.optimize(m, test, cl.Budget(), **kw)
    assert len(list(tmp_path.glob("torch_*.clz"))) == 1
    from compresslib import optimizer

    calls = []
    original = optimizer._TeacherLogits.__call__
    with pytest.MonkeyPatch.context() as mp:  # a search served by the cache never runs the teacher
        mp.setattr(optimizer._TeacherLogits, "__call__", lambda self: calls.append(1) or original(self))
        second = cl.optimize(m, test, cl.Budget(), **kw)
    assert calls == []
    a, b = first.candidates[0], second.candidates[0]
    assert (a["candidate"], a["accuracy"], a["bytes"]) == (b["candidate"], b["accuracy"], b["bytes"])


def test_torch_onnxruntime(torch_case):
    pytest.importorskip("onnxruntime")
    m, _, _, test, _ = torch_case
    out = cl.optimize(m, test, cl.Budget(max_drop=100.0), runtime="onnxruntime", prune=(0.0,),
                      pairs=PAIRS)
    _check_front(out)
    assert out.deployed.__compresslib_runtime__ == "onnxruntime"
    assert {r["candidate"] for r in out.candidates} == {"original, BN folded", "int8"}
    # the file ORT runs: the original exported to ONNX has the same size as the folded fp32 candidate's
    assert out.candidates[0]["size_ratio"] == pytest.approx(1.0, rel=0.05)


def test_bad_input_names_the_argument(torch_case):
    m, _, _, test, _ = torch_case
    with pytest.raises(ValueError, match="runtime must be one of"):
        cl.optimize(m, test, runtime="litert")
    with pytest.raises(TypeError, match="budget must be a compresslib.Budget"):
        cl.optimize(m, test, budget={"latency_ms": 1})
    with pytest.raises(ValueError, match=r"prune: each ratio must be in \[0, 1\)"):
        cl.optimize(m, test, prune=(1.0,))
    with pytest.raises(ValueError, match="data must be"):
        cl.optimize(m, test[0])
    with pytest.raises(ValueError, match="Budget.latency_ms must be a finite number > 0"):
        cl.Budget(latency_ms=0)
    with pytest.raises(TypeError, match="model must be"):
        cl.optimize(object(), test)


def test_keras_litert_both_frameworks():
    pytest.importorskip("ai_edge_litert")
    import keras

    from compresslib.keras.train import fit

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = inp
    for _ in range(2):
        h = keras.layers.Conv2D(16, 3, padding="same")(h)
        h = keras.layers.ReLU()(keras.layers.BatchNormalization()(h))
    m = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(h)))
    train, test = toy(512, 0, "keras"), toy(300, 1, "keras")
    fit(m, train, epochs=4, lr=3e-3, progress_bar=False)
    before = [w.copy() for w in m.get_weights()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = cl.optimize(m, test, cl.Budget(max_drop=5.0), runtime="litert", train_data=train,
                          prune=(0.0, 0.5), pairs=PAIRS)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    _check_front(out)
    rows = {r["candidate"]: r for r in out.candidates}
    assert set(rows) == {"original, BN folded", "int8", "Structured(0.5) + distilled 1 ep + fp32, BN folded",
                         "Structured(0.5) + distilled 1 ep + int8"}
    assert rows["original, BN folded"]["accuracy"] > 0.8  # the trained toy network, run by LiteRT
    assert rows["int8"]["bytes"] < rows["original, BN folded"]["bytes"]
    assert out.deployed.__compresslib_runtime__ == "litert" and out.setting["framework"] == "keras"
