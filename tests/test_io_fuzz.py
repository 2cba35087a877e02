"""Fuzzing ``compresslib.load`` (issue 17): mutated, truncated and crafted ``.clz`` files, both frameworks.

Every example must either load exactly what was saved (byte-level corruption that hit no
data) or raise a ``ValueError`` whose message starts with the file's path. For files whose
manifest was edited into another valid description, loading may succeed, but only with
registered classes. In every example: nothing hangs (a deadline per example), nothing
allocates beyond a bound (``tracemalloc`` peak against the decoded-bytes budget of
:class:`compresslib.io.Limits`), and no class outside the registry is constructed (a spy on
module construction in each framework). Bounded: the whole file runs in well under 60 s on
2 cores (examples are derandomized, so CI runs the same cases every time).
"""
from __future__ import annotations

import contextlib
import datetime
import json
import sys
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import compresslib as cl
from compresslib.io import Limits

LIMITS = Limits(manifest_bytes=2 ** 20, min_budget=8 * 2 ** 20, expansion=16)
BUDGET = LIMITS.min_budget  # every seed file is small: its budget is the floor
# What one load may allocate (tracemalloc sees NumPy and Python): the blob and the manifest,
# the decoded tensors (budget) plus a decoder's scratch (at most twice that), and the rebuilt model.
ALLOC_BOUND = 4 * BUDGET + 4 * LIMITS.manifest_bytes

