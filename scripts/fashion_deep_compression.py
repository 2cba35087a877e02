"""Deep Compression (prune → share → entropy-code) of the Fashion-MNIST ResNet-20, swept and shipped.

For each sparsity ``s`` the shipped ``fashion_resnet20`` (He et al.'s ResNet-20, 272 k parameters) is
pruned globally by magnitude, gradually over a fine-tune (Zhu & Gupta's schedule, masks kept), and for
each bit width ``b`` the pruned network's weights are shared (``cl.WeightSharing(bits=b)`` on every
convolution and the classifier: k-means, 2**b centroids per layer) and only the centroids are
fine-tuned. Both steps are ``compresslib.pipeline``'s own (``apply_step`` + ``finetune_step``, what
``cl.compress(model, recipe)`` runs), distilling from the original (Adam, batch 128). The result is
saved entropy-coded as ``compresslib/data/results/fashion_dc/torch_s<s>_b<b>.clz``; its Keras twin
(``cl.transfer``: the same values, so the same codebooks) as ``keras_s<s>_b<b>.clz``. Each point's
accuracy is that of the model *read back from its file* on all 10,000 test images, with its 95 %
interval and the paired comparison with the original (McNemar p, verdict), in ``record.json``
together with the per-image correctness bits (``compresslib.core.stats.pack_correctness``), the file
bytes with and without entropy coding, and one one-shot point (``ONE_SHOT``: prune + share of the zoo
network, no fine-tune) that ``tests/test_fashion_deep_compression.py`` re-derives from the zoo.

Budget: the whole sweep (2 sparsities × 4 bit widths) must finish within about 60 min wall on one
thread of a 2-core machine shared with three other jobs (the shipped record: a load average of 7 to
10, done well inside it): each pruning fine-tune is one pass over the first 15,000 training images
(117 steps of 128), each centroid fine-tune one pass over the last 4,000 (31 steps); evaluating the
21 files and models on all 10,000 test images takes about as long as the training. A point is written to the record as soon as it is finished and each
pruned network is cached, so a killed run resumes with the next point.

    python scripts/fashion_deep_compression.py                  # sparsities 0.7 0.9, bits 2 3 4 5
    python scripts/fashion_deep_compression.py --sparsities 0.9 --bits 3
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compresslib as cl  # noqa: E402
from compresslib import pipeline  # noqa: E402
from compresslib.core import packing, stats  # noqa: E402
from compresslib.core.encodings import entropy  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402
from fashion_lowrank import correct, entry  # noqa: E402
from train_fashion_zoo import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "fashion_dc"
CKPT = Path(os.environ.get("COMPRESSLIB_CACHE", ROOT / ".cache" / "compresslib")) / "fashion_dc"
MODEL = "fashion_resnet20"
SPARSITIES = (0.7, 0.9)
BITS = (2, 3, 4, 5)
ONE_SHOT = (0.9, 3)  # the point whose un-tuned version the record keeps, for a test to re-derive
PRUNE_ROWS, SHARE_ROWS = 15_000, 4_000  # training images seen by each fine-tune (one pass)
PRUNE = {"epochs": 1, "lr": 1e-3, "batch_size": 128, "distill": True, "gradual": True}
SHARE = {"epochs": 1, "lr": 3e-4, "batch_size": 128, "distill": True}


def settings(step: dict) -> dict:
    """Full fine-tuning settings of one step (the pipeline's defaults, then ``step``)."""
    return {**pipeline.FINETUNE_FIELDS, **step}


def magnitude(sparsity: float, rows: int = PRUNE_ROWS) -> cl.Magnitude:
    """The pruning step: global magnitude, gradual over the fine-tune of ``rows`` images."""
    config = cl.Magnitude(sparsity=sparsity, scope="global")
    return pipeline.gradual_config(config, settings(PRUNE), rows)


def one_shot(model, sparsity: float, bits: int):
    """``model`` pruned to ``sparsity`` and shared to ``bits`` at once, no fine-tune (torch or Keras).

    >>> m = cl.zoo.pretrained(MODEL, framework="torch")      # doctest: +SKIP
    >>> one_shot(m, 0.9, 3)                                  # doctest: +SKIP
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pruned = cl.prune(model, cl.Magnitude(sparsity=sparsity, scope="global"))
        return pipeline.apply_step(pruned, cl.WeightSharing(bits=bits))


def pruned(teacher: torch.nn.Module, sparsity: float, x: np.ndarray, y: np.ndarray) -> torch.nn.Module:
    """The teacher pruned to ``sparsity`` and fine-tuned (cached in ``CKPT``: a rerun reuses it)."""
    path = CKPT / f"pruned_s{sparsity}.pt"
    if path.exists():
        model = copy.deepcopy(teacher)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    model = pipeline.apply_step(teacher, magnitude(sparsity, len(x)))
    model = pipeline.finetune_step(model, magnitude(sparsity, len(x)), settings(PRUNE), (x, y),
                                   teacher=teacher, progress_bar=False)
    CKPT.mkdir(parents=True, exist_ok=True)
    atomic_write(str(path), lambda tmp: torch.save(model.state_dict(), tmp))
    return model.eval()


def shared(model: torch.nn.Module, teacher: torch.nn.Module, bits: int, x: np.ndarray,
           y: np.ndarray) -> torch.nn.Module:
    """``model``'s weights shared to ``bits`` per layer, centroids fine-tuned against ``teacher``."""
    config = cl.WeightSharing(bits=bits)
    s = pipeline.apply_step(model, config)
    return pipeline.finetune_step(s, config, settings(SHARE), (x, y), teacher=teacher,
                                  progress_bar=False).eval()


def uncoded_bytes(model, tmp: str) -> int:
    """Bytes of ``model``'s ``.clz`` without the entropy coders (fixed-width indices, plain bitmasks)."""
    with packing.excluding(*entropy.ENTROPY_CODED):
        return cl.save(model, os.path.join(tmp, "uncoded.clz"))


def originals(data: dict) -> dict:
    """The zoo network's row in each framework: bits, accuracy, .clz bytes of the fp32 file."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fw in ("torch", "keras"):
            model = cl.zoo.pretrained(MODEL, framework=fw)
            xs, ys = data[fw]
            bits = correct(model, xs, ys)
            path = Path(tmp) / f"{fw}.clz"
            cl.save(model, path)
            out[fw] = entry(model, bits, bits, path, xs[:1])
    return out


def point(teacher, base: torch.nn.Module, sparsity: float, bits: int, train: tuple, data: dict,
          orig: dict) -> dict:
    """One (sparsity, bits) point: fine-tuned, saved in both frameworks, read back and measured."""
    t0 = time.perf_counter()
    model = shared(base, teacher, bits, *train)
    seconds = time.perf_counter() - t0
    OUT.mkdir(parents=True, exist_ok=True)
    tag = f"s{sparsity}_b{bits}"
    row = {"sparsity": sparsity, "bits": bits, "share_seconds": round(seconds, 1)}
    twins = {"torch": model, "keras": cl.transfer(model, framework="keras")}
    with tempfile.TemporaryDirectory() as tmp:
        for fw, m in twins.items():
            path = OUT / f"{fw}_{tag}.clz"
            atomic_write(str(path), lambda p: cl.save(m, p))
            back = cl.load(path)
            xs, ys = data[fw]
            row[fw] = entry(back, correct(back, xs, ys), orig[fw], path, xs[:1])
            row[fw]["uncoded_bytes"] = uncoded_bytes(back, tmp)
    return row


def main(argv: list[str]) -> None:
    global OUT, CKPT
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sparsities", nargs="*", type=float, default=list(SPARSITIES))
    p.add_argument("--bits", nargs="*", type=int, default=list(BITS))
    p.add_argument("--rows", nargs=2, type=int, default=[PRUNE_ROWS, SHARE_ROWS],
                   help="training images of the pruning and of the centroid fine-tunes")
    p.add_argument("--out", type=Path, default=OUT, help="where record.json and the .clz files go")
    args = p.parse_args(argv)
    if args.out != OUT:  # a trial run: its own files and cache
        OUT, CKPT = args.out, args.out / "cache"
    prune_rows, share_rows = args.rows
    torch.set_num_threads(1)
    record_path = OUT / "record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}

    def write() -> None:
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        OUT.mkdir(parents=True, exist_ok=True)
        atomic_write(str(record_path), lambda tmp: Path(tmp).write_text(text))

    x, y = cl.datasets.load_fashion_mnist("train", layout="torch")
    yt = cl.datasets.load_fashion_mnist("test", layout="torch")[1]
    data = {fw: (cl.datasets.load_fashion_mnist("test", layout=fw)[0], yt) for fw in ("torch", "keras")}
    teacher = cl.zoo.pretrained(MODEL, framework="torch").eval()
    if "original" not in record:
        record.update(original=originals(data), model=MODEL, cpu=cpu_model(), threads=1)
        write()
    if "recipe" not in record:
        record.update(recipe={"prune": {**PRUNE, "rows": prune_rows, "scope": "global"},
                              "share": {**SHARE, "rows": share_rows},
                              "optimizer": "Adam (compresslib.torch.train.fit)",
                              "code": "compresslib.pipeline apply_step + finetune_step"})
        write()
    orig = {fw: stats.unpack_correctness(record["original"][fw]["correct"], 10_000)
            for fw in ("torch", "keras")}
    if "one_shot" not in record:
        xs, ys = data["torch"]
        m = one_shot(teacher, *ONE_SHOT)
        record["one_shot"] = {"sparsity": ONE_SHOT[0], "bits": ONE_SHOT[1],
                              "torch": entry(m, correct(m, xs, ys), orig["torch"], None, xs[:1])}
        write()
    points = record.setdefault("points", {})
    for s in args.sparsities:
        todo = [b for b in args.bits if f"s{s}_b{b}" not in points]
        if not todo:
            continue
        t0 = time.perf_counter()
        base = pruned(teacher, s, x[:prune_rows], y[:prune_rows])
        key = f"s{s}"
        if key not in record.setdefault("pruned", {}):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "pruned.clz"
                cl.save(base, path)
                xs, ys = data["torch"]
                row = entry(base, correct(base, xs, ys), orig["torch"], path, xs[:1])
            row["prune_seconds"] = round(time.perf_counter() - t0, 1)
            record["pruned"][key] = row
            write()
        for b in todo:
            points[f"s{s}_b{b}"] = point(teacher, base, s, b, (x[-share_rows:], y[-share_rows:]), data,
                                         orig)
            write()
            print(json.dumps({k: points[f"s{s}_b{b}"][k] for k in ("sparsity", "bits", "share_seconds")}),
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
