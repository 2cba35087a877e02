"""compresslib.save / load: exact round trips, no pickle, clear errors."""
import json
import sys
import zipfile
import zlib

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
    """A version-1 file as compresslib wrote it before 0.1.0: one .npy entry per part, indented manifest."""
    import io

    from compresslib.torch import io as tio

    spec, tensors = tio.to_spec(model)
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


def test_refuses_version_1_files(tmp_path):
    """Version 1 files (one .npy entry per part; only compresslib before 0.1.0 wrote them) are refused, saying why."""
    model = cl.zoo.pretrained("lenet5", "torch")
    old = tmp_path / "v1.clz"
    _write_v1(old, model)
    for read in (cl.load, cl.io.read_manifest):
        with pytest.raises(ValueError, match=r"v1\.clz: a version 1 \.clz file \(written before compresslib 0\.1\.0\) is no "
                                             r"longer read; save the model again with this compresslib \(format version 2\)"):
            read(old)


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


# --------------------------------------------------------------------------- what load constructs (issue 17)
def _save_edited(tmp_path, model, edit, name="evil.clz"):
    good = tmp_path / "good.clz"
    cl.save(model, good)
    bad = tmp_path / name
    _rewrite(good, bad, edit)
    return bad


class _Spy:
    """Records the class of every torch module initialised while active."""

    def __enter__(self):
        self.seen, self._init = set(), torch.nn.Module.__init__
        spy = self

        def init(module, *args, **kwargs):
            spy.seen.add(type(module))
            return spy._init(module, *args, **kwargs)

        torch.nn.Module.__init__ = init
        return self

    def __exit__(self, *exc):
        torch.nn.Module.__init__ = self._init


WALKED = [
    "torch.nn.modules.module.torch.jit.RecursiveScriptModule",  # the two paths from the issue
    "torch.nn.modules.module.torch.ao.nn.quantized.Linear",
    "torch.jit.RecursiveScriptModule",
    "torch.ao.nn.quantized.modules.linear.Linear",
    "compresslib.torch.io.torch.nn.modules.linear.Linear",
    "compresslib.torch.io.nn.Linear",
    "torch.nn.Linear.__subclasses__",
    "torch.nn.parallel.data_parallel.DataParallel",
    "os.system",
    "xml.dom.minidom.Node",
    "",
]


@pytest.mark.parametrize("path", WALKED)
def test_walked_and_foreign_class_paths_are_refused(tmp_path, path):
    bad = _save_edited(tmp_path, torch.nn.Sequential(torch.nn.Linear(2, 2)),
                       lambda m: m["spec"]["root"]["children"]["0"].update({"class": path}))
    modules = set(sys.modules)
    with _Spy() as spy, pytest.raises(ValueError, match=r"evil\.clz: spec in manifest\.json: class .* is not registered"):
        cl.load(bad)
    assert spy.seen == set()  # checked before anything was built, the valid root included
    assert not {m for m in set(sys.modules) - modules if m.startswith(("xml", "os"))}  # nothing imported


def test_registry_holds_torch_nn_exports_and_compresslib_classes_exactly():
    from compresslib.torch import io as tio
    from compresslib.torch.layers import PointwiseConv2d
    from compresslib.torch.models import BasicBlock, ResNet8
    from compresslib.torch.quantization import WeightOnlyConv2d, WeightOnlyLinear

    registry = tio.registered_classes()
    exported = {f"{c.__module__}.{c.__qualname__}": c for c in vars(torch.nn).values()
                if isinstance(c, type) and issubclass(c, torch.nn.Module) and c is not torch.nn.DataParallel}
    assert exported.items() <= registry.items()
    own = {c: f"{c.__module__}.{c.__qualname__}" for c in (PointwiseConv2d, BasicBlock, ResNet8,
                                                          WeightOnlyLinear, WeightOnlyConv2d)}
    assert all(registry[name] is c for c, name in own.items())
    internal = torch.nn.modules.linear.NonDynamicallyQuantizableLinear  # MultiheadAttention.out_proj
    extra = {k for k in registry if k not in exported and k not in own.values()} - {tio.class_path(internal)}
    assert not {k for k in extra if registry[k].__module__.startswith("torch")}, extra  # no other torch class
    assert "torch.nn.parallel.data_parallel.DataParallel" not in registry
    assert "torch.nn.Linear" not in registry  # exact module.qualname only
    assert len(exported) > 100


