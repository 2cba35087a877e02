"""SmoothQuant on torch models: pairs found from the forward (and the fx graph), the function kept, outliers
moved into the weights, models without a pair refused naming the layers."""
import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core.smoothing import smoothing_scales
from compresslib.torch.smoothing import find_pairs, layernorm_pairs


class PreNorm(nn.Module):
    """A pre-LayerNorm block: norm1 feeds q and v only; norm2 feeds fc only; the residuals add the block's inputs."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.norm1, self.q, self.v = nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, d)
        self.norm2, self.fc = nn.LayerNorm(d), nn.Linear(d, 3)

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.q(h) * torch.sigmoid(self.v(h))
        return self.fc(self.norm2(x))


class PostNorm(nn.Module):
    """A post-LayerNorm block (BERT's layout): the norm's output also feeds the residual."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.norm, self.fc, self.out = nn.LayerNorm(d), nn.Linear(d, d), nn.Linear(d, 3)

    def forward(self, x):
        h = self.norm(x)
        return self.out(h + self.fc(h))


def _data(n: int = 64, d: int = 8) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g) * torch.tensor([30.0] + [1.0] * (d - 1)) + 2.0


class Attention(nn.Module):
    """Single-head attention behind a residual, post-LayerNorm like BERT; ``fc`` feeds a GELU."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.norm, self.fc, self.out = nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.Linear(2 * d, 3)

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), -1) @ self.v(x)
        h = self.norm(x + self.o(a))
        return self.out(torch.nn.functional.gelu(self.fc(h))) + h.sum(-1, keepdim=True)


def test_pairs_come_from_the_graph():
    assert layernorm_pairs(PreNorm()) == {"norm1": ["q", "v"], "norm2": ["fc"]}
    assert layernorm_pairs(PostNorm()) == {}


def test_pairs_found_from_the_forward_are_exact_and_named_by_role():
    x = _data(16).reshape(2, 8, 8)
    assert find_pairs(PreNorm().eval(), _data()) == {"norm1": ["q", "v"], "norm2": ["fc"]}
    # value -> output projection is the one exact pair: the norm also feeds the residual sum, fc a GELU
    assert find_pairs(Attention().eval(), x) == {"v": ["o"]}
    m, x = Attention().eval(), _data(64).reshape(8, 8, 8)
    s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    with torch.no_grad():
        assert torch.allclose(s(x), m(x), atol=1e-4) and not torch.equal(s.o.weight, m.o.weight)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True).eval()
    # the attention runs fused (no hooks fire); ReLU commutes with positive scales, so linear1 -> linear2 is exact
    assert find_pairs(layer, torch.randn(2, 5, 8)) == {"norm2": ["linear1"], "linear1": ["linear2"]}


def test_smoothing_keeps_the_function_and_scales_the_columns():
    torch.manual_seed(0)
    m, x = PreNorm().eval(), _data()
    with torch.no_grad():
        m.norm1.weight.uniform_(0.5, 1.5)
        ref = m(x)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x.numpy())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # the input model is not changed
    with torch.no_grad():
        assert torch.allclose(s(x), ref, atol=1e-4)
        h = m.norm1(x)
    amax = h.abs().amax(0).numpy()
    wmax = torch.stack([m.q.weight.abs().amax(0), m.v.weight.abs().amax(0)]).amax(0).detach().numpy()
    scale = torch.from_numpy(smoothing_scales(amax, wmax, 0.5))
    assert torch.allclose(s.q.weight, m.q.weight * scale, rtol=1e-6)
    assert torch.allclose(s.norm1.weight, m.norm1.weight / scale, rtol=1e-6)
    # the outlier channel's activation range shrinks by its scale: flatter inputs for int8
    with torch.no_grad():
        hs = s.norm1(x).abs().amax(0)
    assert float(hs.max() / hs.min()) < float(torch.from_numpy(amax).max() / torch.from_numpy(amax).min())


def test_a_model_without_pairs_is_refused_naming_the_layers():
    m, x = PostNorm().eval(), _data()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ValueError, match=r"model: SmoothQuant found no pair it can smooth exactly in PostNorm .*"
                                         r"LayerNorm 'norm' -> 'fc' \(scaling its channels changes the outputs"):
        cl.transform(m, cl.SmoothQuant(), calibration_data=x)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_refusals_name_the_argument():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.fc = nn.LayerNorm(4), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.norm(x)) if x.sum() > 0 else x  # control flow on values: fx cannot trace

    with pytest.raises(ValueError, match="calibration_data: SmoothQuant needs example inputs"):
        cl.transform(PreNorm(), cl.SmoothQuant())
    with pytest.raises(ValueError, match="model: SmoothQuant reads the module graph with torch.fx, which cannot "
                                         "trace Branchy"):
        layernorm_pairs(Branchy())
    assert find_pairs(Branchy(), np.ones((2, 4), np.float32)) == {"norm": ["fc"]}  # the forward is enough
    with pytest.raises(TypeError, match="config must be one of SmoothQuant"):
        cl.transform(PreNorm(), cl.Magnitude(0.5))


def test_a_recipe_step():
    m, x = PreNorm().eval(), _data()
    out, table = cl.compress(m, [cl.SmoothQuant(0.5), cl.Int8Dynamic()], calibration_data=x.numpy(),
                             measure_kwargs={"example_input": x[:2].numpy(), "latency": False}, packed=False)
    assert [r["name"] for r in table.rows] == ["input", "+ SmoothQuant", "+ Int8Dynamic"]
    with torch.no_grad():
        assert float(torch.nn.functional.cosine_similarity(out(x), m(x)).mean()) > 0.99
