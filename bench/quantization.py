"""Quantization, both frameworks: fp32 against every mode on LeNet-5, ResNet8 and the Dense-heavy MLP.

    python bench/quantization.py [--json PATH] [--frameworks torch,keras] [--runs N] [--models a,b] [--quick]

Rows per model (each against the fp32 model measured in the same run, batch 32, CPU):

* torch: ``int8_dynamic`` (quantize_dynamic, Linear only), ``int8_static`` (FX x86, fused
  Conv-BN-ReLU, quantized residual add), ``weight_only_int8`` (torchao), ``weight_only_int4_g16``
  (compresslib's packed 4-bit layers), ``float16``, ``bfloat16``, ``ptq_w4`` (weights rounded to
  4 bits, no training) and ``qat_w4a8`` (prepare_qat, one short epoch, convert).
* keras: ``litert_fp32`` (the fp32 model in LiteRT: the runtime alone), ``litert_dynamic``, ``litert_static`` (full int8, calibrated), ``keras_int8`` (Keras's own
  ``model.quantize("int8")``, Dense only), ``float16``, ``ptq_w4`` and ``qat_w4a8`` (compresslib's
  fake-quant layers, one short epoch).

``bytes`` is the framework's native file (state_dict .pt / .keras / .tflite) and ``size_ratio``
the fp32 native file over it. ``clz_bytes`` is compresslib's packed ``.clz`` file of the same model
(``cl.save``: int8 values one byte each, zero points and exact float64 scales narrowed) and
``clz_size_ratio`` the fp32 ``.clz`` over the quantized ``.clz``.

Latency: all models of one network are timed together in interleaved rounds
(:func:`compresslib.timing.interleaved_latency`); ``speedup`` is against the framework's eager
fp32 model, ``speedup_vs_runtime_fp32`` against the same runtime running fp32 (LiteRT rows:
``litert_fp32``; torch rows run in torch itself, so it equals ``speedup``).

``--quick``: LeNet-5 only (every mode, Float16 included), 512 training and 256 test images, 3 timed
runs: a smoke run that checks every mode still quantizes, saves and times; its figures mean nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from common import QUICK_TRAIN, emit, mnist, parse_args, retime, rounds_for, row  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402

MODELS = ("lenet5", "resnet8", "mlp_wide")
KEYS = ["framework", "model", "method", "params", "bytes", "clz_bytes", "accuracy", "latency_ms", "size_ratio",
        "clz_size_ratio", "accuracy_drop_pt", "speedup", "speedup_vs_runtime_fp32", "seconds"]
# LiteRT int8 rows are also compared with LiteRT running the fp32 model (a runtime change alone is worth 2x).
RUNTIME_BASELINES = {"litert_dynamic": "litert_fp32", "litert_static": "litert_fp32"}
UNTIMED = ("float16",)  # Keras float16 on CPU is ~20x slower; timed once, kept out of the rounds
QAT_SAMPLES, CAL_SAMPLES, QAT_LR = 4000, 256, 1e-4  # a small learning rate: QAT nudges trained weights


def _extra(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--models", default=",".join(MODELS))
    known, rest = p.parse_known_args(argv)
    return [m for m in known.models.split(",") if m], rest


def _modes(framework, quick=False):
    fw_q = backend(framework, "quantization")
    fw_train = backend(framework, "train")

    def qat(m, train):
        p = cl.prepare_qat(m, cl.QAT(weight_bits=4, activation_bits=8))
        n = QUICK_TRAIN if quick else QAT_SAMPLES
        fw_train.fit(p, (train[0][:n], train[1][:n]), epochs=1, lr=QAT_LR)
        return cl.convert(p)

    ptq4 = ("ptq_w4", lambda m, train: fw_q.fake_quantize_weights(m, 4))
    if framework == "torch":
        return [
            ("int8_dynamic", lambda m, train: cl.quantize(m, cl.Int8Dynamic())),
            ("int8_static", lambda m, train: cl.quantize(m, cl.Int8Static(), calibration_data=train[0][:CAL_SAMPLES])),
            ("weight_only_int8", lambda m, train: cl.quantize(m, cl.WeightOnly(bits=8))),
            ("weight_only_int4_g16", lambda m, train: cl.quantize(m, cl.WeightOnly(bits=4, group_size=16))),
            ("float16", lambda m, train: cl.quantize(m, cl.Float16())),
            ("bfloat16", lambda m, train: cl.quantize(m, cl.BFloat16())),
            ptq4, ("qat_w4a8", qat),
        ]
    from compresslib.keras.export import litert_flatbuffer
    from compresslib.keras.quantization import LiteRTModel

    return [
        ("litert_fp32", lambda m, train: LiteRTModel(litert_flatbuffer(m), name="litert_fp32")),
        ("litert_dynamic", lambda m, train: cl.quantize(m, cl.Int8Dynamic())),
        ("litert_static", lambda m, train: cl.quantize(m, cl.Int8Static(), calibration_data=train[0][:CAL_SAMPLES])),
        ("keras_int8", lambda m, train: cl.quantize(m, cl.WeightOnly(bits=8))),
        ("float16", lambda m, train: cl.quantize(m, cl.Float16())),
        ptq4, ("qat_w4a8", qat),
    ]


def _clz_bytes(model) -> int:
    """Bytes of ``model`` saved as a packed ``.clz`` file."""
    with tempfile.TemporaryDirectory() as tmp:
        return cl.save(model, os.path.join(tmp, "model.clz"))


def main(argv=None) -> list[dict]:
    models, rest = _extra(argv if argv is not None else sys.argv[1:])
    args = parse_args(__doc__, rest)
    if args.quick:
        models = ["lenet5"]
    rows = []
    for framework in args.frameworks:
        train, test = mnist(framework, args.quick)
        for name in models:
            model = cl.zoo.pretrained(name, framework=framework)
            base = cl.measure(model, data=test, runs=args.runs, name="fp32")
            base_clz = _clz_bytes(model)
            rows.append(row(base, name, "fp32", base, seconds=0.0, clz_bytes=base_clz, clz_size_ratio=1.0))
            timed = {"fp32": model}
            for method, make in _modes(framework, args.quick):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    q = make(model, train)
                seconds = time.perf_counter() - t0
                slow = framework == "keras" and method in UNTIMED
                r = cl.measure(q, data=test, runs=min(args.runs, 5 if slow else 3), warmup=2, latency=True, name=method)
                if not slow:
                    timed[method] = q
                clz = _clz_bytes(q)
                rows.append(row(r, name, method, base, seconds=round(seconds, 1), clz_bytes=clz,
                                clz_size_ratio=base_clz / clz))
                print(f"{framework} {name} {method}: acc {r.accuracy:.4f} bytes {r.file_bytes} clz {clz}",
                      file=sys.stderr, flush=True)
            # every timed model of this network in interleaved rounds: ratios within one run are fair
            retime(rows, framework, name, timed, test[0][:32], runtime_baselines=RUNTIME_BASELINES,
                   **rounds_for(args))
    emit(rows, args.json, KEYS)
    return rows


if __name__ == "__main__":
    main()
