import re

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
    assert "<table" in r._repr_html_() and "1,000" in r._repr_html_()
    table = compare([r, _r("b", 1000, 0.5, 0.97)])
    assert "size ×" in table.to_markdown() and "4.00" in table.to_markdown()
    assert table._repr_html_().count("<tr>") == 6           # compact table + all columns, header and 2 rows each
    assert r.to_dict()["layers"][0]["macs"] == 5000


def test_compare_errors():
    with pytest.raises(TypeError, match="reports"):
        compare([])
    with pytest.raises(ValueError, match="baseline index"):
        compare([_r("a", 1, 1.0, 1.0)], baseline=3)


def test_markdown_right_aligns_numbers():
    md = compare([_r("a", 4000, 2.0, 0.98), _r("b", 1000, 0.5, 0.97)]).to_markdown()
    header, rule = md.splitlines()[:2]
    cells = [c.strip() for c in header.strip("|").split("|")]
    aligns = rule.strip("|").split("|")
    assert len(cells) == len(aligns) == 12                     # packed bytes absent: column dropped
    assert dict(zip(cells, aligns)) == {**{c: "---:" for c in cells}, "model": "---", "framework": "---"}


def test_html_compact_columns_short_units_and_every_column_on_demand():
    big = Report(name="mlp_wide", framework="keras", params=1_863_690, nonzero_params=1_863_690,
                 file_bytes=7_478_022, gzip_bytes=6_900_000, macs=1_861_632, latency_ms=1.62, accuracy=0.967,
                 packed_bytes=7_455_000)
    small = Report(name="int8", framework="torch", params=1_863_690, nonzero_params=1_863_690, file_bytes=1_897_592,
                   gzip_bytes=1_700_000, macs=1_861_632, latency_ms=0.191, accuracy=0.96, packed_bytes=1_775_000)
    html_ = compare([big, small]).to_html()
    compact, full = html_.split("<details")
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", compact)
    assert heads == ["model", "size", "latency ms", "accuracy %", "size ×", "speedup ×", "drop pt"]
    assert "the same in every row: params 1.86 M" in compact   # named once, not a column each
    assert ">7.46 MB<" in compact and ">1.77 MB<" in compact and ">0.191<" in compact and ">8.48<" in compact
    assert 'keras</span>' in compact                             # two frameworks: each name says which
    assert len(re.findall(r"<th[ >]", full)) == 13 and ">7,478,022<" in full and "all 13 columns" in full
    numeric = re.findall(r'<td style="([^"]*)">[0-9.,+\- kMB%]+</td>', compact)
    assert numeric and all("text-align:right" in style for style in numeric)
    assert 'overflow-x:auto' in compact                          # a narrow screen scrolls the table, not the page
    assert compare([big, small]).to_html(compact=False).count("<details") == 0


@pytest.mark.parametrize("n, text", [(999, "999"), (266_610, "267 k"), (7_457_405, "7.46 M"), (2_100_000_000, "2.1 G")])
def test_short_units(n, text):
    from compresslib.report import _bytes, _si

    assert _si(n) == text
    assert _bytes(n) == (f"{n} B" if n < 1000 else text + "B")


def test_compact_keeps_columns_that_differ():
    rows = compare([_r("a", 4000, 2.0, 0.98), _r("b", 1000, 0.5, 0.97)])
    rows.rows[1]["params"] = 10
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", rows.to_html().split("<details")[0])
    assert "params" in heads and "MACs" not in heads  # MACs: in the full table only


def _estimated_px(table_html: str) -> float:
    """Width of an HTML table at the book's 0.8 em of 16 px: the widest cell of each column (digits and
    letters about 0.6 em wide; a name cell wraps at spaces, so its longest word counts, at least 8 em)."""
    import html as html_lib

    em = 0.8 * 16
    rows = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r) for r in re.findall(r"<tr>(.*?)</tr>", table_html)]
    widths = []
    for j in range(len(rows[0])):
        cells = [html_lib.unescape(re.sub(r"<[^>]+>", " ", r[j])) for r in rows]
        chars = max(max(len(w) for w in c.split()) if j == 0 else len(c) for c in cells)
        widths.append(max(chars * 0.6 * em, 8 * em if j == 0 else 0) + 0.7 * em)
    return sum(widths)


def test_compact_table_fits_the_688_px_column():
    """Every column a comparison can have, two frameworks, long names: the compact table still fits."""
    rows = [Report(name=name, framework=fw, params=p, nonzero_params=p // 3, file_bytes=b, gzip_bytes=b // 2,
                   macs=m, latency_ms=lat, accuracy=acc, packed_bytes=b // 9)
            for name, fw, p, b, m, lat, acc in (
                ("gradual magnitude 0.9 global, packed", "torch", 266_610, 1_070_000, 266_200, 0.8123, 0.9812),
                ("torch.nn.utils.prune 0.9 (masks)", "keras", 1_863_690, 7_478_022, 1_861_632, 12.31, 0.9674),
                ("structured 0.5, distilled 20 ep + fold BN", "torch", 78_042, 330_000, 2_500_000, 0.191, 0.9011))]
    table = compare(rows)
    compact = table.to_html().split("<details")[0]
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", compact)
    assert len(heads) <= 8 and "size" in heads and ".clz" not in heads
    assert len(heads) == 8 and _estimated_px(compact) <= 688, _estimated_px(compact)
    full = table.full()._repr_html_()
    assert "<details" not in full and len(re.findall(r"<th[ >]", full)) == 13 and "overflow-x:auto" in full
    assert _estimated_px(full) > 688  # why the full table is folded away: the estimate can tell the two apart
