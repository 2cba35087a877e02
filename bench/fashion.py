"""The harder data set's headline: int8 ResNet-20 on Fashion-MNIST, deployed, with error bars.

    python bench/fashion.py [--json PATH] [--quick] [--frameworks torch,keras] [--runs N] [--sections int8,prune,lowrank]

Network: the zoo's ``fashion_resnet20`` (He et al.'s ResNet-20, trained by
``scripts/train_fashion_zoo.py``, shipped in both frameworks with the same weights). Every row is
evaluated on all 10,000 Fashion-MNIST test images: ``accuracy`` with its 95 % Wilson interval, and
against the fp32 model on the same images ``accuracy_drop_pt`` with its 95 % interval and McNemar's
exact p-value (``verdict``: "within noise" unless the test says otherwise;
:mod:`compresslib.core.stats`). All rows of a framework are timed together in interleaved rounds
(:func:`compresslib.timing.interleaved_latency`, batch 32, the process's torch threads), giving
``speedup`` against the framework's eager fp32 and ``speedup_vs_runtime_fp32`` against the same
runtime's fp32; the headline pair (torch eager fp32 against compresslib's fastest int8 deployment) is
then re-timed head to head (:func:`compresslib.timing.paired_ratio`).

Targets (issue "evidence a reader can trust"): static int8 of ResNet-20 loses <= 0.3 pt (paired test
reported) and runs >= 3x faster than torch eager fp32 once deployed; structured pruning of the wide
ResNet-20 (``--sections prune``: the networks ``scripts/fashion_prune.py`` pruned and fine-tuned with
distillation, shipped in ``compresslib/data/results/fashion_prune``) runs >= 2x faster than the
BN-folded original head to head, with the upper end of the drop's 95 % interval <= 1 pt, in both
frameworks. ``--sections lowrank`` does the same for the low-rank decompositions of the wide ResNet-20
(Tucker-2 on the 3×3 convolutions + SVD on the classifier, distilled, BN folded: the networks
``scripts/fashion_lowrank.py`` shipped in ``compresslib/data/results/fashion_lowrank``), with the target
"faster than the folded original head to head, upper end of the drop's interval <= 1 pt"; chapter 4
quotes no latency and points here.

``--quick``: 500 test images, a few rounds: a smoke run for CI, not figures.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, machine, parse_args  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib.core import stats  # noqa: E402
from compresslib.timing import interleaved_latency, paired_ratio  # noqa: E402

NETWORK = "fashion_resnet20"
CAL = 256
BATCH = 32
KEYS = ["framework", "runtime", "method", "bytes", "accuracy", "accuracy_ci", "accuracy_drop_pt", "drop_ci_pt",
        "p_value", "verdict", "latency_ms", "speedup", "speedup_vs_runtime_fp32"]


SECTIONS = ("int8", "prune", "lowrank")
RESULTS = Path(__file__).resolve().parents[1] / "compresslib" / "data" / "results"
PRUNED = RESULTS / "fashion_prune"
LOWRANK = RESULTS / "fashion_lowrank"


def _extra(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sections", default="int8,prune,lowrank",
                   help="int8: ResNet-20 deployed; prune: the wide ResNet-20 pruned by scripts/fashion_prune.py; "
                        "lowrank: the wide ResNet-20 decomposed by scripts/fashion_lowrank.py")
    known, rest = p.parse_known_args(argv)
    known.sections = [x for x in known.sections.split(",") if x]
    bad = [x for x in known.sections if x not in SECTIONS]
    if bad:
        p.error(f"--sections: unknown {bad}, choose from {SECTIONS}")
    return known, rest


def _size(path: str) -> int:
    side = os.path.splitext(path)[0] + ".bin"
    return os.path.getsize(path) + (os.path.getsize(side) if path.endswith(".xml") and os.path.exists(side) else 0)


def _predict(model, x, batch=250) -> np.ndarray:
    if isinstance(model, torch.nn.Module):
        with torch.inference_mode():
            return np.concatenate([model(torch.as_tensor(x[i:i + batch])).float().numpy()
                                   for i in range(0, len(x), batch)])
    return np.concatenate([np.asarray(model(x[i:i + batch])) for i in range(0, len(x), batch)])


class Table:
    """Models of one framework: evaluated on the test set as they are added, timed together at the end."""

    def __init__(self, framework: str, x, y, fp32_label: str, network: str = NETWORK):
        self.framework, self.x, self.y, self.fp32_label, self.network = framework, x, y, fp32_label, network
        self.models, self.meta, self.correct = {}, {}, {}

    def add(self, label: str, model, runtime: str, runtime_fp32: str, nbytes: int) -> None:
        t0 = time.perf_counter()
        self.correct[label] = stats.correctness(self.y, _predict(model, self.x))
        self.models[label] = model
        self.meta[label] = {"runtime": runtime, "runtime_fp32": runtime_fp32, "bytes": nbytes}
        print(f"  {self.framework} {label}: {100 * self.correct[label].mean():.2f} % "
              f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr, flush=True)

    def rows(self, rounds: int, runs: int) -> list[dict]:
        med = interleaved_latency(self.models, self.x[:BATCH], rounds=rounds, runs=runs, spread=True)
        load = os.getloadavg()[0]
        base = self.correct[self.fp32_label]
        out = []
        for label, meta in self.meta.items():
            c = self.correct[label]
            lo, hi = stats.wilson_interval(int(c.sum()), int(c.size))
            row = {"framework": self.framework, "model": self.network, "method": label, "runtime": meta["runtime"],
                   "bytes": meta["bytes"], "accuracy": float(c.mean()), "accuracy_ci": [lo, hi],
                   "test_samples": int(c.size), "latency_ms": med[label][0], "latency_spread_ms": med[label][1],
                   "speedup": med[self.fp32_label][0] / med[label][0],
                   "speedup_vs_runtime_fp32": (med[meta["runtime_fp32"]][0] / med[label][0]
                                               if meta["runtime_fp32"] in med else None),
                   "batch_size": BATCH, "threads": torch.get_num_threads(), "load_average": load,
                   "timing": "interleaved"}
            if label != self.fp32_label:
                r = stats.paired(None, base, c)
                dlo, dhi = r.difference_interval_pt
                row.update(accuracy_drop_pt=0.0 - r.difference_pt, drop_ci_pt=[0.0 - dhi, 0.0 - dlo], p_value=r.p_value,
                           verdict=r.verdict)
            out.append(row)
        return out


def torch_rows(args, tmp, x, y, cal) -> tuple[list[dict], Table]:
    model = cl.zoo.pretrained(NETWORK, framework="torch")
    T = Table("torch", x, y, "torch fp32")
    torch.save(model.state_dict(), os.path.join(tmp, "fp32.pt"))
    T.add("torch fp32", model, "torch eager", "torch fp32", os.path.getsize(os.path.join(tmp, "fp32.pt")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cl.quantize(model, cl.Int8Static(float_output=True), calibration_data=cal)
    T.add("compresslib int8 (FX x86)", q, "torch eager", "torch fp32", cl.save(q, os.path.join(tmp, "q.clz")))
    p = lambda s: os.path.join(tmp, s)  # noqa: E731
    ex = cal[:1]
    T.add("fp32 → ONNX Runtime", cl.export(model, p("fp32.onnx"), "onnxruntime", example_input=ex), "onnxruntime",
          "fp32 → ONNX Runtime", _size(p("fp32.onnx")))
    T.add("compresslib int8 → ONNX Runtime", cl.export(q, p("int8.onnx"), "onnxruntime", full_range=True),
          "onnxruntime", "fp32 → ONNX Runtime", _size(p("int8.onnx")))
    T.add("fp32 → OpenVINO", cl.export(model, p("fp32.xml"), "openvino", example_input=ex), "openvino",
          "fp32 → OpenVINO", _size(p("fp32.xml")))
    T.add("compresslib int8 → OpenVINO", cl.export(q, p("int8.xml"), "openvino", full_range=True), "openvino",
          "fp32 → OpenVINO", _size(p("int8.xml")))
    return T.rows(**_budget(args)), T


def keras_rows(args, tmp, x, y, cal) -> list[dict]:
    from compresslib.keras.export import litert_flatbuffer
    from compresslib.keras.quantization import LiteRTModel

    model = cl.zoo.pretrained(NETWORK, framework="keras")
    T = Table("keras", x, y, "keras fp32")
    model.save(os.path.join(tmp, "fp32.keras"))
    T.add("keras fp32", model, "tf.function", "keras fp32", os.path.getsize(os.path.join(tmp, "fp32.keras")))
    flat = litert_flatbuffer(model)
    T.add("fp32 → LiteRT", LiteRTModel(flat), "litert", "fp32 → LiteRT", len(flat))
    q = cl.quantize(model, cl.Int8Static(), calibration_data=cal)
    T.add("compresslib int8 → LiteRT", q, "litert", "fp32 → LiteRT", len(q.flatbuffer))
    return T.rows(**_budget(args))


def _versus_folded(args, framework: str, x, y, entries: list[tuple[str, Path, float]],
                   target: str, min_speedup: float) -> tuple[list[dict], list[dict]]:
    """The wide ResNet-20, BN folded, against ``entries`` (label, shipped ``.clz``, MAC ratio; BN folded in all),
    timed in the framework itself; each one then head to head against the original, judged by ``target``:
    >= ``min_speedup`` head to head and the upper end of the drop's 95 % interval <= 1 pt."""
    runtime = "torch eager" if framework == "torch" else "tf.function"
    wide = cl.fold_batchnorm(cl.zoo.pretrained("fashion_resnet20_wide", framework=framework))
    T = Table(framework, x, y, "wide, BN folded", network="fashion_resnet20_wide")
    T.add("wide, BN folded", wide, runtime, "wide, BN folded", 0)
    macs = {}
    for label, path, macs_ratio in entries:
        with warnings.catch_warnings():  # files saved folded come back unchanged
            warnings.filterwarnings("ignore", "fold_batchnorm: the model comes back unchanged")
            model = cl.fold_batchnorm(cl.load(path))
        T.add(label, model, runtime, "wide, BN folded", os.path.getsize(path))
        macs[label] = macs_ratio
    rows = T.rows(**_budget(args))
    verdicts = []
    for row in rows:
        if row["method"] not in macs:
            continue
        h2h = paired_ratio(T.models["wide, BN folded"], T.models[row["method"]], x[:BATCH],
                           pairs=20 if args.quick else 300, max_seconds=10 if args.quick else 60)
        row["head_to_head_speedup"] = 1.0 / h2h["ratio"]
        row["macs_ratio"] = macs[row["method"]]
        ok = row["head_to_head_speedup"] >= min_speedup and row["drop_ci_pt"][1] <= 1.0
        verdicts.append({"target": f"{framework}: {target}", "path": row["method"], "drop_pt": row["accuracy_drop_pt"],
                         "drop_ci_pt": row["drop_ci_pt"], "p_value": row["p_value"], "verdict": row["verdict"],
                         "speedup": row["head_to_head_speedup"], "status": "PASS" if ok else "FAIL"})
    return rows, verdicts