def test_multihead_attention_round_trip(tmp_path):
    model = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    cl.save(model, tmp_path / "a.clz")
    back = cl.load(tmp_path / "a.clz")
    x = torch.randn(2, 5, 8)
    with torch.no_grad():
        assert torch.equal(model(x, x, x)[0], back(x, x, x)[0])


class Doubler(torch.nn.Module):
    """A user's layer: unregistered until a test registers it."""

    def __init__(self, width: int = 3):
        super().__init__()
        self.width = width
        self.lin = torch.nn.Linear(width, width)

    def forward(self, x):
        return 2 * self.lin(x)


class Halver(Doubler):
    def forward(self, x):
        return self.lin(x) / 2


def test_register_class_and_custom_objects_for_torch(tmp_path):
    model = torch.nn.Sequential(Doubler(), torch.nn.ReLU())
    x = torch.randn(4, 3)
    cl.save(model, tmp_path / "u.clz")  # an unregistered class is saved as code-free module + tensors
    with pytest.raises(ValueError, match="user class .*Doubler.*load\\(path, model=YourModel"):
        cl.load(tmp_path / "u.clz")
    template = torch.nn.Sequential(Doubler(), torch.nn.ReLU())
    back = cl.load(tmp_path / "u.clz", model=template)
    assert type(back[0]) is Doubler and back[0] is not template[0] and torch.equal(back(x), model(x))
    assert not torch.equal(template[0].lin.weight, model[0].lin.weight)  # the instance given is not changed
    with pytest.raises(ValueError, match="the model given is a 'torch.nn.modules.linear.Linear'"):
        cl.load(tmp_path / "u.clz", model=torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.ReLU()))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        cl.load(tmp_path / "u.clz", model="Doubler")
    assert cl.io.register_class(Doubler) is Doubler
    cl.io.register_class(Doubler)  # again: the same class under the same name is fine
    cl.save(model, tmp_path / "m.clz")
    back = cl.load(tmp_path / "m.clz")
    assert type(back[0]) is Doubler and torch.equal(back(x), model(x))
    # a class the registry does not hold comes only from the caller's custom_objects
    name = f"{Halver.__module__}.Halver"
    bad = _save_edited(tmp_path, model, lambda m: m["spec"]["root"]["children"]["0"].update({"class": name}))
    with pytest.raises(ValueError, match="Halver' is not registered"):
        cl.load(bad)
    back = cl.load(bad, custom_objects={name: Halver})
    assert type(back[0]) is Halver and torch.equal(back(x), torch.relu(model[0].lin(x) / 2))
    with pytest.raises(ValueError, match="already registered"):
        cl.io.register_class(Halver, name=f"{Doubler.__module__}.Doubler")
    with pytest.raises(TypeError, match="cls must be"):
        cl.io.register_class(int)
    with pytest.raises(TypeError, match="custom_objects"):
        cl.load(bad, custom_objects={name: "Halver"})
    with pytest.raises(TypeError, match="custom_objects"):
        cl.load(bad, custom_objects=[Halver])
    with pytest.raises(TypeError, match="limits"):
        cl.load(bad, limits={"tensors": 3})


