"""bench/gpu.py: runs on CPU (``--device cpu --quick``), writes the shared schema, and makes the book's GPU page.

The page test: ``book/gpu.md``'s results section is exactly what ``--update-page`` renders from
``book/data/gpu.json`` when that file exists, and the "no GPU run recorded yet" text when it does not.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _bench()


@pytest.fixture(scope="module")
def run(bench, tmp_path_factory):
    path = tmp_path_factory.mktemp("gpu") / "gpu.json"
    rows = bench.main(["--device", "cpu", "--quick", "--json", str(path)])
    return rows, json.loads(path.read_text())


def test_cpu_quick_run_writes_the_shared_schema(run):
    rows, data = run
    from common import BASE_KEYS

    assert data["rows"] == json.loads(json.dumps(rows, default=str))
    assert data["meta"]["device"] == "cpu" and data["meta"]["gpu"] is None and data["meta"]["quick"] is True
    assert data["meta"]["command"] == "python bench/gpu.py --device cpu --quick --json " + data["meta"]["command"].split()[-1]
    assert data["meta"]["complete"] is True and data["meta"]["skipped"] == [] and data["machine"]["torch"]
    groups = {r["group"] for r in rows}
    assert groups == {"linear8@1", "linear8@16", "linear8_2:4@16", "resnet18@4", "encoder@4", "encoder_2:4@4"}
    for r in rows:
        assert set(BASE_KEYS) <= set(r), r
        assert r["status"] != "failed", r


def test_each_group_has_a_baseline_and_one_auto_choice(run):
    rows, _ = run
    for group in {r["group"] for r in rows}:
        chunk = [r for r in rows if r["group"] == group]
        base = chunk[0]
        assert base["status"] == "baseline" and base["speedup"] == 1.0 and base["agreement"] == 1.0
        assert base["latency_ms"] > 0 and base["dtype"] == "float32" and base["params"] > 0
        assert sum(bool(r["auto"]) for r in chunk) == 1  # the winner, or the baseline when none beat it
        for r in chunk[1:]:
            if r["method"].startswith(("Float8Dynamic", "Int8DynamicCUDA", "Int4WeightOnlyCUDA", "Sparse24")):
                assert r["status"] == "refused" and "runs on CUDA GPUs only" in r["note"], r  # a CPU run
            else:
                assert r["agreement"] > 0.99 and r["latency_ms"] > 0, r
                assert r["speedup"] == pytest.approx(base["latency_ms"] / r["latency_ms"])


def test_pruned_groups_compare_sparse24_against_the_pruned_model(run):
    rows, _ = run
    pruned = [r for r in rows if "2:4" in r["group"]]
    assert {r["method"] for r in pruned} == {"pruned 2:4 float32", "Sparse24"}


def test_page_renderer(bench):
    data = {"meta": {"device": "cuda", "gpu": "NVIDIA H200", "capability": "9.0", "date": "2026-01-02 03:04 UTC",
                     "torch": "2.11.0", "torchao": "0.18.0", "cuda": "12.8", "quick": False,
                     "command": "python bench/gpu.py --json book/data/gpu.json", "skipped": ["resnet18@256 [compiled]"]},
            "rows": [{"group": "linear8@256", "mode": "eager", "method": "bfloat16", "status": "baseline",
                      "agreement": 1.0, "latency_ms": 2.5, "speedup": 1.0, "auto": False},
                     {"group": "linear8@256", "mode": "eager", "method": "Float8Dynamic[row]", "status": "chosen",
                      "agreement": 0.9951, "latency_ms": 1.25, "speedup": 2.0, "auto": True}]}
    text = bench.render_results(data)
    assert "Measured on **NVIDIA H200** (compute capability 9.0) on 2026-01-02 03:04 UTC" in text
    assert "python bench/gpu.py --json book/data/gpu.json" in text
    assert "| linear8@256 | Float8Dynamic[row] | chosen | 0.9951 | 1.250 | 2.00 | ✔ |" in text
    assert "**Under torch.compile**" not in text and "Not reached within the run's time budget: resnet18@256" in text
    assert bench.render_results(None) == bench.NO_RUN
    for bad in ({"device": "cpu", "gpu": None}, {"device": "cuda", "gpu": "H200", "quick": True}):
        with pytest.raises(ValueError, match="the page shows a full run on a named CUDA GPU"):
            bench.render_results({"meta": bad, "rows": []})


def test_update_page_writes_the_section_from_the_json(bench, tmp_path):
    page = tmp_path / "gpu.md"
    page.write_text((ROOT / "book" / "gpu.md").read_text())
    missing = tmp_path / "none.json"
    assert bench.update_page(str(missing), str(page)) == (ROOT / "book" / "gpu.md").read_text().replace(
        _section((ROOT / "book" / "gpu.md").read_text(), bench), bench.NO_RUN)
    data = {"meta": {"device": "cuda", "gpu": "Some GPU", "capability": "8.9", "date": "d", "command": "c"},
            "rows": [{"group": "g@1", "mode": "compiled", "method": "m", "status": "chosen", "auto": True}]}
    (tmp_path / "gpu.json").write_text(json.dumps(data))
    bench.update_page(str(tmp_path / "gpu.json"), str(page))
    assert _section(page.read_text(), bench) == bench.render_results(data)
    assert page.read_text().startswith("# Compression on a GPU") and "### Producing a run" in page.read_text()


def _section(text: str, bench) -> str:
    return text.split(bench.START, 1)[1].split(bench.END, 1)[0].strip("\n")


def test_the_book_page_is_generated_from_the_committed_json(bench):
    """book/gpu.md shows book/data/gpu.json's table when it is committed, and says no run is recorded otherwise."""
    data_path = ROOT / "book" / "data" / "gpu.json"
    data = json.loads(data_path.read_text()) if data_path.exists() else None
    section = _section((ROOT / "book" / "gpu.md").read_text(), bench)
    assert section == bench.render_results(data), "book/gpu.md is stale: run python bench/gpu.py --update-page"
    if data is None:
        assert section.startswith("**No GPU run has been recorded yet") and "nothing on this page has been measured" in section


def test_bench_prune24_is_the_rule_of_nm_2_4(bench):
    import torch

    import compresslib as cl

    torch.manual_seed(0)
    m = bench.linear8(64)
    expected = cl.prune(m, cl.NM(2, 4))
    got = bench.prune24(m)  # in place, on the model's device
    for a, b in zip(got.parameters(), expected.parameters()):
        assert torch.equal(a, b)
