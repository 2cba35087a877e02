"""Shared pieces of the bench scripts: argument parsing, rows of the common schema, output.

Every bench script prints a markdown table and, with ``--json PATH``, writes
``{"machine": {...}, "rows": [...]}`` where each row has ``framework, model,
method, device, params, bytes, accuracy, latency_ms`` and, against the fp32
baseline measured in the same run, ``size_ratio, accuracy_drop_pt, speedup``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any, Iterable, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CI", "1")  # no progress bars
import torch  # noqa: E402,F401  (torch before tensorflow)

from compresslib.deploy.peers import nncf_int8, ort_quantize_static  # noqa: E402,F401  (the peers)
from compresslib.report import Report  # noqa: E402

# --quick: a smoke run that checks a bench still runs end to end (CI runs every bench so); its figures mean nothing
QUICK_TRAIN, QUICK_TEST, QUICK_RUNS = 512, 256, 3

BASE_KEYS = ("framework", "model", "method", "device", "params", "bytes", "accuracy", "latency_ms")


def parse_args(description: str, argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument("--frameworks", default="torch,keras", help="comma-separated: torch,keras")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per latency measurement")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where torch models run (cuda: torch only, needs a GPU)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a smoke run (seconds): {QUICK_TRAIN} training and {QUICK_TEST} test images, "
                             f"at most {QUICK_RUNS} timed runs, one epoch, the shipped models only")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, QUICK_RUNS)
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    for f in args.frameworks:
        if f not in ("torch", "keras"):
            parser.error(f"--frameworks: unknown framework {f!r}")
    if args.device == "cuda":
        if args.frameworks != ["torch"]:
            parser.error("--device cuda: torch only; add --frameworks torch")
        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA device here")
    return args


def mnist(framework: str, quick: bool = False) -> tuple:
    """``(train, test)`` MNIST in ``framework``'s layout; ``quick``: the first 512 and 256 images only.

    Example:
        >>> train, test = mnist("torch", quick=True)
        >>> train[0].shape, test[0].shape
        ((512, 1, 28, 28), (256, 1, 28, 28))
    """
    import compresslib as cl

    train, test = (cl.datasets.load_mnist(s, layout=framework) for s in ("train", "test"))
    if quick:
        train = type(train)(train[0][:QUICK_TRAIN], train[1][:QUICK_TRAIN])
        test = type(test)(test[0][:QUICK_TEST], test[1][:QUICK_TEST])
    return train, test


def rounds_for(args: argparse.Namespace) -> dict:
    """Interleaved-timing settings for ``--runs`` calls per model: 15 calls a round; one short round when quick."""
    if getattr(args, "quick", False):
        return {"rounds": 1, "runs": args.runs}
    return {"rounds": max(3, args.runs // 15), "runs": 15}


def to_device(model: Any, device: str) -> Any:
    """``model`` on ``device`` for a torch model (a Keras model is returned as it is: it runs on CPU here).

    Data needs no moving: ``measure``/``evaluate`` feed each batch to the model's own device.
    """
    if device != "cpu" and isinstance(model, torch.nn.Module):
        return model.to(device)
    return model


def row(report: Report, model: str, method: str, baseline: Optional[Report] = None, **extra: Any) -> dict:
    """One row of the shared schema from a Report (ratios against ``baseline`` when given).

    ``bytes`` is the packed size when the report has one, else the native file.
    """
    size = report.packed_bytes if report.packed_bytes is not None else report.file_bytes
    out = {
        "framework": report.framework, "model": model, "method": method, "device": report.device,
        "params": report.params, "nonzero_params": report.nonzero_params, "bytes": size,
        "file_format": report.file_format, "accuracy": report.accuracy, "latency_ms": report.latency_ms,
        "latency_spread_ms": report.latency_spread_ms, "batch_size": report.batch_size, "threads": report.threads,
        "macs": report.macs, "load_average": report.load_average,
    }
    if baseline is not None:
        base_size = baseline.packed_bytes if baseline.packed_bytes is not None else baseline.file_bytes
        out["size_ratio"] = base_size / size
        out["speedup"] = baseline.latency_ms / report.latency_ms if baseline.latency_ms and report.latency_ms else None
        out["accuracy_drop_pt"] = (100 * (baseline.accuracy - report.accuracy)
                                   if baseline.accuracy is not None and report.accuracy is not None else None)
    out.update(extra)
    return out


def interleaved_latency(framework: str, models: dict, example: Any, rounds: int = 7, runs: int = 15) -> dict:
    """Median milliseconds per model, timed in interleaved rounds: :func:`compresslib.timing.interleaved_latency`.

    ``framework`` is kept for the benches' old call shape; each model's own kind decides how it is called.
    """
    from compresslib.timing import interleaved_latency as timed

    return timed(models, example, rounds=rounds, runs=runs)


def retime(rows: list[dict], framework: str, model: str, models: dict, example: Any, baseline: str = "fp32",
           runtime_baselines: Optional[dict] = None, **kwargs: Any) -> dict:
    """Replace ``latency_ms`` and ``speedup`` of the ``framework``/``model`` rows whose method is a key
    of ``models`` by :func:`interleaved_latency` figures (speedup against the ``baseline`` method's model).

    ``runtime_baselines`` maps a method to the method of the same runtime's fp32 model
    (e.g. ``{"litert_static": "litert_fp32"}``); those rows also get ``speedup_vs_runtime_fp32``.
    Rows not in ``runtime_baselines`` get it against ``baseline`` (they run in the framework itself).
    Returns the medians.
    """
    medians = interleaved_latency(framework, models, example, **kwargs)
    runtime_baselines = runtime_baselines or {}
    for r in rows:
        if r["framework"] == framework and r["model"] == model and r["method"] in medians:
            r["latency_ms"] = medians[r["method"]]
            r["speedup"] = medians[baseline] / medians[r["method"]]
            own = runtime_baselines.get(r["method"], baseline)
            r["speedup_vs_runtime_fp32"] = medians[own] / medians[r["method"]] if own in medians else None
            r["latency_spread_ms"] = None
            r["timing"] = "interleaved"
    return medians


def machine() -> dict:
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)) and all(isinstance(x, float) for x in v):
        return " to ".join(f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}" for x in v)
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def markdown(rows: Iterable[dict], keys: Optional[list[str]] = None) -> str:
    rows = list(rows)
    keys = keys or [k for k in list(BASE_KEYS) + ["size_ratio", "speedup", "speedup_vs_runtime_fp32",
                                                  "accuracy_drop_pt", "sparsity"]
                    if any(k in r for r in rows)]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def emit(rows: list[dict], json_path: Optional[str], keys: Optional[list[str]] = None) -> None:
    """Print the table; write JSON when asked. Warns when the machine was busy while timing."""
    print(markdown(rows, keys))
    loads = [r["load_average"] for r in rows if r.get("load_average") is not None]
    cpus = os.cpu_count() or 1
    if loads and max(loads) > 0.75 * cpus + 1:
        print(f"warning: load average reached {max(loads):.1f} on {cpus} CPUs while timing: "
              "other processes competed for the cores, so latencies are not trustworthy", file=sys.stderr)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump({"machine": machine(), "rows": rows}, fh, indent=2)
        print(f"wrote {json_path}", file=sys.stderr)


def write_json(doc: dict, path: Optional[str]) -> None:
    """Write a bench's whole document (rows, machine, targets...) to ``path`` when given, and say so on stderr."""
    if path:
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)
        print(f"wrote {path}", file=sys.stderr)