@pytest.mark.parametrize("key, value, match", [
    ("forward", "x", "would replace a method"),
    ("extra_repr", 1, "would replace a method"),
    ("__class__", "x", "not allowed"),
    ("_modules", [], "not allowed"),
    ("in_features", {"a": 1}, "not a plain attribute"),
    ("dtype", {"__dtype__": "load"}, "not a torch dtype"),
    ("dtype", {"__dtype__": "float32", "x": 1}, "not a plain attribute"),
    ("in_features", [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "too deeply"),
])
def test_attributes_that_are_not_plain_values_are_refused(tmp_path, key, value, match):
    bad = _save_edited(tmp_path, torch.nn.Sequential(torch.nn.Linear(2, 2)),
                       lambda m: m["spec"]["root"]["children"]["0"]["attrs"].update({key: value}))
    with _Spy() as spy, pytest.raises(ValueError, match=match):
        cl.load(bad)
    assert spy.seen == set()


@pytest.mark.parametrize("edit, match", [
    (lambda m: m["spec"]["root"].pop("params"), "exactly"),
    (lambda m: m["spec"]["root"]["children"]["1"]["params"].update(extra={"requires_grad": True}), "no tensor"),
    (lambda m: m["spec"]["root"]["children"]["1"]["params"].pop("bias"), "no module uses them"),
    (lambda m: m["spec"]["root"]["children"].update({"a.b": None}), "not a valid"),
    (lambda m: m["spec"]["root"]["children"]["1"]["params"].update(weight={"requires_grad": "yes"}), "described"),
    (lambda m: m["spec"].update(torch_dtypes={"1.weight": "float8"}), "bfloat16"),
    (lambda m: m.update(framework="keras"), "Keras model is described"),
    (lambda m: m.update(framework="jax"), "framework must be one of"),
])
def test_descriptions_that_do_not_fit_are_refused(tmp_path, edit, match):
    bad = _save_edited(tmp_path, tm.build("lenet300_100"), edit)
    with pytest.raises(ValueError, match=match):
        cl.load(bad)


def test_deep_nesting_is_refused(tmp_path):
    model = torch.nn.Sequential()
    inner = model
    for _ in range(30):
        child = torch.nn.Sequential()
        inner.add_module("n", child)
        inner = child
    cl.save(model, tmp_path / "deep.clz")
    assert len(list(cl.load(tmp_path / "deep.clz").modules())) == 31
    with pytest.raises(ValueError, match="nested more than 20 deep"):
        cl.load(tmp_path / "deep.clz", limits=cl.io.Limits(depth=20))


@pytest.fixture(scope="module")
def int8_lenet():
    x = cl.datasets.load_mnist("train", layout="torch").x[:64]
    return cl.quantize(cl.zoo.pretrained("lenet5", "torch"), cl.Int8Static(), calibration_data=x)


@pytest.mark.parametrize("edit, match", [
    (lambda r: r["config"].update(type="Exec"), "config type must be one of"),
    (lambda r: r["example"].update(shape=[4096, 1, 4096, 4096]), "example shape"),
    (lambda r: r.update(example=None), "needs an example input"),
    (lambda r: r.update(mode="exec"), "the recipe has keys"),
    (lambda r: r["shapes"].update({"0.weight": [[2 ** 20, 2 ** 20], "float32"]}), "would take more than"),
    (lambda r: r["float_spec"]["root"].update({"class": "torch.nn.modules.module.torch.jit.RecursiveScriptModule"}),
     "is not registered"),
    (lambda r: r["config"].update({"__class__": 1}), "has no field"),
    (lambda r: r["config"].update({"per_channel": {"a": 1}}), "per_channel must be True or False"),
])
def test_int8_recipes_are_checked_before_they_run(tmp_path, int8_lenet, edit, match):
    bad = _save_edited(tmp_path, int8_lenet, lambda m: edit(m["spec"]["recipe"]))
    with _Spy() as spy, pytest.raises(ValueError, match=match):
        cl.load(bad)
    assert spy.seen == set()


# --------------------------------------------------------------------------- limits before allocation
def test_damaged_deflate_stream_is_a_value_error(tmp_path):
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("manifest.json")
    start = info.header_offset + 30 + len("manifest.json")
    data[start] = 0xFF  # block type 3: "invalid block type"
    bad = tmp_path / "bad.clz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.clz: corrupt manifest\.json: error: .*invalid") as info:
        cl.load(bad)
    assert not isinstance(info.value, zlib.error)


