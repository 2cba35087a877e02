"""Accuracy intervals and paired tests in Report / compare, and measure() recording per-sample results."""
import numpy as np
import pytest

import compresslib as cl
from compresslib.report import Report, compare


def _report(name, correct):
    correct = np.asarray(correct, dtype=bool)
    return Report(name=name, framework="torch", params=10, nonzero_params=10, file_bytes=100, gzip_bytes=90,
                  macs=5, accuracy=float(correct.mean()), correct=correct)


def test_compare_judges_drops_with_mcnemar():
    base = np.ones(2000, dtype=bool)
    base[:100] = False                                   # 95.00 %
    noise = base.copy()
    noise[100:104] = False                               # 4 more errors: within noise
    real = base.copy()
    real[100:160] = False                                # 60 more errors: a real drop
    rows = compare([_report("fp32", base), _report("a", noise), _report("b", real)]).rows
    assert "paired_verdict" not in rows[0]
    assert rows[1]["paired_verdict"] == "within noise" and rows[1]["paired_p"] == pytest.approx(0.125)
    assert rows[2]["paired_verdict"] == "lower" and rows[2]["paired_p"] < 1e-15
    lo, hi = rows[2]["drop_interval_pt"]
    assert rows[2]["accuracy_drop_pt"] == pytest.approx(3.0) and lo < 3.0 < hi
    assert rows[2]["accuracy_low"] < 0.92 < rows[2]["accuracy_high"]
    assert rows[2]["test_samples"] == 2000
    text = compare([_report("fp32", base), _report("b", real)]).to_markdown()
    assert "McNemar p" in text and "lower" in text


def test_report_shows_interval_and_stays_json():
    r = _report("m", [True] * 930 + [False] * 70)
    assert [round(v, 4) for v in r.accuracy_interval] == [0.9125, 0.9442]
    assert "95 % CI 91.25–94.42, 1,000 samples" in r.to_markdown()
    assert "correct" not in r.to_json() and '"accuracy_low"' in r.to_json()


def test_measure_records_per_sample_results():
    model = cl.zoo.pretrained("lenet5", "torch")
    x, y = cl.datasets.load_mnist("test", layout="torch")
    report = cl.measure(model, data=(x[:300], y[:300]), latency=False)
    assert report.correct.shape == (300,) and report.correct.dtype == bool
    assert report.accuracy == pytest.approx(report.correct.mean())
    lo, hi = report.accuracy_interval
    assert lo < report.accuracy < hi
