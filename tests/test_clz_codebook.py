"""Corrupt .clz files holding codebook tensors: a ValueError naming the tensor, never a crash or a wrong model."""
import json
import time
import zipfile

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.torch import sharing


@pytest.fixture(scope="module")
def shared_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("clz") / "s.clz"
    model = cl.prune(cl.zoo.pretrained("lenet300_100", "torch"), cl.Magnitude(0.95, scope="global"))
    cl.save(sharing.share_weights(model, cl.WeightSharing(bits=5)), path)
    return path


def _rewrite(src, dst, manifest_fn=None, blob_fn=None):
    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        blob = bytearray(zf.read("tensors.bin"))
    if manifest_fn:
        manifest_fn(manifest)
    if blob_fn:
        blob = blob_fn(blob)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("tensors.bin", bytes(blob))
        zf.writestr("manifest.json", json.dumps(manifest))


def _fc1(manifest):
    return manifest["tensors"]["1.weight"]


@pytest.mark.parametrize("change,message", [
    (lambda m: _fc1(m).update(k=300), "codebook of 300 entries is larger than the 256 allowed"),
    (lambda m: _fc1(m).update(k=_fc1(m)["k"] - 1), "codebook holds"),
    (lambda m: _fc1(m)["parts"]["counts"].update(shape=[_fc1(m)["parts"]["counts"]["shape"][0] - 1]),
     "symbol counts must be"),
    (lambda m: _fc1(m).update(shape=[300, 700]), "symbol counts say|relative indices run|ANS stream is corrupt"),
    (lambda m: _fc1(m)["parts"]["words"].update(shape=[10 ** 9]), "lie outside"),
    (lambda m: _fc1(m).update(pos="zigzag"), "positions must be one of"),
])
def test_corrupt_manifest_names_the_tensor(shared_file, tmp_path, change, message):
    assert _fc1(json.loads(zipfile.ZipFile(shared_file).read("manifest.json")))["encoding"] == "codebook_ans"
    bad = tmp_path / "bad.clz"
    _rewrite(shared_file, bad, manifest_fn=change)
    with pytest.raises(ValueError, match=rf"tensor '1.weight'( part '\w+')? is corrupt: .*({message})"):
        cl.load(bad)


def test_flipped_bytes_in_the_coded_words(shared_file, tmp_path):
    manifest = json.loads(zipfile.ZipFile(shared_file).read("manifest.json"))
    words = _fc1(manifest)["parts"]["words"]
    rng = np.random.default_rng(0)
    refused = 0
    for trial in range(20):
        def flip(blob, trial=trial):
            i = words["offset"] + int(rng.integers(0, 4 * words["shape"][0]))
            blob[i] ^= int(rng.integers(1, 256))
            return blob
        bad = tmp_path / f"flip{trial}.clz"
        _rewrite(shared_file, bad, blob_fn=flip)
        try:
            cl.load(bad)
        except ValueError as exc:
            assert "tensor '1.weight' is corrupt" in str(exc)
            refused += 1
    assert refused >= 19  # the counts check catches (almost) every flip


def test_truncated_file(shared_file, tmp_path):
    data = shared_file.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp_path / "t.clz").write_bytes(data[:cut])
        with pytest.raises(ValueError):
            cl.load(tmp_path / "t.clz")


def test_encode_and_decode_are_fast(tmp_path):
    """Encoding plus decoding the largest target model (Caffe LeNet-5, 431 k weights) stays well under 2 s."""
    model = cl.prune(cl.zoo.pretrained("lenet5_caffe", "torch"), cl.Magnitude(0.95, scope="global"))
    shared = sharing.share_weights(model, cl.WeightSharing(bits=5, conv_bits=8))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        cl.save(shared, tmp_path / "c.clz")
        back = cl.load(tmp_path / "c.clz")
        best = min(best, time.perf_counter() - t0)
    assert all(torch.equal(a, b) for a, b in zip(shared.state_dict().values(), back.state_dict().values()))
    assert best < 2.0