FUZZ = settings(deadline=datetime.timedelta(seconds=20), derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


def fuzz(examples: int) -> settings:
    """The fuzz settings with ``examples`` examples (derandomized: CI runs the same cases)."""
    return settings(FUZZ, max_examples=examples)


# --------------------------------------------------------------------------- seed files
def _outputs(model, framework: str, x: np.ndarray) -> np.ndarray:
    if framework == "torch":
        with torch.no_grad():
            return model.eval()(torch.from_numpy(x)).numpy()
    return np.asarray(model(x))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """name -> (framework, file bytes, reference outputs, input) for LeNet-5 fp32, 90 %-pruned and int8."""
    tmp = tmp_path_factory.mktemp("seeds")
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for framework in ("torch", "keras"):
            base = cl.zoo.pretrained("lenet5", framework)
            x = cl.datasets.load_mnist("test", layout=framework).x[:8]
            models = {"fp32": base, "pruned": cl.prune(base, cl.Magnitude(sparsity=0.9))}
            if framework == "torch":
                cal = cl.datasets.load_mnist("train", layout="torch").x[:64]
                models["int8"] = cl.quantize(base, cl.Int8Static(), calibration_data=cal)
            for name, model in models.items():
                path = tmp / f"{framework}_{name}.clz"
                cl.save(model, path)
                out[f"{framework}_{name}"] = (framework, path.read_bytes(), _outputs(model, framework, x), x)
    for framework, data, ref, x in out.values():  # every seed loads back exactly, within the limits
        path = tmp / "check.clz"
        path.write_bytes(data)
        assert np.array_equal(_outputs(cl.load(path, limits=LIMITS), framework, x), ref)
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


# --------------------------------------------------------------------------- the oracle
class _Spy:
    """Records the class of every module (torch) or layer/operation (Keras) created while active."""

    def __init__(self, framework: str):
        self.framework, self.seen = framework, set()

    def __enter__(self):
        spy = self
        if self.framework == "torch":
            self._orig = torch.nn.Module.__init__

            def init(module, *args, **kwargs):
                spy.seen.add(type(module))
                return spy._orig(module, *args, **kwargs)

            torch.nn.Module.__init__ = init
        else:
            from keras.src.ops.operation import Operation

            self._orig = Operation.__dict__["__new__"]
            new = Operation.__new__

            def create(cls, *args, **kwargs):
                spy.seen.add(cls)
                return new(cls, *args, **kwargs)

            Operation.__new__ = staticmethod(create)
        return self

    def __exit__(self, *exc):
        if self.framework == "torch":
            torch.nn.Module.__init__ = self._orig
        else:
            from keras.src.ops.operation import Operation

            Operation.__new__ = self._orig


def _allowed(framework: str, quantized: bool) -> set:
    if framework == "torch":
        from compresslib.torch import io as tio

        return set(tio.registered_classes().values())
    from compresslib.keras import io as kio

    return set(kio.builtin_objects().values()) | set(kio.registered_objects().values())


def _outside(seen: set, framework: str, quantized: bool) -> set:
    """Classes constructed that the registry does not hold. An int8 torch recipe re-runs torch's own
    quantization (the file picks one of four modes), which creates torch.ao and torch.fx modules, and
    for the PT2E path torch.export's own wrapper modules (classes torch defines, never named by the file)."""
    allowed = _allowed(framework, quantized)
    return {c for c in seen if c not in allowed
            and not (quantized and c.__module__.startswith(("torch.ao.", "torch.fx.", "torch.nn.intrinsic",
                                                               "torch.export.", "torch._export.")))}


@contextlib.contextmanager
def traced():
    """``tracemalloc`` around a block; yields a list whose one element becomes the block's peak bytes."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
        peak[0] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check_load(path, framework: str, reference=None, x=None, quantized: bool = False):
    """Load ``path`` under the spy and tracemalloc; return the model, or None after a clear ValueError."""
    model = None
    with traced() as peak, _Spy(framework) as spy, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = cl.load(path, limits=LIMITS)
        except ValueError as exc:
            assert str(exc).startswith(f"{path}: "), f"a ValueError that does not name the file: {exc}"
    assert peak[0] <= ALLOC_BOUND, f"load allocated {peak[0]} bytes (bound {ALLOC_BOUND})"
    outside = _outside(spy.seen, framework, quantized)
    assert not outside, f"constructed classes outside the registry: {outside}"
    if model is not None and reference is not None:  # corruption that hit no data: exactly what was saved
        assert np.array_equal(_outputs(model, framework, x), reference), "loaded something other than what was saved"
    return model


# --------------------------------------------------------------------------- byte-level corruption
def _positions(size: int):
    """Anywhere, or in the ZIP headers at either end (small, but where a reader is most tempted to trust)."""
    return st.one_of(st.integers(0, size - 1), st.integers(max(0, size - 160), size - 1), st.integers(0, min(size - 1, 80)))


@st.composite
def corrupted(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "burst", "insert", "delete"]))
    b = bytearray(data)
    if kind == "truncate":
        return bytes(b[:draw(st.integers(0, len(b) - 1))])
    if kind == "flip":
        for at, mask in draw(st.lists(st.tuples(_positions(len(b)), st.integers(1, 255)), min_size=1, max_size=8)):
            b[at] ^= mask
    elif kind == "burst":
        at = draw(_positions(len(b)))
        chunk = draw(st.binary(min_size=1, max_size=64))
        b[at:at + len(chunk)] = chunk
    elif kind == "insert":
        at = draw(_positions(len(b)))
        b[at:at] = draw(st.binary(min_size=1, max_size=16))
    else:
        at = draw(_positions(len(b)))
        del b[at:at + draw(st.integers(1, 64))]
    return bytes(b)


@pytest.mark.parametrize("name, examples", [("torch_fp32", 60), ("torch_pruned", 50), ("torch_int8", 50),
                                            ("keras_fp32", 40), ("keras_pruned", 30)])
def test_corrupted_bytes(seeds, workdir, name, examples):
    framework, data, reference, x = seeds[name]

    @fuzz(examples)
    @given(st.data())
    def run(draw):
        bad = draw.draw(corrupted(data))
        path = workdir / f"bytes_{name}.clz"
        path.write_bytes(bad)
        check_load(path, framework, reference, x, quantized=name == "torch_int8")

    run()


# --------------------------------------------------------------------------- edited manifests
def _split(data: bytes) -> tuple[dict, dict[str, bytes]]:
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        entries = {n: zf.read(n) for n in zf.namelist()}
    return json.loads(entries.pop("manifest.json")), entries


def _pack(path, manifest: dict, entries: dict[str, bytes]) -> None:
    """Write an archive as ``save`` does: stored array entries, the deflated compact manifest."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        zf.writestr("manifest.json", json.dumps(manifest, separators=(",", ":"), allow_nan=True),
                    compress_type=zipfile.ZIP_DEFLATED)


