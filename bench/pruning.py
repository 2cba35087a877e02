"""Pruning, both frameworks: do masks, packing and structured pruning change bytes and latency?

    python bench/pruning.py [--json PATH] [--frameworks torch,keras] [--runs N] [--epochs N] [--ratios 0.5,0.6] [--no-distill]
                            [--quick]

Rows (each against the fp32 model measured in the same run):

* LeNet-300-100: the framework's own masks (``torch.nn.utils.prune``; for Keras,
  zeros written into the kernels, since tfmot rejects Keras 3 models), then
  compresslib's gradual global magnitude pruning to 90 % with fine-tuning,
  stored packed (``.clz``, bitmask/CSR chosen per tensor), and 2:4 N:M.
* ResNet8: compresslib's structured pruning (channels physically removed,
  residual adds kept consistent) at each ``--ratios``, fine-tuned for ``--epochs``
  with the unpruned model as teacher (knowledge distillation; ``--no-distill``
  for labels only); then the same model with BatchNorm folded, timed against
  the fp32 model as given (``speedup``) and folded too (``speedup_vs_folded_fp32``).

``--quick``: 512 training and 256 test images, one epoch wherever the bench fine-tunes, ResNet8 at
the first ratio only, 3 timed runs: a smoke run that checks the script; its figures mean nothing.

Latency: each network's variants are timed together in interleaved rounds
(:func:`compresslib.timing.interleaved_latency`), so ratios within one run are fair.

``bytes`` is the packed ``.clz`` file where the row says ``packed``, else the
framework's native file (state_dict / ``.keras``).
"""
from __future__ import annotations

import copy
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, interleaved_latency, mnist, parse_args, retime, rounds_for, row  # noqa: E402

import argparse  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402
from compresslib.core.schedules import PolynomialDecay  # noqa: E402

KEYS = ["framework", "model", "method", "sparsity", "params", "bytes", "accuracy", "latency_ms",
        "size_ratio", "accuracy_drop_pt", "speedup", "speedup_vs_folded_fp32", "speedup_b256", "macs_ratio",
        "finetune_s"]


