"""Bench results as the book shows them: the committed ``bench/results/<bench>.json`` files, as tables.

A bench script writes its rows (the shared schema: framework, model, method, runtime, bytes, accuracy
with its Wilson interval, the paired test against the reference, latency with its spread, speed-ups)
with the machine and load average it ran under. The Results page (``scripts/results_page.py``) and each
chapter's "the bench's figures" section lay out the same rows with the same code, so a chapter cannot
quote a figure the page does not show.

Example:
    >>> rows = [{"framework": "torch", "model": "m", "method": "fp32", "accuracy": 0.9, "speedup": 1.0},
    ...         {"framework": "torch", "model": "m", "method": "int8", "accuracy": 0.89,
    ...          "accuracy_drop_pt": 1.0, "verdict": "within noise", "speedup": 3.0}]
    >>> print("\\n".join(table(rows, COMPACT)))
    | model | method | accuracy % | drop pt (paired) | speedup × |
    |---|---|---:|---:|---:|
    | m | fp32 | 90.00 |  | 1.00 |
    | m | int8 | 89.00 | +1.00 (within noise) | 3.00 |
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

COLUMNS = [  # (key, header, format)
    ("framework", "framework", str),
    ("tool", "tool", str),
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
    ("bits_per_weight", "bits/weight", lambda v: f"{v:.2f}"),
    ("perplexity", "perplexity", lambda v: f"{v:.3f}"),
    ("latency_ms", "latency ms", lambda v: f"{v:.3f}"),
    ("latency_spread_ms", "± ms", lambda v: f"{v:.3f}"),
    ("speedup", "speedup ×", lambda v: f"{v:.2f}"),
    ("speedup_vs_runtime_fp32", "vs runtime fp32 ×", lambda v: f"{v:.2f}"),
    # bench/pareto.py: the chosen model against the runtime's own int8 of the original
    ("ours", "ours (chosen)", str),
    ("peer", "peer", str),
    ("speedup_vs_peer", "× peer", lambda v: f"{v:.2f}"),
    ("peer_over_itself", "A/A", lambda v: f"{v:.3f}"),
    ("size_ratio_vs_peer", "× smaller", lambda v: f"{v:.1f}"),
]


def _cell(fmt, value: Any) -> str:
    if value is None:
        return ""
    try:
        return fmt(value).replace("|", "\\|")
    except (TypeError, ValueError, IndexError):
        return str(value)


# the compact table a reader sees first (fits the page column); every column is under "all columns"
COMPACT = ("tool", "model", "method", "accuracy", "drop_and_verdict", "bits_per_weight", "perplexity", "cosine",
           "speedup", "speedup_vs_runtime_fp32")
# bench/pareto.py's rows are targets (a runtime each), not methods
COMPACT_PARETO = ("model", "runtime", "ours", "drop_and_verdict", "speedup_vs_peer", "size_ratio_vs_peer")


def table(rows: list[dict], keys: Optional[tuple[str, ...]] = None) -> list[str]:
    """Markdown table lines of ``rows`` with the columns in ``keys`` (None: every column) that have a value."""
    if keys is None:
        keys = tuple(k for k, _, _ in COLUMNS if k != "drop_and_verdict")
    rows = [dict(r, drop_and_verdict=f"{r['accuracy_drop_pt']:+.2f} ({r.get('verdict') or 'no test'})")
            if r.get("accuracy_drop_pt") is not None else r for r in rows]
    cols = [c for c in COLUMNS if c[0] in keys and any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(h for _, h, _ in cols) + " |",
             "|" + "".join("---|" if k in ("framework", "tool", "model", "method", "runtime", "verdict", "ours", "peer")
                           else "---:|"
                           for k, _, _ in cols)]
    # a bench that kept no file for a row writes bytes 0: say so rather than print a size of zero
    lines += ["| " + " | ".join("not saved" if k == "bytes" and r.get(k) == 0 else _cell(f, r.get(k))
                                for k, _, f in cols) + " |" for r in rows]
    return lines


def provenance(doc: dict, rows: list[dict]) -> str:
    """One line: the CPU, its flags, cores, threads, load average, versions, commit and date of a run."""
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


def find_results(name: str, start: Optional[str] = None) -> Path:
    """``bench/results/<name>.json`` of the repository that holds ``start`` (default: the working folder).

    Walks up from ``start`` so that a notebook run from ``notebooks/`` finds the repository's results.
    """
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        path = folder / "bench" / "results" / f"{name}.json"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no bench/results/{name}.json above {here}: run python bench/{name}.py --json "
                            f"bench/results/{name}.json from the repository")


def load_results(name: str, start: Optional[str] = None) -> dict[str, Any]:
    """The JSON a bench wrote (``{"rows": [...], "targets": [...], "machine": {...}, ...}``)."""
    with open(find_results(name, start)) as fh:
        doc = json.load(fh)
    return doc if isinstance(doc, dict) else {"rows": doc}


__all__ = ["COLUMNS", "COMPACT", "find_results", "load_results", "provenance", "table"]
