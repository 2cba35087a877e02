"""``cl.optimize``: from a budget to a deployed model, chosen by measurement in the target runtime.

A user rarely wants "int8"; they want "the most accurate model under 2 ms on this CPU" or "under 1 MB".
:func:`optimize` searches stacked recipes on a small, explicit grid, measures every candidate where it
will run, and returns the Pareto front and the candidate the :class:`~compresslib.configs.Budget` picks.

The grid (every combination is one candidate; each is a recipe of the library's own verbs):

1. ``prune``: structured pruning ratios (``cl.prune(m, cl.Structured(r))``: channels physically removed,
   residual-aware; 0 = not pruned);
2. ``lowrank``: ``None`` or a low-rank config (``cl.Tucker(energy=...)``, ``cl.SVD(...)``) applied after
   pruning;
3. the branch's BatchNorm statistics re-estimated on up to 2,048 training inputs (labels not needed: the
   pruned layers no longer match the original's statistics; the backends' ``recalibrate_batchnorm``),
   then a short **distillation** fine-tune of every pruned or decomposed model, the original as teacher
   (its logits on the training images computed once for the whole search), when ``train_data`` is given;
4. ``int8``: ``False`` (fp32 with BatchNorm folded) and/or ``True`` (``Int8Static`` with bias correction,
   calibrated on ``calibration_data``; PyTorch keeps float outputs, and the runtime file carries the full
   8-bit activation range, as ``bench/fashion.py`` found most accurate);
5. the candidate deployed in ``runtime`` (``cl.export``; for ``"torch"`` the eager model itself).

Every candidate is measured in its runtime: accuracy on all of ``data`` with its 95 % Wilson interval and
the paired test against the original on the same images (McNemar; :mod:`compresslib.core.stats`); latency
of one batch of ``batch_size`` with the paired timer (:func:`compresslib.timing.paired_ratio`, single calls
alternated with the original deployed in the same runtime as fp32, so the drift of a shared machine falls
on both), with its spread; bytes of the deployed file. An A/A control (the original against a second
copy of itself) says how far from 1.0 a ratio can be by timing noise alone. The load average is recorded.

Pruned/decomposed float models are the expensive part (fine-tuning): with ``cache_dir`` each is written
as a ``.clz`` file keyed by the original's bytes and the branch's settings, so a second search (another
budget, another runtime) or an interrupted one starts from them. Design choices, and why:

* a product grid, not a black-box optimiser: with 6–12 candidates and fine-tunes shared between the
  fp32 and int8 variant of a branch, every point of the front is explainable and the search time is
  predictable (about ``len(prune) * len(lowrank)`` fine-tunes);
* the choice is made on the front only: a dominated candidate is never chosen (see
  :func:`compresslib.core.pareto.choose` for the rule and for "closest" when nothing fits).

Example:
    >>> import torch, numpy as np, compresslib as cl
    >>> from torch import nn
    >>> m = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
    ...                   nn.Flatten(), nn.Linear(8, 3))
    >>> x = np.random.default_rng(0).normal(size=(64, 1, 8, 8)).astype(np.float32)
    >>> y = (x.mean((1, 2, 3)) > 0).astype(np.int64)
    >>> out = cl.optimize(m, (x, y), cl.Budget(max_drop=100), runtime="torch", prune=(0.0, 0.5),
    ...                   int8=(False,), pairs=10)                                      # doctest: +SKIP
    >>> out.chosen in [r["candidate"] for r in out.front]                               # doctest: +SKIP
    True
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from compresslib import api
from compresslib.core.training import atomic_write
from compresslib._dispatch import backend, framework_of
from compresslib.configs import Budget, Int8Static, LowRankConfig, Structured
from compresslib.core import pareto, stats
from compresslib.core.measure import load_average
from compresslib.deploy import RUNTIME_SUFFIX
from compresslib.deploy import export as export_model
from compresslib.deploy import load as load_runtime
from compresslib.progress import progress
from compresslib.report import Comparison, Report, compare
from compresslib.timing import paired_ratio

RUNTIMES = {"torch": ("openvino", "onnxruntime", "torch"), "keras": ("litert", "onnxruntime", "openvino")}
DEFAULT_RUNTIME = {"torch": "onnxruntime", "keras": "litert"}
CALIBRATION = 256
RECALIBRATION = 2048  # training inputs that re-estimate a pruned branch's BatchNorm statistics
ROW_KEYS = ("candidate", "status", "prune", "lowrank", "int8", "finetuned", "accuracy", "accuracy_interval",
            "drop_pt", "drop_interval_pt", "paired_p", "paired_verdict", "latency_ms", "latency_spread_ms",
            "speedup", "bytes", "size_ratio", "within_budget", "excess", "build_seconds", "note")


@dataclass
class Optimized:
    """What :func:`optimize` found: the chosen model, every candidate, the Pareto front, the reasons.

    ``model``: the chosen candidate as a model of the input's framework (for Keras int8, LiteRT's
    ``LiteRTModel``); ``deployed``: the same in the target runtime (what was measured);
    ``candidates``: one row per candidate (``ROW_KEYS``); ``front``: the rows on the Pareto front;
    ``feasible``: whether the chosen candidate meets the budget (else it is the closest, and ``message``
    says by how much it misses); ``report``: the chosen deployed model's ``Report`` (latency from the
    paired timer); ``comparison``: original against chosen (``drop_interval_pt``, ``paired_p``,
    ``paired_verdict``); ``setting``: runtime, budget, timing settings, load average, the A/A control and
    the search's own time in seconds.
    """

    model: Any
    deployed: Any
    chosen: str
    feasible: bool
    message: str
    candidates: list[dict]
    front: list[dict]
    report: Report
    comparison: Comparison
    setting: dict
    workdir: Any = field(default=None, repr=False)  # holds the deployed files while the result lives

    def to_dict(self) -> dict:
        """Everything but the models, JSON-serialisable."""
        return {"chosen": self.chosen, "feasible": self.feasible, "message": self.message,
                "candidates": self.candidates, "front": [r["candidate"] for r in self.front],
                "report": self.report.summary(), "setting": self.setting}

    def to_markdown(self) -> str:
        """The candidates as a compact markdown table (front rows marked), then the message.

        Columns: accuracy %, the drop against the original with its 95 % interval (McNemar's p beside it),
        latency of one batch ± spread, speed-up over the original in the same runtime, kB of the file,
        whether the candidate is on the Pareto front and within the budget.
        """
        head = "| candidate | acc. % | drop pt (95 % CI) | p | ms | × | kB | front | fits |"
        lines = [head, "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in self.candidates:
            if r["accuracy"] is None:
                lines.append(f"| {r['candidate']} | | | | | | | {r['status']} | {r['note']} |")
                continue
            dlo, dhi = r["drop_interval_pt"]
            mark = " **(chosen)**" if r["candidate"] == self.chosen else ""
            lines.append(f"| {r['candidate']}{mark} | {100 * r['accuracy']:.2f} | {r['drop_pt']:+.2f} "
                         f"({dlo:+.2f} to {dhi:+.2f}) | {r['paired_p']:.2g} | "
                         f"{r['latency_ms']:.2f} ± {r['latency_spread_ms']:.2f} | {r['speedup']:.2f} | "
                         f"{r['bytes'] / 1000:,.0f} | {'yes' if r['status'] == 'front' else ''} | "
                         f"{'yes' if r['within_budget'] else 'no'} |")
        s = self.setting
        load = "not recorded" if s["load_average"] is None else f"{s['load_average']:.1f}"
        lines += ["", self.message, "",
                  f"runtime {s['runtime']}, batch {s['batch_size']}, {s['threads']} threads, "
                  f"load average {load}, A/A control {s['aa_ratio']:.3f}, "
                  f"search {s['search_seconds']:.1f} s"]
        return "\n".join(lines)

    def plot(self, ax: Any = None, peers: Optional[dict] = None) -> Any:
        """Accuracy against latency: every candidate, the front joined, the chosen one ringed, ``peers``
        (``{name: (latency_ms, accuracy)}``, e.g. NNCF's int8) as single points on the same axes.

        Returns the Matplotlib axes.

        Example:
            >>> ax = out.plot(peers={"NNCF int8": (1.46, 0.9825)})                    # doctest: +SKIP
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 4))
        done = [r for r in self.candidates if r["accuracy"] is not None]
        ax.scatter([r["latency_ms"] for r in done], [100 * r["accuracy"] for r in done], s=18, c="0.6",
                   label="candidates")
        front = sorted(self.front, key=lambda r: r["latency_ms"])
        ax.plot([r["latency_ms"] for r in front], [100 * r["accuracy"] for r in front], "o-", c="C0",
                label="Pareto front")
        chosen = next(r for r in done if r["candidate"] == self.chosen)
        ax.scatter([chosen["latency_ms"]], [100 * chosen["accuracy"]], s=160, facecolors="none",
                   edgecolors="C3", linewidths=2, label=f"chosen: {self.chosen}")
        for i, (name, (ms, acc)) in enumerate((peers or {}).items()):
            ax.scatter([ms], [100 * acc], marker="s", s=50, c=f"C{i + 1}", label=name)
        ax.set_xlabel(f"latency, ms (batch {self.setting['batch_size']}, {self.setting['runtime']})")
        ax.set_ylabel("accuracy, %")
        ax.legend()
        return ax

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.to_markdown())}</pre>"

    def __str__(self) -> str:
        return self.to_markdown()


