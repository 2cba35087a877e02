"""Render ``book/results.md`` from the committed bench results (``bench/results/*.json``).

Every figure on the Results page comes from a JSON file a bench wrote (``python bench/<name>.py --json
bench/results/<name>.json``), with the machine, CPU flags, threads, load average and commit it ran on; this
script only lays them out. ``tests/test_results_page.py`` re-renders the page and fails when it differs
from the committed one, so the page and the JSON cannot drift apart.

    python scripts/results_page.py            # rewrite book/results.md
    python scripts/results_page.py --check    # exit 1 when book/results.md is stale
"""
from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
PAGE = os.path.join(ROOT, "book", "results.md")

# the benches, in book order, with what each measures (a bench without committed results is listed as such)
BENCHES = [
    ("fashion", "int8 ResNet-20 on Fashion-MNIST, deployed, with error bars (the harder data set)"),
    ("baseline", "chapter 1: the reference models measured"),
    ("quantization", "chapter 2: every quantization mode, both frameworks"),
    ("pruning", "chapter 3: unstructured, N:M and structured pruning"),
    ("lowrank", "chapter 4: SVD and Tucker"),
    ("residual", "chapter 5: residual families and distillation"),
    ("deep_compression", "chapter 6: prune, share, entropy-code"),
    ("deploy", "chapter 7: compresslib's exports against the runtimes' own quantizers"),
]
COLUMNS = [  # (key, header, format)
    ("framework", "framework", str),
    ("model", "model", str),
    ("method", "method", str),
    ("runtime", "runtime", str),
    ("bytes", "bytes", lambda v: f"{v:,}"),
    ("accuracy", "accuracy %", lambda v: f"{100 * v:.2f}"),
    ("accuracy_ci", "95 % CI", lambda v: f"{100 * v[0]:.2f}–{100 * v[1]:.2f}"),
    ("accuracy_drop_pt", "drop pt", lambda v: f"{v:+.2f}"),
    ("drop_ci_pt", "drop 95 % CI", lambda v: f"{v[0]:+.2f} to {v[1]:+.2f}"),
    ("drop_and_verdict", "drop pt (paired)", str),
    ("p_value", "McNemar p", lambda v: f"{v:.2g}"),
    ("verdict", "paired test", str),
    ("cosine", "cosine", lambda v: f"{v:.5f}"),
    ("latency_ms", "latency ms", lambda v: f"{v:.3f}"),
    ("latency_spread_ms", "± ms", lambda v: f"{v:.3f}"),
    ("speedup", "speedup ×", lambda v: f"{v:.2f}"),
    ("speedup_vs_runtime_fp32", "vs runtime fp32 ×", lambda v: f"{v:.2f}"),
]


def _cell(fmt, value: Any) -> str:
    if value is None:
        return ""
    try:
        return fmt(value).replace("|", "\\|")
    except (TypeError, ValueError, IndexError):
        return str(value)


# the compact table a reader sees first (fits the page column); every column is under "all columns"
COMPACT = ("model", "method", "accuracy", "drop_and_verdict", "speedup",
           "speedup_vs_runtime_fp32")


def table(rows: list[dict], keys: tuple[str, ...] | None = None) -> list[str]:
    if keys is None:
        keys = tuple(k for k, _, _ in COLUMNS if k != "drop_and_verdict")
    rows = [dict(r, drop_and_verdict=f"{r['accuracy_drop_pt']:+.2f} ({r.get('verdict') or 'no test'})")
            if r.get("accuracy_drop_pt") is not None else r for r in rows]
    cols = [c for c in COLUMNS if c[0] in keys and any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "".join("---|" if k in ("framework", "model", "method", "runtime", "verdict") else "---:|"
                           for k, _, _ in cols)]
    # a bench that kept no file for a row writes bytes 0: say so rather than print a size of zero
    lines += ["| " + " | ".join("not saved" if k == "bytes" and r.get(k) == 0 else _cell(f, r.get(k))
                                for k, _, f in cols) + " |" for r in rows]
    return lines