def _nodes(value, path=()):
    """Every (path, value) in a JSON tree."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


WALKED_TORCH = ["torch.nn.modules.module.torch.jit.RecursiveScriptModule",
                "torch.nn.modules.module.torch.ao.nn.quantized.Linear", "torch.jit.RecursiveScriptModule",
                "compresslib.torch.io.torch.nn.modules.linear.Linear", "os.system", "builtins.eval",
                "torch.nn.modules.linear.Linear", "torch.nn.modules.module.Module", "torch.nn.modules.linear.Identity",
                "compresslib.torch.layers.PointwiseConv2d", "compresslib.torch.quantization.WeightOnlyLinear"]
KERAS_NAMES = ["Lambda", "TFSMLayer", "TorchModuleWrapper", "Dense", "Functional", "load_model", "system",
               "__lambda__", "__typespec__", "__bytes__", "function", "keras.layers", "keras.models",
               "keras.src.saving.saving_lib", "os", "builtins", "compresslib>FakeQuantDense", "Elsewhere>filler",
               "keras.src.models.functional"]
WORDS = ["float32", "object", "uint8", "int64", "dense", "constant", "csr", "zlib", "bitmask_z", "bitmask", "values",
         "value", "torch", "keras", "static", "dynamic", "qat", "bfloat16", "parts", "files", "tensors.bin",
         "manifest.json"]

json_values = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, 1, -1, 7, 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 62, -2 ** 62, 10 ** 30]),
    st.integers(-2 ** 70, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(WALKED_TORCH + KERAS_NAMES + WORDS),
    st.lists(st.sampled_from([0, 1, 3, 2 ** 20, 2 ** 33, -1]), max_size=5),
    st.dictionaries(st.sampled_from(["__tuple__", "__dtype__", "class_name", "module", "config", "a"]),
                    st.one_of(st.none(), st.integers(-3, 3), st.sampled_from(WORDS + KERAS_NAMES)), max_size=3),
)


@st.composite
def edited(draw, manifest: dict) -> dict:
    """The manifest with one to three of its nodes replaced, removed or swapped."""
    manifest = json.loads(json.dumps(manifest))
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(manifest))[1:]
        path, _ = nodes[draw(st.integers(0, len(nodes) - 1))]
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "copy"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "copy":  # another node's value in this place (an offset of another part, say)
            other, value = nodes[draw(st.integers(0, len(nodes) - 1))]
            if other[:len(path)] != path:
                parent[path[-1]] = json.loads(json.dumps(value))
        else:
            parent[path[-1]] = draw(json_values)
    return manifest


@pytest.mark.parametrize("name, examples", [("torch_fp32", 60), ("torch_pruned", 50), ("torch_int8", 25),
                                            ("keras_fp32", 40)])
def test_edited_manifests(seeds, workdir, name, examples):
    framework, data, reference, x = seeds[name]
    manifest, entries = _split(data)

    @fuzz(examples)
    @given(st.data())
    def run(draw):
        bad = draw.draw(edited(manifest))
        path = workdir / f"json_{name}.clz"
        _pack(path, bad, entries)
        quantized = isinstance(bad.get("spec"), dict) and bad["spec"].get("kind") == "torch_quantized"
        check_load(path, framework, quantized=quantized)

    run()


# --------------------------------------------------------------------------- crafted: classes
_SEGMENTS = ["torch", "nn", "modules", "module", "jit", "RecursiveScriptModule", "ao", "quantized", "Linear", "os",
             "system", "Module", "__subclasses__", "compresslib", "io", "builtins", "eval", "linear", "fx",
             "GraphModule", "_C"]


# Paths that attribute walking from an allowed prefix does resolve (checked below): the two
# and their kin. Exact lookup must refuse every one, even those that walk to a registered class.
_WALKS = [("torch.nn.modules.module", "torch.jit.RecursiveScriptModule"),
          ("torch.nn.modules.module", "torch.ao.nn.quantized.Linear"),
          ("torch.nn.modules.linear", "torch.ao.nn.quantized.dynamic.Linear"),
          ("torch.nn.modules.module", "torch.fx.GraphModule"),
          ("torch.nn.modules.conv", "torch.nn.modules.linear.Linear"),
          ("compresslib.torch.io", "torch.jit.RecursiveScriptModule"),
          ("compresslib.torch.io", "nn.Linear"),
          ("compresslib.torch.layers", "nn.modules.linear.Linear"),
          ("torch.nn.modules.linear", "Linear.__base__")]


def _walk(module: str, attrs: str):
    import importlib

    obj = importlib.import_module(module)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    return obj


@st.composite
def walked_paths(draw) -> str:
    if draw(st.booleans()):  # resolvable by walking
        module, attrs = draw(st.sampled_from(_WALKS))
        return f"{module}.{attrs}"
    start = draw(st.sampled_from(["torch.nn", "torch.nn.modules.module", "torch.nn.modules.linear", "compresslib",
                                  "compresslib.torch.io", "compresslib.torch", "torch", "os"]))
    return ".".join([start] + draw(st.lists(st.sampled_from(_SEGMENTS), min_size=1, max_size=5)))


def test_the_walks_do_resolve_by_walking():
    """The fuzz's walked paths are real: a loader that walked attributes would construct these classes."""
    for module, attrs in _WALKS:
        cls = _walk(module, attrs)
        assert isinstance(cls, type) and issubclass(cls, torch.nn.Module), (module, attrs)


