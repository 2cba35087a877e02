"""``cl.quantize(model, Auto(candidates=[...], budget=...), calibration_data=x)``: the fastest config that agrees.

What it does, on the model's own device and with the data's batch size:

1. The data is moved to the model's device **once** (each candidate gets it once more in its
   own float dtype), so no timed call pays a host-to-device copy.
2. Each candidate config is applied to a copy of the model through its registered handler. A
   candidate the model, device or installed packages cannot take (``ValueError``, ``TypeError``,
   ``ImportError``, e.g. ``Float8Dynamic`` on a CPU model) is listed as *refused* with the
   reason; one that breaks while converting or running is listed as *failed*.
3. Agreement with the unquantized model on all of the data, through the model's first
   output tensor: mean cosine similarity per sample, or top-1 agreement (``metric="top1"``,
   the accuracy against the unquantized model's predictions).
4. The input model and every candidate within ``budget`` are timed in interleaved rounds
   (each a few calls in turn, over and over: the drift of a shared machine falls on all of
   them alike), CUDA synchronised, optionally under ``torch.compile``.
5. The fastest at least ``min_speedup`` times faster than the input is returned; if none,
   an unchanged copy of the input. Either way ``result.compresslib_auto`` is an
   :class:`~compresslib.core.selection.AutoTable` (``.rows``, ``.chosen``, ``.reason``,
   ``.to_markdown()``; shown as a table in Jupyter).

The returned model saves like the chosen candidate's models (a CPU int8 model does; a GPU
kernel model is refused by :func:`compresslib.save` with what to do instead).

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10))
    >>> x = torch.randn(64, 512)
    >>> q = cl.quantize(m, cl.Auto([cl.Float16(), cl.Float8Dynamic()], budget=0.99, rounds=2, runs=3),
    ...                 calibration_data=x)
    >>> [r["status"] for r in q.compresslib_auto.rows][1]        # FP8 needs a CUDA GPU
    'refused'
    >>> q.compresslib_auto.chosen is None or q.compresslib_auto.chosen == "Float16()"
    True
"""
from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from compresslib import registry
from compresslib.configs import Auto, QuantConfig
from compresslib.core.measure import latency_stats, load_average
from compresslib.core.selection import AutoTable, agreement, choose
from compresslib.torch import inputs
from compresslib.torch.measure import time_model


def _first_output(model: nn.Module, call: tuple) -> torch.Tensor:
    args, kwargs = call
    return inputs.logits(model(*args, **kwargs))


def _outputs(model: nn.Module, batches: list) -> Any:
    """The model's first output tensor on every batch, concatenated on the host as float64 NumPy."""
    import numpy as np

    dtype = inputs.float_dtype(model)
    device = inputs.model_device(model)
    with torch.inference_mode():
        outs = [_first_output(model, inputs.to_call(b, device, dtype)).detach().float().cpu().numpy() for b in batches]
    return np.concatenate([o.reshape(o.shape[0], -1) if o.ndim else o.reshape(1, 1) for o in outs])


def _example(batch: Any, model: nn.Module) -> Any:
    """One timing batch in the form ``time_model`` takes, on the model's device and in its float dtype."""
    args, kwargs = inputs.to_call(batch, inputs.model_device(model), inputs.float_dtype(model))
    return kwargs if kwargs else (args[0] if len(args) == 1 else args)


