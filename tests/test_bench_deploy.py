"""The benches' shared timing rows and bench/deploy.py's target verdicts (no model is trained or exported)."""
import importlib.util
import os
import sys
import time

import pytest

BENCH = os.path.join(os.path.dirname(__file__), "..", "bench")


def _load(name):
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(BENCH, f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(BENCH)


def test_retime_reports_both_speedups():
    common = _load("common")
    sleep = lambda ms: (lambda x: time.sleep(ms / 1000))  # noqa: E731
    models = {"fp32": sleep(6), "rt_fp32": sleep(3), "rt_int8": sleep(1)}
    rows = [{"framework": "torch", "model": "m", "method": k} for k in models]
    common.retime(rows, "torch", "m", models, None, runtime_baselines={"rt_int8": "rt_fp32"}, rounds=2, runs=3)
    by = {r["method"]: r for r in rows}
    assert by["rt_int8"]["speedup"] == pytest.approx(6, rel=0.35)
    assert by["rt_int8"]["speedup_vs_runtime_fp32"] == pytest.approx(3, rel=0.35)
    assert by["rt_fp32"]["speedup_vs_runtime_fp32"] == pytest.approx(by["rt_fp32"]["speedup"])
    assert all(r["timing"] == "interleaved" for r in rows)


def _row(model, tool, method, speedup, accuracy=0.98, cosine=0.999, runtime="onnxruntime", batch=32):
    return {"framework": "torch", "model": model, "tool": tool, "method": method, "speedup": speedup,
            "accuracy": accuracy, "cosine": cosine, "runtime": runtime, "batch_size": batch}


def test_targets_pass_and_fail():
    deploy = _load("deploy")
    rows = [_row("resnet8", "torch", "torch fp32", 1.0, 0.985, 1.0, "torch eager"),
            _row("resnet8", "compresslib", "compresslib int8 → OpenVINO", 4.0, 0.984),
            _row("resnet8", "nncf", "NNCF int8 → OpenVINO", 3.9, 0.983),
            _row("resnet8", "onnxruntime", "ORT quantize_static (QDQ)", 3.0, 0.985),
            _row("lenet5", "compresslib", "compresslib int8 → ORT", 2.0, cosine=0.9990),
            _row("lenet5", "onnxruntime", "ORT quantize_static (QDQ)", 2.5, cosine=0.9995)]
    lines = deploy.targets(rows)
    assert lines[0].startswith("PASS resnet8") and "drop 0.10 pt" in lines[0]
    assert lines[1].startswith("FAIL lenet5")
    rows[1]["accuracy"] = 0.982  # 0.3 pt drop against a peer without drop: fails
    assert deploy.targets(rows)[0].startswith("FAIL resnet8")
    # the judged path is the fastest one within the accuracy bound, not the fastest overall
    rows.append(_row("resnet8", "compresslib", "compresslib int8 full-range → OpenVINO", 5.0, 0.982))
    rows[1]["accuracy"] = 0.984
    first = deploy.targets(rows)[0]
    assert first.startswith("PASS resnet8") and "'compresslib int8 → OpenVINO' 4.00x" in first
    rows[1]["accuracy"] = 0.980  # no row within the bound: the fastest is judged, and fails on its drop
    first = deploy.targets(rows)[0]
    assert first.startswith("FAIL resnet8") and "full-range" in first and "drop 0.30 pt" in first
    # a head-to-head re-timing of the two judged rows decides the speed comparison
    rows[1]["accuracy"] = 0.984
    h2h = {"compresslib": "compresslib int8 → OpenVINO", "peer": "NNCF int8 → OpenVINO", "compresslib_ms": 1.1,
           "peer_ms": 1.0, "peer_over_compresslib": 0.91, "pairs": 400}
    rows[1]["head_to_head"] = rows[2]["head_to_head"] = h2h
    first = deploy.targets(rows)[0]
    assert first.startswith("FAIL resnet8") and "head to head: 0.910x (table" in first
    h2h["peer_over_compresslib"] = 1.004
    assert deploy.targets(rows)[0].startswith("PASS resnet8") and "head to head: 1.004x (table" in deploy.targets(rows)[0]
    # slower head to head, but by less than the peer differs from a second copy of itself: a tie, not a pass
    h2h["peer_over_compresslib"], h2h["peer_over_itself"] = 0.992, 1.011
    first = deploy.targets(rows)[0]
    assert first.startswith("TIE  resnet8") and "0.992x (the peer against a copy of itself: 1.011x)" in first
    h2h["peer_over_itself"] = 0.995  # a spread of 0.5 % cannot hide a 0.8 % gap
    assert deploy.targets(rows)[0].startswith("FAIL resnet8")
    rows[1]["accuracy"] = 0.980  # nor can it excuse a quality miss
    h2h["peer_over_itself"] = 1.02
    assert deploy.targets(rows)[0].startswith("FAIL resnet8")
    rows[1]["accuracy"] = 0.984
    mini = [dict(_row("all-MiniLM-L6-v2", "compresslib", "compresslib int8 → ORT", 1.4, None, 0.993), batch_size=32)]
    assert deploy.targets(mini) == ["PASS MiniLM: 'compresslib int8 → ORT' cosine 0.9930 (>= 0.99), 1.40x torch fp32 "
                                    "at batch 32 (>= 1.3)"]