@fuzz(60)
@given(path=walked_paths(), node=st.integers(0, 20))
def test_walked_class_paths(seeds, workdir, path, node):
    from compresslib.torch import io as tio

    manifest, entries = _split(seeds["torch_fp32"][1])
    nodes = [v for p, v in _nodes(manifest["spec"]) if isinstance(v, dict) and "class" in v]
    nodes[node % len(nodes)]["class"] = path
    file = workdir / "walked.clz"
    _pack(file, manifest, entries)
    modules = set(sys.modules)
    model = check_load(file, "torch")
    assert set(sys.modules) == modules  # no module named by the file was imported
    if path not in tio.registered_classes():
        assert model is None  # refused (a registered class may load, or not fit this node's attributes)


# Objects Keras itself would resolve by module and name, that a .clz file must still not construct.
_KERAS_PAIRS = [("keras.layers", "TFSMLayer"), ("keras.layers", "TorchModuleWrapper"), ("keras.layers", "JaxLayer"),
                ("keras.layers", "FlaxLayer"), ("keras.layers", "Lambda"), ("keras.models", "load_model"),
                ("keras.src.saving.saving_lib", "load_model"), ("keras.src.utils.file_utils", "get_file"),
                ("keras.layers", "deserialize"), ("keras.saving", "load_model")]
_keras_objects = st.one_of(
    st.sampled_from(_KERAS_PAIRS).map(lambda pair: (*pair, None)),
    st.tuples(st.sampled_from(["keras.layers", "keras.models", "keras", "keras.src.saving.saving_lib", "os", "builtins",
                               "keras.src.utils.file_utils", "keras.src.models.functional", None]),
              st.sampled_from(["Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "load_model", "system",
                               "get_file", "eval", "Dense", "Flatten", "Functional", "function", "__lambda__",
                               "__typespec__", "__bytes__", "__numpy__"]),
              st.sampled_from([None, "Elsewhere>filler", "compresslib>FakeQuantDense", "Functional", "Lambda"])))


