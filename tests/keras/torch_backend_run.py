"""Run compresslib's Keras verbs under ``KERAS_BACKEND=torch`` with TensorFlow absent; print one JSON line.

Used by ``tests/keras/test_torch_backend.py`` in a subprocess (the main test process runs Keras on
TensorFlow, and a process's Keras backend is fixed at import):

    python tests/keras/torch_backend_run.py cpu|cuda

TensorFlow and LiteRT imports are blocked, as on the GPU machine where no TensorFlow build can be
installed: the verbs that do not need TensorFlow must work, the LiteRT ones must say why they cannot.
Each check records a value; the test asserts on them.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import tempfile
import warnings

DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cpu"
os.environ["KERAS_BACKEND"] = "torch"
os.environ["KERAS_TORCH_DEVICE"] = DEVICE
os.environ.setdefault("CI", "1")


class _NoTensorFlow(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import tensorflow`` fails as if it were not installed (a spec without origin keeps torch._dynamo's
    ``find_spec`` probes quiet; raising in ``find_spec`` would break them)."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "ai_edge_litert", "tf_keras"):
            return importlib.machinery.ModuleSpec(name, self, origin=None)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):  # pragma: no cover - create_module always raises
        raise ModuleNotFoundError(module.__name__)


sys.meta_path.insert(0, _NoTensorFlow())
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import keras  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib.keras import models, train  # noqa: E402

out: dict = {"backend": keras.backend.backend(), "device": DEVICE}
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.random((64, 28, 28, 1), dtype=np.float32)
y = rng.integers(0, 10, 64)


def run(model, batch):
    with torch.no_grad():
        return keras.ops.convert_to_numpy(model(batch, training=False))


def cosine(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def kernels(model):
    return {l.name: np.array(l.kernel) for l in model.layers if type(l).__name__ in ("Dense", "Conv2D")}


def check(name, fn):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[name] = fn()
    except Exception as exc:  # noqa: BLE001 - recorded, asserted by the test
        out[name] = {"error": f"{type(exc).__name__}: {exc}"[:400]}


lenet = models.lenet5()
resnet = models.resnet8()
ref = run(lenet, x)
before = [np.array(w) for w in lenet.get_weights()]

check("framework", lambda: [cl.framework_of(lenet), isinstance(lenet, torch.nn.Module),
                            str(lenet.weights[0].value.device)])


def _measure():
    r = cl.measure(lenet, data=(x, y), runs=3, warmup=1, batch_size=16)
    return {"params": r.params, "expected_params": int(lenet.count_params()), "device": r.device,
            "latency_ms": r.latency_ms, "accuracy": r.accuracy, "evaluate": train.evaluate(lenet, (x, y)),
            "batch_size": r.batch_size}


check("measure", _measure)


def _weight_only():
    q = cl.quantize(lenet, cl.WeightOnly(bits=8))
    dtypes = sorted({str(l._kernel.dtype) for l in q.layers if type(l).__name__ == "Dense"})
    return {"cosine": cosine(run(q, x), ref), "dense_kernel_dtypes": dtypes}


check("weight_only", _weight_only)


def _half():
    q = cl.quantize(lenet, cl.BFloat16())
    return {"policy": q.layers[1].dtype_policy.name, "cosine": cosine(run(q, x), ref)}


check("bfloat16", _half)


def _qat():
    p = cl.prepare_qat(lenet, cl.QAT(weight_bits=4, activation_bits=8))
    kinds = sorted({type(l).__name__ for l in p.layers if "FakeQuant" in type(l).__name__})
    train.fit(p, (x, y), epochs=1, batch_size=32)
    c = cl.convert(p)
    levels = max(len(np.unique(k[..., j])) for k in kernels(c).values() for j in range(k.shape[-1]))
    return {"fake_quant_layers": kinds, "max_levels_per_channel": int(levels)}


check("qat", _qat)


def _magnitude():
    p = cl.prune(lenet, cl.Magnitude(0.5))
    ks = kernels(p)
    return {"zero_fraction": {n: float((k == 0).mean()) for n, k in ks.items()}}


check("magnitude", _magnitude)


def _nm():
    p = cl.prune(lenet, cl.NM(2, 4))
    worst = 0
    for k in kernels(p).values():
        om = np.moveaxis(k, -1, 0).reshape(k.shape[-1], -1)  # output-major, fan-in consecutive
        if om.shape[1] % 4 == 0:
            worst = max(worst, int((om.reshape(om.shape[0], -1, 4) != 0).sum(-1).max()))
    return {"max_nonzeros_per_4": worst}


check("nm", _nm)


def _structured():
    p = cl.prune(resnet, cl.Structured(0.5))
    return {"params": int(p.count_params()), "before": int(resnet.count_params()),
            "shape": list(run(p, x[:4]).shape)}


check("structured", _structured)


def _svd():
    d = cl.decompose(lenet, cl.SVD(rank=8))
    return {"params": int(d.count_params()), "before": int(lenet.count_params()),
            "shape": list(run(d, x[:4]).shape), "cosine": cosine(run(d, x), ref)}


check("svd", _svd)


def _fold():
    f = cl.fold_batchnorm(resnet)
    kinds = [type(l).__name__ for l in f.layers]
    return {"batchnorms": kinds.count("BatchNormalization"),
            "max_abs_diff": float(np.abs(run(f, x) - run(resnet, x)).max())}


check("fold", _fold)


def _save_load():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lenet.clz")
        n = cl.save(lenet, path)
        back = cl.load(path)
    return {"bytes": n, "max_abs_diff": float(np.abs(run(back, x) - ref).max()),
            "framework": cl.framework_of(back)}


check("save_load", _save_load)
check("litert_dynamic", lambda: cl.quantize(lenet, cl.Int8Dynamic()) and "no error")
check("litert_static", lambda: cl.quantize(lenet, cl.Int8Static(), calibration_data=x[:16]) and "no error")
out["input_untouched"] = all(np.array_equal(a, b) for a, b in zip(lenet.get_weights(), before))
out["tensorflow_imported"] = "tensorflow" in sys.modules
print(json.dumps(out))