# --------------------------------------------------------------------------- checks
def _check_grid(prune: Sequence[float], lowrank: Sequence[Any], int8: Sequence[bool]) -> tuple:
    if isinstance(prune, (int, float)) or not len(prune):
        raise ValueError(f"prune must be a non-empty sequence of ratios in [0, 1), got {prune!r}")
    for r in prune:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0.0 <= r < 1.0:
            raise ValueError(f"prune: each ratio must be in [0, 1), got {r!r}")
    if isinstance(lowrank, LowRankConfig) or not len(lowrank):
        raise ValueError("lowrank must be a non-empty sequence of None and low-rank configs, e.g. "
                         "(None, cl.Tucker(energy=0.9))")
    for c in lowrank:
        if c is not None and not isinstance(c, LowRankConfig):
            raise TypeError(f"lowrank: each entry must be None or a low-rank config (SVD, Tucker, CP), "
                            f"got {type(c).__name__}")
    if isinstance(int8, bool) or not len(int8) or any(not isinstance(q, bool) for q in int8):
        raise ValueError(f"int8 must be a non-empty sequence of True/False, got {int8!r}")
    return tuple(dict.fromkeys(float(r) for r in prune)), tuple(lowrank), tuple(dict.fromkeys(int8))


def _check_xy(data: Any, argument: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{argument} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or not len(x):
        raise ValueError(f"{argument} must be (x, y) with one integer label per sample, got shapes "
                         f"{x.shape} and {y.shape}")
    return x, y


def _positive_int(name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


# --------------------------------------------------------------------------- building candidates
def _label(ratio: float, lowrank: Any, tuned: bool, int8: bool, epochs: int) -> str:
    parts = []
    if ratio:
        parts.append(f"Structured({ratio:g})")
    if lowrank is not None:
        parts.append(repr(lowrank))
    if tuned:
        parts.append(f"distilled {epochs} ep")
    parts.append("int8" if int8 else ("fp32, BN folded" if parts else "original, BN folded"))
    return " + ".join(parts)


class _TeacherLogits:
    """The original's logits on the fine-tuning inputs, computed on the first call and kept: a search
    whose branches all come from the cache never pays for them."""

    def __init__(self, model: Any, framework: str, x: np.ndarray) -> None:
        self.model, self.framework, self.x, self.logits = model, framework, x, None

    def __call__(self) -> np.ndarray:
        if self.logits is None:
            self.logits = np.asarray(backend(self.framework, "train").predict(self.model, self.x))
        return self.logits


def _settings(tune: Optional[dict]) -> dict:
    """The fine-tuning settings that name a result (not the data, the teacher's logits or the bar)."""
    return {k: v for k, v in (tune or {}).items() if k not in ("teacher", "data", "progress_bar")}


def _fingerprint(model: Any, tmp: str) -> str:
    """SHA-256 of the model's packed ``.clz`` bytes: the same weights give the same key."""
    path = os.path.join(tmp, "fingerprint.clz")
    api.save(model, path)
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    os.remove(path)
    return digest


def _branch(model: Any, framework: str, ratio: float, lowrank: Any, tune: Optional[dict],
            cache: Optional[str], key: str, recalibration: np.ndarray) -> tuple[Any, bool]:
    """The float model of one branch (pruned, decomposed, BatchNorm statistics re-estimated on
    ``recalibration``, distilled), from ``cache`` when it holds it."""
    path = None
    if cache is not None:
        settings = {"ratio": ratio, "lowrank": lowrank.to_dict() if lowrank is not None else None,
                    "tune": _settings(tune), "recalibration": len(recalibration)}
        name = hashlib.sha256((key + json.dumps(settings, sort_keys=True)).encode()).hexdigest()[:24]
        path = os.path.join(cache, f"{framework}_{name}.clz")
        if os.path.isfile(path):
            return api.load(path), tune is not None
    m = model
    if ratio:
        m = api.prune(m, Structured(ratio=ratio))
    if lowrank is not None:
        m = api.decompose(m, lowrank)
    if m is not model:  # the pruned layers no longer match the original's BatchNorm statistics
        backend(framework, "train").recalibrate_batchnorm(m, recalibration)
    tuned = tune is not None and m is not model
    if tuned:
        kwargs = dict(tune)
        data = kwargs.pop("data")
        kwargs["teacher"] = kwargs["teacher"]()
        backend(framework, "train").fit(m, data, **kwargs)
    if path is not None and m is not model:
        os.makedirs(cache, exist_ok=True)
        atomic_write(path, lambda tmp: api.save(m, tmp))
    return m, tuned


def _deploy(model: Any, framework: str, runtime: str, int8: bool, cal: np.ndarray, example: np.ndarray,
            path: str, threads: Optional[int]) -> tuple[Any, Any, int]:
    """``(framework model, deployed model, bytes of the deployed file)`` of one candidate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if int8:
            if framework == "keras" and runtime != "litert":
                raise ValueError(f"Keras int8 models deploy to LiteRT only, not {runtime!r}")
            config = Int8Static(float_output=True) if framework == "torch" else Int8Static()
            m = api.quantize(model, config, calibration_data=cal)
        else:
            m = api.fold_batchnorm(model)
        if runtime == "torch":
            return m, m, api.save(m, path + ".clz")
        if framework == "keras" and runtime == "litert" and int8:  # quantize already made the LiteRT model
            return m, m, len(m.flatbuffer)
        file = path + RUNTIME_SUFFIX[runtime]
        kwargs: dict = {"example_input": example[:1]} if framework == "torch" else {}
        if framework == "torch" and int8:
            kwargs["full_range"] = True
        if threads is not None and runtime != "litert":
            kwargs["threads"] = threads
        deployed = export_model(m, file, runtime, **kwargs)
    files = [file] + ([os.path.splitext(file)[0] + ".bin"] if runtime == "openvino" else [])
    return m, deployed, sum(os.path.getsize(f) for f in files if os.path.exists(f))


def _reference(model: Any, framework: str, runtime: str, example: np.ndarray, tmp: str,
               threads: Optional[int]) -> tuple[Any, Any]:
    """The original in the runtime as fp32 (the timing baseline), and a second copy of it (A/A control)."""
    if runtime == "torch":
        return model, copy.deepcopy(model)
    file = os.path.join(tmp, "original" + RUNTIME_SUFFIX[runtime])
    kwargs: dict = {"example_input": example[:1]} if framework == "torch" else {}
    if threads is not None and runtime != "litert":
        kwargs["threads"] = threads
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = export_model(model, file, runtime, **kwargs)
    if runtime == "litert":
        twin = export_model(model, os.path.join(tmp, "original_twin.tflite"), runtime)
    else:
        twin = load_runtime(file, runtime=runtime, **({"threads": threads} if threads is not None else {}))
    return ref, twin


def _correct(deployed: Any, framework: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    logits = backend(framework, "train").predict(deployed, x)
    return stats.correctness(y, np.asarray(logits))


# --------------------------------------------------------------------------- the search
def optimize(model: Any, data: Any, budget: Budget = Budget(), runtime: Optional[str] = None, *,
             train_data: Any = None, calibration_data: Any = None,
             prune: Sequence[float] = (0.0, 0.25, 0.5), lowrank: Sequence[Any] = (None,),
             int8: Sequence[bool] = (False, True), epochs: int = 1, lr: float = 1e-3,
             lr_schedule: str = "step",
             finetune_batch_size: int = 64, finetune_samples: Optional[int] = None, batch_size: int = 32,
             pairs: int = 100, threads: Optional[int] = None, seed: int = 0,
             cache_dir: Union[str, os.PathLike, None] = None,
             progress_bar: Optional[bool] = None) -> Optimized:
    """Search stacked recipes for ``budget``, measured in ``runtime``; the chosen model and the Pareto front.

    Args:
        model: a PyTorch or Keras classifier (never changed).
        data: ``(x, y)`` test data: every candidate's accuracy, and the timed batch ``x[:batch_size]``.
        budget: :class:`~compresslib.configs.Budget` (latency, size and accuracy-drop limits).
        runtime: where the model will run: ``"openvino"``, ``"onnxruntime"`` or ``"torch"`` (eager) for
            PyTorch, ``"litert"`` (or float-only ``"onnxruntime"``/``"openvino"``) for Keras. Default:
            ``"onnxruntime"`` for PyTorch, ``"litert"`` for Keras.
        train_data: ``(x, y)`` for the distillation fine-tunes (none without it: pruned candidates are
            then measured as pruned, and their rows say so).
        calibration_data: inputs for int8 (default: the first 256 training inputs, else test inputs).
        prune, lowrank, int8: the grid (see the module docstring).
        epochs, lr, lr_schedule, finetune_batch_size, finetune_samples, seed: each fine-tune (Adam,
            distillation from the original's logits; ``lr_schedule="step"``: ×0.3 after 60 % of the epochs,
            ×0.1 after 85 %); ``finetune_samples``: only the first that many training samples. Measured
            on the Fashion ResNet-20 (BatchNorm re-estimated, one epoch on 2,048 images, 1,000 test
            images): Structured(0.25) 87.1 % at lr 3e-4 and 81.1 % at 1e-3, Structured(0.5) 59.1 % and
            72.5 %: no single constant wins, so the default is 1e-3 with the step decay, which ends a
            fine-tune of 3 epochs or more at 3e-4 and below.
        batch_size: the timed batch; pairs: single-call pairs of the paired timer per candidate.
        threads: the runtimes' threads (default: all cores).
        cache_dir: keep each branch's fine-tuned float model here (``.clz``) and reuse it next time.
        progress_bar: a bar over the branches (default: only in an interactive terminal).

    Returns:
        :class:`Optimized` (``.model``, ``.deployed``, ``.front``, ``.candidates``, ``.report``, ...).
        When nothing meets the budget a ``UserWarning`` says so, and the closest candidate is returned.

    Example:
        >>> out = cl.optimize(model, test, cl.Budget(latency_ms=2.0, max_drop=0.5), runtime="openvino",
        ...                   train_data=train, cache_dir="~/.cache/opt")                 # doctest: +SKIP
        >>> out.chosen, out.feasible, out.report.latency_ms                               # doctest: +SKIP
    """
    framework = framework_of(model)
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a compresslib.Budget, got {type(budget).__name__}")
    runtime = DEFAULT_RUNTIME[framework] if runtime is None else runtime
    if runtime not in RUNTIMES[framework]:
        raise ValueError(f"runtime must be one of {RUNTIMES[framework]} for a {framework} model, "
                         f"got {runtime!r}")
    x, y = _check_xy(data, "data")
    prune, lowrank, int8 = _check_grid(prune, lowrank, int8)
    if framework == "keras" and runtime != "litert" and True in int8:
        int8 = tuple(q for q in int8 if not q) or (False,)
        warnings.warn(f"int8: Keras int8 models deploy to LiteRT only; {runtime!r} gets fp32 candidates",
                      stacklevel=2)
    for name, value in (("epochs", epochs), ("finetune_batch_size", finetune_batch_size),
                        ("batch_size", batch_size), ("pairs", pairs)):
        _positive_int(name, value, 0 if name == "epochs" else 1)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if finetune_samples is not None:
        _positive_int("finetune_samples", finetune_samples)
    if lr_schedule not in ("constant", "step"):
        raise ValueError(f"lr_schedule must be 'constant' or 'step', got {lr_schedule!r}")
    train = _check_xy(train_data, "train_data") if train_data is not None else None
    cal = np.asarray(calibration_data) if calibration_data is not None else (
        train[0] if train is not None else x)[:CALIBRATION]
    example = np.ascontiguousarray(x[:batch_size])
    recalibration = (train[0] if train is not None else cal)[:RECALIBRATION]
    start = time.perf_counter()
    load_before = load_average()

    # a private copy: evaluating puts a torch model in eval mode, and the caller's model keeps its own
    base = copy.deepcopy(model).eval() if framework == "torch" else model
    workdir = tempfile.TemporaryDirectory(prefix="compresslib-optimize-")
    tmp = workdir.name
    reference_correct = _correct(base, framework, x, y)
    tune = None
    if train is not None and epochs > 0:
        tx, ty = (train[0][:finetune_samples], train[1][:finetune_samples]) if finetune_samples else train
        tune = {"data": (tx, ty), "epochs": epochs, "lr": float(lr), "lr_schedule": lr_schedule,
                "batch_size": finetune_batch_size, "seed": seed, "progress_bar": False,
                # the original's logits, computed once and only when a branch is not in the cache
                "teacher": _TeacherLogits(base, framework, tx)}
    key = ""
    if cache_dir is not None:  # the original's bytes and the training samples name a branch's cached file
        digest = hashlib.sha256()
        for arr in (tune["data"] if tune else ()):
            digest.update(np.ascontiguousarray(arr).tobytes())
        key = _fingerprint(base, tmp) + digest.hexdigest()
    cache = os.path.expanduser(os.fspath(cache_dir)) if cache_dir is not None else None

    rows: list[dict] = []
    models: dict[str, tuple[Any, Any]] = {}
    branches = [(r, lr_cfg) for r in prune for lr_cfg in lowrank]
    for i in progress(range(len(branches)), progress_bar, desc="optimize"):
        ratio, lr_cfg = branches[i]
        t0 = time.perf_counter()
        try:
            float_model, tuned = _branch(base, framework, ratio, lr_cfg, tune, cache, key, recalibration)
            error = None
        except (ValueError, TypeError, ImportError, RuntimeError) as exc:
            float_model, tuned, error = None, False, f"{type(exc).__name__}: {str(exc).strip()[:300]}"
        branch_seconds = time.perf_counter() - t0
        for q in int8:
            label = _label(ratio, lr_cfg, tuned, q, epochs)
            row = {k: None for k in ROW_KEYS}
            row.update(candidate=label, prune=ratio, lowrank=repr(lr_cfg) if lr_cfg is not None else None,
                       int8=q, finetuned=tuned, note="")
            if (ratio or lr_cfg is not None) and not tuned and error is None:
                row["note"] = "not fine-tuned (no train_data)" if tune is None else ""
            rows.append(row)
            if error is not None:
                row.update(status="failed", note=error)
                continue
            t1 = time.perf_counter()
            try:
                m, deployed, nbytes = _deploy(float_model, framework, runtime, q, cal, example,
                                              os.path.join(tmp, f"c{len(rows)}"), threads)
                correct = _correct(deployed, framework, x, y)
            except (ValueError, TypeError, ImportError, RuntimeError) as exc:
                row.update(status="failed", note=f"{type(exc).__name__}: {str(exc).strip()[:300]}")
                continue
            paired = stats.paired(None, reference_correct, correct)
            lo, hi = paired.difference_interval_pt
            row.update(accuracy=float(correct.mean()), accuracy_interval=list(paired.interval_b),
                       drop_pt=0.0 - paired.difference_pt, drop_interval_pt=[0.0 - hi, 0.0 - lo],
                       paired_p=paired.p_value, paired_verdict=paired.verdict, bytes=int(nbytes),
                       build_seconds=round(branch_seconds * (q == int8[0]) + time.perf_counter() - t1, 2))
            models[label] = (m, deployed)

    measured = [r for r in rows if r["accuracy"] is not None]
    if not measured:
        raise ValueError("model: no candidate could be built and deployed; "
                         + "; ".join(f"{r['candidate']}: {r['note']}" for r in rows))
    # timing: every candidate against the original in the same runtime, single calls alternated in pairs
    timing_start = time.perf_counter()
    ref, twin = _reference(base, framework, runtime, example, tmp, threads)
    ref_bytes = _reference_bytes(base, framework, runtime, tmp, ref)
    load_during = load_average()
    aa = paired_ratio(ref, twin, example, pairs=pairs)
    for r in measured:
        t = paired_ratio(ref, models[r["candidate"]][1], example, pairs=pairs)
        r.update(latency_ms=t["b_ms"], latency_spread_ms=t["b_spread_ms"], speedup=1.0 / t["ratio"],
                 size_ratio=ref_bytes / r["bytes"] if r["bytes"] else None)
    load_after = load_average()
    timing_seconds = time.perf_counter() - timing_start

    on_front = pareto.front(measured)
    for j, r in enumerate(measured):
        r["status"] = "front" if j in on_front else "dominated"
        r["excess"] = pareto.excess(r, budget.latency_ms, budget.size_bytes, budget.max_drop)
        r["within_budget"] = not r["excess"]
    front_rows = [measured[j] for j in on_front]
    pick, feasible, message = pareto.choose(front_rows, budget.latency_ms, budget.size_bytes, budget.max_drop)
    chosen = front_rows[pick]
    if not feasible:
        warnings.warn(message, UserWarning, stacklevel=2)
    chosen_model, chosen_deployed = models[chosen["candidate"]]

    original = api.measure(base, data=(x, y), name="original", latency=False, batch_size=batch_size)
    report = api.measure(chosen_deployed, data=(x, y), name=chosen["candidate"], latency=False,
                         batch_size=batch_size)
    report.latency_ms, report.latency_spread_ms = chosen["latency_ms"], chosen["latency_spread_ms"]
    report.latency_runs, report.load_average = pairs, load_during
    report.batch_size = int(example.shape[0])
    setting = {"framework": framework, "runtime": runtime, "budget": budget.to_dict(),
               "grid": {"prune": list(prune), "lowrank": [repr(c) for c in lowrank], "int8": list(int8)},
               "finetune": _settings(tune) | ({"samples": len(tune["data"][0])} if tune else {}),
               "batch_size": int(example.shape[0]), "pairs": pairs, "threads": getattr(ref, "threads", None)
               or threads or (os.cpu_count() or 1), "test_samples": int(len(y)),
               "reference_ms": aa["a_ms"], "reference_bytes": ref_bytes, "aa_ratio": aa["ratio"],
               "load_average": load_during, "load_average_before": load_before,
               "load_average_after": load_after,
               "timing_seconds": round(timing_seconds, 2),
               "search_seconds": round(time.perf_counter() - start, 2), "cached": cache is not None}
    return Optimized(model=chosen_model, deployed=chosen_deployed, chosen=chosen["candidate"],
                     feasible=feasible, message=message, candidates=rows, front=front_rows, report=report,
                     comparison=compare([original, report]), setting=setting, workdir=workdir)


def _reference_bytes(base: Any, framework: str, runtime: str, tmp: str, ref: Any) -> int:
    """Bytes of the original as deployed fp32 (what ``size_ratio`` divides)."""
    if runtime == "torch":
        return api.save(base, os.path.join(tmp, "original.clz"))
    if runtime == "litert":
        return len(ref.flatbuffer)
    files = ref.files() if hasattr(ref, "files") else [ref.path]
    return sum(os.path.getsize(f) for f in files)


__all__ = ["optimize", "Optimized", "RUNTIMES"]