@fuzz(40)
@given(obj=_keras_objects, layer=st.integers(0, 8))
def test_crafted_keras_objects(seeds, workdir, obj, layer):
    import keras

    module, class_name, registered = obj

    @keras.saving.register_keras_serializable(package="Elsewhere")
    def filler(shape, dtype=None):  # another library's global registration: not trusted
        return keras.ops.ones(shape, dtype=dtype)

    manifest, entries = _split(seeds["keras_fp32"][1])
    layers = manifest["spec"]["config"]["config"]["layers"]
    target = layers[layer % len(layers)]
    target.update(module=module, class_name=class_name, registered_name=registered)
    file = workdir / "keras_obj.clz"
    _pack(file, manifest, entries)
    model = check_load(file, "keras")
    from compresslib.keras import io as kio

    named = f"{module}.{class_name}"
    if named not in kio.builtin_objects() and registered not in kio.registered_objects():
        assert model is None


# --------------------------------------------------------------------------- crafted: sizes and offsets
@fuzz(50)
@given(tensor=st.integers(0, 9), encoding=st.sampled_from(["dense", "constant", "bitmask", "bitmask_z", "csr", "zlib"]),
       shape=st.lists(st.integers(2 ** 12, 2 ** 40), min_size=1, max_size=4), where=st.sampled_from(["tensor", "part"]))
def test_huge_shapes(seeds, workdir, tensor, encoding, shape, where):
    manifest, entries = _split(seeds["torch_fp32"][1])
    meta = list(manifest["tensors"].values())[tensor]
    if where == "tensor":
        meta.update(encoding=encoding, shape=shape)
    else:
        next(iter(meta["parts"].values()))["shape"] = shape
    file = workdir / "huge.clz"
    _pack(file, manifest, entries)
    assert check_load(file, "torch") is None


@fuzz(50)
@given(tensor=st.integers(0, 9), other=st.integers(0, 9), kind=st.sampled_from(["negative", "overlap", "beyond"]),
       amount=st.integers(0, 2 ** 40))
def test_bad_offsets(seeds, workdir, tensor, other, kind, amount):
    manifest, entries = _split(seeds["torch_fp32"][1])
    metas = list(manifest["tensors"].values())
    part = next(iter(metas[tensor]["parts"].values()))
    target = next(iter(metas[other]["parts"].values()))
    size = len(entries["tensors.bin"])
    nbytes = int(np.prod(target["shape"])) * np.dtype(target["dtype"]).itemsize
    if kind == "negative":
        part["offset"] = -1 - amount
    elif kind == "overlap":
        if tensor == other:
            return
        part["offset"] = target["offset"] + amount % max(nbytes, 1)
    else:
        part["offset"] = size - amount % 8 + 1 + amount
    file = workdir / "offsets.clz"
    _pack(file, manifest, entries)
    assert check_load(file, "torch") is None


# --------------------------------------------------------------------------- crafted: bombs, frameworks, versions
@fuzz(12)
@given(inflated=st.integers(LIMITS.manifest_bytes + 1, 16 * LIMITS.manifest_bytes),
       declared=st.sampled_from(["true", "small", "zero"]), fill=st.sampled_from([b" ", b"[", b"0"]))
def test_manifest_bombs(workdir, inflated, declared, fill):
    head = b'{"format":"compresslib.clz","version":2,"framework":"torch","spec":{},"tensors":{},"x":"'
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = co.compress(head) + co.compress(fill * inflated) + co.flush()
    size = {"true": len(head) + inflated, "small": 1000, "zero": 0}[declared]
    file = workdir / "bomb.clz"
    file.write_bytes(_raw_zip({"tensors.bin": (b"", b"", 0), "manifest.json": (stream, None, size)}))
    assert check_load(file, "torch") is None


