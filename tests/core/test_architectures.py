"""The residual families' framework-free description: names, validation, channel plans."""
import pytest

from compresslib.core import architectures as arch


@pytest.mark.parametrize("name", ["resnet8_w16", "resnet20_w16_plain", "resnet11_w8_bottleneck", "resnet14_w8.24.32",
                                  "resnet8_w64_56px", "resnet29_w4_bottleneck_plain_32px", "invres_x0.5", "invres_x1.0",
                                  "invres_x0.75_56px"])
def test_names_round_trip(name):
    assert arch.parse(name).name == name
    assert arch.is_family_name(name)


def test_spec_fields():
    s = arch.parse("resnet32_w16_plain")
    assert (s.depth, s.widths, s.block, s.plain, s.blocks_per_stage, s.stage_outputs) == \
        (32, (16, 32, 64), "basic", True, 5, (16, 32, 64))
    b = arch.parse("resnet20_w8_bottleneck")
    assert (b.blocks_per_stage, b.stage_outputs) == (2, (32, 64, 128))
    assert arch.resnet_spec(14, (8, 24, 32)).name == "resnet14_w8.24.32"


@pytest.mark.parametrize("kwargs, message", [
    ({"depth": 10}, "depth must be 6n \\+ 2 for basic blocks"),
    ({"depth": 14, "block": "bottleneck"}, "depth must be 9n \\+ 2 for bottleneck blocks"),
    ({"depth": 2}, "depth must be"),
    ({"block": "dense"}, "block must be one of"),
    ({"widths": (8, 16)}, "widths must be an int or three ints"),
    ({"widths": (8, 0, 16)}, "widths must be an integer >= 1"),
    ({"plain": "yes"}, "plain must be True or False"),
    ({"input_size": 4}, "input_size must be an integer >= 8"),
])
def test_resnet_spec_refuses_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        arch.resnet_spec(**kwargs)


def test_inverted_residual_spec():
    s = arch.inverted_residual_spec(0.5)
    blocks = s.blocks()
    assert len(blocks) == sum(n for _, _, n, _ in arch.INVRES_SETTINGS) == 8
    assert [b.stride for b in blocks] == [1, 2, 1, 2, 1, 1, 1, 1]
    assert [b.residual for b in blocks] == [True, False, True, False, True, True, False, True]
    assert s.stem == 8 and s.head == 256 and blocks[1].hidden == 48
    assert all(b.out_channels % 8 == 0 for b in blocks)
    for bad in (0, 5, "1", True):
        with pytest.raises(ValueError, match="width_mult must be a number"):
            arch.inverted_residual_spec(bad)


def test_make_divisible_never_drops_below_90_percent():
    for v in range(1, 400):
        out = arch.make_divisible(v)
        assert out % 8 == 0 and out >= 0.9 * v and out >= 8


def test_parse_refuses_other_names_and_other_spellings():
    for bad in ("resnet8", "lenet5", "resnet10_w16", "resnet14_w16_bottleneck", "invres_x", "resnet20"):
        with pytest.raises(ValueError):
            arch.parse(bad)
        assert not arch.is_family_name(bad)
    with pytest.raises(ValueError, match="is spelled 'resnet20_w16'"):
        arch.parse("resnet20_w16.32.64")
    with pytest.raises(TypeError, match="name must be a string"):
        arch.parse(20)
