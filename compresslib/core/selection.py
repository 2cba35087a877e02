"""Choosing a compressed model by measurement: agreement with the original, the choice rule, the table.

Framework-free (NumPy only): ``compresslib.torch.auto`` measures, this module decides.
A candidate is kept only if its outputs agree with the unquantized model's to at least
``budget`` and it is at least ``min_speedup`` times faster than the input, timed in the same
interleaved rounds; among those the fastest wins, and when none qualifies the input wins.

Example:
    >>> import numpy as np
    >>> ref = np.array([[1.0, 0.0], [0.0, 2.0]])
    >>> round(agreement(ref, ref * 3, "cosine"), 6), agreement(ref, ref[:, ::-1], "top1")
    (1.0, 0.0)
    >>> rows = [{"candidate": "a", "agreement": 0.999, "latency_ms": 5.0},
    ...         {"candidate": "b", "agreement": 0.95, "latency_ms": 1.0}]
    >>> choose(rows, input_ms=10.0, budget=0.99, min_speedup=1.05)
    'a'
    >>> [r["status"] for r in rows]
    ['chosen', 'below budget']
"""
from __future__ import annotations

import html
from typing import Any, Optional

import numpy as np

STATUSES = ("chosen", "within budget, slower than the winner", "not faster than the input", "below budget",
            "refused", "failed")


def row_cosines(reference: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened output with the reference's (float64; two all-zero
    samples agree fully, one all-zero sample against a non-zero one gives 0).

    Example:
        >>> row_cosines(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 0.0]])).tolist()
        [1.0, 1.0]
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    ref, out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    dot = (ref * out).sum(axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    both_zero = (np.linalg.norm(ref, axis=1) == 0) & (np.linalg.norm(out, axis=1) == 0)
    return np.where(both_zero, 1.0, dot / np.where(norms == 0, 1.0, norms))


def agreement(reference: np.ndarray, output: np.ndarray, metric: str) -> float:
    """Agreement of ``output`` with ``reference`` (both ``(samples, ...)``), in [0, 1] for ``top1``.

    ``cosine``: the mean over samples of the cosine similarity of their flattened outputs
    (two all-zero samples agree fully). ``top1``: the fraction of samples whose arg-max is the same.
    """
    ref = np.asarray(reference, dtype=np.float64)
    out = np.asarray(output, dtype=np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference's {ref.shape}")
    if ref.ndim == 0 or ref.shape[0] == 0:
        raise ValueError(f"outputs need a non-empty batch dimension, got shape {ref.shape}")
    ref, out = ref.reshape(ref.shape[0], -1), out.reshape(out.shape[0], -1)
    if metric == "top1":
        return float(np.mean(ref.argmax(axis=1) == out.argmax(axis=1)))
    if metric != "cosine":
        raise ValueError(f"metric must be 'cosine' or 'top1', got {metric!r}")
    if not (np.isfinite(out).all() and np.isfinite(ref).all()):
        return float("nan")
    return float(np.mean(row_cosines(ref, out)))


def choose(rows: list[dict], input_ms: float, budget: float, min_speedup: float) -> Optional[str]:
    """Set each row's ``status`` and ``speedup``; return the chosen ``candidate`` label, or None (keep the input).

    A row needs ``candidate``, ``agreement`` and ``latency_ms`` (None when it was not timed); rows
    that already have status ``refused`` or ``failed`` are left alone. A NaN agreement is below budget.
    """
    if not input_ms or input_ms <= 0:
        raise ValueError(f"input_ms must be a positive time, got {input_ms!r}")
    eligible = []
    for r in rows:
        if r.get("status") in ("refused", "failed"):
            continue
        a = r.get("agreement")
        if a is None or not np.isfinite(a) or a < budget:
            r["status"] = "below budget"
            continue
        if r.get("latency_ms"):
            r["speedup"] = input_ms / r["latency_ms"]
            if r["speedup"] >= min_speedup:
                eligible.append(r)
                continue
        r["status"] = "not faster than the input"
    if not eligible:
        return None
    best = min(eligible, key=lambda r: r["latency_ms"])
    for r in eligible:
        r["status"] = "chosen" if r is best else "within budget, slower than the winner"
    return best["candidate"]


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "nan" if v != v else (f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}")
    return str(v)


class AutoTable:
    """What :class:`~compresslib.configs.Auto` measured: one row per candidate, plus the input's time.

    ``rows``: dicts with ``candidate`` (the config's repr), ``config`` (its ``to_dict()``),
    ``status``, ``agreement``, ``latency_ms``, ``speedup`` (input time / candidate time) and
    ``note`` (the reason a candidate was refused or failed). ``chosen``: the winning
    candidate's label, or None when the input was kept; ``reason`` says why in words.

    Example:
        >>> t = AutoTable([{"candidate": "X()", "status": "below budget", "agreement": 0.5}], None,
        ...               {"metric": "cosine", "budget": 0.99, "input_ms": 2.0, "device": "cpu", "batch_size": 8})
        >>> t.chosen is None and "kept the input" in t.reason
        True
    """

    COLUMNS = ("candidate", "status", "agreement", "latency_ms", "speedup", "note")

    def __init__(self, rows: list[dict], chosen: Optional[str], setting: dict) -> None:
        self.rows = rows
        self.chosen = chosen
        self.setting = dict(setting)

    @property
    def reason(self) -> str:
        s = self.setting
        if self.chosen is not None:
            row = next(r for r in self.rows if r["candidate"] == self.chosen)
            return (f"chose {self.chosen}: {row['speedup']:.2f}× the input's speed, {s['metric']} agreement "
                    f"{row['agreement']:.4f} >= budget {s['budget']}")
        counts = {st: sum(r.get("status") == st for r in self.rows) for st in STATUSES}
        parts = [f"{n} {st}" for st, n in counts.items() if n]
        return (f"kept the input (an unchanged copy): no candidate reached {s['metric']} >= {s['budget']} while "
                f"running at least {s.get('min_speedup', 1.0)}× faster ({', '.join(parts) or 'no candidates'})")

    def to_dict(self) -> dict:
        return {"chosen": self.chosen, "reason": self.reason, "setting": self.setting, "rows": self.rows}

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.COLUMNS) + " |", "|" + "---|" * len(self.COLUMNS),
                 f"| input | baseline | 1.0000 | {_fmt(self.setting.get('input_ms'))} | 1.0000 | |"]
        for r in self.rows:
            cells = [_fmt(r.get(k)).replace("|", "/").replace("\n", " ")[:160] for k in self.COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + f"\n\n{self.reason} (device {self.setting.get('device')}, batch " \
                                  f"{self.setting.get('batch_size')})"

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in self.COLUMNS)
        body = f"<tr><td>input</td><td>baseline</td><td>1.0000</td><td>{_fmt(self.setting.get('input_ms'))}</td>" \
               "<td>1.0000</td><td></td></tr>"
        body += "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in self.COLUMNS) + "</tr>"
                        for r in self.rows)
        return f"<table><tr>{head}</tr>{body}</table><p>{html.escape(self.reason)}</p>"

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:
        return f"AutoTable(chosen={self.chosen!r}, rows={len(self.rows)})"


__all__ = ["row_cosines", "STATUSES", "agreement", "choose", "AutoTable"]
