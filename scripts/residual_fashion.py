"""Chapter 5's main result on Fashion-MNIST: small residual members trained alone and distilled.

    python scripts/residual_fashion.py [--out compresslib/data/results/05_residual_fashion.json]
                                       [--threads 1] [--quick]

The teacher is the zoo's ``fashion_resnet20`` (ResNet-20 of width 16, 31.0 M MACs per image;
``compresslib.zoo.pretrained``: the same shipped weights in PyTorch and Keras). The students
(:data:`STUDENTS`) span 3.3x to 13x fewer MACs: ResNet-8 at widths 16 and 8 and the inverted-residual
member at width multiplier 0.5. Each is trained in PyTorch twice with the recipe and code of
``scripts/residual_experiments.py`` (:func:`residual_experiments.train`: Adam, lr 2e-3, step
schedule, batch 128, seed 0): alone, then distilled from the teacher (0.3 · cross-entropy +
0.7 · T² · KL at T = 4; the teacher's logits on the training subset are computed once and passed to
``fit`` as an array). Each trained student then moves to Keras with ``cl.transfer`` (as the zoo's
weights and chapters 3 and 4's Fashion-MNIST results do) and is evaluated there too: the Keras
record is the same network run by Keras, not a second training.

Budget: the machine had 2 CPU cores shared with three other jobs (load average about 8, so this
process got about a fifth of a core); training in both frameworks did not fit, and the PyTorch
training had to fit in about 45 minutes: :data:`TRAIN_IMAGES` = 10,000 training images (a fixed
random subset, seed 0) for :data:`RECIPE` ``epochs`` = 4 epochs, one thread, no augmentation. The
teacher saw all 60,000 for 15 epochs with augmentation. Every network is evaluated once, at the
end, on all 10,000 test images.

Each run records params, MACs, the accuracy and the per-image correctness (hex bits,
:func:`compresslib.core.stats.pack_correctness`), so chapter 5 can run McNemar's paired test
distilled-vs-alone and student-vs-teacher. Every finished run is merged into the file at once
(under a lock) and a run already present is skipped: an interrupted script resumes.
``tests/test_residual_fashion.py`` re-derives the cached figures.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from residual_experiments import DISTILL, FAMILY_RECIPE, set_threads, size, train  # noqa: E402

import numpy as np  # noqa: E402  (torch is imported first, by residual_experiments)
import torch  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402
from compresslib.core.stats import pack_correctness  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "05_residual_fashion.json"
TEACHER = "fashion_resnet20"
STUDENTS = ("resnet8_w8", "resnet8_w16", "invres_x0.5")
TRAIN_IMAGES = 10_000
RECIPE = dict(FAMILY_RECIPE, epochs=4)


def data(framework: str, quick: bool = False) -> tuple[tuple, tuple]:
    """(train subset, full test set) of Fashion-MNIST in ``framework``'s layout.

    ``quick``: 1,024 training and 500 test images, to check that the script runs.

    Example:
        >>> (x, y), (xt, yt) = data("torch", quick=True)
        >>> x.shape, xt.shape
        ((1024, 1, 28, 28), (500, 1, 28, 28))
    """
    x, y = cl.datasets.load_fashion_mnist("train", layout=framework)
    xt, yt = cl.datasets.load_fashion_mnist("test", layout=framework)
    idx = np.sort(np.random.default_rng(0).permutation(len(x))[:TRAIN_IMAGES])
    if quick:
        idx, xt, yt = idx[:1024], xt[:500], yt[:500]
    return (x[idx], y[idx]), (xt, yt)


def teacher_record(framework: str, model: Any, test: tuple) -> dict:
    """The teacher's entry: accuracy, per-image correctness, params and MACs on ``test``."""
    correct = backend(framework, "train").evaluate(model, test, per_sample=True)
    return {"framework": framework, "model": TEACHER, "mode": "teacher",
            "accuracy": float(correct.mean()), "correct": pack_correctness(correct),
            **size(framework, model)}


def merge(path: Path, key: str, record: dict, header: dict) -> dict:
    """Add ``record`` as ``runs[key]`` to the JSON at ``path`` under a file lock; the merged doc."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(path.read_text()) if path.exists() else {}
        doc.update(header)
        doc.setdefault("runs", {})[key] = record
        text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
        atomic_write(str(path), lambda tmp: Path(tmp).write_text(text))
    return doc


def keras_record(torch_model: Any, record: dict, test: tuple) -> dict:
    """``torch_model`` moved to Keras with ``cl.transfer`` and evaluated by Keras on ``test``."""
    model = cl.transfer(torch_model, framework="keras")
    correct = backend("keras", "train").evaluate(model, test, per_sample=True)
    return dict(record, framework="keras", trained_in="torch (cl.transfer)",
                accuracy=float(correct.mean()), correct=pack_correctness(correct),
                **size("keras", model))


def run(path: Path, header: dict, quick: bool) -> None:
    """Train every student of :data:`STUDENTS` alone and distilled, resumably; record each in
    PyTorch and, moved with ``cl.transfer``, in Keras."""
    done = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    train_data, test_data = data("torch", quick)
    test_k = data("keras", quick)[1]
    teachers = {fw: cl.zoo.pretrained(TEACHER, framework=fw) for fw in ("torch", "keras")}
    teachers["torch"].eval()
    for fw, test in (("torch", test_data), ("keras", test_k)):
        key = f"{fw}/{TEACHER}/teacher"
        if key not in done:
            merge(path, key, teacher_record(fw, teachers[fw], test), header)
    logits: Optional[np.ndarray] = None
    recipe = header["recipe"]
    for name in STUDENTS:
        for mode in ("alone", "distilled"):
            if f"keras/{name}/{mode}" in done:
                continue
            if mode == "distilled" and logits is None:
                logits = backend("torch", "train").predict(teachers["torch"], train_data[0])
            model, record = train("torch", name, train_data, test_data, recipe,
                                  logits if mode == "distilled" else None, per_epoch=False)
            record["trained_in"] = "torch"
            merge(path, f"torch/{name}/{mode}", record, header)
            merge(path, f"keras/{name}/{mode}", keras_record(model.eval(), record, test_k), header)
            print(json.dumps({k: record[k] for k in ("model", "mode", "accuracy")}), flush=True)


def main(argv: Optional[list] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="1,024 images, 1 epoch: checks the script runs")
    args = p.parse_args(argv)
    set_threads(args.threads)
    recipe = dict(RECIPE, epochs=1) if args.quick else RECIPE
    header = {"teacher": TEACHER, "students": list(STUDENTS), "recipe": recipe, "distill": DISTILL,
              "train_images": 1024 if args.quick else TRAIN_IMAGES, "train_subset_seed": 0,
              "test_images": 500 if args.quick else 10_000, "quick": args.quick,
              "torch": torch.__version__}
    run(Path(args.out), header, args.quick)


if __name__ == "__main__":
    main()
