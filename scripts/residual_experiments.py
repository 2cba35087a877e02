"""Train the residual family for chapter 5 and write the results the chapter reads.

    python scripts/residual_experiments.py [--out compresslib/data/results/05_residual.json] [--frameworks torch,keras]
                                           [--groups degradation,family] [--threads 1] [--quick]

Chapter 5 has 180 s; training 30 networks in two frameworks takes about an hour on a quiet
2-core machine. So this script trains them once and the chapter plots what it wrote (the
chapter says so where it loads the file), and ``tests/torch/test_residual_cache.py``
re-trains one member and checks that it reproduces its cached figures.

What it trains (Adam, step schedule, seed 0, batch 128) on the 8,000 training digits, evaluating
on the 2,000 test digits after every epoch:

* ``degradation`` (:data:`RECIPE`, 3 epochs): ResNets of depth 20, 32 and 8 (widths 16, 32, 64) and
  the same networks without shortcuts (``plain=True``), same short budget.
* ``family`` (:data:`FAMILY_RECIPE`, 6 epochs): small members trained alone, then the same members
  distilled (``fit(..., teacher=...)``) from the teacher :data:`TEACHER`, the zoo's
  ``resnet20_w16`` (``compresslib.zoo.pretrained``: trained once with its recipe in
  ``compresslib.zoo.RECIPES`` and cached). The Keras runs distil from the *same* teacher moved to
  Keras with ``compresslib.transfer``.

Order: PyTorch depth 20 and 32, PyTorch family, Keras depth 20 and 32, Keras family, then depth 8
in both (the least needed last).

Every finished run is written at once (the file is rewritten atomically), and a run already
in the file is skipped, so an interrupted run resumes. Timing is not recorded here (the
chapter and ``bench/residual.py`` measure latency themselves); training is deterministic
for a given thread count.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CI", "1")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)

import compresslib as cl  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402
from compresslib.core.stats import pack_correctness  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "05_residual.json"
# "same budget" for the degradation runs: short, so that how fast a network learns shows
RECIPE = {"epochs": 3, "batch_size": 128, "lr": 2e-3, "lr_schedule": "step", "seed": 0}
# the small members, alone and distilled: longer, closer to what they can reach
FAMILY_RECIPE = dict(RECIPE, epochs=6)
DISTILL = {"distill_alpha": 0.7, "temperature": 4.0}
TEACHER = "resnet20_w16"  # from the zoo (compresslib.zoo.RECIPES: 8 epochs)
DEGRADATION = ("resnet20_w16", "resnet20_w16_plain", "resnet32_w16", "resnet32_w16_plain",
               "resnet8_w16", "resnet8_w16_plain")
STUDENTS = ("resnet8_w8", "resnet14_w8", "resnet11_w8_bottleneck", "invres_x0.5")


def set_threads(n: int, frameworks: tuple = ("torch", "keras")) -> None:
    """``n`` CPU threads per framework (0 keeps the defaults)."""
    if n <= 0:
        return
    torch.set_num_threads(n)
    if "keras" in frameworks:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(n)
            tf.config.threading.set_inter_op_parallelism_threads(n)
        except RuntimeError:  # already initialised in this process: keep what it has
            pass


def data(framework: str, quick: bool = False) -> tuple[tuple, tuple]:
    """(train, test) digits in ``framework``'s layout (``quick``: 1,024 and 500 of them)."""
    train = cl.datasets.load_mnist("train", layout=framework)
    test = cl.datasets.load_mnist("test", layout=framework)
    if quick:
        train, test = (train[0][:1024], train[1][:1024]), (test[0][:500], test[1][:500])
    return train, test


def size(framework: str, model: Any) -> dict:
    """Parameters and MACs per image (no timing)."""
    shape = (1, 1, 28, 28) if framework == "torch" else None
    example = torch.zeros(shape) if shape else None
    r = cl.measure(model, example_input=example, latency=False)
    return {"params": int(r.params), "macs": int(r.macs)}


def teacher(framework: str, quick: bool = False) -> Any:
    """The zoo's trained :data:`TEACHER` in ``framework`` (Keras: the PyTorch weights, transferred).

    ``quick``: a stand-in trained for one epoch on 1,024 digits when the zoo has none cached."""
    try:
        t = cl.zoo.pretrained(TEACHER, "torch", train_if_missing=not quick)
    except FileNotFoundError:
        t = backend("torch", "models").build(TEACHER)
        backend("torch", "train").fit(t, data("torch", quick=True)[0], epochs=1, batch_size=128)
    return t.eval() if framework == "torch" else cl.transfer(t, framework="keras")


def _epoch_hook_torch(test, steps_per_epoch: int, out: list):
    evaluate = backend("torch", "train").evaluate

    def hook(model, step):
        if step % steps_per_epoch == 0:
            out.append(evaluate(model, test))
            model.train()  # evaluate left it in eval mode; fit expects training mode

    return hook


