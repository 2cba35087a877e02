"""compresslib.save / load: exact round trips, no pickle, clear errors."""
import json
import zipfile

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.core import packing
from compresslib.keras import models as km
from compresslib.torch import models as tm


@pytest.mark.parametrize("name", ["lenet300_100", "lenet5", "resnet8"])
def test_torch_round_trip_is_exact(tmp_path, name):
    model = cl.zoo.pretrained(name, "torch")
    path = tmp_path / "m.clz"
    size = cl.save(model, path)
    assert size == path.stat().st_size
    loaded = cl.load(path)
    assert type(loaded) is type(model) and loaded is not model
    x = torch.from_numpy(cl.datasets.load_mnist("test", layout="torch").x[:64])
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # dense fp32 .clz is about the size of the fp32 values
    assert 4 * sum(p.numel() for p in model.parameters()) < size < 4.2 * sum(
        t.numel() for t in model.state_dict().values()) + 60_000


@pytest.mark.parametrize("name", ["lenet300_100", "resnet8"])
def test_keras_round_trip_is_exact(tmp_path, name):
    model = cl.zoo.pretrained(name, "keras")
    path = tmp_path / "m.clz"
    cl.save(model, path)
    loaded = cl.load(path)
    x = cl.datasets.load_mnist("test", layout="keras").x[:64]
    np.testing.assert_array_equal(model.predict_on_batch(x), loaded.predict_on_batch(x))


def test_torch_half_and_bfloat16_round_trip(tmp_path):
    for dtype in (torch.float16, torch.bfloat16):
        model = tm.build("lenet5").to(dtype).eval()
        cl.save(model, tmp_path / "h.clz")
        loaded = cl.load(tmp_path / "h.clz")
        assert all(p.dtype == dtype for p in loaded.parameters())
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_file_has_no_pickle(tmp_path):
    path = tmp_path / "m.clz"
    cl.save(tm.build("lenet5"), path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert "manifest.json" in names
        assert all(n == "manifest.json" or n.endswith(".npy") for n in names)
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        for n in names:
            if n.endswith(".npy"):
                np.load(__import__("io").BytesIO(zf.read(n)), allow_pickle=False)


def test_refuses_classes_outside_the_allowlist(tmp_path):
    path = tmp_path / "m.clz"
    cl.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), path)
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        arrays = {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}
    manifest["spec"]["root"]["class"] = "os.system"
    evil = tmp_path / "evil.clz"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for n, b in arrays.items():
            zf.writestr(n, b)
    with pytest.raises(ValueError, match="refusing to load class 'os.system'"):
        cl.load(evil)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        cl.load(tmp_path / "missing.clz")
    bad = tmp_path / "bad.clz"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("x.txt", "hello")
    with pytest.raises(ValueError, match="not a compresslib .clz file"):
        cl.load(bad)
    with pytest.raises(TypeError, match="model must be"):
        cl.save("not a model", tmp_path / "x.clz")
    import torch.nn.utils.prune

    model = tm.build("lenet300_100")
    torch.nn.utils.prune.l1_unstructured(model[1], "weight", amount=0.5)
    with pytest.raises(ValueError, match="forward_pre_hooks"):
        cl.save(model, tmp_path / "masked.clz")


def test_packing_dense_round_trip():
    a = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    meta, arrays = packing.encode(a, "dense")
    np.testing.assert_array_equal(packing.decode(meta, arrays), a)
    with pytest.raises(ValueError, match="encoding"):
        packing.encode(a, "zip")
