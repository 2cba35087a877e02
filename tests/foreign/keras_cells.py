"""The Keras cells of the support matrix: one function per (verb, config), and the Keras judging helpers.

The cell names are the PyTorch ones (:mod:`tests.foreign.torch_cells`); where Keras takes a
different form of the same config it says so (``WeightOnly(4)`` is Keras's own int4, which
has no groups). A snapshot of the input covers every variable's value, each layer's and
variable's ``trainable`` flag, each layer's dtype policy, and the model's config (or, for a
model without ``get_config``, its layer names and classes), so a verb that touches any of
them is caught as *mutated*.

Example:
    >>> from tests.foreign import keras_zoo
    >>> run(keras_zoo.case("keras_transformer"), "Magnitude").status   # doctest: +SKIP
    'works'
"""
from __future__ import annotations

import functools
import json
import warnings
from typing import Any, Callable

import keras
import numpy as np

import compresslib as cl

from .keras_zoo import Case, case as zoo_case
from .matrix import Outcome, judge


def cells(case: Case) -> dict[str, Callable[[Any], Any]]:
    ex, cal = case.example, case.calibration
    return {
        "measure": lambda m: cl.measure(m, example_input=ex, latency=False),
        "Int8Dynamic": lambda m: cl.quantize(m, cl.Int8Dynamic()),
        "Int8Static": lambda m: cl.quantize(m, cl.Int8Static(), calibration_data=cal),
        "WeightOnly(8)": lambda m: cl.quantize(m, cl.WeightOnly(8)),
        "WeightOnly(4)": lambda m: cl.quantize(m, cl.WeightOnly(4)),
        "Float16": lambda m: cl.quantize(m, cl.Float16()),
        "BFloat16": lambda m: cl.quantize(m, cl.BFloat16()),
        "QAT": lambda m: cl.convert(cl.prepare_qat(m, cl.QAT(), example_input=ex)),
        "Magnitude": lambda m: cl.prune(m, cl.Magnitude(0.5)),
        "NM(2:4)": lambda m: cl.prune(m, cl.NM(2, 4)),
        "Structured": lambda m: cl.prune(m, cl.Structured(0.3), example_input=ex),
        "SVD": lambda m: cl.decompose(m, cl.SVD(ratio=0.5)),
        "Tucker": lambda m: cl.decompose(m, cl.Tucker(energy=0.9)),
        "fold_batchnorm": lambda m: cl.fold_batchnorm(m, example_input=ex),
    }


CELLS = tuple(cells(Case("", lambda: None, None, None, "")))


def _all_layers(model: keras.Model) -> list:
    return list(model._flatten_layers(include_self=True, recursive=True))


def _config_text(model: keras.Model) -> str:
    try:
        config = model.get_config()
    except NotImplementedError:  # a subclassed model without get_config: its structure instead
        config = [(layer.name, type(layer).__name__) for layer in _all_layers(model)]
    return json.dumps(config, sort_keys=True, default=str)


def snapshot(model: keras.Model) -> dict:
    return {"values": [(v.path, np.array(v.numpy(), copy=True)) for v in model.variables],
            "trainable": [(layer.name, bool(layer.trainable)) for layer in _all_layers(model)],
            "variable_trainable": [(v.path, bool(v.trainable)) for v in model.variables],
            "dtype": [(layer.name, str(layer.dtype_policy.name)) for layer in _all_layers(model)],
            "config": _config_text(model)}


def changed(before: dict, after: dict) -> str:
    if before["config"] != after["config"]:
        return "its config changed"
    if before["trainable"] != after["trainable"]:
        return "its layers' trainable flags changed"
    if before["variable_trainable"] != after["variable_trainable"]:
        return "its variables' trainable flags changed"
    if before["dtype"] != after["dtype"]:
        return "its dtype policies changed"
    if [p for p, _ in before["values"]] != [p for p, _ in after["values"]]:
        return "its variables changed"
    for (path, v), (_, w) in zip(before["values"], after["values"]):
        if v.shape != w.shape or v.dtype != w.dtype or not np.array_equal(v, w, equal_nan=True):
            return f"variable {path} changed"
    return ""


def outputs_of(example: np.ndarray) -> Callable[[Any], list[np.ndarray]]:
    def run(model: Any) -> list[np.ndarray]:
        out = model(example, training=False) if isinstance(model, keras.Model) else model(example)
        return [np.asarray(keras.ops.convert_to_numpy(t), np.float32) for t in keras.tree.flatten(out)]
    return run


def is_model(result: Any) -> bool:
    return isinstance(result, keras.Model) or getattr(result, "__compresslib_framework__", None) == "keras"


def save_load(model: Any, path: str) -> Any:
    cl.save(model, path)
    return cl.load(path)


@functools.lru_cache(maxsize=None)
def original(name: str) -> keras.Model:
    """One model per zoo entry, shared by its cells (building keras.applications is slow; every cell
    checks that its verb left this model untouched, so sharing it cannot hide a mutation)."""
    return zoo_case(name).make()


def unchanged(result: Any, model: keras.Model) -> bool:
    """True when ``result`` is a Keras model with the same layer kinds and weights as ``model``."""
    if not isinstance(result, keras.Model):
        return False
    kinds = [[type(layer).__name__ for layer in _all_layers(m)[1:]] for m in (result, model)]
    weights = result.get_weights(), model.get_weights()
    return kinds[0] == kinds[1] and len(weights[0]) == len(weights[1]) and all(
        a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b) for a, b in zip(*weights))


def run(case: Case, cell: str) -> Outcome:
    """Judge one cell. A *works* outcome's ``detail`` lists the warnings the verb gave; a result equal
    to its input is marked ``unchanged`` there (the verb must have warned why)."""
    model = original(case.name)
    seen: dict = {}

    def apply(m: keras.Model) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seen["result"] = cells(case)[cell](m)
        seen["warnings"] = [str(w.message).splitlines()[0] for w in caught  # compresslib's, not the frameworks'
                            if issubclass(w.category, UserWarning) and "site-packages" not in (w.filename or "")]
        return seen["result"]

    outcome = judge(case.name, cell, model, apply, snapshot=snapshot, same_snapshot=changed,
                    outputs=outputs_of(case.example), save_load=save_load, is_model=is_model)
    if outcome.status == "works" and "result" in seen:
        notes = (["unchanged"] if unchanged(seen["result"], model) else []) + seen.get("warnings", [])
        outcome.detail = "; ".join(filter(None, [outcome.detail] + notes))
    return outcome
