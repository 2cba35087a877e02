"""Issue 23's PyTorch families, verb by verb: each works, or refuses before any work naming the layer or feature.

The models are in :mod:`tests.foreign.torch_zoo` (:data:`~tests.foreign.torch_zoo.ROUND2`); each test asserts
values (shapes, counts, agreement), not only that the verb ran.
"""
from __future__ import annotations

import functools
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


# --------------------------------------------------------------------------- 4. measure: each tensor once, every MAC

def _measure(name):
    case = torch_zoo.case(name)
    model = case.make()
    return model, cl.measure(model, example_input=case.example, latency=False)


def test_measure_counts_a_tied_embedding_once_and_says_it_is_shared():
    model, report = _measure("torch_tied_lm")
    assert model.head.weight is model.embed.weight
    assert report.params == sum(p.numel() for p in model.parameters()) == 100 * 32 + 32 * 32 + 32 == 4256
    assert report.shared_params == 3200
    assert "3,200 shared by several layers, counted once" in report.to_markdown()
    assert report.macs == 12 * 32 * 32 + 12 * 32 * 100  # mix and the tied head, per sample of 12 tokens


def test_measure_counts_a_weight_norm_conv_once_with_its_macs():
    model, report = _measure("torch_weightnorm")
    rows = {layer.name: layer for layer in report.layers}
    assert report.params == sum(p.numel() for p in model.parameters()) == 2926
    assert rows["pos_conv"].params == 32 + 32 * 8 * 9 + 9  # bias, v and g (weight_norm over dim=2: one g per tap)
    frames = (200 - 10) // 5 + 1
    assert rows["pos_conv"].macs == frames * 32 * 8 * 9 and rows["features"].macs == frames * 32 * 10
    assert report.macs_not_counted == ["norm (LayerNorm)"]


def test_measure_does_not_count_a_block_twice_and_lists_the_layer_scale():
    """ConvNeXt's layers sit in ModuleLists: each MAC counted once (the flop counter's total), and the block
    whose own weight is the layer scale is listed as not counted, never a silent 0."""
    from torch.utils.flop_counter import FlopCounterMode

    case = torch_zoo.case("hf_convnext")
    model = case.make()
    report = cl.measure(model, example_input=case.example, latency=False)
    counter = FlopCounterMode(display=False)
    with counter:
        model(pixel_values=case.example["pixel_values"][:1])
    assert report.macs == counter.get_total_flops() // 2 == 419_648
    assert "convnext.encoder.stages.0.layers.0 (ConvNextLayer)" in report.macs_not_counted
    assert all(layer.macs or f"{layer.name} ({layer.kind})" in report.macs_not_counted
               for layer in report.layers if layer.params and "Embedding" not in layer.kind)


# --------------------------------------------------------------------------- 5. Structured: Conv1d, weight_norm, a bound