def _epoch_callback_keras(test, out: list):
    import keras

    evaluate = backend("keras", "train").evaluate

    class EpochEval(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            out.append(evaluate(self.model, test))

    return EpochEval()


def train(framework: str, name: str, train_data, test_data, recipe: Optional[dict] = None,
          teacher_model: Any = None, per_epoch: bool = True) -> tuple[Any, dict]:
    """Build family member ``name`` and train it with ``recipe`` (distilled when ``teacher_model``
    is given: a model, or its logits on ``train_data``); return the model and a record with the
    per-epoch loss and test accuracy (``per_epoch=False``: the final accuracy only) and the
    per-image correctness on ``test_data`` (``correct``, packed by
    :func:`compresslib.core.stats.pack_correctness`)."""
    recipe = dict(RECIPE, **(recipe or {}))
    models, trainer = backend(framework, "models"), backend(framework, "train")
    backend(framework, "zoo_io").seed_everything(recipe["seed"])
    model = models.build(name)
    accuracies: list[float] = []
    kwargs: dict = dict(recipe)
    if teacher_model is not None:
        kwargs.update(DISTILL, teacher=teacher_model)
    if per_epoch and framework == "torch":
        steps = -(-len(train_data[0]) // recipe["batch_size"])
        kwargs["on_step"] = _epoch_hook_torch(test_data, steps, accuracies)
    elif per_epoch:
        kwargs["callbacks"] = [_epoch_callback_keras(test_data, accuracies)]
    t0 = time.perf_counter()
    losses = trainer.fit(model, train_data, **kwargs)
    seconds = time.perf_counter() - t0
    correct = trainer.evaluate(model, test_data, per_sample=True)
    record = {"framework": framework, "model": name, "mode": "distilled" if teacher_model is not None else "alone",
              "loss": [round(v, 6) for v in losses], "test_accuracy": accuracies,
              "accuracy": float(correct.mean()), "correct": pack_correctness(correct),
              "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(), **size(framework, model)}
    return model, record


def _key(r: dict) -> str:
    return f"{r['framework']}/{r['model']}/{r['mode']}"


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def main(argv: Optional[list] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--frameworks", default="torch,keras")
    p.add_argument("--groups", default="degradation,family")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="1,024 digits, 2 epochs: checks the script runs")
    args = p.parse_args(argv)
    frameworks = tuple(f for f in args.frameworks.split(",") if f)
    set_threads(args.threads, frameworks)
    path = Path(args.out)
    doc = json.loads(path.read_text()) if path.exists() else {}
    quick = {"epochs": 2} if args.quick else {}
    recipes = {"degradation": dict(RECIPE, **quick), "family": dict(FAMILY_RECIPE, **quick)}
    doc.setdefault("recipes", recipes)
    if doc["recipes"] != recipes:
        sys.exit(f"{path} was made with recipes {doc['recipes']}, not {recipes}: use another --out")
    doc.update({"teacher": TEACHER, "teacher_recipe": {k: v for k, v in cl.zoo.RECIPES[TEACHER].as_dict().items() if k != "dataset"}, "students": list(STUDENTS),
                "degradation": list(DEGRADATION), "distill": DISTILL, "quick": args.quick, "torch": torch.__version__})
    runs = doc.setdefault("runs", {})
    groups = args.groups.split(",")
    todo = []  # (framework, member, group, distilled)
    for framework in frameworks:
        if "degradation" in groups:
            todo += [(framework, n, "degradation", False) for n in DEGRADATION[:4]]
        if "family" in groups:
            todo += [(framework, n, "family", d) for d in (False, True) for n in STUDENTS]
    if "degradation" in groups:
        todo += [(framework, n, "degradation", False) for framework in frameworks for n in DEGRADATION[4:]]
    loaded: dict = {}
    for framework, name, group, distilled in todo:
        key = f"{framework}/{name}/{'distilled' if distilled else 'alone'}"
        if key in runs:
            continue
        if framework not in loaded:
            loaded = {framework: {"data": data(framework, args.quick), "teacher": None}}
        train_data, test_data = loaded[framework]["data"]
        t_model = None
        if distilled:
            if loaded[framework]["teacher"] is None:
                loaded[framework]["teacher"] = teacher(framework, args.quick)
                runs[f"{framework}/{TEACHER}/teacher"] = {
                    "framework": framework, "model": TEACHER, "mode": "teacher",
                    "accuracy": backend(framework, "train").evaluate(loaded[framework]["teacher"], test_data),
                    "recipe": doc["teacher_recipe"], **size(framework, loaded[framework]["teacher"])}
            t_model = loaded[framework]["teacher"]
        _, record = train(framework, name, train_data, test_data, recipes[group], t_model)
        record["group"] = group
        runs[_key(record)] = record
        print(json.dumps({k: record[k] for k in ("framework", "model", "mode", "accuracy", "train_seconds")}),
              flush=True)
        _write(path, doc)
    _write(path, doc)


if __name__ == "__main__":
    main()
