"""The figures on book/distributed.md are the ones its scripts wrote (book/data/*.json), not typed ones.

``scripts/stream_memory.py`` and ``scripts/ddp_mnist.py`` write the JSON; this test formats each figure as
the page does and fails when the page and the JSON disagree.
"""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = (ROOT / "book" / "distributed.md").read_text()


def _data(name):
    return json.loads((ROOT / "book" / "data" / f"{name}.json").read_text())


def _short(x: float) -> str:
    """Two significant digits, the exponent without its leading zero (1.4e-6, 0.16)."""
    return re.sub(r"e-0*(\d)", r"e-\1", f"{x:.2g}")


def test_the_memory_table_is_the_scripts_measurement():
    runs = {(r["mode"], r["rows"]): r["peak_mib"] for r in _data("stream_memory")["runs"]}
    for rows in (20_000, 200_000):
        line = f"| {rows:,} | {runs[('stream', rows)]:,.0f} MiB | {runs[('arrays', rows)]:,.0f} MiB |"
        assert line in PAGE, f"book/distributed.md lacks {line!r}: re-run scripts/stream_memory.py"
    grew = runs[("stream", 200_000)] - runs[("stream", 20_000)]
    held = runs[("arrays", 200_000)] - runs[("arrays", 20_000)]
    assert f"peak by {grew:,.0f} MiB" in PAGE and f"cost {held:,.0f} MiB more" in PAGE


def test_the_two_process_table_is_the_scripts_measurement():
    d = _data("ddp_mnist")
    for key, label in (("qat", "QAT (8-bit, fake-quant + observers)"),
                       ("pruned", "gradual pruning to 90 % + distillation")):
        r = d[key]
        line = (f"| {label} | {100 * r['accuracy_1proc']:.2f} % / {100 * r['accuracy_2proc']:.2f} % | "
                f"{r['predictions_differ']}; {_short(r['max_weight_diff'])} |")
        assert line in PAGE, f"book/distributed.md lacks {line!r}: re-run scripts/ddp_mnist.py"
    assert f"{d['pruned']['zeros_differ']} are zero in one run" in PAGE
