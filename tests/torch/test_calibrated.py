"""GPTQ, AWQ, Wanda and SparseGPT on torch models: errors against round-to-nearest and magnitude pruning,
exact codes and zero counts, .clz round trips, and refusals."""
import copy
import os
import tempfile
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch.layers import WeightOnlyLinear


class Block(nn.Module):
    """A pre-LayerNorm transformer block with separate q/k/v Linear layers (GPT/LLaMA style) and a head."""

    def __init__(self, vocab: int = 64, d: int = 64, hidden: int = 128) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, hidden), nn.Linear(hidden, d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.emb(ids)
        h = self.norm1(x)
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2) / 8.0, -1)
        x = x + self.o(att @ self.v(h))
        x = x + self.fc2(torch.nn.functional.gelu(self.fc1(self.norm2(x))))
        return self.head(x)


@pytest.fixture(scope="module")
def block():
    torch.manual_seed(0)
    m = Block().eval()
    with torch.no_grad():  # a few outlier channels in the residual stream, as trained transformers have
        m.emb.weight[:, :4] *= 3.0
        m.norm1.weight[:4] *= 3.0
        m.norm2.weight[:4] *= 3.0
    g = torch.Generator().manual_seed(1)
    return m, torch.randint(0, 64, (64, 16), generator=g), torch.randint(0, 64, (32, 16), generator=g)


def _rel(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        ya, yb = a(x), b(x)
    return float((ya - yb).norm() / ya.norm())


def test_gptq_int4_beats_round_to_nearest(block):
    """Measured here (relative output error on held-out tokens): RTN int4 0.076, GPTQ int4 0.046 (act_order
    0.045), GPTQ int3 0.100. On this random block int3 GPTQ does not reach int4 RTN; the test holds what was
    measured, with margin."""
    m, cal, test = block
    before = copy.deepcopy(m.state_dict())
    rtn = cl.quantize(m, cl.WeightOnly(bits=4, group_size=32))
    g4 = cl.quantize(m, cl.GPTQ(bits=4, group_size=32), calibration_data=cal)
    g3 = cl.quantize(m, cl.GPTQ(bits=3, group_size=32, act_order=True), calibration_data=cal)
    e_rtn, e4, e3 = _rel(m, rtn, test), _rel(m, g4, test), _rel(m, g3, test)
    assert e4 < 0.75 * e_rtn, (e4, e_rtn)
    assert e3 < 1.5 * e_rtn, (e3, e_rtn)
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in before.items())  # the caller's model is unchanged
    names = [n for n, mod in g4.named_modules() if isinstance(mod, WeightOnlyLinear)]
    assert names == ["q", "k", "v", "o", "fc1", "fc2", "head"]
    assert g3.fc2.packed.numel() == 64 * 128 * 3 // 8 and g3.fc2.scale.numel() == 64 * 128 // 32
    codes = np.rint(g3.fc2.dequantized_weight().numpy() / np.repeat(g3.fc2.scale.numpy().reshape(64, 4), 32, 1))
    assert int(codes.min()) >= -4 and int(codes.max()) <= 3


