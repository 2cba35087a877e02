"""Pareto fronts and budget checks over measured candidates (framework-free, standard library only).

A candidate is a dict with ``accuracy`` (0..1, higher is better), ``latency_ms`` and ``bytes`` (lower is
better). One candidate *dominates* another when it is at least as good on all three and strictly better on
one. The *front* is the set no other candidate dominates. A *budget* is up to three limits —
``latency_ms``, ``size_bytes`` and ``max_drop`` (accuracy drop in percentage points against the original) —
and :func:`choose` picks from the front:

* with a latency or size limit: the most accurate candidate within every limit ("the most accurate model
  under 2 ms"), ties to the faster, then the smaller;
* with only ``max_drop``: the fastest within it, ties to the smaller, then the more accurate;
* nothing within the budget: the *closest* candidate, the one whose summed relative excess over the limits
  is smallest (a 10 % latency overshoot counts like a 10 % size overshoot; a drop overshoot is counted
  against ``max(max_drop, 0.1)`` points), and a message naming it and by how much it misses.

Example:
    >>> rows = [{"candidate": "fp32", "accuracy": 0.95, "latency_ms": 4.0, "bytes": 1000, "drop_pt": 0.0},
    ...         {"candidate": "int8", "accuracy": 0.95, "latency_ms": 2.0, "bytes": 300, "drop_pt": 0.0},
    ...         {"candidate": "pruned", "accuracy": 0.93, "latency_ms": 1.0, "bytes": 200, "drop_pt": 2.0},
    ...         {"candidate": "bad", "accuracy": 0.90, "latency_ms": 3.0, "bytes": 900, "drop_pt": 5.0}]
    >>> [rows[i]["candidate"] for i in front(rows)]
    ['int8', 'pruned']
    >>> choose(rows, latency_ms=2.5)
    (1, True, "'int8' meets the budget (latency <= 2.5 ms): accuracy 95.00 %, 2.000 ms, 300 bytes")
    >>> choose(rows, latency_ms=0.5)[:2]
    (2, False)
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

OBJECTIVES = (("accuracy", 1), ("latency_ms", -1), ("bytes", -1))  # (key, +1 maximise / -1 minimise)


def _values(row: dict) -> tuple[float, ...]:
    out = []
    for key, sign in OBJECTIVES:
        v = row.get(key)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise ValueError(f"rows: candidate {row.get('candidate')!r} has no {key}")
        out.append(sign * float(v))
    return tuple(out)


def dominates(a: dict, b: dict) -> bool:
    """Whether ``a`` is at least as good as ``b`` on accuracy, latency and bytes, and better on one.

    Example:
        >>> a = {"accuracy": 0.9, "latency_ms": 1, "bytes": 5}
        >>> b = {"accuracy": 0.9, "latency_ms": 2, "bytes": 5}
        >>> dominates(a, b), dominates(b, a)
        (True, False)
    """
    va, vb = _values(a), _values(b)
    return all(x >= y for x, y in zip(va, vb)) and any(x > y for x, y in zip(va, vb))


def front(rows: Sequence[dict]) -> list[int]:
    """Indices of the rows no other row dominates, in their order; of identical rows only the first is kept.

    Example:
        >>> same = {"accuracy": 0.9, "latency_ms": 1, "bytes": 5}
        >>> front([same, dict(same)])
        [0]
    """
    vals = [_values(r) for r in rows]
    keep = []
    for i, v in enumerate(vals):
        if any(dominates(rows[j], rows[i]) for j in range(len(rows)) if j != i):
            continue
        if any(vals[j] == v for j in keep):  # a duplicate of one already on the front
            continue
        keep.append(i)
    return keep


def _check_limit(name: str, value: Optional[float]) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0 or None, got {value!r}")
    return float(value)


def excess(row: dict, latency_ms: Optional[float] = None, size_bytes: Optional[float] = None,
           max_drop: Optional[float] = None) -> dict[str, float]:
    """``{limit: relative excess}`` for each limit the row breaks (empty: the row is within the budget).

    ``row["drop_pt"]`` is the accuracy drop against the original, in points.

    Example:
        >>> excess({"latency_ms": 3.0, "bytes": 100, "drop_pt": 0.2}, latency_ms=2.0, max_drop=0.5)
        {'latency_ms': 0.5}
    """
    out = {}
    if latency_ms is not None and row["latency_ms"] > latency_ms:
        out["latency_ms"] = row["latency_ms"] / latency_ms - 1 if latency_ms > 0 else math.inf
    if size_bytes is not None and row["bytes"] > size_bytes:
        out["size_bytes"] = row["bytes"] / size_bytes - 1 if size_bytes > 0 else math.inf
    if max_drop is not None and row["drop_pt"] > max_drop:
        out["max_drop"] = (row["drop_pt"] - max_drop) / max(max_drop, 0.1)
    return out


def describe_limits(latency_ms: Optional[float] = None, size_bytes: Optional[float] = None,
                    max_drop: Optional[float] = None) -> str:
    """``"latency <= 2 ms, size <= 1000000 bytes, drop <= 0.5 pt"`` (only the limits given).

    Example:
        >>> describe_limits(size_bytes=1e6, max_drop=0.5)
        'size <= 1000000 bytes, drop <= 0.5 pt'
    """
    parts = []
    if latency_ms is not None:
        parts.append(f"latency <= {latency_ms:g} ms")
    if size_bytes is not None:
        parts.append(f"size <= {size_bytes:.0f} bytes")
    if max_drop is not None:
        parts.append(f"drop <= {max_drop:g} pt")
    return ", ".join(parts) or "no limits"


def _figures(row: dict) -> str:
    return f"accuracy {100 * row['accuracy']:.2f} %, {row['latency_ms']:.3f} ms, {row['bytes']} bytes"


def choose(rows: Sequence[dict], latency_ms: Optional[float] = None, size_bytes: Optional[float] = None,
           max_drop: Optional[float] = None) -> tuple[int, bool, str]:
    """``(index, feasible, message)``: the candidate the budget picks (see the module docstring).

    Rows need ``candidate``, ``accuracy``, ``latency_ms``, ``bytes`` and ``drop_pt``.
    """
    if not rows:
        raise ValueError("rows must not be empty: no candidate was measured")
    latency_ms = _check_limit("latency_ms", latency_ms)
    size_bytes = _check_limit("size_bytes", size_bytes)
    max_drop = _check_limit("max_drop", max_drop)
    limits = describe_limits(latency_ms, size_bytes, max_drop)
    over = [excess(r, latency_ms, size_bytes, max_drop) for r in rows]
    feasible = [i for i, e in enumerate(over) if not e]
    if feasible:
        if latency_ms is None and size_bytes is None:
            key = lambda i: (rows[i]["latency_ms"], rows[i]["bytes"], -rows[i]["accuracy"])  # noqa: E731
        else:
            key = lambda i: (-rows[i]["accuracy"], rows[i]["latency_ms"], rows[i]["bytes"])  # noqa: E731
        best = min(feasible, key=key)
        return best, True, f"{rows[best]['candidate']!r} meets the budget ({limits}): {_figures(rows[best])}"
    best = min(range(len(rows)), key=lambda i: (sum(over[i].values()), -rows[i]["accuracy"]))
    misses = ", ".join(f"{name} {100 * v:.0f} % over" if not math.isinf(v) else f"{name} over a zero limit"
                       for name, v in over[best].items())
    return best, False, (f"no candidate meets the budget ({limits}); "
                         f"the closest is {rows[best]['candidate']!r} "
                         f"({misses}): {_figures(rows[best])}")


__all__ = ["OBJECTIVES", "dominates", "front", "excess", "choose", "describe_limits"]
