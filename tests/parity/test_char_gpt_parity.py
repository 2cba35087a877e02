"""char_gpt in both frameworks: the same architecture, cl.transfer with equal logits, the shipped
weights' held-out perplexity re-checked, save -> load, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib import zoo
from compresslib.core.gpt import CHAR_GPT, windows

SLICE = 32  # scripts/train_lm.py records the perplexity of the first 32 held-out windows


def _logits_torch(model, ids):
    with torch.no_grad():
        return model(torch.from_numpy(ids)).numpy()


@pytest.fixture(scope="module")
def ids():
    return np.random.default_rng(0).integers(0, CHAR_GPT.vocab, (4, CHAR_GPT.context))


def test_fresh_models_have_the_same_parameters():
    from compresslib.keras.models import build as kbuild
    from compresslib.torch.models import build as tbuild

    t, k = tbuild("char_gpt"), kbuild("char_gpt")
    assert sum(p.numel() for p in t.parameters()) == k.count_params() == CHAR_GPT.parameters() == 1_226_832
    names = {n.rsplit(".", 1)[0] for n, _ in t.named_parameters()}
    assert names <= {layer.name for layer in k.layers}


@pytest.mark.parametrize("source", ["torch", "keras"])
def test_transfer_gives_equal_logits(source, ids):
    model = zoo.pretrained("char_gpt", framework=source)
    other = cl.transfer(model, framework="keras" if source == "torch" else "torch")
    t, k = (model, other) if source == "torch" else (other, model)
    diff = np.abs(_logits_torch(t, ids) - np.asarray(k(ids.astype(np.int32)))).max()
    assert diff <= 1e-4


def test_shipped_perplexity_in_both_frameworks():
    record = zoo.manifest()["torch_char_gpt"]
    held = windows(cl.datasets.load_shakespeare("heldout").ids, CHAR_GPT.context, SLICE)
    for framework in ("torch", "keras"):
        ppl = cl.perplexity(zoo.pretrained("char_gpt", framework=framework), held)
        assert ppl == pytest.approx(record[f"heldout_perplexity_first_{SLICE}_windows"], rel=1e-5)
    assert record["heldout_perplexity"] < 8.0 and record["params"] == CHAR_GPT.parameters()
    assert zoo.manifest()["keras_char_gpt"]["heldout_perplexity"] == record["heldout_perplexity"]


def test_save_load_identical_and_fresh_copies(tmp_path, ids):
    m = zoo.pretrained("char_gpt", framework="torch")
    cl.save(m, tmp_path / "lm.clz")
    assert np.array_equal(_logits_torch(cl.load(tmp_path / "lm.clz"), ids), _logits_torch(m, ids))
    with torch.no_grad():
        m.head.weight.zero_()
    assert float(zoo.pretrained("char_gpt", framework="torch").head.weight.abs().sum()) > 0


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_too_long_input_is_refused(framework):
    m = zoo.pretrained("char_gpt", framework=framework)
    ids = np.zeros((1, CHAR_GPT.context + 1), np.int64)
    with pytest.raises(ValueError, match="ids must be"):
        _logits_torch(m, ids) if framework == "torch" else m(ids)


def test_not_trained_on_first_use_and_not_an_image_model():
    with pytest.raises(ValueError, match="train_lm"):
        zoo.train("char_gpt", "torch")
    assert "char_gpt" in zoo.LANGUAGE_MODELS and "char_gpt" not in zoo.MODEL_NAMES
