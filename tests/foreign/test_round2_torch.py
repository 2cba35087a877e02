"""Issue 23's PyTorch families, verb by verb: each works, or refuses before any work naming the layer or feature.

The models are in :mod:`tests.foreign.torch_zoo` (:data:`~tests.foreign.torch_zoo.ROUND2`); each test asserts
values (shapes, counts, agreement), not only that the verb ran.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

import compresslib as cl  # noqa: E402
from tests.foreign import torch_cells, torch_zoo  # noqa: E402
from tests.foreign.matrix import cosine  # noqa: E402


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# --------------------------------------------------------------------------- 1. QAT at the data's input size

@pytest.mark.parametrize("name", ["hf_mobilevit", "hf_convnext"])
def test_qat_without_an_example_refuses_a_model_only_torch_export_captures(name):
    """torch.export fixes the input's size into the graph: a guessed one (28 px) would refuse the user's data."""
    model = torch_zoo.case(name).make()
    with pytest.raises(ValueError, match=r"^example_input: prepare_qat\(QAT\) captures .* with torch.export"):
        _quiet(cl.prepare_qat, model, cl.QAT())


def test_qat_on_a_vision_model_at_48_px_takes_its_size_from_the_example():
    case = torch_zoo.case("hf_convnext")
    model = case.make()
    example = {"pixel_values": torch.randn(4, 3, 48, 48, generator=torch.Generator().manual_seed(3))}
    prepared = _quiet(cl.prepare_qat, model, cl.QAT(), example_input=example)
    torch_cells._observe(prepared, {"pixel_values": torch.randn(8, 3, 48, 48)})
    converted = _quiet(cl.convert, prepared)
    got, want = torch_cells.outputs_of(example)(converted), torch_cells.outputs_of(example)(model)
    assert got[0].shape == want[0].shape == (4, 10)
    assert cosine(got[0], want[0]) > 0.9