def _parts(m, tensor=None):
    meta = m["tensors"][tensor] if tensor else next(iter(m["tensors"].values()))
    return meta["parts"]


@pytest.mark.parametrize("edit, blob, match", [
    (lambda m: m["tensors"]["1.weight"].update(encoding="constant", shape=[2 ** 33]), None, "too large|would take"),
    (lambda m: m["tensors"]["1.weight"].update(encoding="constant", shape=[2 ** 15, 2 ** 15]), None,
     r"would take \d+ bytes decoded, more than the limit of 1\d{9} for a file of \d+ bytes"),
    (lambda m: m["tensors"]["1.weight"].update(shape=[1] * 40), None, "40 dimensions"),
    (lambda m: m["tensors"]["1.weight"]["parts"].update({f"p{i}": {} for i in range(16)}), None, "stored parts"),
    (lambda m: m["tensors"]["1.weight"]["parts"].clear(), None, "stored parts"),
    (lambda m: _parts(m, "1.bias")["values"].update(offset=_parts(m, "1.weight")["values"]["offset"]), None,
     "overlaps"),
    (lambda m: _parts(m, "1.bias")["values"].update(offset=_parts(m, "1.weight")["values"]["offset"] + 4), None,
     "overlaps"),
    (lambda m: _parts(m, "1.bias")["values"].update(offset=2 ** 62), None, "outside tensors.bin"),
    (lambda m: _parts(m, "1.bias")["values"].update(offset=-1), None, "non-negative"),
    (lambda m: _parts(m, "1.bias")["values"].update(offset=1.0), None, "non-negative"),
    (None, "append", "parts in manifest.json end at byte"),
    (lambda m: m.update(version=1), None, "a version 1 .clz file .* is no longer read"),
    (lambda m: m["tensors"]["1.weight"].update(files={"values": "t.npy"}), None, "'parts' object"),
    (lambda m: m.update(version=True), None, "unsupported format"),
    (lambda m: m.update(version=2.0), None, "unsupported format"),
])
def test_sizes_offsets_and_versions_are_checked_before_allocation(tmp_path, edit, blob, match):
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    with zipfile.ZipFile(good) as zf:
        data = zf.read("tensors.bin")
    bad = tmp_path / "bad.clz"
    _rewrite(good, bad, edit, data + b"\0" * 8 if blob == "append" else None)
    with pytest.raises(ValueError, match=r"bad\.clz: .*" + match):
        cl.load(bad)


def test_limits_on_tensors_and_the_decoded_budget(tmp_path):
    path = tmp_path / "m.clz"
    cl.save(tm.build("lenet5"), path)
    with pytest.raises(ValueError, match="10 tensors, more than the limit of 3"):
        cl.load(path, limits=cl.io.Limits(tensors=3))
    zeros = torch.nn.Linear(1000, 1000)
    torch.nn.init.zeros_(zeros.weight)
    torch.nn.init.zeros_(zeros.bias)  # two constants: a file of ~1 KB that decodes to 4 MB
    size = cl.save(zeros, tmp_path / "z.clz")
    assert size < 2000 and torch.equal(cl.load(tmp_path / "z.clz").weight, zeros.weight)
    with pytest.raises(ValueError, match=r"would take 4004000 bytes decoded, more than the limit of 1048576"):
        cl.load(tmp_path / "z.clz", limits=cl.io.Limits(min_budget=2 ** 20, expansion=100))
    with pytest.raises(ValueError, match="Limits.depth must be a positive integer"):
        cl.io.Limits(depth=0)
    assert cl.io.Limits().budget(path.stat().st_size) == 256 * 2 ** 20