def _apply(base: nn.Module, candidate: QuantConfig, data: Any, device: torch.device) -> tuple[Any, str, str]:
    """``(model or None, status, note)`` for one candidate."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            q = registry.handler("quantize", "torch", candidate)(base, candidate, calibration_data=data)
        except (ValueError, TypeError, ImportError) as exc:
            return None, "refused", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a kernel or library error: listed, not raised
            return None, "failed", f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    where = inputs.model_device(q)
    if where != device:
        return None, "refused", f"the quantized model runs on {where}, the input on {device}"
    notes = sorted({str(w.message).splitlines()[0][:200] for w in caught if issubclass(w.category, UserWarning)})
    return q, "", "; ".join(notes)


def _timed(models: dict, examples: dict, config: Auto, rows: list) -> dict:
    """Interleaved timing: ``{label: [ms, ...]}``. A candidate that raises (e.g. while compiling) is marked
    failed and dropped; the input raising is a ``ValueError``."""
    times: dict = {label: [] for label in models}
    for round_ in range(-1, config.rounds):  # round -1: every model warmed up (first calls, compiling), not kept
        for label in list(models):
            try:
                t = time_model(models[label], examples[label], runs=1 if round_ < 0 else config.runs,
                               warmup=config.warmup if round_ < 0 else 1, max_seconds=30.0)
                if round_ >= 0:
                    times[label] += t
            except Exception as exc:  # noqa: BLE001
                if label == "input":
                    raise ValueError(f"model: cannot be timed on the data ({type(exc).__name__}: {exc})") from None
                row = next(r for r in rows if r["candidate"] == label)
                row["status"], row["note"] = "failed", f"while timing: {type(exc).__name__}: {str(exc).strip()[:300]}"
                del models[label], times[label]
    return times


@registry.register("quantize", "torch", Auto)
def quantize_auto(model: nn.Module, config: Auto, *, calibration_data: Any = None) -> nn.Module:
    """The fastest candidate within the agreement budget, or an unchanged copy; the table in ``.compresslib_auto``.

    ``calibration_data``: input batches (a tensor, a tuple/dict of tensors, or an iterable of
    batches such as a DataLoader). The first batch (cut to ``config.batch_size`` rows when
    given) is the timed one; all of them measure agreement and calibrate static candidates.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if calibration_data is None:
        raise ValueError("calibration_data: Auto needs input batches to compare and time the candidates on "
                         "(the batch you serve: e.g. calibration_data=x[:64])")
    base = copy.deepcopy(model).eval()
    device = inputs.model_device(base)
    size = config.batch_size or 2 ** 31
    batches = list(inputs.iter_batches(calibration_data, size, base, "calibration_data"))
    timing = batches[0]
    if config.batch_size and inputs.is_batched_example(timing):
        timing = inputs.take(timing, 0, config.batch_size)
    on_device = [_to_device(b, device) for b in batches]  # moved once
    try:
        reference = _outputs(base, on_device)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"calibration_data: the model cannot run on {inputs.describe(batches[0])}: "
                         f"{type(exc).__name__}: {exc}") from None

    rows, kept = [], {}
    for candidate in config.candidates:
        label = repr(candidate)
        q, status, note = _apply(base, candidate, calibration_data, device)
        row = {"candidate": label, "config": candidate.to_dict(), "status": status or None, "agreement": None,
               "latency_ms": None, "spread_ms": None, "speedup": None, "note": note}
        rows.append(row)
        if q is None:
            continue
        try:
            row["agreement"] = agreement(reference, _outputs(q, on_device), config.metric)
        except Exception as exc:  # noqa: BLE001 - e.g. a kernel that cannot take this batch
            row["status"], row["note"] = "failed", f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            continue
        if row["agreement"] == row["agreement"] and row["agreement"] >= config.budget:
            kept[label] = q

    models = {"input": base, **kept}
    if config.compile:
        models = _compiled(models)
    examples = {label: _example(timing, m) for label, m in models.items()}
    load = load_average()
    with _recompile_room(len(models) if config.compile else 0):
        times = _timed(models, examples, config, rows)
    input_ms, input_spread = latency_stats(times.pop("input"))
    for row in rows:
        if row["candidate"] in times:
            row["latency_ms"], row["spread_ms"] = latency_stats(times[row["candidate"]])
    chosen = choose(rows, input_ms, config.budget, config.min_speedup)
    setting = {"metric": config.metric, "budget": config.budget, "min_speedup": config.min_speedup,
               "input_ms": input_ms, "input_spread_ms": input_spread, "device": str(device),
               "batch_size": inputs.leading_size(timing) if inputs.is_batched_example(timing) else None,
               "rounds": config.rounds, "runs": config.runs, "compile": config.compile,
               "threads": torch.get_num_threads(), "load_average": load,
               "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    result = kept[chosen] if chosen is not None else copy.deepcopy(model)
    result.compresslib_auto = AutoTable(rows, chosen, setting)
    return result


def _to_device(batch: Any, device: torch.device) -> Any:
    """The batch with its tensors on ``device`` (same structure; NumPy arrays become tensors)."""
    args, kwargs = inputs.to_call(batch, device)
    return kwargs if kwargs else args


def _recompile_room(n_models: int):
    """Room in dynamo's per-code cache for ``n_models`` more compiled models sharing one ``forward``.

    Models of one class share ``forward``'s code object, and past ``cache_size_limit`` (8) entries
    dynamo silently runs the rest eagerly, which would time them uncompiled.
    """
    import contextlib

    if not n_models:
        return contextlib.nullcontext()
    import torch._dynamo

    limit = torch._dynamo.config.cache_size_limit
    return torch._dynamo.config.patch(cache_size_limit=limit + n_models)


def _compiled(models: dict) -> dict:
    """Each model under ``torch.compile`` (compiled on its first call, inside the timing warm-up)."""
    return {label: torch.compile(m) for label, m in models.items()}


__all__ = ["quantize_auto"]
