import pytest

from compresslib.report import LayerStats, Report, compare


def _r(name, file_bytes, latency, acc, packed=None):
    return Report(name=name, framework="torch", params=1000, nonzero_params=100, file_bytes=file_bytes,
                  gzip_bytes=file_bytes // 2, macs=5000, latency_ms=latency, latency_spread_ms=0.1,
                  accuracy=acc, packed_bytes=packed, layers=[LayerStats("fc", "Linear", 1000, 100, 5000)])


def test_compare_ratios():
    rows = compare([_r("a", 4000, 2.0, 0.98), _r("b", 1000, 0.5, 0.97), _r("c", 4000, 4.0, 0.99, packed=500)]).rows
    assert rows[0]["size_ratio"] == 1.0 and rows[0]["speedup"] == 1.0 and rows[0]["accuracy_drop_pt"] == 0
    assert rows[1]["size_ratio"] == 4.0 and rows[1]["speedup"] == 4.0
    assert rows[1]["accuracy_drop_pt"] == pytest.approx(1.0)
    assert rows[2]["size_ratio"] == 8.0 and rows[2]["speedup"] == 0.5
    assert rows[2]["accuracy_drop_pt"] == pytest.approx(-1.0)


def test_renderings():
    r = _r("a", 4000, 2.0, 0.98)
    md = r.to_markdown(layers=True)
    assert "| parameters | 1,000 |" in md and "| fc | Linear | 1,000 | 100 | 5,000 |" in md
    assert r.sparsity == pytest.approx(0.9)
    assert "<table>" in r._repr_html_()
    table = compare([r, _r("b", 1000, 0.5, 0.97)])
    assert "size ×" in table.to_markdown() and "4.00" in table.to_markdown()
    assert table._repr_html_().count("<tr>") == 3
    assert r.to_dict()["layers"][0]["macs"] == 5000


def test_compare_errors():
    with pytest.raises(TypeError, match="reports"):
        compare([])
    with pytest.raises(ValueError, match="baseline index"):
        compare([_r("a", 1, 1.0, 1.0)], baseline=3)