@pytest.mark.parametrize("entries, match", [
    ({"manifest.json": None, "tensors.bin": None, "extra.npy": b"x"}, "holds exactly"),
    ({"manifest.json": None, "tensors.bin": "deflate"}, "must be stored"),
    ({"manifest.json": None}, "holds exactly"),
])
def test_version_2_archive_entries(tmp_path, entries, match):
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    with zipfile.ZipFile(good) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    bad = tmp_path / "bad.clz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in entries.items():
            deflate = data == "deflate" or name == "manifest.json"
            zf.writestr(name, parts.get(name, data) if data in (None, "deflate") else data,
                        compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED)
    with pytest.raises(ValueError, match=match):
        cl.load(bad)


def test_archive_must_be_laid_out_as_save_writes_it(tmp_path):
    good = tmp_path / "m.clz"
    cl.save(tm.build("lenet300_100"), good)
    data = good.read_bytes()
    bad = tmp_path / "bad.clz"
    bad.write_bytes(b"junk" + data)  # zipfile itself accepts a prefix
    with pytest.raises(ValueError, match="as compresslib writes it"):
        cl.load(bad)
    with zipfile.ZipFile(good) as zf:
        start = zf.start_dir
    flipped = bytearray(data)
    flipped[start + 36] ^= 1  # the first directory entry's internal attributes: zipfile ignores them
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="unexpected attributes"):
        cl.load(bad)
    flipped = bytearray(data)
    flipped[10] ^= 1  # the first local header's time: zipfile reads the directory's
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="local header .* differs"):
        cl.load(bad)


# --------------------------------------------------------------------------- Keras
@pytest.fixture(scope="module")
def keras_mlp():
    return km.build("lenet300_100")


def _keras_edit(tmp_path, model, edit):
    return _save_edited(tmp_path, model, lambda m: edit(m["spec"]["config"]))


def _layer(config, index=2):  # layers: InputLayer, Flatten, Dense, Dense, Dense
    return config["config"]["layers"][index]


@pytest.mark.parametrize("edit, match", [
    (lambda c: _layer(c).update(class_name="Lambda"), "is not allowed"),
    (lambda c: _layer(c).update(class_name="TFSMLayer"), "is not allowed"),
    (lambda c: _layer(c).update(class_name="TorchModuleWrapper"), "is not allowed"),
    (lambda c: _layer(c).update(module="os", class_name="system"), "is not allowed"),
    (lambda c: _layer(c).update(module="keras.src.saving.saving_lib", class_name="load_model"), "is not allowed"),
    (lambda c: _layer(c).update(module="keras.models", class_name="load_model"), "is not allowed"),
    (lambda c: _layer(c).update(registered_name="compresslib>Nothing"), "is not allowed"),
    (lambda c: _layer(c)["config"].update(activation={"class_name": "__lambda__", "config": {"code": "x"}}),
     "'__lambda__' is not allowed"),
    (lambda c: _layer(c)["config"].update(activation={"module": "builtins", "class_name": "function",
                                                      "config": "eval", "registered_name": None}), "function 'eval'"),
    (lambda c: _layer(c)["config"].update(kernel_initializer="Elsewhere>filler"), "registered with Keras outside"),
])
def test_keras_configs_name_only_allowed_objects(tmp_path, keras_mlp, edit, match):
    import keras

    @keras.saving.register_keras_serializable(package="Elsewhere")
    def filler(shape, dtype=None):  # registered with Keras globally by some other library: not trusted by load
        return keras.ops.ones(shape, dtype=dtype)

    bad = _keras_edit(tmp_path, keras_mlp, edit)
    with pytest.raises(ValueError, match=r"evil\.clz: spec in manifest\.json: config.*" + match):
        cl.load(bad)
    if "Elsewhere" in match or "outside" in match:
        back = cl.load(bad, custom_objects={"Elsewhere>filler": filler})  # the caller's trust
        assert all(np.array_equal(a, b) for a, b in zip(back.get_weights(), keras_mlp.get_weights()))


