"""Tied weights survive save → load: stored once, the same nn.Parameter again after loading."""
import torch
from torch import nn

import compresslib as cl
from compresslib.torch.io import from_spec, to_spec


class TinyLM(nn.Module):
    """A user class (not registered): the output layer reuses the embedding matrix."""

    def __init__(self, vocab=50, dim=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, tokens):
        return self.head(torch.relu(self.mix(self.embed(tokens))))


def _distinct(model):
    return sum(p.numel() for p in model.parameters())  # parameters() counts a shared tensor once


def test_ties_are_found_and_stored_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 50, bias=False))
    model[1].weight = model[0].weight
    spec, tensors = to_spec(model)
    assert spec["ties"] == {"1.weight": "0.weight"}
    assert sorted(tensors) == ["0.weight"]
    back = from_spec(spec, tensors)
    assert back[1].weight is back[0].weight
    assert _distinct(back) == _distinct(model) == 800


def test_a_tied_user_model_round_trips_with_its_tie(tmp_path):
    torch.manual_seed(0)
    model = TinyLM().eval()
    tokens = torch.randint(0, 50, (4, 7))
    path = tmp_path / "lm.clz"
    cl.save(model, str(path))
    back = cl.load(str(path), model=TinyLM())
    assert back.head.weight is back.embed.weight
    assert _distinct(back) == _distinct(model) == 50 * 16 + 16 * 16 + 16
    assert torch.equal(back(tokens), model(tokens))
    with torch.no_grad():  # still one tensor: changing it changes both uses, as in the original
        back.embed.weight[0, 0] += 1.0
    assert back.head.weight[0, 0] == back.embed.weight[0, 0]
    assert model.head.weight is model.embed.weight  # the caller's model untouched


def test_a_file_whose_tie_points_nowhere_is_refused():
    import pytest

    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5, bias=False))
    model[1].weight = model[0].weight
    spec, tensors = to_spec(model)
    spec["ties"] = {"1.weight": "missing.weight"}
    with pytest.raises(ValueError, match="ties must map"):
        from_spec(spec, tensors)


class Hooked(nn.Module):
    """A user class carrying a forward hook (as some libraries install): its instance brings it back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 3)
        self.register_forward_hook(lambda mod, inp, out: out * 2)

    def forward(self, x):
        return self.conv(x)


def test_a_user_module_with_a_hook_saves_and_the_hook_returns_with_its_instance(tmp_path):
    torch.manual_seed(0)
    model, x = Hooked().eval(), torch.randn(2, 2, 9)
    cl.save(model, str(tmp_path / "h.clz"))
    back = cl.load(str(tmp_path / "h.clz"), model=Hooked())
    assert torch.equal(back(x), model(x)) and torch.equal(back(x), 2 * back.conv(x))


def test_weight_norm_is_saved_as_the_weight_it_computes(tmp_path):
    import pytest
    from torch.nn.utils import parametrizations, parametrize

    torch.manual_seed(0)
    model = nn.Sequential(parametrizations.weight_norm(nn.Conv1d(2, 4, 3)), nn.ReLU(), nn.Conv1d(4, 1, 1)).eval()
    x = torch.randn(2, 2, 9)
    with pytest.warns(UserWarning, match="0.s parametrizations .weight. are stored"):
        cl.save(model, str(tmp_path / "wn.clz"))
    assert parametrize.is_parametrized(model[0])  # the caller's model keeps its parametrization
    back = cl.load(str(tmp_path / "wn.clz"))
    assert type(back[0]) is nn.Conv1d and torch.allclose(back(x), model(x), atol=1e-6)
