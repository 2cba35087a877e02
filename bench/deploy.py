"""Deployment, side by side: compresslib's exports against the runtimes' own quantizers, one timer.

    python bench/deploy.py [--json PATH] [--quick] [--models lenet5,resnet8,mlp_wide,resnet18] [--no-minilm]
                           [--frameworks torch,keras] [--runs N]

Peers are optional: ``pip install -c requirements/constraints.txt -r bench/requirements-peers.txt``
(a peer that is not installed is skipped with a note). Every row names the ``tool`` that produced
the model (``compresslib``, ``torch``, ``onnxruntime``, ``nncf``, ``torchao``, ``keras``) and the
``runtime`` it ran in. For each network all rows are timed together in interleaved rounds
(:func:`compresslib.timing.interleaved_latency`, batch 32; 8 for the ResNet-18 layout), on the same
256 calibration images, and report

* ``speedup``: against the framework's eager fp32 model (torch eager / Keras under ``tf.function``);
* ``speedup_vs_runtime_fp32``: against the same runtime running the fp32 model;
* ``accuracy`` on the 2,000 MNIST test digits and ``cosine``: mean cosine of the logits to fp32's.

The two rows each target compares (compresslib's best deployed int8 path and the fastest peer) are then
re-timed head to head (:func:`compresslib.timing.paired_ratio`: single calls alternated in pairs, the
median of the per-pair ratios); the closing PASS/TIE/FAIL lines judge on that (``head_to_head`` in the JSON),
since with a dozen models in the rounds the state each leaves behind moves sub-millisecond timings by more
than the gap between two runtimes running the same kernels. The same timer also runs the peer against a
second copy of itself (``peer_over_itself``: 1.0 for a perfect timer): a compresslib path slower than the
peer by less than that spread, at the target's quality, is reported as TIE, not PASS.

``--quick``: LeNet-5 and ResNet8 only, 512 training (256 calibration) and 256 test images, one short
round and 10 head-to-head pairs, no torch.export/torch.compile rows (Inductor compiles for minutes on
2 cores), MiniLM on 64 sentences: a smoke run that checks the script; its figures mean nothing. The closing lines say which of the
issue's targets pass in this run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, mnist, nncf_int8, ort_quantize_static, parse_args  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib.deploy import load as load_runtime  # noqa: E402
from compresslib.timing import interleaved_latency, paired_ratio  # noqa: E402

KEYS = ["framework", "model", "tool", "runtime", "method", "bytes", "accuracy", "cosine", "latency_ms", "speedup",
        "speedup_vs_runtime_fp32", "batch_size"]
CAL = 256


def _extra(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--models", default=None)
    p.add_argument("--no-minilm", dest="minilm", action="store_false")
    known, rest = p.parse_known_args(argv)
    return known, rest


def _have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        print(f"note: {module} not installed; its rows are skipped (bench/requirements-peers.txt)", file=sys.stderr)
        return False


def _size(path: str) -> int:
    base = os.path.splitext(path)[0]
    return sum(os.path.getsize(p) for p in (path, base + ".bin") if os.path.exists(p) and
               (p == path or path.endswith(".xml")))


def _cos(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.mean((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def _predict(m, x, batch=250):
    if isinstance(m, torch.nn.Module):
        with torch.inference_mode():
            return np.concatenate([m(torch.as_tensor(x[i:i + batch])).float().numpy() for i in range(0, len(x), batch)])
    return np.concatenate([np.asarray(m(x[i:i + batch])) for i in range(0, len(x), batch)])


class Rows:
    """Collects (label -> model, metadata) for one network, then times them together."""

    def __init__(self, framework, name, x_eval, y_eval, fp32_label, batch):
        self.framework, self.name, self.x, self.y = framework, name, x_eval, y_eval
        self.models, self.meta, self.fp32_label, self.batch = {}, {}, fp32_label, batch
        self.ref = None

    def add(self, label, model, tool, runtime, runtime_fp32, nbytes):
        t0 = time.perf_counter()
        out = _predict(model, self.x)
        if self.ref is None:
            self.ref = out
        self.models[label] = model
        self.meta[label] = dict(tool=tool, runtime=runtime, runtime_fp32=runtime_fp32, bytes=nbytes,
                                accuracy=float((out.argmax(1) == self.y).mean()) if self.y is not None else None,
                                cosine=_cos(out, self.ref))
        print(f"  {self.name} {label}: acc {self.meta[label]['accuracy']} ({time.perf_counter() - t0:.1f} s)",
              file=sys.stderr, flush=True)

    def finish(self, rounds, runs, pairs):
        med = interleaved_latency(self.models, self.x[:self.batch], rounds=rounds, runs=runs)
        load = os.getloadavg()[0]
        rows = []
        for label, m in self.meta.items():
            rows.append({"framework": self.framework, "model": self.name, "tool": m["tool"], "runtime": m["runtime"],
                         "method": label, "bytes": m["bytes"], "accuracy": m["accuracy"], "cosine": m["cosine"],
                         "latency_ms": med[label], "speedup": med[self.fp32_label] / med[label],
                         "speedup_vs_runtime_fp32": med[m["runtime_fp32"]] / med[label] if m["runtime_fp32"] in med
                         else None, "batch_size": self.batch, "load_average": load, "timing": "interleaved"})
        pair = judged_pair(rows, self.name) if self.framework == "torch" else None
        if pair is not None:  # the two rows the target compares, re-timed head to head in alternated pairs
            ours, peer = pair[0]["method"], pair[1]["method"]
            h2h = paired_ratio(self.models[ours], self.models[peer], self.x[:self.batch],
                               pairs=pairs, max_seconds=60)
            h2h = {"compresslib": ours, "peer": peer, "compresslib_ms": h2h["a_ms"], "peer_ms": h2h["b_ms"],
                   "peer_over_compresslib": h2h["ratio"], "pairs": h2h["pairs"]}
            twin = _twin(self.models[peer])
            if twin is not None:  # the A/A control: the peer against a second copy of itself, same timer
                h2h["peer_over_itself"] = paired_ratio(self.models[peer], twin, self.x[:self.batch],
                                                       pairs=pairs, max_seconds=60)["ratio"]
            for row in rows:
                if row["method"] in (ours, peer):
                    row["head_to_head"] = h2h
        return rows


def _twin(model):
    """A second, independently loaded copy of a runtime model (None for other models)."""
    from compresslib.deploy import OnnxRuntimeModel, OpenVINOModel

    return load_runtime(model.path) if isinstance(model, (OnnxRuntimeModel, OpenVINOModel)) else None


def _budget(args) -> dict:
    """The timing budget of one network: interleaved rounds and runs, and the head-to-head pairs."""
    if args.quick:
        return {"rounds": 1, "runs": 3, "pairs": 10}
    return {"rounds": max(5, args.runs // 15), "runs": 15, "pairs": 400}


def _state_bytes(model, tmp) -> int:
    p = os.path.join(tmp, "sd.pt")
    torch.save(model.state_dict(), p)
    return os.path.getsize(p)


def resnet18_layout():
    """The ResNet-18 layout (torchvision's) for 1×224×224 inputs from compresslib's BasicBlock, seeded weights.

    Built from torch.nn and compresslib classes only, so ``cl.quantize`` can record its recipe.
    """
    from torch import nn

    from compresslib.torch.models import BasicBlock

    torch.manual_seed(0)
    layers = [nn.Conv2d(1, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10)]
    model = nn.Sequential(*layers)
    model.train()
    with torch.no_grad():  # BatchNorm statistics from a few batches, so BN is not the identity
        for _ in range(3):
            model(torch.randn(8, 1, 224, 224))
    return model.eval()


def torch_network(name, args, tmp, peers):
    train, test = mnist("torch", args.quick)
    if name == "resnet18":
        model = resnet18_layout()
        up = lambda a: torch.nn.functional.interpolate(torch.as_tensor(a), size=224).numpy()  # noqa: E731
        cal, x, y, batch = up(train[0][:64]), up(test[0][:64]), None, 8
    else:
        model = cl.zoo.pretrained(name, framework="torch")
        cal, x, y, batch = train[0][:CAL], test[0], test[1], 32
    R = Rows("torch", name, x, y, "torch fp32", batch)
    R.add("torch fp32", model, "torch", "torch eager", "torch fp32", _state_bytes(model, tmp))
    # the deployment recipe: bias correction (on by default) and float outputs, as the peers keep theirs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cl.quantize(model, cl.Int8Static(float_output=True), calibration_data=cal)
    R.add("compresslib int8 (FX x86)", q, "compresslib", "torch eager", "torch fp32",
          cl.save(q, os.path.join(tmp, f"{name}.clz")))
    p = lambda s: os.path.join(tmp, f"{name}_{s}")  # noqa: E731
    ex = cal[:1]
    fp_onnx = p("fp32.onnx")
    R.add("compresslib fp32 → ORT", cl.export(model, fp_onnx, "onnxruntime", example_input=ex), "compresslib",
          "onnxruntime", "compresslib fp32 → ORT", _size(fp_onnx))
    R.add("compresslib int8 → ORT", cl.export(q, p("int8.onnx"), "onnxruntime"), "compresslib", "onnxruntime",
          "compresslib fp32 → ORT", _size(p("int8.onnx")))
    R.add("compresslib int8 full-range → ORT", cl.export(q, p("int8f.onnx"), "onnxruntime", full_range=True),
          "compresslib", "onnxruntime", "compresslib fp32 → ORT", _size(p("int8f.onnx")))
    if peers["openvino"]:
        R.add("compresslib fp32 → OpenVINO", cl.export(model, p("fp32.xml"), "openvino", example_input=ex),
              "compresslib", "openvino", "compresslib fp32 → OpenVINO", _size(p("fp32.xml")))
        R.add("compresslib int8 → OpenVINO", cl.export(q, p("int8.xml"), "openvino"), "compresslib", "openvino",
              "compresslib fp32 → OpenVINO", _size(p("int8.xml")))
        R.add("compresslib int8 full-range → OpenVINO", cl.export(q, p("int8f.xml"), "openvino", full_range=True),
              "compresslib", "openvino", "compresslib fp32 → OpenVINO", _size(p("int8f.xml")))
    # peers on the same fp32 ONNX file and calibration images
    ort_quantize_static(fp_onnx, p("ort_qs.onnx"), cal)
    R.add("ORT quantize_static (QDQ)", load_runtime(p("ort_qs.onnx")), "onnxruntime", "onnxruntime",
          "compresslib fp32 → ORT", _size(p("ort_qs.onnx")))
    if peers["nncf"] and peers["openvino"]:
        nncf_int8(fp_onnx, p("nncf.xml"), cal)
        R.add("NNCF int8 → OpenVINO", load_runtime(p("nncf.xml")), "nncf", "openvino",
              "compresslib fp32 → OpenVINO", _size(p("nncf.xml")))
    if not args.quick:
        R.add("compresslib fp32 → torch.export (Inductor)", cl.export(model, p("fp32.pt2"), "torch.export",
              example_input=ex), "compresslib", "torch.export", "compresslib fp32 → torch.export (Inductor)",
              _size(p("fp32.pt2")))
        R.add("compresslib int8 → torch.export (Inductor)", cl.export(q, p("int8.pt2"), "torch.export"),
              "compresslib", "torch.export", "compresslib fp32 → torch.export (Inductor)", _size(p("int8.pt2")))
        R.add("torch.compile fp32", torch.compile(model), "torch", "torch.compile", "torch.compile fp32",
              _state_bytes(model, tmp))
        try:  # a peer that fails in this torch/torchao build is reported, not fatal
            pt2e = _pt2e(model, cal, ex)
            for batch in (32, 8, 1):  # the timed batch sizes: fail here, not in the middle of the timing
                pt2e(np.asarray(cal[:batch]))
            R.add("PT2E X86InductorQuantizer int8 (compiled)", pt2e, "torchao", "torch.compile",
                  "torch.compile fp32", None)
        except Exception as exc:  # noqa: BLE001
            print(f"  {name} PT2E X86InductorQuantizer int8 (compiled): skipped, it fails here: "
                  f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}", flush=True)
    return R.finish(**_budget(args))


def _pt2e(model, cal, ex):
    """The PT2E peer: torchao's X86InductorQuantizer with its own calibration, compiled with freezing."""
    import torch._inductor.config as icfg
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    ex2 = torch.as_tensor(np.repeat(ex, 2, axis=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(model, (ex2,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
        prepared = prepare_pt2e(gm, quantizer)
        with torch.no_grad():
            prepared(torch.as_tensor(cal))
        converted = convert_pt2e(prepared)
    compiled = torch.compile(converted)

    def run(x):
        with torch.inference_mode(), icfg.patch(freezing=True):
            return compiled(torch.as_tensor(x)).numpy()
    return run


def keras_network(name, args, tmp, peers):
    train, test = mnist("keras", args.quick)
    from compresslib.keras.export import litert_flatbuffer
    from compresslib.keras.quantization import LiteRTModel

    model = cl.zoo.pretrained(name, framework="keras")
    R = Rows("keras", name, test[0], test[1], "keras fp32", 32)
    model.save(os.path.join(tmp, f"{name}.keras"))
    R.add("keras fp32", model, "keras", "tf.function", "keras fp32", os.path.getsize(os.path.join(tmp, f"{name}.keras")))
    flat = litert_flatbuffer(model)
    R.add("LiteRT fp32", LiteRTModel(flat), "keras", "litert", "LiteRT fp32", len(flat))
    q = cl.quantize(model, cl.Int8Static(), calibration_data=train[0][:CAL])
    R.add("compresslib int8 → LiteRT", q, "compresslib", "litert", "LiteRT fp32", len(q.flatbuffer))
    if peers["tf2onnx"]:
        R.add("compresslib fp32 → ORT", cl.export(model, os.path.join(tmp, f"k_{name}.onnx"), "onnxruntime"),
              "compresslib", "onnxruntime", "compresslib fp32 → ORT", _size(os.path.join(tmp, f"k_{name}.onnx")))
    return R.finish(**_budget(args))


def minilm_rows(args, tmp):
    from compresslib.casestudies import minilm

    enc, tok = minilm.load()
    n = 64 if args.quick else 256
    tokens = minilm.tokenize(tok, minilm.sentences(n))
    ref = minilm.embed(enc, tokens)
    scan_tokens = tokens[:32]
    sens = minilm.sensitivity(enc, scan_tokens) if not args.quick else {}
    keep = sorted(sens, key=sens.get)[:2]  # the two layers whose int8 version hurts most stay float
    variants = {"torch fp32": (enc, "torch", "torch eager", "torch fp32"),
                "compresslib int8 dynamic per-channel": (minilm.quantize(enc), "compresslib", "torch eager",
                                                         "torch fp32")}
    if keep:
        variants[f"compresslib int8, {len(keep)} sensitive kept float"] = (minilm.quantize(enc, keep), "compresslib",
                                                                          "torch eager", "torch fp32")
    rt_fp = cl.export(enc, os.path.join(tmp, "minilm.onnx"), "onnxruntime", example_input=tokens[:2])
    variants["compresslib fp32 → ORT"] = (rt_fp, "compresslib", "onnxruntime", "compresslib fp32 → ORT")
    q = variants["compresslib int8 dynamic per-channel"][0]
    variants["compresslib int8 → ORT"] = (cl.export(q, os.path.join(tmp, "minilm_q.onnx"), "onnxruntime",
                                                    example_input=tokens[:2]),
                                          "compresslib", "onnxruntime", "compresslib fp32 → ORT")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(os.path.join(tmp, "minilm.onnx"), os.path.join(tmp, "minilm_ortq.onnx"), per_channel=True,
                     weight_type=QuantType.QInt8)
    variants["ORT quantize_dynamic"] = (load_runtime(os.path.join(tmp, "minilm_ortq.onnx")), "onnxruntime",
                                        "onnxruntime", "compresslib fp32 → ORT")
    rows = []
    for batch in (1, 32):
        med = interleaved_latency({k: v[0] for k, v in variants.items()}, tokens[:batch], rounds=3,
                                  runs=5 if batch == 32 else 20)
        for label, (m, tool, runtime, rfp) in variants.items():
            e = minilm.embed(m, tokens)
            rows.append({"framework": "torch", "model": "all-MiniLM-L6-v2", "tool": tool, "runtime": runtime,
                         "method": label, "bytes": None, "accuracy": None,
                         "cosine": float(minilm.cosine(ref, e).mean()),
                         "knn_agreement": minilm.neighbour_agreement(ref, e), "latency_ms": med[label],
                         "speedup": med["torch fp32"] / med[label], "speedup_vs_runtime_fp32": med[rfp] / med[label],
                         "batch_size": batch, "load_average": os.getloadavg()[0], "timing": "interleaved",
                         "kept_float": keep if "kept" in label else None})
    return rows


def judged_pair(rows, name):
    """(compresslib's best deployed int8 row, the fastest peer row, whether the first meets the quality bound,
    the quality figures as text) for ``name``, or None.

    compresslib's *best deployed path* is the fastest of its int8 rows outside torch eager that meets the
    target's quality bound (ResNet8: accuracy drop ≤ the most accurate peer's + 0.1 pt; the others: cosine to
    fp32 ≥ the best peer's); when none meets it, the fastest int8 row is judged (and fails on quality).
    """
    r = [x for x in rows if x["framework"] == "torch" and x["model"] == name]
    ours = [x for x in r if x["tool"] == "compresslib" and "int8" in x["method"] and x["runtime"] != "torch eager"]
    peers = [x for x in r if x["tool"] not in ("compresslib", "torch")]
    if not ours or not peers:
        return None
    fastest = max(peers, key=lambda x: x["speedup"])
    if name == "resnet8":
        fp = next(x for x in r if x["method"] == "torch fp32")["accuracy"]
        drop = lambda x: 100 * (fp - x["accuracy"])  # noqa: E731
        peer_drop = min(drop(x) for x in peers)
        good = lambda x: drop(x) <= peer_drop + 0.1 + 1e-9  # noqa: E731  (float rounding of 0.1 pt)
        best = max(ours, key=lambda x: (good(x), x["speedup"]))
        quality = f"drop {drop(best):.2f} pt vs most accurate peer {peer_drop:.2f} pt (+0.1 allowed)"
    else:
        best_cos = max(x["cosine"] for x in peers)
        good = lambda x: x["cosine"] >= best_cos  # noqa: E731
        best = max(ours, key=lambda x: (good(x), x["speedup"]))
        quality = f"cosine {best['cosine']:.5f} vs best peer {best_cos:.5f}"
    return best, fastest, good(best), quality


def targets(rows) -> list[str]:
    """One line per target of the issue: PASS/FAIL with the figures it was judged on.

    The two rows judged (see :func:`judged_pair`) are compared by their ``head_to_head`` re-timing
    (:func:`compresslib.timing.paired_ratio`) when the bench made one, else by the table's speedups.
    """
    out = []
    for name in ("resnet8", "lenet5", "mlp_wide", "resnet18"):
        pair = judged_pair(rows, name)
        if pair is None:
            continue
        best, fastest, quality_ok, quality = pair
        h2h = best.get("head_to_head")
        if h2h and h2h["peer"] == fastest["method"]:
            ratio = h2h["peer_over_compresslib"]
            ok = quality_ok and ratio >= 1.0
            aa = h2h.get("peer_over_itself")
            spread = abs(1 - aa) if aa is not None else None
            tie = quality_ok and not ok and spread is not None and 1 - ratio <= spread
            line = (f"{name}: compresslib best '{best['method']}' {h2h['compresslib_ms']:.3f} ms vs fastest peer "
                    f"'{fastest['method']}' {h2h['peer_ms']:.3f} ms head to head: {ratio:.3f}x"
                    + (f" (the peer against a copy of itself: {aa:.3f}x)" if aa is not None else "")
                    + f" (table: {best['speedup']:.2f}x vs {fastest['speedup']:.2f}x torch eager)")
        else:
            ok, tie = quality_ok and best["speedup"] >= fastest["speedup"], False
            line = (f"{name}: compresslib best '{best['method']}' {best['speedup']:.2f}x vs fastest peer "
                    f"'{fastest['method']}' {fastest['speedup']:.2f}x")
        out.append(("PASS " if ok else "TIE  " if tie else "FAIL ") + f"{line}; {quality}")
    m = [x for x in rows if x["model"] == "all-MiniLM-L6-v2" and x["batch_size"] == 32 and x["tool"] == "compresslib"
         and "int8" in x["method"]]
    if m:
        best = max(m, key=lambda x: (x["cosine"] >= 0.99, x["speedup"]))
        ok = best["cosine"] >= 0.99 and best["speedup"] >= 1.3
        out.append(("PASS " if ok else "FAIL ") + f"MiniLM: '{best['method']}' cosine {best['cosine']:.4f} (>= 0.99), "
                   f"{best['speedup']:.2f}x torch fp32 at batch 32 (>= 1.3)")
    return out


def main(argv=None) -> list[dict]:
    extra, rest = _extra(sys.argv[1:] if argv is None else argv)
    args = parse_args(__doc__, rest)
    args.quick = extra.quick
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    default = "lenet5,resnet8" if args.quick else "lenet5,resnet8,mlp_wide,resnet18"
    names = [m for m in (extra.models or default).split(",") if m]
    peers = {k: _have(k) for k in ("openvino", "nncf", "tf2onnx")}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if "torch" in args.frameworks:
            for name in names:
                rows += torch_network(name, args, tmp, peers)
        if "keras" in args.frameworks:
            for name in [n for n in names if n != "resnet18"]:
                rows += keras_network(name, args, tmp, peers)
        if extra.minilm and "torch" in args.frameworks:
            try:
                rows += minilm_rows(args, tmp)
            except ImportError as exc:
                print(f"note: MiniLM skipped: {exc}", file=sys.stderr)
    keys = KEYS + (["knn_agreement"] if any("knn_agreement" in r for r in rows) else [])
    emit(rows, args.json, keys)
    print(f"\nindicative: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for line in targets(rows):
        print(line)
    return rows


if __name__ == "__main__":
    main()
