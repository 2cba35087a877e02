"""The Results page is exactly what scripts/results_page.py renders from the committed bench JSON."""
import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location("results_page", os.path.join(ROOT, "scripts", "results_page.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_matches_the_json():
    page = open(os.path.join(ROOT, "book", "results.md")).read()
    assert page == _script().render(), "book/results.md is stale: run python scripts/results_page.py"


def test_every_committed_result_and_target_is_on_the_page():
    page = open(os.path.join(ROOT, "book", "results.md")).read()
    names = [n for n, _ in _script().BENCHES]
    results = os.path.join(ROOT, "bench", "results")
    for file in sorted(os.listdir(results)) if os.path.isdir(results) else []:
        if not file.endswith(".json"):
            continue
        assert file[:-5] in names, f"bench/results/{file} has no section on the Results page"
        doc = json.load(open(os.path.join(results, file)))
        for target in doc.get("targets", []) if isinstance(doc, dict) else []:
            assert f"**{target['status']}** — {target['target']}" in page
        rows = doc["rows"] if isinstance(doc, dict) else doc
        for row in rows:
            if row.get("accuracy") is not None:
                assert f"{100 * row['accuracy']:.2f}" in page


def test_table_formats_intervals_and_skips_empty_columns():
    lines = _script().table([{"method": "int8", "accuracy": 0.9312, "accuracy_ci": [0.9261, 0.936],
                              "drop_ci_pt": [-0.1, 0.3], "latency_ms": None}])
    assert lines[0] == "| method | accuracy % | 95 % CI | drop 95 % CI |"
    assert lines[2] == "| int8 | 93.12 | 92.61–93.60 | -0.10 to +0.30 |"