def _record(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_structured_prunes_the_conv1d_channels_of_a_temporal_cnn():
    case = torch_zoo.case("torch_tcn")
    outcome = torch_cells.run(case, "Structured")  # input untouched, same output shapes, save → load identical
    assert outcome.status == "works", outcome
    pruned = cl.prune(case.make(), cl.Structured(0.3), example_input=case.example)
    widths = {n: (m.in_channels, m.out_channels) for n, m in pruned.named_modules() if isinstance(m, torch.nn.Conv1d)}
    assert widths == {"blocks.0.conv1": (4, 11), "blocks.0.conv2": (11, 11), "blocks.0.down": (4, 11),
                      "blocks.1.conv1": (11, 11), "blocks.1.conv2": (11, 11),
                      "blocks.2.conv1": (11, 11), "blocks.2.conv2": (11, 11)}
    assert sum(p.numel() for p in pruned.parameters()) == 2260 < 4485
    assert outcome.agreement > 0.9


def test_structured_keeps_a_weight_norm_conv_whole_and_says_why():
    case = torch_zoo.case("torch_weightnorm")
    model = case.make()
    pruned, said = _record(cl.prune, model, cl.Structured(0.3), example_input=case.example)
    assert any("pos_conv (it reaches the parametrized layer(s) pos_conv" in w for w in said), said
    assert any("the model comes back unchanged" in w for w in said), said
    assert torch.nn.utils.parametrize.is_parametrized(pruned.pos_conv, "weight")
    np.testing.assert_array_equal(torch_cells.outputs_of(case.example)(pruned)[0],
                                  torch_cells.outputs_of(case.example)(model)[0])


def test_structured_bounds_the_dependency_walk_of_a_diffusion_unet(monkeypatch):
    """Torch-Pruning's walk from the attention's qkv conv (channels reshaped into heads × positions) does not
    end; that root is kept whole after GROUP_SECONDS and the rest is pruned."""
    from compresslib.torch import pruning

    monkeypatch.setattr(pruning, "GROUP_SECONDS", 2.0)
    case = torch_zoo.case("torch_unet")
    model = case.make()
    pruned, said = _record(cl.prune, model, cl.Structured(0.3), example_input=case.example)
    assert any("attn.qkv (Torch-Pruning's walk of its channel dependencies did not end in 2 s" in w for w in said)
    assert pruned.attn.qkv.out_channels == 3 * pruned.attn.out.in_channels
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert torch_cells.outputs_of(case.example)(pruned)[0].shape == (4, 3, 16, 16)


def test_structured_refuses_when_the_whole_search_runs_over_its_bound(monkeypatch):
    from compresslib.torch import pruning

    monkeypatch.setattr(pruning, "SEARCH_SECONDS", 0.0)
    case = torch_zoo.case("torch_tcn")
    with pytest.raises(ValueError, match="channel-dependency search took more than 0 s"):
        cl.prune(case.make(), cl.Structured(0.3), example_input=case.example)


# --------------------------------------------------------------------------- 6. a SentenceTransformer

@functools.lru_cache(maxsize=1)
def _sentence_transformer() -> torch.nn.Module:
    """One per session: importing sentence-transformers and writing its folder is most of the test's time (every
    verb copies its input, and the tests check that they leave it untouched)."""
    return torch_zoo.case("sentence_transformer").make()


def test_a_sentence_transformer_is_measured_and_pruned_from_its_features_dict():
    """``forward(input: dict)`` takes the tokenizer's features whole: compresslib passes the dict as that argument
    (it was spread into keywords: 'forward() missing 1 required positional argument')."""
    case = torch_zoo.case("sentence_transformer")
    model = _sentence_transformer()
    report = cl.measure(model, example_input=case.example, latency=False)
    assert report.params == sum(p.numel() for p in model.parameters()) == 22496
    # two layers of Q, K, V, output and the two feed-forward projections on 12 tokens, and BERT's pooler on one
    assert sum(layer.macs for layer in report.layers if layer.kind == "Linear") == \
        2 * 12 * (4 * 32 * 32 + 2 * 32 * 64) + 32 * 32
    before = torch_cells.snapshot(model)
    pruned, said = _record(cl.prune, model, cl.Structured(0.3), example_input=case.example)
    assert torch_cells.changed(before, torch_cells.snapshot(model)) == ""
    assert sum(p.numel() for p in pruned.parameters()) < 22496
    out = torch_cells.outputs_of(case.example)
    assert [a.shape for a in out(pruned)] == [a.shape for a in out(model)]
    assert out(pruned)[-1].shape == (4, 32)  # the sentence embedding keeps its width


@pytest.mark.parametrize("verb", ["measure", "Structured"])
def test_a_sentence_transformer_given_token_ids_alone_refuses_naming_the_argument(verb):
    case = torch_zoo.case("sentence_transformer")
    model = _sentence_transformer()
    ids = case.example["input_ids"]
    run = {"measure": lambda: cl.measure(model, example_input=ids, latency=False),
           "Structured": lambda: cl.prune(model, cl.Structured(0.3), example_input=ids)}[verb]
    with pytest.raises(ValueError, match=r"^example_input: SentenceTransformer.forward takes a dict \(input: "):
        run()


# --------------------------------------------------------------------------- 7. compress on a user's class

@pytest.mark.parametrize("name", ["torch_tcn", "hf_resnet"])
def test_compress_measures_each_stage_of_a_user_class_from_its_file(name):
    """Each stage is saved and loaded back onto the input model's class, as ``load(path, model=...)`` does (the
    pipeline loaded without the instance and refused every model of a user's class)."""
    case = torch_zoo.case(name)
    model = case.make()
    before = torch_cells.snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, table = cl.compress(model, [cl.Structured(0.3), cl.Float16()],
                                 measure_kwargs={"example_input": case.example, "latency": False})
    assert torch_cells.changed(before, torch_cells.snapshot(model)) == ""
    params = [row["params"] for row in table.rows]
    assert [row["name"] for row in table.rows] == ["input", "+ Structured", "+ Float16"]
    assert params[0] == sum(p.numel() for p in model.parameters()) > params[1] == params[2]
    assert params[1] == {"torch_tcn": 2260, "hf_resnet": 2719}[name]
    assert all(row["packed_bytes"] for row in table.rows[1:])
    assert out.__class__ is model.__class__
    assert [a.shape for a in torch_cells.outputs_of(case.example)(out)] == \
        [a.shape for a in torch_cells.outputs_of(case.example)(model)]


def test_qat_leaves_the_transposed_convolutions_of_a_unet_in_float():
    """torch.ao has no per-channel fake-quantization for transposed convolutions (it raised from inside torch):
    they stay float, named in a warning, and the rest is quantized."""
    case = torch_zoo.case("torch_unet")
    model = case.make()
    prepared, said = _record(cl.prepare_qat, model, cl.QAT(), example_input=case.example)
    assert any("up1" in w and "up2" in w for w in said), said
    torch_cells._observe(prepared, case.calibration)
    converted = _quiet(cl.convert, prepared)
    kinds = {n: type(m).__module__ for n, m in converted.named_modules()}
    assert kinds["up1"] == kinds["up2"] == "torch.nn.modules.conv"
    assert kinds["stem"] == "torch.ao.nn.quantized.modules.conv"
    assert sum(".quantized." in k for k in kinds.values()) == 33  # every other convolution and linear layer
    got, want = torch_cells.outputs_of(case.example)(converted), torch_cells.outputs_of(case.example)(model)
    assert got[0].shape == (4, 3, 16, 16) and cosine(got[0], want[0]) > 0.9


def test_int8_static_bias_correction_reads_a_token_sequence_linear_on_its_feature_axis():
    """A Linear on (batch, tokens, features): the channel means are over the last axis (axis 1 is the 12 tokens;
    adding a 12-long correction to a 32-long bias raised from inside torch)."""
    case = torch_zoo.case("torch_tied_lm")
    outcome = torch_cells.run(case, "Int8Static")
    assert outcome.status == "works" and outcome.agreement > 0.99, outcome
    q = _quiet(cl.quantize, case.make(), cl.Int8Static(), calibration_data=case.calibration)
    assert q.compresslib_recipe["bias_correction"]["layers"] == 2
    assert q.mix.bias().shape == (32,)


@pytest.mark.parametrize("config, dtype", [(cl.Float16(), torch.float16), (cl.BFloat16(), torch.bfloat16)],
                         ids=["Float16", "BFloat16"])
def test_half_precision_runs_a_diffusion_unet_whose_timestep_embedding_is_float32(config, dtype):
    """The UNet computes its sines in float32 and casts them to the sample's dtype (as diffusers does): the half
    model runs end to end in half precision and tracks the float one."""
    case = torch_zoo.case("torch_unet")
    model = case.make()
    half = cl.quantize(model, config)
    assert {p.dtype for p in half.parameters()} == {dtype}
    got, want = torch_cells.outputs_of(case.example)(half), torch_cells.outputs_of(case.example)(model)
    assert got[0].shape == want[0].shape == (4, 3, 16, 16)
    assert cosine(got[0], want[0]) > 0.999