def provenance(doc: dict, rows: list[dict]) -> str:
    m = doc.get("machine", {})
    loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
    threads = sorted({r["threads"] for r in rows if r.get("threads") is not None})
    parts = [f"CPU {m.get('cpu', 'not recorded')}"]
    if m.get("cpu_flags"):
        parts.append("flags " + ", ".join(m["cpu_flags"]))
    parts.append(f"{m.get('cpus', '?')} cores")
    if threads:
        parts.append("threads " + ", ".join(map(str, threads)))
    if loads:
        parts.append(f"load average {min(loads):.2f}–{max(loads):.2f} while timing")
    parts.append(f"torch {m.get('torch', '?')}, Python {m.get('python', '?')}")
    if m.get("commit"):
        parts.append(f"commit {m['commit'][:10]}")
    if m.get("date"):
        parts.append(m["date"])
    return "; ".join(parts)


def render() -> str:
    out = ["# Results", "",
           "Every figure on this page was written by a bench script into `bench/results/<bench>.json` and is "
           "laid out here by `python scripts/results_page.py`; a test re-renders the page and fails when it "
           "and the JSON disagree. Accuracies are on the full test set with their 95 % (Wilson) interval; a "
           "drop is a claim only when McNemar's exact paired test supports it (p < 0.05), otherwise the "
           "*paired test* column says *within noise*. Speed-ups are ratios measured in the same run, with the "
           "interleaved timer; the machine, CPU flags, threads and load average of each run are stated under "
           "its table.", ""]
    for name, what in BENCHES:
        path = os.path.join(RESULTS, f"{name}.json")
        out += [f"## {name}: {what}", ""]
        if not os.path.exists(path):
            out += [f"No committed results yet: `python bench/{name}.py --json bench/results/{name}.json` on a "
                    "quiet machine writes them.", ""]
            continue
        with open(path) as fh:
            doc = json.load(fh)
        rows = doc["rows"] if isinstance(doc, dict) else doc
        if isinstance(doc, dict) and doc.get("quick"):
            out += ["```{warning}", "These results come from a `--quick` smoke run: not figures to quote.", "```", ""]
        for t in (doc.get("targets") or []) if isinstance(doc, dict) else []:
            out.append(f"- **{t['status']}** — {t['target']}" + (f" ({t['path']})" if t.get("path") else ""))
        if isinstance(doc, dict) and doc.get("targets"):
            out.append("")
        h2h = doc.get("head_to_head") if isinstance(doc, dict) else None
        if h2h:
            out += [f"Head to head ({h2h['pairs']} alternated pairs of single calls, batch 32): "
                    f"{h2h['int8']} runs **{h2h['speedup']:.2f}×** as fast as {h2h['fp32']} "
                    f"({h2h['int8_ms']:.3f} ms against {h2h['fp32_ms']:.3f} ms).", ""]
        frameworks = list(dict.fromkeys(r.get("framework") for r in rows))
        for fw in frameworks:  # one compact table per framework keeps it inside the page column
            if len(frameworks) > 1:
                out += [f"**{ {'torch': 'PyTorch', 'keras': 'Keras'}.get(fw, fw) }**", ""]
            # the section names the data set: the compact table drops it from the model names
            short = [dict(r, model=str(r.get("model", "")).removeprefix(f"{name}_")) for r in rows
                     if r.get("framework") == fw]
            out += table(short, COMPACT) + [""]
        out += ["<details><summary>All columns: bytes, 95 % intervals, McNemar p, latency spread</summary>", "",
                *table(rows), "", "</details>", ""]
        out += [f"Measured on: {provenance(doc if isinstance(doc, dict) else {}, rows)}.", ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = open(PAGE).read() if os.path.exists(PAGE) else ""
        if current != text:
            print(f"{PAGE} is stale: run python scripts/results_page.py", file=sys.stderr)
            return 1
        return 0
    with open(PAGE, "w") as fh:
        fh.write(text)
    print(f"wrote {PAGE} from {len(glob.glob(os.path.join(RESULTS, '*.json')))} result files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
