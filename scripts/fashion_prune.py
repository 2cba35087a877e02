"""Structured pruning of the wide Fashion-MNIST ResNet-20, fine-tuned with distillation, shipped.

For each ratio, ``cl.prune(model, cl.Structured(ratio))`` removes that share of every prunable layer's
channels (residual-aware) from the shipped ``fashion_resnet20_wide``; the pruned network is then
fine-tuned on the 60,000 training images with the unpruned network as teacher (loss: 0.3 · cross-entropy
+ 0.7 · T² · KL at temperature 4), SGD with Nesterov momentum, cosine from lr 0.02, the training
script's shifts and flips, bf16 autocast where the CPU has bf16 units, one thread. The result goes to
``compresslib/data/results/fashion_prune/torch_r<ratio>.clz`` (a packed file, no pickle); the Keras twin
is Keras's own ``cl.prune`` of the Keras reference (checked to keep the same channels) carrying the
fine-tuned weights through ``cl.transfer``, saved as ``keras_r<ratio>.clz``. ``record.json`` beside them
holds each run's test accuracy (all 10,000 images, both frameworks), MACs, time and settings.
Each epoch checkpoints, so a killed run resumes.

    python scripts/fashion_prune.py                 # ratios 0.4 0.5, 4 epochs each
    python scripts/fashion_prune.py 0.5 --epochs 4
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)
import torch.nn.functional as F  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compresslib as cl  # noqa: E402
from train_fashion_zoo import accuracy, augment, checkpoint, cpu_model, has_bf16_units, resume  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "fashion_prune"
CKPT = Path(os.environ.get("COMPRESSLIB_CACHE", ROOT / ".cache" / "compresslib")) / "fashion_prune"
TEACHER = "fashion_resnet20_wide"
BATCH, LR, ALPHA, T = 128, 0.02, 0.7, 4.0


def fine_tune(student: torch.nn.Module, teacher: torch.nn.Module, ratio: float, epochs: int, seed: int = 0,
              ckpt: Path | None = None) -> float:
    """Distil ``teacher`` into ``student`` in place for ``epochs``; the seconds spent training.

    ``ckpt``: the resumable checkpoint file (default ``<cache>/fashion_prune/torch_r<ratio>.pt``);
    ``scripts/fashion_lowrank.py`` passes its own to fine-tune decomposed networks with this recipe.
    """
    x, y = cl.datasets.load_fashion_mnist("train", layout="torch")
    teacher.eval()
    opt = torch.optim.SGD(student.parameters(), lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = len(x) // BATCH
    bf16 = has_bf16_units()
    ckpt = ckpt or CKPT / f"torch_r{ratio}.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start, seconds = resume(ckpt, student, opt)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        student.train()
        rng = np.random.default_rng([seed, 1000 + epoch])
        order = rng.permutation(len(x))
        for b in range(steps):
            idx = order[b * BATCH:(b + 1) * BATCH]
            xb, yb = torch.from_numpy(augment(x[idx], rng)), torch.from_numpy(y[idx])
            for g in opt.param_groups:
                g["lr"] = float(0.5 * LR * (1 + np.cos(np.pi * (epoch * steps + b) / (epochs * steps))))
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                soft = teacher(xb).float()
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = student(xb).float()
            kd = F.kl_div(F.log_softmax(logits / T, 1), F.softmax(soft / T, 1), reduction="batchmean") * T * T
            loss = (1 - ALPHA) * F.cross_entropy(logits, yb) + ALPHA * kd
            loss.backward()
            opt.step()
        seconds += time.perf_counter() - t0
        checkpoint(ckpt, student, opt, epoch + 1, seconds)
        print(f"{ckpt.stem}: epoch {epoch + 1}/{epochs} ({seconds / 60:.1f} min)", flush=True)
    student.eval()
    return seconds


def run(ratio: float, epochs: int) -> dict:
    torch.set_num_threads(1)
    teacher = cl.zoo.pretrained(TEACHER, framework="torch")
    student = cl.prune(teacher, cl.Structured(ratio=ratio))
    seconds = fine_tune(student, teacher, ratio, epochs)
    OUT.mkdir(parents=True, exist_ok=True)
    cl.save(student, OUT / f"torch_r{ratio}.clz")
    keras_teacher = cl.zoo.pretrained(TEACHER, framework="keras")
    keras_pruned = cl.prune(keras_teacher, cl.Structured(ratio=ratio))
    # the same layer shapes, or transfer refuses naming the layer: Keras's pruning kept as many channels
    keras_student = cl.transfer(student, framework="keras", like=keras_pruned)
    cl.save(keras_student, OUT / f"keras_r{ratio}.clz")
    xt, yt = cl.datasets.load_fashion_mnist("test", layout="torch")
    xk, _ = cl.datasets.load_fashion_mnist("test", layout="keras")
    from compresslib.keras.train import evaluate as keras_evaluate

    r_t = cl.measure(student, example_input=xt[:1], latency=False)
    return {"ratio": ratio, "epochs": epochs, "teacher": TEACHER, "train_seconds": round(seconds, 1),
            "threads": 1, "cpu": cpu_model(), "bf16_autocast": has_bf16_units(),
            "recipe": {"batch_size": BATCH, "lr": LR, "distill_alpha": ALPHA, "temperature": T,
                       "schedule": "cosine", "optimizer": "SGD nesterov 0.9, wd 5e-4"},
            "params": r_t.params, "macs": r_t.macs,
            "teacher_macs": cl.measure(teacher, example_input=xt[:1], latency=False).macs,
            "test_accuracy": {"torch": accuracy(student, xt, yt),
                              "keras": keras_evaluate(cl.load(OUT / f"keras_r{ratio}.clz"), (xk, yt)),
                              "teacher_torch": accuracy(teacher, xt, yt)}}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ratios", nargs="*", type=float, default=[0.4, 0.5])
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args(argv)
    record_path = OUT / "record.json"
    for ratio in args.ratios:
        rec = run(ratio, args.epochs)
        records = json.loads(record_path.read_text()) if record_path.exists() else {}
        records[f"r{ratio}"] = rec
        record_path.write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