def _record(directory: Path, section: str, script: str) -> dict:
    import json

    path = directory / "record.json"
    if not path.exists():
        raise SystemExit(f"--sections {section}: {path} is missing; run python scripts/{script} first")
    return json.loads(path.read_text())


def prune_rows(args, framework: str, x, y) -> tuple[list[dict], list[dict]]:
    """The wide ResNet-20 against its Structured-pruned, distilled versions (BatchNorm folded in all of them),
    timed in the framework itself; each pruned network head to head against the original."""
    record = _record(PRUNED, "prune", "fashion_prune.py")
    entries = [(f"Structured({rec['ratio']}) + {rec['epochs']} ep distilled, BN folded",
                PRUNED / f"{framework}_r{rec['ratio']}.clz", rec["teacher_macs"] / rec["macs"])
               for _, rec in sorted(record.items())]
    return _versus_folded(args, framework, x, y, entries, "structured pruning of the wide ResNet-20, >= 2x the "
                          "folded original head to head, upper end of the drop's 95 % interval <= 1 pt", 2.0)


def lowrank_rows(args, framework: str, x, y) -> tuple[list[dict], list[dict]]:
    """The wide ResNet-20 against its Tucker-2 + SVD decompositions, distilled and BN folded
    (``scripts/fashion_lowrank.py``), timed in the framework itself and head to head against the original."""
    record = _record(LOWRANK, "lowrank", "fashion_lowrank.py")
    entries = [(f"Tucker e={rec['energy']} + {rec['epochs']} ep distilled, BN folded",
                LOWRANK / f"{framework}_e{rec['energy']}.clz",
                rec["original"]["folded_macs"] / rec["torch"]["macs"])
               for _, rec in sorted(record.items(), reverse=True)]
    return _versus_folded(args, framework, x, y, entries, "low-rank decomposition of the wide ResNet-20, faster "
                          "than the folded original head to head, upper end of the drop's 95 % interval <= 1 pt", 1.0)


