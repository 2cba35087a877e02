"""Issue 23's Keras families, verb by verb: each works, or refuses before any work naming the layer or feature.

The models are in :mod:`tests.foreign.keras_zoo` (:data:`~tests.foreign.keras_zoo.ROUND2`); the cells are judged
by :func:`tests.foreign.keras_cells.run` (input untouched, same output shapes, save → load identical) and the
tests assert values on top (which layers stay shared, agreement, counts).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)

import compresslib as cl
from compresslib.keras.rebuild import shared_layers
from tests.foreign import keras_cells, keras_zoo

REWRITES = {  # cell -> (verb, the names the shared layers have in the result)
    "Float16": (lambda m, ex: cl.quantize(m, cl.Float16()), ["shared_conv", "shared_dense"]),
    "BFloat16": (lambda m, ex: cl.quantize(m, cl.BFloat16()), ["shared_conv", "shared_dense"]),
    "QAT": (lambda m, ex: cl.convert(cl.prepare_qat(m, cl.QAT(), example_input=ex)), ["shared_conv", "shared_dense"]),
    "SVD": (lambda m, ex: cl.decompose(m, cl.SVD(ratio=0.5)), ["shared_conv", "shared_dense_svd0", "shared_dense_svd1"]),
    "Tucker": (lambda m, ex: cl.decompose(m, cl.Tucker(energy=0.9)),
               ["shared_conv_tucker0", "shared_conv_tucker1", "shared_conv_tucker2", "shared_dense"]),
    "fold_batchnorm": (lambda m, ex: cl.fold_batchnorm(m), ["shared_conv", "shared_dense"]),
}


@pytest.mark.parametrize("cell", sorted(REWRITES))
def test_a_layer_called_at_two_places_stays_shared_after_a_graph_rewrite(cell):
    case = keras_zoo.case("keras_shared_layers")
    model = keras_cells.original(case.name)
    assert shared_layers(model) == ["shared_conv", "shared_dense"]
    outcome = keras_cells.run(case, cell)  # input untouched, shapes kept, save → load identical
    assert outcome.status == "works", outcome
    verb, names = REWRITES[cell]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = verb(model, case.example)
    assert sorted(shared_layers(result)) == sorted(names)
    assert len({v.path for v in result.weights}) == len(result.weights)  # no layer copied twice
    floor = {"SVD": 0.5, "Tucker": 0.9}.get(cell, 0.999)
    assert outcome.agreement > floor


def test_structured_refuses_a_shared_layer_naming_it():
    outcome = keras_cells.run(keras_zoo.case("keras_shared_layers"), "Structured")
    assert outcome.status == "refuses", outcome
    assert "shared layer(s) shared_conv, shared_dense" in outcome.detail


@pytest.mark.parametrize("cell", ["Int8Dynamic", "Int8Static"])
def test_int8_on_a_functional_lstm_over_float_features_unrolls_it(cell):
    """The unrolled copy keeps the feature axis: (None, 10, 6), not the token-id shape (None, 10)."""
    case = keras_zoo.case("keras_functional_lstm")
    outcome = keras_cells.run(case, cell)
    assert outcome.status == "works", outcome
    assert "recurrent layer(s) lstm unrolled over 10 steps" in outcome.detail
    assert outcome.agreement > 0.99


@pytest.mark.parametrize("cell", ["Float16", "BFloat16"])
def test_half_precision_refuses_a_get_config_without_a_constructor_argument(cell):
    outcome = keras_cells.run(keras_zoo.case("keras_partial_config"), cell)
    assert outcome.status == "refuses", outcome
    assert ("the get_config() of the subclassed PartialConfigNet does not return its constructor argument(s) "
            "classes") in outcome.detail


def test_measure_counts_separable_and_transposed_convolutions():
    case = keras_zoo.case("keras_separable_transposed")
    report = cl.measure(keras_cells.original(case.name), example_input=case.example, latency=False)
    macs = {layer.name: layer.macs for layer in report.layers}
    assert macs["sep1"] == 8 * 8 * 8 * 9 + 8 * 8 * 16 * 8            # depthwise 3×3 on 8 channels, pointwise 8 → 16
    assert macs["sep2"] == 8 * 8 * 32 * 9 + 8 * 8 * 16 * 32          # depth_multiplier 2: 32 channels in between
    assert macs["up"] == 8 * 8 * 16 * 8 * 9                          # each input element spread over 3×3×8 outputs
    assert report.macs == sum(macs.values()) and report.macs_not_counted == []


def test_measure_counts_a_shared_layer_at_each_call_and_its_weights_once():
    case = keras_zoo.case("keras_shared_layers")
    model = keras_cells.original(case.name)
    report = cl.measure(model, example_input=case.example, latency=False)
    rows = {layer.name: layer for layer in report.layers}
    assert rows["shared_conv"].params == 8 * 8 * 9 + 8 and rows["shared_conv"].macs == 2 * 16 * 16 * 8 * 8 * 9
    assert rows["shared_dense"].macs == 2 * 16 * 16
    assert report.params == sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert report.macs_not_counted == ["stem_bn (BatchNormalization)"]


# --------------------------------------------------------------------------- a variable shared by two layers

def test_measure_counts_a_tied_embedding_once_and_says_it_is_shared():
    """The Keras twin of the PyTorch tied LM: the output layer holds the Embedding whose matrix it reads."""
    case = keras_zoo.case("keras_tied_lm")
    model = keras_cells.original(case.name)
    assert model.head.embedding.embeddings is model.embed.embeddings
    report = cl.measure(model, example_input=case.example, latency=False)
    rows = {layer.name: layer.params for layer in report.layers}
    assert rows == {"embed": 3200, "mix": 32 * 32 + 32, "head": 0}
    assert report.params == sum(int(np.prod(v.shape)) for v in model.weights) == 4256
    assert report.shared_params == 3200
    assert "3,200 shared by several layers, counted once" in report.to_markdown()
    # the head's matmul is an op inside a custom layer: its MACs are not counted, and the report says so
    assert report.macs == 12 * 32 * 32 and report.macs_not_counted == ["head (TiedHead)"]


@pytest.mark.parametrize("onto", [False, True])
def test_save_stores_a_tied_embedding_once_and_load_ties_it_again(tmp_path, onto):
    case = keras_zoo.case("keras_tied_lm")
    model = case.make()
    before = keras_cells.snapshot(model)
    path = tmp_path / "tied.clz"
    cl.save(model, path)
    shapes = sorted(tuple(t["shape"]) for t in cl.io.read_manifest(path)["tensors"].values())
    assert shapes == [(32,), (32, 32), (100, 32)]  # the embedding matrix once
    loaded = cl.load(path, model=case.make()) if onto else cl.load(path)
    assert keras_cells.changed(before, keras_cells.snapshot(model)) == ""
    assert type(loaded).__name__ == "TiedLM" and loaded is not model
    assert loaded.head.embedding.embeddings is loaded.embed.embeddings
    assert len(loaded.weights) == len(model.weights) == 3
    np.testing.assert_array_equal(keras_cells.outputs_of(case.example)(loaded)[0],
                                  keras_cells.outputs_of(case.example)(model)[0])
