"""Every bench runs end to end in its ``--quick`` mode (a smoke run: tiny data, few repeats).

Nothing else runs the benches, so without this a bench rots unseen (``bench/quantization.py`` died on
the Float16 LeNet-5 for weeks). Each bench runs as a user runs it, ``python bench/NAME.py --quick
--json PATH``, in its own process; the test fails on a non-zero exit and checks the rows it wrote:
the methods a bench promises are all there, with real figures (accuracies of trained models, positive
latencies, compressed files smaller than fp32). Quick figures mean nothing beyond that.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TORCH_QUANT = {"fp32", "int8_dynamic", "int8_static", "weight_only_int8", "weight_only_int4_g16", "float16",
               "bfloat16", "ptq_w4", "qat_w4a8"}
KERAS_QUANT = {"fp32", "litert_fp32", "litert_dynamic", "litert_static", "keras_int8", "float16", "ptq_w4", "qat_w4a8"}


def run_bench(name: str, tmp_path, *args: str, timeout: int = 300) -> dict:
    """``python bench/NAME.py --quick --json PATH *args``; the JSON it wrote (fails with its stderr)."""
    out = tmp_path / f"{name}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), CI="1",
               TF_CPP_MIN_LOG_LEVEL="3")
    log = tmp_path / f"{name}.log"  # the bench's output goes to a file: a chatty bench cannot fill the worker's memory
    with open(log, "wb") as fh:
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", f"{name}.py"), "--quick", "--json", str(out),
                               *args], cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    tail = log.read_bytes()[-4000:].decode(errors="replace")
    assert proc.returncode == 0, f"bench/{name}.py --quick exited {proc.returncode}:\n{tail}"
    with open(out) as fh:
        return json.load(fh)


def by_method(rows: list[dict], framework: str, model: str) -> dict:
    return {r["method"]: r for r in rows if r["framework"] == framework and r["model"] == model}


def assert_timed(rows: list[dict]) -> None:
    bad = [(r["model"], r["method"], r.get("latency_ms")) for r in rows if not (r.get("latency_ms") or 0) > 0]
    assert not bad, f"rows without a latency: {bad}"


def test_baseline(tmp_path):
    rows = run_bench("baseline", tmp_path)["rows"]
    assert sorted((r["framework"], r["model"]) for r in rows) == sorted(
        (f, m) for f in ("torch", "keras") for m in ("lenet300_100", "lenet5", "resnet8"))
    assert all(0.9 < r["accuracy"] <= 1 for r in rows)  # trained models on 256 test digits
    assert_timed(rows)
    params = {(r["framework"], r["model"]): r["params"] for r in rows}
    assert params[("torch", "lenet300_100")] == params[("keras", "lenet300_100")] == 266_610


def test_quantization_every_mode_float16_included(tmp_path):
    rows = run_bench("quantization", tmp_path)["rows"]
    torch_rows, keras_rows = by_method(rows, "torch", "lenet5"), by_method(rows, "keras", "lenet5")
    assert set(torch_rows) == TORCH_QUANT and set(keras_rows) == KERAS_QUANT
    assert_timed(rows)
    for fw_rows in (torch_rows, keras_rows):
        assert fw_rows["float16"]["accuracy"] == pytest.approx(fw_rows["fp32"]["accuracy"], abs=0.02)
        assert fw_rows["float16"]["clz_bytes"] < fw_rows["fp32"]["clz_bytes"]
    assert torch_rows["int8_static"]["bytes"] < torch_rows["fp32"]["bytes"]
    assert torch_rows["int8_static"]["speedup"] > 0 and keras_rows["litert_static"]["speedup_vs_runtime_fp32"] > 0


@pytest.mark.slow
def test_pruning(tmp_path):
    rows = run_bench("pruning", tmp_path)["rows"]
    for fw in ("torch", "keras"):
        lenet, resnet = by_method(rows, fw, "lenet300_100"), by_method(rows, fw, "resnet8")
        assert lenet["gradual magnitude 0.9 global, packed"]["sparsity"] == pytest.approx(0.9, abs=0.01)
        assert lenet["gradual magnitude 0.9 global, packed"]["bytes"] < lenet["fp32"]["bytes"] / 3
        assert lenet["N:M 2:4, packed"]["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert {m for m in resnet if m.startswith("structured")} == {
            "structured 0.5, no fine-tune", "structured 0.5, distilled 1 ep", "structured 0.5, distilled 1 ep + fold BN"}
        assert resnet["structured 0.5, distilled 1 ep"]["macs_ratio"] > 1.5
    assert_timed(rows)


@pytest.mark.slow
def test_lowrank(tmp_path):
    rows = run_bench("lowrank", tmp_path)["rows"]
    for fw in ("torch", "keras"):
        lenet, resnet = by_method(rows, fw, "lenet5"), by_method(rows, fw, "resnet8")
        assert set(lenet) == {"fp32", "tucker conv2 (3,6) + ft"}
        assert {"fp32", "fold BN", "tucker (4,16) + fold", "tucker (4,16) + ft + fold", "cp 8 + fold",
                "cp 8 + ft + fold"} <= set(resnet)
        assert lenet["tucker conv2 (3,6) + ft"]["params"] < lenet["fp32"]["params"]
        assert resnet["tucker (4,16) + ft + fold"]["factored_ratio"] > 1
    assert not any(r["model"] == "mlp_wide" for r in rows)  # not shipped: quick leaves it out
    assert_timed(rows)


def test_deep_compression(tmp_path):
    data = run_bench("deep_compression", tmp_path, "--frameworks", "torch")
    stages = by_method(data["rows"], "torch", "lenet300_100")
    assert list(stages) == ["fp32", "pruned", "+ shared", "+ coded"]
    assert stages["+ coded"]["bytes"] < stages["+ shared"]["bytes"] < stages["fp32"]["bytes"]
    from compresslib.core import stats
    base = stages["fp32"]
    assert base["verdict"] is None and base["drop_ci_pt"] is None
    for r in stages.values():  # every row: its accuracy's Wilson interval on the quick run's 256 images
        k = round(r["accuracy"] * 256)
        assert r["test_samples"] == 256
        assert r["accuracy_ci"] == pytest.approx(list(stats.wilson_interval(k, 256)))
    for r in list(stages.values())[1:]:  # and the paired test against fp32 on the same images
        lo, hi = r["drop_ci_pt"]
        assert lo <= r["accuracy_drop_pt"] <= hi and 0 <= r["p_value"] <= 1
        assert r["verdict"] in ("within noise", "lower", "higher")
    coders = {c["coder"] for c in data["coders"]}
    assert "ANS (constriction, .clz)" in coders and "fixed 5-bit" in coders


def test_gpu_script_on_cpu(tmp_path):
    data = run_bench("gpu", tmp_path, "--device", "cpu")
    rows = data["rows"]
    failed = [(r.get("group"), r.get("note")) for r in rows if r.get("status") == "failed"]
    assert rows and not failed, f"groups that failed: {failed}"  # the script catches a group's failure as a row
    assert data["meta"]["complete"] is True


@pytest.mark.slow
def test_residual(tmp_path):
    data = run_bench("residual", tmp_path, timeout=900)
    assert {t["framework"] for t in data["targets"]} == {"torch", "keras"}
    methods = {(r["framework"], r["method"]) for r in data["rows"]}
    for fw in ("torch", "keras"):
        assert {(fw, "fp32"), (fw, "fold BN"), (fw, "student alone"), (fw, "student distilled"),
                (fw, "degradation (plain)"), (fw, "degradation (residual)")} <= methods
    assert_timed(data["rows"])


@pytest.mark.slow
def test_deploy(tmp_path):
    rows = run_bench("deploy", tmp_path, "--no-minilm", timeout=600)["rows"]
    assert {"lenet5", "resnet8"} <= {r["model"] for r in rows}
    assert any(r["tool"] == "compresslib" and "int8" in r["method"] for r in rows)
    assert_timed(rows)


def test_fashion(tmp_path):
    doc = run_bench("fashion", tmp_path, "--sections", "int8", timeout=600)
    rows = doc["rows"]
    torch_rows, keras_rows = by_method(rows, "torch", "fashion_resnet20"), by_method(rows, "keras", "fashion_resnet20")
    assert set(torch_rows) == {"torch fp32", "compresslib int8 (FX x86)", "fp32 → ONNX Runtime",
                               "compresslib int8 → ONNX Runtime", "fp32 → OpenVINO", "compresslib int8 → OpenVINO"}
    assert set(keras_rows) == {"keras fp32", "fp32 → LiteRT", "compresslib int8 → LiteRT"}
    assert_timed(rows)
    for r in rows:  # the trained network on 500 test images, every accuracy with its interval
        assert 0.88 < r["accuracy"] < 1 and r["test_samples"] == 500
        lo, hi = r["accuracy_ci"]
        assert lo < r["accuracy"] < hi
    for fw_rows, fp32 in ((torch_rows, "torch fp32"), (keras_rows, "keras fp32")):
        for method, r in fw_rows.items():
            if method != fp32:
                assert r["verdict"] in ("within noise", "lower", "higher") and 0 <= r["p_value"] <= 1
                assert r["bytes"] < fw_rows[fp32]["bytes"] or "fp32" in method
    assert torch_rows["fp32 → OpenVINO"]["speedup_vs_runtime_fp32"] == 1.0  # a runtime's fp32 is its own baseline
    assert doc["head_to_head"]["speedup"] > 0 and doc["targets"][0]["status"] in ("PASS", "FAIL")
    assert doc["machine"]["cpu_flags"] is not None and "commit" in doc["machine"]


@pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "compresslib", "data", "results", "fashion_lowrank",
                                                   "record.json")), reason="run python scripts/fashion_lowrank.py")
def test_fashion_lowrank(tmp_path):
    doc = run_bench("fashion", tmp_path, "--sections", "lowrank", timeout=600)
    rows, record = doc["rows"], json.load(open(os.path.join(ROOT, "compresslib", "data", "results",
                                                            "fashion_lowrank", "record.json")))
    for fw in ("torch", "keras"):
        fw_rows = by_method(rows, fw, "fashion_resnet20_wide")
        decomposed = {m: r for m, r in fw_rows.items() if m.startswith("Tucker e=")}
        assert set(fw_rows) == {"wide, BN folded", *decomposed} and len(decomposed) == len(record)
        for rec in record.values():  # the shipped files, their bytes, the MAC cut the script recorded
            r = next(r for m, r in decomposed.items() if m.startswith(f"Tucker e={rec['energy']} +"))
            assert r["bytes"] == rec[fw]["clz_bytes"]
            assert r["macs_ratio"] == rec["original"]["folded_macs"] / rec["torch"]["macs"]
            assert r["head_to_head_speedup"] > 0 and 0 <= r["p_value"] <= 1 and r["test_samples"] == 500
        assert_timed(fw_rows.values())
    assert {t["status"] for t in doc["targets"]} <= {"PASS", "FAIL"} and len(doc["targets"]) == 2 * len(record)


def test_pareto(tmp_path):
    doc = run_bench("pareto", tmp_path, timeout=600)
    rows = {(r["framework"], r["runtime"]): r for r in doc["rows"]}
    assert set(rows) == {("torch", "onnxruntime"), ("keras", "litert")}  # quick: ORT and LiteRT targets
    for r in rows.values():
        assert r["model"] == "fashion_resnet20" and r["test_samples"] == 200
        assert r["peer"] and r["speedup_vs_peer"] > 0 and r["peer_over_itself"] > 0
        lo, hi = r["drop_interval_pt"]
        assert lo <= r["accuracy_drop_pt"] <= hi and 0 <= r["paired_p"] <= 1
        assert r["size_ratio_vs_peer"] == pytest.approx(r["peer_bytes"] / r["ours_bytes"])
        assert r["ours"] in {p["candidate"] for p in r["front"]}
        assert r["peer_point"]["bytes"] == r["peer_bytes"]
        assert 0.85 < r["peer_accuracy"] <= 1 and r["search_seconds"] > 0 and r["load_average"] is not None
    assert {t["status"] for t in doc["targets"]} <= {"PASS", "FAIL"} and len(doc["targets"]) == 3
    assert doc["machine"]["cpu_flags"] is not None
    # --merge: two runs become one document, rows kept, targets re-derived, the cold searches summed
    out = tmp_path / "merged.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "pareto.py"), "--merge", str(out),
                    str(tmp_path / "pareto.json"), str(tmp_path / "pareto.json")], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=300)
    merged = json.loads(out.read_text())
    assert merged["rows"] == doc["rows"] * 2 and merged["merged_from"] == 2
    assert len(merged["targets"]) == 5 and merged["search_seconds_cold"] == 2 * doc["search_seconds_cold"]


def test_transformers(tmp_path):
    rows = run_bench("transformers", tmp_path, timeout=600)["rows"]
    ours = ["fp32", "rtn-int4-g128", "gptq-int4-g128", "gptq-int3-g128", "gptq-int3-g64", "gptq-int3-g32",
            "awq-int4-g128", "magnitude-50%", "magnitude-row-50%", "wanda-50%", "sparsegpt-50%", "magnitude-2:4",
            "wanda-2:4", "sparsegpt-2:4"]
    for framework in ("torch", "keras"):
        mine = {r["method"]: r for r in rows if r["framework"] == framework and r["tool"] == "compresslib"}
        assert list(mine) == ours
        assert all(r["note"] == "" for r in mine.values())  # every .clz reloaded with identical logits
        assert all(1 < r["perplexity"] < 1e4 for r in mine.values())
        # packed on disk: bits + one float32 scale per 128 weights (4.25, 3.25), the codes deflated where that pays
        assert 4.0 < mine["gptq-int4-g128"]["bits_per_weight"] < 4.4
        assert 3.0 < mine["gptq-int3-g128"]["bits_per_weight"] < 3.4
        # smaller groups: one more float32 scale per 64 (3.5) or 32 weights (4.0), still under int4 g128's 4.25
        assert 3.3 < mine["gptq-int3-g64"]["bits_per_weight"] < 3.6 < mine["gptq-int3-g32"]["bits_per_weight"] < 4.1
        # per-row magnitude prunes exactly half of every row: the same zeros count, the same packed size
        assert mine["magnitude-row-50%"]["bytes"] == mine["magnitude-50%"]["bytes"]
        assert mine["gptq-int3-g128"]["bytes"] < mine["gptq-int4-g128"]["bytes"] < mine["wanda-50%"]["bytes"] \
            < mine["fp32"]["bytes"]
    peers = {(r["tool"], r["method"]) for r in rows if r["tool"] != "compresslib"}
    assert peers == {("torchao", "rtn-int4-g128"), ("torchao", "rtn-int3-g128")}  # Keras's GPTQ: full runs only
