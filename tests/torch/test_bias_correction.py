"""Int8Static's bias correction and float outputs (``compresslib.torch.bias_correction``)."""
import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core.selection import row_cosines as cosine  # row-wise cosine
from compresslib.torch import quantization as tq
from compresslib.torch.qdq import reference_model


@pytest.fixture(scope="module")
def mnist():
    train = cl.datasets.load_mnist("train", layout="torch")
    test = cl.datasets.load_mnist("test", layout="torch")
    return train[0][:256], test[0][:500]


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="torch")


def _out(m, x):
    with torch.inference_mode():
        return m(torch.as_tensor(x)).float().numpy().astype(np.float64)


def _cos(a, b):
    return float(cosine(np.asarray(a, np.float64), np.asarray(b, np.float64)).mean())


def _channel_error(q, model, x):
    """Mean |mean output error| of the logits per class: what bias correction removes."""
    return float(np.abs((_out(q, x) - _out(model, x)).mean(0)).mean())


def test_bias_correction_lowers_the_mean_error_and_raises_cosine(resnet, mnist):
    cal, x = mnist
    plain = cl.quantize(resnet, cl.Int8Static(bias_correction=False), calibration_data=cal)
    fixed = cl.quantize(resnet, cl.Int8Static(bias_correction=True), calibration_data=cal)
    ref = _out(resnet, x)
    note = fixed.compresslib_recipe["bias_correction"]
    assert note["layers"] == 10 and 0 < note["max_shift"] < 1  # every int8 conv/linear, small shifts
    assert "bias_correction" not in plain.compresslib_recipe
    # measured: 0.99940 -> 0.99961 on these digits; the mean per-class error shrinks
    assert _cos(_out(fixed, x), ref) > _cos(_out(plain, x), ref) + 1e-4
    assert _channel_error(fixed, resnet, x) < 0.7 * _channel_error(plain, resnet, x)
    # the full 8-bit export gets its own corrections, found at quantize time on that grid
    shifts = note["full_range_shift"]
    assert len(shifts) == 10 and len(shifts["fc"]) == 10 and len(shifts["stem.0"]) == resnet.stem[0].out_channels
    assert _cos(_out(reference_model(fixed, True), x), ref) > _cos(_out(reference_model(plain, True), x), ref) + 1e-4


def test_bias_correction_survives_save_and_load(resnet, mnist, tmp_path):
    cal, x = mnist
    q = cl.quantize(resnet, cl.Int8Static(float_output=True), calibration_data=cal)
    cl.save(q, tmp_path / "q.clz")
    back = cl.load(tmp_path / "q.clz")
    assert np.array_equal(_out(back, x), _out(q, x))
    assert np.array_equal(_out(reference_model(back, True), x), _out(reference_model(q, True), x))
    assert back.compresslib_recipe["float_output"] == q.compresslib_recipe["float_output"]


def test_a_crafted_bias_note_is_refused(resnet, mnist, tmp_path):
    from compresslib.torch.bias_correction import check_note

    check_note({"layers": 1, "max_shift": 0.1, "full_range_shift": {"fc": [0.1, -0.2]}})
    for bad in ({"layers": 1, "evil": 1}, {"full_range_shift": {"fc": ["x"]}}, {"full_range_shift": []},
                {"full_range_shift": {"fc": [True]}}):
        with pytest.raises(ValueError, match="bias_correction"):
            check_note(bad)


def test_output_layers_follow_parameter_free_ops():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(),
                        nn.Linear(4, 3))
    assert tq.output_layers(net) == ["5", "2", "3", "4"]

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.body(x))
            return self.a(h), torch.softmax(self.b(h), -1)

    assert tq.output_layers(TwoHeads()) == ["a", "b"]


def test_float_output_keeps_the_logits_float(resnet, mnist):
    cal, x = mnist
    q = cl.quantize(resnet, cl.Int8Static(float_output=True), calibration_data=cal)
    plain = cl.quantize(resnet, cl.Int8Static(), calibration_data=cal)
    head = tq.output_layers(resnet)[0]
    assert type(q.get_submodule(head)) is nn.Linear  # float weights, float output
    assert type(plain.get_submodule(head)).__module__.startswith("torch.ao.nn.quantized")
    assert q.compresslib_recipe["float_output"] == tq.output_layers(resnet)
    ref = _out(resnet, x)
    logits = _out(q, x)
    # an int8 output lives on a grid of 256 values; a float one does not
    assert len(np.unique(_out(plain, x))) <= 256 < len(np.unique(logits))
    assert _cos(logits, ref) > _cos(_out(plain, x), ref)
    assert logits.shape == ref.shape


def test_config_fields_are_checked():
    with pytest.raises(ValueError, match="Int8Static.bias_correction"):
        cl.Int8Static(bias_correction="yes")
    with pytest.raises(ValueError, match="Int8Static.float_output"):
        cl.Int8Static(float_output=1)


def test_a_layer_without_qdq_twin_skips_the_correction_with_a_warning():
    net = nn.Sequential(nn.Conv1d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 14, 4))
    x = torch.randn(64, 3, 16, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match=r"bias correction skipped: .*'0' \(.*ConvReLU1d\)"):
        q = cl.quantize(net, cl.Int8Static(), calibration_data=x)
    note = q.compresslib_recipe["bias_correction"]
    assert note["layers"] == 0 and "ConvReLU1d" in note["skipped"]
    assert q(x).shape == (64, 4) and float((q(x) - net(x)).abs().max()) < 0.1  # still an int8 model
