"""The Keras support matrix: every verb and config on every Keras model compresslib did not write.

Each cell must *work* (judged by :func:`tests.foreign.matrix.judge`: same output shapes, finite
outputs, input untouched, save → load identical) or *refuse* up front from compresslib's own
code with a clear error. The refusals are listed below, each with what its message must name,
so a cell that starts refusing (or stops) fails here. A result equal to its input must have
said so in a warning. ``COMPRESSLIB_FULL_MATRIX=1`` adds the models too slow for CI
(:data:`tests.foreign.keras_zoo.FULL`).

``python -m tests.foreign.test_matrix_keras`` prints the table (status, agreement, detail).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)

import compresslib as cl
from compresslib.keras.measure import is_parameter
from compresslib.keras.train import evaluate
from tests.foreign import keras_cells, keras_zoo

NAMES = keras_zoo.FULL if os.environ.get("COMPRESSLIB_FULL_MATRIX") else keras_zoo.NAMES

_GRAPH = "is a subclassed keras.Model whose layers are connected by its own call() code"
_NO_CONFIG = "OpaqueConvNet"
# (model, cell) -> text the refusal must contain
REFUSALS = {
    ("keras_mobilenet_v3", "WeightOnly(8)"): "MobileNetV3Small has none",
    ("keras_mobilenet_v3", "WeightOnly(4)"): "MobileNetV3Small has none",
    ("keras_recurrent", "Int8Dynamic"): "recurrent layer(s) bilstm, gru",
    **{("keras_subclassed", cell): f"SmallConvNet {_GRAPH}"
       for cell in ("QAT", "Structured", "SVD", "Tucker", "fold_batchnorm")},
    **{("keras_subclassed_noconfig", cell): f"{_NO_CONFIG} {_GRAPH}"
       for cell in ("QAT", "Structured", "SVD", "Tucker", "fold_batchnorm")},
    **{("keras_subclassed_noconfig", cell): f"cannot copy the subclassed model {_NO_CONFIG}"
       for cell in ("WeightOnly(8)", "WeightOnly(4)", "Magnitude", "NM(2:4)")},
    **{("keras_subclassed_noconfig", cell): f"the subclassed {_NO_CONFIG} has no get_config()"
       for cell in ("Float16", "BFloat16")},
}


@pytest.mark.parametrize("cell", keras_cells.CELLS)
@pytest.mark.parametrize("name", NAMES)
def test_cell(name: str, cell: str) -> None:
    outcome = keras_cells.run(keras_zoo.case(name), cell)
    assert outcome.ok, outcome
    expected = REFUSALS.get((name, cell))
    if expected is None:
        assert outcome.status == "works", outcome
    else:
        assert outcome.status == "refuses" and expected in outcome.detail, outcome
    notes = outcome.detail.split("; ")
    if "unchanged" in notes:  # the verb returned its input as it was: it must have said why
        assert any("comes back unchanged" in n for n in notes), outcome


@pytest.mark.parametrize("name", NAMES)
def test_measure_evaluate_and_save_load(name: str, tmp_path) -> None:
    """The verbs around the cells on each model as given: measure with data, evaluate, save → load."""
    case, model = keras_zoo.case(name), keras_cells.original(name)
    labels = keras_cells.outputs_of(case.example)(model)[0].argmax(1)
    assert evaluate(model, (case.example, labels)) == 1.0
    report = cl.measure(model, data=(case.example, labels), batch_size=2, runs=2, warmup=1)
    params = sum(int(np.prod(v.shape)) for v in model.weights if is_parameter(v))
    assert report.accuracy == 1.0 and report.params == params and report.macs > 0 and report.latency_ms > 0
    path = tmp_path / "m.clz"
    if name == "keras_subclassed_noconfig":
        with pytest.raises(TypeError, match="cannot save the subclassed model OpaqueConvNet"):
            cl.save(model, path)
        return
    cl.save(model, path)
    back = cl.load(path)
    for a, b in zip(keras_cells.outputs_of(case.example)(back), keras_cells.outputs_of(case.example)(model)):
        np.testing.assert_array_equal(a, b)


def main() -> None:  # pragma: no cover - a report, not a test
    for name in NAMES:
        for cell in keras_cells.CELLS:
            o = keras_cells.run(keras_zoo.case(name), cell)
            agreement = "" if o.agreement is None else f"{o.agreement:.4f}"
            print(f"| {name} | {cell} | {o.status} | {agreement} | {o.detail[:200]} |")


if __name__ == "__main__":  # pragma: no cover
    main()
