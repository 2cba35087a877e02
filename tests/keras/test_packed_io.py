"""Keras GPTQ/AWQ models in .clz: kernels stored as packed codes + group scales, loaded back bit for bit."""
import os
import tempfile

import numpy as np
import pytest
import torch  # noqa: F401  (torch before tensorflow)
import keras

import compresslib as cl
from compresslib.core import packing
from compresslib.io import read_manifest
from compresslib.keras import packed_io


def _round_trip(model, tmp: str):
    path = os.path.join(tmp, "m.clz")
    size = cl.save(model, path)
    return size, read_manifest(path), cl.load(path)


@pytest.mark.parametrize("bits", [4, 3])
def test_gptq_kernels_stored_as_bits_plus_scales(attention, bits):
    m, cal, _ = attention
    q = cl.quantize(m, cl.GPTQ(bits=bits, group_size=16), calibration_data=cal)
    with tempfile.TemporaryDirectory() as d:
        size, man, back = _round_trip(q, d)
        float_size = cl.save(m, os.path.join(d, "f.clz"))
    packed = man["spec"]["packed"]
    # q, k, v, attention output (32·32 each), fc1 (32·64), fc2 (64·32), head (32·8): 7 kernels, 8,448 weights
    assert len(packed) == 7 and {e["bits"] for e in packed.values()} == {bits}
    n = sum(int(np.prod(e["shape"])) for e in packed.values())
    assert n == 8448
    stored = {k: sum(int(np.prod(p["shape"])) * np.dtype(p["dtype"]).itemsize for p in t["parts"].values())
              for k, t in man["tensors"].items()}
    assert sum(v for k, v in stored.items() if k.endswith("#codes")) == 8448 * bits // 8  # 4,224 / 3,168
    assert sum(v for k, v in stored.items() if k.endswith("#scale")) == 4 * 8448 // 16  # 2,112: one float per 16
    assert size < 0.3 * float_size
    assert np.array_equal(np.asarray(q(cal)), np.asarray(back(cal)))  # identical outputs after reload
    with tempfile.TemporaryDirectory() as d:  # loaded codes are kept: saving again stays packed
        assert cl.save(back, os.path.join(d, "again.clz")) == size


def test_awq_input_scales_and_8_bits_round_trip(attention):
    m, cal, _ = attention
    for config in (cl.AWQ(bits=4, group_size=16), cl.GPTQ(bits=8, group_size=None)):
        q = cl.quantize(m, config, calibration_data=cal)
        with tempfile.TemporaryDirectory() as d:
            _, man, back = _round_trip(q, d)
        entries = man["spec"]["packed"]
        assert len(entries) == 7
        assert all(e["input_scale"] == isinstance(config, cl.AWQ) for e in entries.values())
        assert np.array_equal(np.asarray(q(cal)), np.asarray(back(cal)))


def test_a_kernel_changed_after_quantizing_is_stored_float(attention):
    m, cal, _ = attention
    q = cl.quantize(m, cl.GPTQ(bits=4, group_size=16), calibration_data=cal)
    head = q.get_layer("head")
    head.kernel.assign(np.asarray(head.kernel.numpy()) + np.float32(1e-3))
    with tempfile.TemporaryDirectory() as d:
        _, man, back = _round_trip(q, d)
    assert len(man["spec"]["packed"]) == 6
    assert np.array_equal(np.asarray(q(cal)), np.asarray(back(cal)))


def test_corrupt_entries_refused():
    spec = {"packed": {"w000": {"bits": 4, "group_size": 4, "fan_in": 4, "shape": [4, 2],
                                "input_scale": False}}}
    good = {"w000#codes": packing.pack_codes(np.zeros(8, np.int8), 4), "w000#scale": np.ones(2, np.float32)}
    assert packed_io.unpack(spec, good)[1]["w000"].shape == (4, 2)
    with pytest.raises(ValueError, match="8 codes of 4 bits take 4 bytes, got 3"):
        packed_io.unpack(spec, dict(good, **{"w000#codes": np.zeros(3, np.uint8)}))
    with pytest.raises(ValueError, match="scale must hold 2 float32 values"):
        packed_io.unpack(spec, dict(good, **{"w000#scale": np.ones(3, np.float32)}))
    bad = {"packed": {"w000": dict(spec["packed"]["w000"], bits=5)}}
    with pytest.raises(ValueError, match="bits must be one of"):
        packed_io.unpack(bad, good)
