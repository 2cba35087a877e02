"""The support matrix: every verb and config on every foreign model, each cell judged the same way.

A cell **works** when the verb returns a model whose outputs have the original's shapes
and are finite, the input model is untouched (weights, train/eval flags, structure), and
the result saves and loads back with the same outputs. A cell **refuses** when the verb
raises a ``ValueError``/``TypeError``/``NotImplementedError``/``ImportError`` from
compresslib's own code (not from deep inside torch/TF) before changing anything.
Anything else is a failure: ``crash`` (an exception from inside a framework, or of
another type), ``silent`` (changed output shapes, non-finite outputs), ``mutated`` (the
input changed), ``save`` (the result could not be saved and loaded back identically).

``python -m tests.foreign.matrix`` (or ``scripts/support_matrix.py``) writes the table the
book's "Compressing your own model" page shows.
"""
from __future__ import annotations

import os
import tempfile
import traceback
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = str(ROOT / "compresslib")
REFUSALS = (ValueError, TypeError, NotImplementedError, ImportError)


@dataclass
class Outcome:
    model: str
    cell: str
    status: str  # works | refuses | crash | silent | mutated | save
    detail: str = ""
    agreement: Optional[float] = None  # cosine of the first output tensor with the original's

    @property
    def ok(self) -> bool:
        return self.status in ("works", "refuses")


def raised_by_compresslib(exc: BaseException) -> bool:
    """True when the innermost frame that raised ``exc`` is compresslib's own code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(PACKAGE)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float(np.array_equal(a, b))


def judge(model_name: str, cell: str, original: Any, apply: Callable[[Any], Any], *,
          snapshot: Callable[[Any], Any], same_snapshot: Callable[[Any, Any], str],
          outputs: Callable[[Any], list[np.ndarray]], save_load: Callable[[Any, str], Any],
          is_model: Callable[[Any], bool]) -> Outcome:
    """Run one cell with framework-specific helpers and classify what happened."""
    before = snapshot(original)
    reference = outputs(original)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = apply(original)
    except REFUSALS as exc:
        changed = same_snapshot(before, snapshot(original))
        if changed:
            return Outcome(model_name, cell, "mutated", f"refused but changed the input: {changed}")
        if not raised_by_compresslib(exc):
            return Outcome(model_name, cell, "crash", _describe(exc))
        return Outcome(model_name, cell, "refuses", _describe(exc))
    except Exception as exc:  # noqa: BLE001 - this is what the matrix is looking for
        return Outcome(model_name, cell, "crash", _describe(exc))
    changed = same_snapshot(before, snapshot(original))
    if changed:
        return Outcome(model_name, cell, "mutated", changed)
    if not is_model(result):  # measure: a Report
        return Outcome(model_name, cell, "works", f"MACs {result.macs:,}, params {result.params:,}")
    try:
        got = outputs(result)
    except Exception as exc:  # noqa: BLE001
        return Outcome(model_name, cell, "crash", "the result does not run: " + _describe(exc))
    shapes = [a.shape for a in reference], [a.shape for a in got]
    if shapes[0] != shapes[1]:
        return Outcome(model_name, cell, "silent", f"output shapes {shapes[0]} became {shapes[1]}")
    if not all(np.isfinite(a).all() for a in got):
        return Outcome(model_name, cell, "silent", "non-finite outputs")
    agreement = cosine(reference[0], got[0])
    with tempfile.TemporaryDirectory() as tmp:
        try:
            back = save_load(result, os.path.join(tmp, "m.clz"))
            again = outputs(back)
        except Exception as exc:  # noqa: BLE001
            return Outcome(model_name, cell, "save", _describe(exc), agreement)
    # identical up to the model's own run-to-run variation (threaded float sums can flip an int8 rounding)
    rerun = outputs(result)
    noise = max([float(np.abs(a - b).max()) for a, b in zip(rerun, got) if a.size] + [0.0])
    if len(again) != len(got) or not all(np.allclose(a, b, rtol=1e-5, atol=1e-6 + 2 * noise)
                                         for a, b in zip(again, got)):
        worst = max(float(np.abs(a - b).max()) for a, b in zip(again, got)) if len(again) == len(got) else None
        return Outcome(model_name, cell, "save", f"outputs after save/load differ by {worst} (run-to-run {noise})",
                       agreement)
    return Outcome(model_name, cell, "works", "", agreement)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with " …" where it was cut.

    Example:
        >>> shorten("which is not supported here", 16)
        'which is not …'
    """
    if len(text) <= limit:
        return text
    cut = text[:limit - 2]
    head = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return head.rstrip(" ,;:(") + " …"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return shorten(f"{type(exc).__name__}: {text}", 300)


def to_json(outcomes: list[Outcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