def _raw_zip(entries: dict) -> bytes:
    """A ZIP archive laid out as zipfile writes it, from (stored bytes, inflated bytes or None, size) per entry."""
    import struct

    body, central = bytearray(), bytearray()
    for name, (stored, inflated, size) in entries.items():
        method = zipfile.ZIP_STORED if inflated is not None else zipfile.ZIP_DEFLATED
        crc = zlib.crc32(inflated) if inflated is not None else 0
        name_b = name.encode()
        offset = len(body)
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 33, crc, len(stored), size,
                            len(name_b), 0) + name_b + stored
        central += struct.pack("<4sBBHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 3, 20, 0, method, 0, 33, crc, len(stored),
                               size, len(name_b), 0, 0, 0, 0, 0o600 << 16, offset) + name_b
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return bytes(body + central + end)


def test_a_200_mb_manifest_bomb_with_default_limits(tmp_path):
    bomb = tmp_path / "bomb.clz"
    inflated = 200 * 2 ** 20
    head = b'{"format":"compresslib.clz","version":2,"framework":"torch","spec":{},"tensors":{},"x":"'
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = co.compress(head) + b"".join(co.compress(b" " * 2 ** 20) for _ in range(200)) + co.flush()
    raw = _raw_zip({"tensors.bin": (b"", b"", 0), "manifest.json": (stream, None, len(head) + inflated)})
    bomb.write_bytes(raw)
    assert bomb.stat().st_size < 400_000
    with traced() as peak, pytest.raises(ValueError, match=r"bomb\.clz: manifest\.json declares .* than the limit"):
        cl.load(bomb)
    assert peak[0] < 2 * 2 ** 20
    # declared small, inflating far beyond: inflated one byte past the declared size, then refused
    bomb.write_bytes(_raw_zip({"tensors.bin": (b"", b"", 0), "manifest.json": (stream, None, 1000)}))
    with traced() as peak, pytest.raises(ValueError, match=r"bomb\.clz: corrupt manifest\.json: it inflates to more"):
        cl.load(bomb)
    assert peak[0] < 2 * 2 ** 20
    with pytest.raises(ValueError, match=r"bomb\.clz: manifest\.json declares 1000 bytes .* limit of 999"):
        cl.load(bomb, limits=cl.io.Limits(manifest_bytes=999))


CRAFTED = {
    "framework keras on a torch file": ("torch_fp32", lambda m, e: m.update(framework="keras")),
    "framework torch on a Keras file": ("keras_fp32", lambda m, e: m.update(framework="torch")),
    "framework jax": ("torch_fp32", lambda m, e: m.update(framework="jax")),
    "version 1 on a version 2 file": ("torch_fp32", lambda m, e: m.update(version=1)),
    "v2 file with v1 files": ("torch_fp32", lambda m, e: [t.update(files={"values": "x.npy"})
                                                          for t in m["tensors"].values()]),
    "v2 file with an .npy entry": ("torch_fp32", lambda m, e: e.update({"t0000.values.npy": b"\x93NUMPY"})),
    "int8 recipe in a Keras file": ("torch_int8", lambda m, e: m.update(framework="keras")),
    "Keras config in a torch spec": ("keras_fp32", lambda m, e: m["spec"].update(root=m["spec"].pop("config"))),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_wrong_framework_and_version_mixes(seeds, workdir, case):
    seed, edit = CRAFTED[case]
    framework = seeds[seed][0]
    manifest, entries = _split(seeds[seed][1])
    edit(manifest, entries)
    file = workdir / "crafted.clz"
    _pack(file, manifest, entries)
    for fw in {framework, manifest.get("framework")} & {"torch", "keras"}:
        assert check_load(file, fw, quantized=seed == "torch_int8") is None
