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


def test_file_layout_v2(tmp_path):
    """Two entries: the deflated compact manifest, and one stored blob of 8-byte-aligned raw parts."""
    path = tmp_path / "m.clz"
    model = tm.build("lenet5")
    cl.save(model, path)
    with zipfile.ZipFile(path) as zf:
        info = {i.filename: i for i in zf.infolist()}
        assert set(info) == {"manifest.json", "tensors.bin"}
        assert info["manifest.json"].compress_type == zipfile.ZIP_DEFLATED
        assert info["tensors.bin"].compress_type == zipfile.ZIP_STORED
        text = zf.read("manifest.json").decode()
        blob = zf.read("tensors.bin")
    assert "\n" not in text and ", " not in text  # compact JSON
    manifest = json.loads(text)
    assert manifest["version"] == 2
    state = model.state_dict()
    for name, meta in manifest["tensors"].items():
        (part, where), = meta["parts"].items()
        assert where["offset"] % 8 == 0 and part == "values"
        raw = np.frombuffer(blob, np.dtype(where["dtype"]).newbyteorder("<"), offset=where["offset"],
                            count=int(np.prod(where["shape"])))
        np.testing.assert_array_equal(raw.reshape(meta["shape"]), state[name].numpy())


def _write_v1(path, model):
    """A version-1 file as compresslib 1 wrote it: one .npy entry per part, indented manifest."""
    import io

    from compresslib.torch import io as tio

    spec, tensors = tio.export(model)
    manifest = {"format": "compresslib.clz", "version": 1, "framework": "torch", "spec": spec, "tensors": {}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, (name, array) in enumerate(tensors.items()):
            files = {}
            for part, values in {"values": np.ascontiguousarray(array)}.items():
                buf = io.BytesIO()
                np.save(buf, values, allow_pickle=False)
                zf.writestr(f"t{i:04d}.{part}.npy", buf.getvalue())
                files[part] = f"t{i:04d}.{part}.npy"
            manifest["tensors"][name] = {"encoding": "dense", "shape": list(array.shape), "dtype": str(array.dtype),
                                         "files": files}
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))


def test_reads_version_1_files(tmp_path):
    model = cl.zoo.pretrained("lenet5", "torch")
    old, new = tmp_path / "v1.clz", tmp_path / "v2.clz"
    _write_v1(old, model)
    assert cl.io.read_manifest(old)["version"] == 1
    loaded = cl.load(old)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert cl.save(model, new) < old.stat().st_size


def _rewrite(src, dst, edit_manifest=None, blob=None):
    with zipfile.ZipFile(src) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        data = zf.read("tensors.bin")
    if edit_manifest:
        edit_manifest(manifest)
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("tensors.bin", data if blob is None else blob)
        zf.writestr("manifest.json", json.dumps(manifest))


def _first_part(m):
    return next(iter(next(iter(m["tensors"].values()))["parts"].values()))


@pytest.mark.parametrize("edit, blob, match", [
    (lambda m: _first_part(m).update(offset=10 ** 9), None, "outside tensors.bin"),
    (lambda m: _first_part(m).update(offset=-8), None, "non-negative"),
    (lambda m: _first_part(m).update(offset="0"), None, "non-negative"),
    (lambda m: _first_part(m).update(dtype="object"), None, "not an allowed numeric dtype"),
    (lambda m: _first_part(m).update(dtype="V8"), None, "not an allowed numeric dtype"),
    (lambda m: _first_part(m).update(shape=[10 ** 12]), None, "outside tensors.bin"),
    (lambda m: _first_part(m).update(shape=[-3]), None, "non-negative"),
    (lambda m: _first_part(m).update(shape=[1]), None, "needs"),
    (lambda m: next(iter(m["tensors"].values())).update(shape=[7, 7]), None, "needs"),
    (lambda m: next(iter(m["tensors"].values())).update(dtype="<U4"), None, "not an allowed"),
    (lambda m: next(iter(m["tensors"].values())).pop("parts"), None, "parts"),
    (lambda m: next(iter(m["tensors"].values())).update(encoding="pickle"), None, "unknown encoding"),
    (None, b"", "outside tensors.bin"),
    (lambda m: m.update(version=3), None, "unsupported format"),
])
def test_corrupt_files_give_value_errors(tmp_path, edit, blob, match):
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    bad = tmp_path / "bad.clz"
    _rewrite(good, bad, edit, blob)
    with pytest.raises(ValueError, match=match):
        cl.load(bad)


def test_garbage_is_not_a_clz_file(tmp_path):
    bad = tmp_path / "garbage.clz"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a compresslib .clz file"):
        cl.load(bad)
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    with zipfile.ZipFile(good) as zf:
        data = zf.read("tensors.bin")
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("tensors.bin", data)
        zf.writestr("manifest.json", "{not json")
    with pytest.raises(ValueError, match="corrupt manifest.json"):
        cl.load(bad)


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


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_measure_packed_sets_packed_bytes(tmp_path, framework):
    model = (tm if framework == "torch" else km).build("lenet300_100")
    x = cl.datasets.load_mnist("test", layout=framework).x[:4]
    plain = cl.measure(model, example_input=x, latency=False)
    assert plain.packed_bytes is None
    r = cl.measure(model, example_input=x, latency=False, packed=True)
    assert r.packed_bytes == cl.save(model, tmp_path / "m.clz") > 3.9 * r.params  # fp32 weights, zero biases constant
    with pytest.raises(TypeError, match="packed"):
        cl.measure(model, example_input=x, latency=False, packed="yes")