def test_awq_not_worse_than_rtn_on_outlier_inputs():
    """AWQ's search includes alpha = 0 (plain RTN), so each layer's error on its calibration rows is at most
    RTN's; on an MLP with outlier input channels that carries to the output."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 32)).eval()
    x = torch.randn(512, 64) * torch.cat([torch.full((4,), 20.0), torch.ones(60)])
    awq = cl.quantize(m, cl.AWQ(bits=4, group_size=32), calibration_data=x[:256])
    rtn = cl.quantize(m, cl.WeightOnly(bits=4, group_size=32))
    assert _rel(m, awq, x[256:]) < 0.97 * _rel(m, rtn, x[256:])  # measured 0.094 against 0.099
    assert awq[0].input_scale.shape == (64,) and awq[0].has_input_scale


def test_gptq_save_load_identical_and_packed_size(block):
    m, cal, test = block
    q = cl.quantize(m, cl.GPTQ(bits=4, group_size=32), calibration_data=cal)
    awq = cl.quantize(m, cl.AWQ(bits=3, group_size=32), calibration_data=cal[:16])
    with tempfile.TemporaryDirectory() as d:
        sizes = {}
        for name, model in (("fp32", m), ("gptq", q), ("awq", awq)):
            path = os.path.join(d, f"{name}.clz")
            sizes[name] = cl.save(model, path)
            back = cl.load(path, model=Block())
            with torch.no_grad():
                assert torch.equal(back(test), model(test)), name
    linear = sum(mod.weight.numel() for mod in m.modules() if isinstance(mod, nn.Linear))
    other = (sum(p.numel() for p in m.parameters()) - linear) * 4
    # int4 codes + one float32 scale per 32 weights: 4 + 1 = 5 bits per weight, plus the float rest
    assert sizes["gptq"] < other + linear * 5 / 8 * 1.15 + 8000, sizes
    assert sizes["gptq"] < 0.3 * sizes["fp32"], sizes


@pytest.mark.parametrize("config", [cl.Wanda(0.5), cl.SparseGPT(0.5)])
def test_data_aware_pruning_beats_magnitude_at_half(block, config):
    m, cal, test = block
    p = cl.prune(m, config, calibration_data=cal)
    mag = cl.prune(m, cl.Magnitude(0.5))
    for name in ("q", "fc1", "fc2", "head"):
        w = getattr(p, name).weight
        assert int((w == 0).sum()) == w.numel() // 2, name
    # measured: magnitude 0.396, Wanda 0.329, SparseGPT 0.297
    assert _rel(m, p, test) < 0.9 * _rel(m, mag, test)


@pytest.mark.parametrize("config", [cl.Wanda(n=2, m=4), cl.SparseGPT(n=2, m=4)])
def test_two_four(block, config):
    from compresslib.core.masks import is_nm_sparse

    m, cal, test = block
    p = cl.prune(m, config, calibration_data=cal)
    for name in ("q", "k", "v", "o", "fc1", "fc2", "head"):
        assert is_nm_sparse(getattr(p, name).weight.detach().numpy(), 2, 4), name
    # measured: magnitude 2:4 0.498, Wanda 0.484, SparseGPT 0.310
    bound = 0.98 if isinstance(config, cl.Wanda) else 0.7
    assert _rel(m, p, test) < bound * _rel(m, cl.prune(m, cl.NM(2, 4)), test)


def test_foreign_transformer_encoder_works_and_names_what_stays_float():
    from tests.foreign.torch_zoo import case

    c = case("torch_transformer")
    m = c.model()
    with pytest.warns(UserWarning, match="out_proj \\(nn.Linear never called through forward\\).*self_attn \\(MultiheadAttention\\)"):
        q = cl.quantize(m, cl.GPTQ(bits=4, group_size=32), calibration_data=c.calibration)
    assert isinstance(q.encoder.layers[0].linear1, WeightOnlyLinear)
    with torch.no_grad():
        ref, out = m(**c.example), q(**c.example)
    assert out.shape == ref.shape and float((out - ref).norm() / ref.norm()) < 0.1


def test_refusals(block):
    m, cal, _ = block
    with pytest.raises(ValueError, match="calibration_data: GPTQ needs example inputs"):
        cl.quantize(m, cl.GPTQ())
    with pytest.raises(ValueError, match="calibration_data: Wanda needs example inputs"):
        cl.prune(m, cl.Wanda())
    conv = nn.Sequential(nn.Conv2d(1, 2, 3)).eval()
    with pytest.raises(ValueError, match="model: SparseGPT compresses nn.Linear layers .* Conv2d"):
        cl.prune(conv, cl.SparseGPT(0.5), calibration_data=torch.randn(4, 1, 8, 8))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        q = cl.quantize(m, cl.GPTQ(group_size=48), calibration_data=cal[:8])
    assert "group_size 48 does not divide the fan-in 64" in str(seen[0].message)
    assert type(q.q) is nn.Linear and type(q.fc2) is nn.Linear  # 48 divides neither 64 nor 128


def test_gpt2_conv1d_projections_are_handled():
    from tests.foreign.torch_zoo import case

    c = case("hf_gpt2")
    m = c.model()
    q = cl.quantize(m, cl.GPTQ(bits=4, group_size=32), calibration_data=c.calibration)
    p = cl.prune(m, cl.SparseGPT(n=2, m=4), calibration_data=c.calibration)
    block = q.transformer.h[0]
    assert isinstance(block.attn.c_attn, WeightOnlyLinear) and isinstance(block.mlp.c_proj, WeightOnlyLinear)
    w = p.transformer.h[0].mlp.c_fc.weight  # Conv1D keeps its (in, out) layout: 2:4 along the input axis
    from compresslib.core.masks import is_nm_sparse
    assert is_nm_sparse(w.detach().t().numpy(), 2, 4)
    with torch.no_grad():
        ref, out = m(**c.example).logits, q(**c.example).logits
    assert float((out - ref).norm() / ref.norm()) < 0.1


def test_perplexity_uniform_and_refusals():
    class Uniform(nn.Module):
        def forward(self, ids):
            return torch.zeros(*ids.shape, 11)

    assert cl.perplexity(Uniform(), torch.randint(0, 11, (5, 9)), batch_size=2) == pytest.approx(11.0)
    m = Block().eval()
    ids = torch.randint(0, 64, (4, 16))
    with torch.no_grad():
        logp = torch.log_softmax(m(ids)[:, :-1], -1).gather(-1, ids[:, 1:, None])
    assert cl.perplexity(m, ids) == pytest.approx(float(torch.exp(-logp.mean())), rel=1e-5)
    with pytest.raises(ValueError, match="tokens must be a non-empty integer array"):
        cl.perplexity(m, torch.randn(4, 16))
    with pytest.raises(ValueError, match="tokens: id 11 is outside the model's vocabulary of 11"):
        cl.perplexity(Uniform(), torch.full((1, 4), 11))


def test_recipe_step_gets_calibration_data_and_finetuning_keeps_zeros(block):
    from compresslib import registry

    m, cal, _ = block
    out = cl.compress(m, [cl.Wanda(n=2, m=4)], calibration_data=cal, packed=False,
                      measure_kwargs={"example_input": cal[:2], "latency": False})
    p = out[0]  # (model, comparison)
    from compresslib.core.masks import is_nm_sparse
    assert is_nm_sparse(p.fc1.weight.detach().numpy(), 2, 4)
    tuning = registry.tuner("torch", cl.Wanda(0.5))(copy.deepcopy(p), cl.Wanda(0.5))
    with torch.no_grad():
        tuning.model.fc1.weight.add_(1.0)  # a training step fills the zeros ...
    tuning.hooks[0](tuning.model, 1)        # ... the hook puts them back
    assert is_nm_sparse(tuning.finish(tuning.model).fc1.weight.detach().numpy(), 2, 4)


def test_frozen_parameters_still_calibrated_and_flags_restored():
    """With every parameter frozen, nn.TransformerEncoderLayer takes its fused path (no Linear hooks) under
    autograd too; the handler turns autograd on for its copy's parameters while calibrating."""
    from tests.foreign.torch_zoo import case

    c = case("torch_transformer")
    m = c.model().requires_grad_(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cl.quantize(m, cl.GPTQ(bits=4, group_size=32), calibration_data=c.calibration)
    assert isinstance(q.encoder.layers[1].linear2, WeightOnlyLinear)
    assert not any(p.requires_grad for p in m.parameters())
    assert not q.encoder.layers[0].norm1.weight.requires_grad