def _budget(args) -> dict:
    return {"rounds": 3, "runs": 5} if args.quick else {"rounds": max(5, args.runs // 15), "runs": 15}


def head_to_head(rows: list[dict], table: Table, quick: bool) -> dict:
    """torch eager fp32 against compresslib's fastest int8 deployment, timed in alternated pairs."""
    int8 = [r for r in rows if r["framework"] == "torch" and "int8" in r["method"]]
    best = min(int8, key=lambda r: r["latency_ms"])
    h2h = paired_ratio(table.models["torch fp32"], table.models[best["method"]], table.x[:BATCH],
                       pairs=20 if quick else 300, max_seconds=10 if quick else 60)
    return {"fp32": "torch fp32", "int8": best["method"], "speedup": 1.0 / h2h["ratio"], "pairs": h2h["pairs"],
            "fp32_ms": h2h["a_ms"], "int8_ms": h2h["b_ms"], "load_average": os.getloadavg()[0]}


def targets(rows: list[dict], h2h: dict | None) -> list[dict]:
    out = []
    if h2h is not None:
        row = next(r for r in rows if r["framework"] == "torch" and r["method"] == h2h["int8"])
        drop_ok = row["accuracy_drop_pt"] <= 0.3
        speed_ok = h2h["speedup"] >= 3.0
        out.append({"target": "ResNet-20 static int8: drop <= 0.3 pt (paired test), >= 3x torch eager fp32 deployed",
                    "path": h2h["int8"], "drop_pt": row["accuracy_drop_pt"], "drop_ci_pt": row["drop_ci_pt"],
                    "p_value": row["p_value"], "verdict": row["verdict"], "speedup": h2h["speedup"],
                    "status": "PASS" if drop_ok and speed_ok else "FAIL"})
    return out


def provenance() -> dict:
    """Where and when the figures were measured: CPU model and the flags that pick int8/bf16 kernels, commit."""
    import subprocess

    cpu, flags = "unknown", []
    try:
        info = open("/proc/cpuinfo").read()
        cpu = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name"))
        have = set(next(l for l in info.splitlines() if l.startswith("flags")).split(":", 1)[1].split())
        flags = sorted(have & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16"})
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(__file__), timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {**machine(), "cpu": cpu, "cpu_flags": flags, "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv=None) -> dict:
    known, rest = _extra(argv if argv is not None else sys.argv[1:])
    args = parse_args(__doc__.splitlines()[0], rest)
    args.quick = known.quick
    n = 500 if args.quick else None
    torch.manual_seed(0)
    rows, h2h, prune_verdicts = [], None, []
    with tempfile.TemporaryDirectory() as tmp:
        for framework in args.frameworks:
            train = cl.datasets.load_fashion_mnist("train", layout=framework)
            test = cl.datasets.load_fashion_mnist("test", layout=framework)
            x, y, cal = test.x[:n], test.y[:n], train.x[:CAL]
            if "int8" in known.sections:
                if framework == "torch":
                    new, table = torch_rows(args, tmp, x, y, cal)
                    rows += new
                    h2h = head_to_head(new, table, args.quick)
                else:
                    rows += keras_rows(args, tmp, x, y, cal)
            for section, fn in (("prune", prune_rows), ("lowrank", lowrank_rows)):
                if section in known.sections:
                    new, verdicts = fn(args, framework, x, y)
                    rows += new
                    prune_verdicts += verdicts
    verdicts = targets(rows, h2h) + prune_verdicts
    emit(rows, None, KEYS)
    for v in verdicts:
        print(f"{v['status']}: {v['target']} — {v['path']}: drop {v['drop_pt']:+.2f} pt "
              f"(95 % CI {v['drop_ci_pt'][0]:+.2f} to {v['drop_ci_pt'][1]:+.2f}, McNemar p = {v['p_value']:.2g}, "
              f"{v['verdict']}), {v['speedup']:.2f}x head to head")
    doc = {"bench": "fashion", "quick": args.quick, "machine": provenance(), "rows": rows, "head_to_head": h2h,
           "targets": verdicts}
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)
    return doc


if __name__ == "__main__":
    main()