def _extra_args(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs after structured pruning")
    p.add_argument("--ratios", default="0.5,0.6", help="structured pruning ratios for ResNet8")
    p.add_argument("--no-distill", dest="distill", action="store_false",
                   help="fine-tune on labels only (default: distil from the unpruned model, Hinton et al. 2015)")
    known, rest = p.parse_known_args(argv)
    return known, rest


def _sparsity(report):
    return round(1 - report.nonzero_params / report.params, 4)


def lenet_rows(framework, args):
    fw_train = backend(framework, "train")
    fw_prune = backend(framework, "pruning")
    train, test = mnist(framework, args.quick)
    base = cl.zoo.pretrained("lenet300_100", framework)
    b = cl.measure(base, data=test, runs=args.runs, name="fp32")
    rows = [row(b, "lenet300_100", "fp32", b, sparsity=_sparsity(b))]

    # the framework's own tool: masks only
    if framework == "torch":
        import torch
        import torch.nn.utils.prune  # noqa: F401
        own = copy.deepcopy(base)
        params = [(m, "weight") for m in own.modules() if isinstance(m, torch.nn.Linear)]
        torch.nn.utils.prune.global_unstructured(params, pruning_method=torch.nn.utils.prune.L1Unstructured, amount=0.9)
        method = "torch.nn.utils.prune 0.9 (masks)"
    else:
        own = cl.prune(base, cl.Magnitude(0.9, scope="global"))  # zeros in the kernels, native .keras file
        method = "zeros in kernels 0.9 (.keras)"
    r = cl.measure(own, data=test, runs=args.runs, name=method)
    rows.append(row(r, "lenet300_100", method, b, sparsity=_sparsity(r)))
    timed = {"fp32": base, method: own}

    # compresslib: gradual global magnitude pruning while fine-tuning, packed
    steps_per_epoch = -(-len(train[0]) // 64)
    epochs = 1 if args.quick else 6
    sched = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=int(0.6 * epochs * steps_per_epoch), frequency=25)
    cfg = cl.Magnitude(0.9, scope="global", schedule=sched)
    model = fw_prune.finalize(base)
    hook = fw_prune.GradualPruning(cfg, model)
    t0 = time.perf_counter()
    if framework == "torch":
        fw_train.fit(model, train, epochs=epochs, batch_size=64, lr=1e-3, on_step=hook, lr_schedule="step")
    else:
        fw_train.fit(model, train, epochs=epochs, batch_size=64, lr=1e-3, callbacks=[hook], lr_schedule="step")
    ft = time.perf_counter() - t0
    final = hook.finalize(model)  # plain copy, no optimizer state
    r = cl.measure(final, data=test, runs=args.runs, name="gradual 0.9", packed=True)
    rows.append(row(r, "lenet300_100", "gradual magnitude 0.9 global, packed", b, sparsity=_sparsity(r),
                    native_bytes=r.file_bytes, finetune_s=round(ft, 1)))
    timed["gradual magnitude 0.9 global, packed"] = final

    # N:M 2:4, one-shot then a short fine-tune with the masks kept
    nm = cl.prune(base, cl.NM(2, 4))
    hook = fw_prune.GradualPruning(cl.NM(2, 4), nm)
    nm_epochs = 1 if args.quick else 2
    t0 = time.perf_counter()
    if framework == "torch":
        fw_train.fit(nm, train, epochs=nm_epochs, batch_size=64, lr=5e-4, on_step=hook)
    else:
        fw_train.fit(nm, train, epochs=nm_epochs, batch_size=64, lr=5e-4, callbacks=[hook])
    ft = time.perf_counter() - t0
    nm = hook.finalize(nm)
    r = cl.measure(nm, data=test, runs=args.runs, name="2:4", packed=True)
    rows.append(row(r, "lenet300_100", "N:M 2:4, packed", b, sparsity=_sparsity(r), finetune_s=round(ft, 1)))
    timed["N:M 2:4, packed"] = nm
    retime(rows, framework, "lenet300_100", timed, test[0][:32], **rounds_for(args))
    return rows


def resnet_rows(framework, args, ratios):
    fw_train = backend(framework, "train")
    fw_prune = backend(framework, "pruning")
    train, test = mnist(framework, args.quick)
    base = cl.zoo.pretrained("resnet8", framework)
    b = cl.measure(base, data=test, runs=args.runs, name="fp32")
    rows = [row(b, "resnet8", "fp32", b, speedup_b256=1.0)]
    folded = cl.fold_batchnorm(base)
    bf = cl.measure(folded, data=test, runs=args.runs, name="fp32 + fold")
    rows.append(row(bf, "resnet8", "fp32 + fold BN", b))
    timed, big = {"fp32": base, "fp32 + fold BN": folded}, {"fp32": base}
    for ratio in ratios:
        s = cl.prune(base, cl.Structured(ratio), example_input=test[0][:1])
        r = cl.measure(s, data=test, runs=args.runs, name=f"structured {ratio}")
        rows.append(row(r, "resnet8", f"structured {ratio}, no fine-tune", b, macs_ratio=b.macs / r.macs))
        timed[rows[-1]["method"]] = fw_prune.finalize(s)  # a copy: s is fine-tuned in place next
        t0 = time.perf_counter()
        fw_train.fit(s, train, epochs=args.epochs, batch_size=128, lr=2e-3, lr_schedule="step",
                     teacher=base if args.distill else None)
        ft = time.perf_counter() - t0
        s = fw_prune.finalize(s)  # a plain copy: a compiled Keras model would also save its optimizer state
        r = cl.measure(s, data=test, runs=args.runs, name=f"structured {ratio} ft")
        how = f"{'distilled' if args.distill else 'fine-tuned'} {args.epochs} ep"
        rows.append(row(r, "resnet8", f"structured {ratio}, {how}", b,
                        macs_ratio=b.macs / r.macs, finetune_s=round(ft, 1)))
        timed[rows[-1]["method"]] = big[rows[-1]["method"]] = s
        # deployment: BatchNorm folded into the convs (exact); against the fp32 model as given
        # and against the fp32 model folded too, so the pruning's own share is visible
        sf = cl.fold_batchnorm(s)
        r = cl.measure(sf, data=test, runs=args.runs, name=f"structured {ratio} + fold")
        rows.append(row(r, "resnet8", f"structured {ratio}, {how} + fold BN", b, macs_ratio=b.macs / r.macs))
        timed[rows[-1]["method"]] = sf
    # all ResNet8 variants timed together in interleaved rounds (one-shot timings swung 0.85x-3.05x)
    med = retime(rows, framework, "resnet8", timed, test[0][:32], **rounds_for(args))
    # speedup at batch 256, where the framework's fixed per-call cost weighs less than at 32
    med256 = interleaved_latency(framework, big, test[0][:256], rounds=1 if args.quick else 3,
                                 runs=max(3, args.runs // 20))
    for r in rows:
        if r["model"] != "resnet8":
            continue
        if r["method"] in med256:
            r["speedup_b256"] = med256["fp32"] / med256[r["method"]]
        if r["method"].endswith("+ fold BN") and r["method"] != "fp32 + fold BN":
            r["speedup_vs_folded_fp32"] = med["fp32 + fold BN"] / med[r["method"]]
    return rows


def main(argv=None) -> list[dict]:
    extra, rest = _extra_args(sys.argv[1:] if argv is None else argv)
    args = parse_args(__doc__, rest)
    args.epochs, args.distill = (1 if args.quick else extra.epochs), extra.distill
    ratios = [float(r) for r in extra.ratios.split(",") if r][:1 if args.quick else None]
    rows = []
    for framework in args.frameworks:
        rows += lenet_rows(framework, args)
        rows += resnet_rows(framework, args, ratios)
        print(f"{framework}: done", file=sys.stderr)
    emit(rows, args.json, KEYS)
    return rows


if __name__ == "__main__":
    main()
