"""Low-rank decomposition, both frameworks: fewer weights, and is it faster?

    python bench/lowrank.py [--json PATH] [--frameworks torch,keras] [--runs N] [--epochs N] [--ranks 4x16,8x16,8x8]
                            [--cp-rank 8] [--threads N] [--no-distill] [--quick]

Rows (each against the fp32 model measured in the same run):

* MLP-wide (784-1024-1024-10): SVD of the two hidden Dense/Linear layers with
  ``SVD(ratio=0.3)`` (the factors may use 30 % of each layer's weights), before
  and after a short fine-tune. ``factored_ratio`` = weights of the factored
  layers before / after (target ≥ 3× at ≤ 1 pt accuracy drop).
* LeNet-5: Tucker-2 of the second conv (6→16, 5×5), fine-tuned for 2 epochs.
* ResNet8: BatchNorm folding alone; then Tucker-2 of the 3×3 convs (not the
  1-channel stem) with ``ranks=(R1, R2)`` for each ``R1xR2`` of ``--ranks`` (``R`` alone
  means ``(R, R)``; where R2 equals a layer's 16 output channels that mode is absorbed,
  Tucker-1), fine-tuned for ``--epochs`` on the 8,000 training digits with the original
  model as teacher (knowledge distillation; ``--no-distill`` for labels only), then
  folded; CP of rank ``--cp-rank`` the same way.
  PyTorch rows marked ``channels_last`` run the same model in NHWC memory format (oneDNN then
  skips a layout reorder around every convolution); the fp32 baseline stays NCHW.
  Target: ≥ 2× measured CPU speedup at ≤ 1 pt drop.

Latency: batch 32, ``--threads`` CPU threads per framework (1 by default). Each
group's models (fp32 included) are timed in turn for 7 rounds of 15 calls and each
row reports its median over all rounds (``timing: interleaved``), so the machine's
drift over minutes falls on every model alike; ``compresslib.measure``'s one-shot
figure, taken right after each model was built, swung ±15 % on the same model.
Speedups come from measured time only; ``macs_ratio`` is shown beside them so a
reader can see when fewer MACs did not make a model faster.
``--quick``: LeNet-5 and ResNet8 (MLP-wide is not shipped: it would train first), the first Tucker rank
and CP, 512 training and 256 test images, one epoch, 3 timed runs: a smoke run that checks the
script; its figures mean nothing.

``bench/results/lowrank.json`` is a default (1-thread) run,
``bench/results/lowrank_2threads.json`` one with ``--threads 2``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, mnist, parse_args, retime, rounds_for, row  # noqa: E402

import torch  # noqa: E402  (common imported it already: torch before tensorflow)

import compresslib as cl  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402

KEYS = ["framework", "model", "method", "params", "bytes", "accuracy", "latency_ms", "size_ratio",
        "accuracy_drop_pt", "speedup", "macs_ratio", "factored_ratio", "finetune_s"]

HIDDEN = {"torch": ["1", "3"], "keras": ["fc1", "fc2"]}
LENET_CONV2 = {"torch": "3", "keras": "conv2"}


def _extra_args(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs (ResNet8; 1 for the others)")
    p.add_argument("--no-distill", dest="distill", action="store_false",
                   help="fine-tune ResNet8 on labels only (default: distil from the original model)")
    p.add_argument("--ranks", default="4x16,8x16,8x8",
                   help="Tucker ranks for ResNet8, comma-separated R1xR2 (or R for (R, R))")
    p.add_argument("--cp-rank", type=int, default=8, help="CP rank for ResNet8")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads per framework (default 1: on a shared 2-core machine 2-thread timings "
                        "swung 10x between runs); 0 keeps the frameworks' defaults")
    return p.parse_known_args(argv)


def _rank_pair(text: str) -> tuple[int, int]:
    r1, _, r2 = text.partition("x")
    return int(r1), int(r2 or r1)


def _is_3x3(framework):
    if framework == "torch":
        return lambda name, m: tuple(m.kernel_size) == (3, 3) and m.in_channels > 1
    return lambda name, layer: tuple(layer.kernel_size) == (3, 3) and layer.kernel.shape[2] > 1


def _factored_ratio(lowrank, model, config, layers):
    plans = lowrank.plan(model, config, layers)
    used = [p for p in plans.values() if p.accepted]
    return sum(p.params_before for p in used) / sum(p.params_after for p in used)


def _row(model, name, method, base, test, args, timed=None, **extra):
    if timed is not None:
        timed[method] = model
    r = cl.measure(model, data=test, runs=args.runs, name=method)
    out = row(r, name, method, base, **extra)
    out["macs_ratio"] = base.macs / r.macs if base.macs and r.macs else None
    return out


def mlp_rows(framework, args, train, test, example, finetune) -> list[dict]:
    """MLP-wide: SVD of the two hidden layers, before and after a one-epoch fine-tune."""
    lowrank = backend(framework, "lowrank")
    mlp = cl.zoo.pretrained("mlp_wide", framework)
    base = cl.measure(mlp, data=test, runs=args.runs, name="fp32")
    rows = [row(base, "mlp_wide", "fp32", base)]
    timed = {"fp32": mlp}
    svd = cl.SVD(ratio=0.3)
    ratio = _factored_ratio(lowrank, mlp, svd, HIDDEN[framework])
    d = cl.decompose(mlp, svd, layers=HIDDEN[framework])
    rows.append(_row(d, "mlp_wide", "svd ratio=0.3", base, test, args, timed, factored_ratio=ratio))
    f, secs = finetune(d, 1, lr=1e-4)
    rows.append(_row(f, "mlp_wide", "svd ratio=0.3 + ft", base, test, args, timed, factored_ratio=ratio,
                     finetune_s=secs))
    retime(rows, framework, "mlp_wide", timed, example, **rounds_for(args))
    return rows


def framework_rows(framework, args):
    lowrank = backend(framework, "lowrank")
    train, test = mnist(framework, args.quick)
    example = test[0][:32]
    if framework == "torch":
        example = torch.as_tensor(example)
    rows = []

    def finetune(model, epochs, lr=1e-3, teacher=None):
        t0 = time.perf_counter()
        out = lowrank.finetune(model, train, epochs=epochs, lr=lr, lr_schedule="step",
                               teacher=teacher if args.distill else None)
        return out, round(time.perf_counter() - t0, 1)

    # MLP-wide: SVD of the two hidden layers
    if not args.quick:
        rows += mlp_rows(framework, args, train, test, example, finetune)

    # LeNet-5: Tucker-2 of conv2
    lenet = cl.zoo.pretrained("lenet5", framework)
    base = cl.measure(lenet, data=test, runs=args.runs, name="fp32")
    rows.append(row(base, "lenet5", "fp32", base))
    timed = {"fp32": lenet}
    tucker = cl.Tucker(ranks=(3, 6))
    layers = [LENET_CONV2[framework]]
    ratio = _factored_ratio(lowrank, lenet, tucker, layers)
    f, secs = finetune(cl.decompose(lenet, tucker, layers=layers), 1 if args.quick else 2)
    rows.append(_row(f, "lenet5", "tucker conv2 (3,6) + ft", base, test, args, timed, factored_ratio=ratio,
                     finetune_s=secs))
    retime(rows, framework, "lenet5", timed, example, **rounds_for(args))

    # ResNet8: fold, Tucker-2 and CP of the 3×3 convs
    resnet = cl.zoo.pretrained("resnet8", framework)
    base = cl.measure(resnet, data=test, runs=args.runs, name="fp32")
    rows.append(row(base, "resnet8", "fp32", base))
    timed = {"fp32": resnet}
    rows.append(_row(cl.fold_batchnorm(resnet), "resnet8", "fold BN", base, test, args, timed))
    configs = [(cl.Tucker(ranks=r), f"tucker ({r[0]},{r[1]})") for r in args.ranks]
    configs.append((cl.CP(rank=args.cp_rank), f"cp {args.cp_rank}"))
    for config, label in configs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # layers whose factors would be larger are kept (and named)
            ratio = _factored_ratio(lowrank, resnet, config, _is_3x3(framework))
            d = cl.decompose(resnet, config, layers=_is_3x3(framework))
        rows.append(_row(cl.fold_batchnorm(d), "resnet8", f"{label} + fold", base, test, args, timed,
                         factored_ratio=ratio))
        f, secs = finetune(d, args.epochs, teacher=resnet)
        folded = cl.fold_batchnorm(f)
        rows.append(_row(folded, "resnet8", f"{label} + ft + fold", base, test, args, timed,
                         factored_ratio=ratio, finetune_s=secs))
        if framework == "torch":  # oneDNN reorders NCHW tensors around every conv; NHWC avoids it
            rows.append(_row(folded.to(memory_format=torch.channels_last), "resnet8",
                             f"{label} + ft + fold, channels_last", base, test, args, timed, factored_ratio=ratio))
    if framework == "torch":
        rows.append(_row(cl.fold_batchnorm(resnet).to(memory_format=torch.channels_last), "resnet8",
                         "fold BN, channels_last", base, test, args, timed))
    retime(rows, framework, "resnet8", timed, example, **rounds_for(args))
    return rows


def main(argv=None):
    extra, rest = _extra_args(sys.argv[1:] if argv is None else argv)
    args = parse_args(__doc__.splitlines()[0], rest)
    args.epochs, args.cp_rank = (1 if args.quick else extra.epochs), extra.cp_rank
    args.ranks = [_rank_pair(r) for r in extra.ranks.split(",") if r][:1 if args.quick else None]
    args.distill = extra.distill
    if extra.threads > 0:
        torch.set_num_threads(extra.threads)
        if "keras" in args.frameworks:
            import tensorflow as tf

            tf.config.threading.set_intra_op_parallelism_threads(extra.threads)
            tf.config.threading.set_inter_op_parallelism_threads(extra.threads)
    rows = []
    for framework in args.frameworks:
        rows += framework_rows(framework, args)
    emit(rows, args.json, KEYS)


if __name__ == "__main__":
    main()