def test_keras_config_cannot_allocate_beyond_the_file(tmp_path, keras_mlp):
    import resource

    from compresslib.keras import io as kio

    def huge(c):
        _layer(c, 2)["config"]["units"] = 2 ** 31
        _layer(c, 3)["build_config"] = {"input_shape": [None, 2 ** 31]}

    bad = _keras_edit(tmp_path, keras_mlp, huge)
    pending = len(kio._pending_variables())
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"weight .* has shape \(784, 2147483648\)"):
        cl.load(bad)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 500_000  # KiB: nothing near 6.7 TB
    assert len(kio._pending_variables()) == pending  # nothing left for a later scope to allocate


def test_register_class_and_custom_objects_for_keras(tmp_path):
    import keras

    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return self.factor * x

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), Scale(3.0)])
    path = tmp_path / "k.clz"
    cl.save(model, path)
    with pytest.raises(ValueError, match="Scale.* is not allowed"):
        cl.load(path)
    x = np.ones((1, 3), np.float32)
    back = cl.load(path, custom_objects={"Scale": Scale})
    np.testing.assert_array_equal(back(x), model(x))
    assert cl.io.register_class(Scale) is Scale
    back = cl.load(path)
    assert type(back.layers[-1]) is Scale and back.layers[-1].factor == 3.0
    np.testing.assert_array_equal(back(x), model(x))
    with pytest.raises(TypeError, match="custom_objects"):
        cl.load(path, custom_objects={"Scale": 3})


def test_keras_weights_are_ordered_by_number():
    from compresslib.keras import io as kio

    names = [f"w{i:03d}" for i in range(1200)]
    assert kio._weight_order(dict.fromkeys(reversed(names))) == names  # sorted() would put w1000 before w101
    with pytest.raises(ValueError, match="without gaps"):
        kio._weight_order({"w000": 0, "w002": 0})
    with pytest.raises(ValueError, match="not a Keras weight name"):
        kio._weight_order({"weights": 0})


def test_every_single_bit_flip_fails_or_changes_nothing(tmp_path):
    """All 8·n one-bit corruptions of a small file: a clear ValueError, except bits the deflate format
    itself ignores (padding after the last code), which leave the loaded model bit-identical."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    good = tmp_path / "m.clz"
    cl.save(model, good)
    data = good.read_bytes()
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("manifest.json")
        deflated = range(info.header_offset + 30 + len("manifest.json"),
                         info.header_offset + 30 + len("manifest.json") + info.compress_size)
    x = torch.randn(4, 3)
    bad, loaded = tmp_path / "bad.clz", []
    for at in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[at] ^= 1 << bit
            bad.write_bytes(bytes(flipped))
            try:
                back = cl.load(bad)
            except ValueError as exc:
                assert str(exc).startswith(f"{bad}: ")
                continue
            assert at in deflated and torch.equal(back(x), model(x)), (at, bit)
            loaded.append(at)
    assert len(loaded) < 0.01 * 8 * len(data)


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_every_compresslib_layer_class_is_registered(framework):
    """A new nn.Module / Keras layer class in compresslib needs its one-line @register_class to be loadable."""
    import importlib
    import inspect
    import pkgutil

    import keras

    package = importlib.import_module(f"compresslib.{framework}")
    base = torch.nn.Module if framework == "torch" else keras.layers.Layer
    if framework == "torch":
        from compresslib.torch import io as tio

        registered = set(tio.registered_classes().values())
    else:
        from compresslib.keras import io as kio

        registered = set(kio.registered_objects().values())
    ours = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        ours += [c for _, c in inspect.getmembers(module, inspect.isclass)
                 if c.__module__ == module.__name__ and issubclass(c, base) and not c.__name__.startswith("_")]
    assert ours, "no layer classes found: the check would be vacuous"
    assert [c.__qualname__ for c in ours if c not in registered] == []
