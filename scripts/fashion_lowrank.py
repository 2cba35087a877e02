"""Low-rank decomposition of the wide Fashion-MNIST ResNet-20, fine-tuned with distillation, shipped.

For each energy ``e``, ``cl.decompose`` factors the shipped ``fashion_resnet20_wide``: Tucker-2
(``cl.Tucker(energy=e)``) on every 3×3 convolution but the 1-channel stem, then ``cl.SVD(energy=e)``
on the one Linear layer (the 10×128 classifier, the only layer SVD applies to). The decomposed
network is fine-tuned on the 60,000 training images with the original as teacher, by the recipe
and code of ``scripts/fashion_prune.py`` (``fine_tune``: distillation 0.3 · CE + 0.7 · T²·KL at
T = 4, SGD Nesterov, cosine from lr 0.02, shifts and flips, bf16 autocast where the CPU has bf16
units, one thread), BatchNorm is folded (``cl.fold_batchnorm``) and the result is saved as
``compresslib/data/results/fashion_lowrank/torch_e<e>.clz`` (packed, no pickle). The Keras twin is
Keras's own ``cl.decompose`` + ``cl.fold_batchnorm`` of the Keras reference (the same ranks: the
weights are the same) carrying the fine-tuned weights through ``cl.transfer`` (``like=`` that
folded Keras decomposition: factor ``i`` of each layer to factor ``i``), saved as
``keras_e<e>.clz``. ``record.json`` holds, per setting and framework: accuracy on all 10,000 test
images with its 95 % interval, the paired comparison with the original (McNemar p, verdict), the
accuracy right after decomposition (before fine-tuning), params, MACs, .clz bytes and the
per-image correctness bits (``compresslib.core.stats.pack_correctness``). Each epoch checkpoints,
so a killed run resumes.

    python scripts/fashion_lowrank.py                # energies 0.91 0.86 (about 2x, 3x fewer MACs)
    python scripts/fashion_lowrank.py 0.91 --epochs 2    # 1 epoch by default
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compresslib as cl  # noqa: E402
from compresslib.core import stats  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402
from fashion_prune import ALPHA, BATCH, LR, T, TEACHER, fine_tune  # noqa: E402
from train_fashion_zoo import cpu_model, has_bf16_units  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "fashion_lowrank"
CKPT = Path(os.environ.get("COMPRESSLIB_CACHE", ROOT / ".cache" / "compresslib")) / "fashion_lowrank"
ENERGIES = (0.91, 0.86)


def is_3x3(name: str, module) -> bool:
    """The layers Tucker factors: 3×3 convolutions with more than one input channel (not the stem).

    Works for an ``nn.Conv2d`` and a Keras ``Conv2D`` alike.

    >>> is_3x3("layer1.0.conv1", torch.nn.Conv2d(32, 32, 3))
    True
    """
    size = tuple(getattr(module, "kernel_size", ()))
    c_in = getattr(module, "in_channels", None)
    if c_in is None and hasattr(module, "kernel") and len(tuple(module.kernel.shape)) == 4:
        c_in = int(module.kernel.shape[2])
    return size == (3, 3) and (c_in or 0) > 1


def decompose(model, energy: float):
    """``model`` with Tucker(energy) on its inner 3×3 convs and SVD(energy) on its Linear/Dense layer.

    The same call for a torch and a Keras model; skipped layers are recorded, not warned about.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        d = cl.decompose(model, cl.Tucker(energy=energy), layers=is_3x3)
        return cl.decompose(d, cl.SVD(energy=energy))


def correct(model, x: np.ndarray, y: np.ndarray, batch: int = 500) -> np.ndarray:
    """Per-image correctness of a torch or Keras model on ``(x, y)``, batch by batch."""
    out = []
    for i in range(0, len(x), batch):
        if isinstance(model, torch.nn.Module):
            with torch.no_grad():
                logits = model.eval()(torch.from_numpy(x[i:i + batch])).numpy()
        else:
            logits = np.asarray(model(x[i:i + batch], training=False))
        out.append(logits.argmax(1) == y[i:i + batch])
    return np.concatenate(out)


def entry(model, bits: np.ndarray, original: np.ndarray, path: Path | None, example) -> dict:
    """One row of the record: accuracy with interval, paired drop against ``original``, size."""
    n, k = len(bits), int(bits.sum())
    pr = stats.paired(None, original, bits)
    rep = cl.measure(model, example_input=example, latency=False)
    row = {"accuracy": k / n, "correct_count": k, "total": n,
           "interval": list(stats.wilson_interval(k, n)),
           "drop_pt": -pr.difference_pt, "drop_interval_pt": [-pr.difference_interval_pt[1],
                                                              -pr.difference_interval_pt[0]],
           "only_original": pr.only_a, "only_model": pr.only_b, "mcnemar_p": pr.p_value,
           "verdict": pr.verdict, "params": int(rep.params), "macs": int(rep.macs),
           "correct": stats.pack_correctness(bits)}
    if path is not None:
        row["clz_bytes"] = path.stat().st_size
    return row


def ranks(model) -> dict:
    """{layer: rank} of the torch model's factored layers (Tucker (R1, R2) or SVD r)."""
    from compresslib.torch.layers import FactoredConv2d, FactoredLinear

    out = {}
    for n, m in model.named_modules():
        if isinstance(m, FactoredConv2d):
            convs = [c for c in m if isinstance(c, torch.nn.Conv2d)]
            kxk = [c for c in convs if c.kernel_size != (1, 1)][0]
            out[n] = [kxk.in_channels, kxk.out_channels]
        elif isinstance(m, FactoredLinear):
            out[n] = m.rank
    return out


def train(energy: float, epochs: int) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """The original, its decomposition fine-tuned for ``epochs`` (resumed from a checkpoint), seconds."""
    torch.set_num_threads(1)
    teacher = cl.zoo.pretrained(TEACHER, framework="torch").eval()
    student = decompose(teacher, energy)
    seconds = fine_tune(student, teacher, energy, epochs, ckpt=CKPT / f"torch_e{energy}.pt")
    return teacher, student, seconds


def _original_bits(record_path: Path) -> dict:
    """The original's per-image correctness in each framework from an earlier entry of the record ({} if none):
    the same zoo network every time, so the second setting need not evaluate it again."""
    if not record_path.exists():
        return {}
    for rec in json.loads(record_path.read_text()).values():
        if rec.get("teacher") == TEACHER:
            return {fw: stats.unpack_correctness(rec["original"][fw]["correct"], rec["original"][fw]["total"])
                    for fw in ("torch", "keras")}
    return {}


def run(energy: float, epochs: int) -> dict:
    tag = f"e{energy}"
    teacher, student, seconds = train(energy, epochs)
    xt, yt = cl.datasets.load_fashion_mnist("test", layout="torch")
    xk, _ = cl.datasets.load_fashion_mnist("test", layout="keras")
    before_t = correct(decompose(teacher, energy), xt, yt)
    folded = cl.fold_batchnorm(student.eval())
    OUT.mkdir(parents=True, exist_ok=True)
    t_path = OUT / f"torch_{tag}.clz"
    atomic_write(str(t_path), lambda tmp: cl.save(folded, tmp))

    keras_teacher = cl.zoo.pretrained(TEACHER, framework="keras")
    keras_decomposed = decompose(keras_teacher, energy)
    before_k = correct(keras_decomposed, xk, yt)
    # the same ranks from the same weights, so the same factor shapes (checked layer by layer)
    keras_student = cl.transfer(folded, framework="keras", like=cl.fold_batchnorm(keras_decomposed))
    k_path = OUT / f"keras_{tag}.clz"
    atomic_write(str(k_path), lambda tmp: cl.save(keras_student, tmp))

    known = _original_bits(OUT / "record.json")
    orig_t = known["torch"] if known else correct(teacher, xt, yt)
    orig_k = known["keras"] if known else correct(keras_teacher, xk, yt)
    base_t = cl.measure(cl.fold_batchnorm(teacher), example_input=xt[:1], latency=False)
    with tempfile.TemporaryDirectory() as tmp:  # the folded original's .clz, measured, not shipped
        base_bytes = {fw: cl.save(cl.fold_batchnorm(m), os.path.join(tmp, f"{fw}.clz"))
                      for fw, m in (("torch", teacher), ("keras", keras_teacher))}
    return {"energy": energy, "epochs": epochs, "teacher": TEACHER, "train_seconds": round(seconds, 1),
            "threads": 1, "cpu": cpu_model(), "bf16_autocast": has_bf16_units(),
            "configs": [cl.Tucker(energy=energy).to_dict(), cl.SVD(energy=energy).to_dict()],
            "ranks": ranks(student),
            "recipe": {"batch_size": BATCH, "lr": LR, "distill_alpha": ALPHA, "temperature": T,
                       "schedule": "cosine", "optimizer": "SGD nesterov 0.9, wd 5e-4",
                       "code": "scripts/fashion_prune.py fine_tune"},
            "original": {"torch": entry(teacher, orig_t, orig_t, None, xt[:1]),
                         "keras": entry(keras_teacher, orig_k, orig_k, None, xk[:1]),
                         "folded_params": int(base_t.params), "folded_macs": int(base_t.macs),
                         "folded_clz_bytes": base_bytes},
            "before_finetune": {"torch": entry(student, before_t, orig_t, None, xt[:1]),
                                "keras": entry(keras_decomposed, before_k, orig_k, None, xk[:1])},
            "torch": entry(cl.load(t_path), correct(cl.load(t_path), xt, yt), orig_t, t_path, xt[:1]),
            "keras": entry(cl.load(k_path), correct(cl.load(k_path), xk, yt), orig_k, k_path, xk[:1])}


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("energies", nargs="*", type=float, default=list(ENERGIES))
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--train-only", action="store_true", help="fine-tune (or resume) and stop")
    args = p.parse_args(argv)
    if args.train_only:
        for energy in args.energies:
            train(energy, args.epochs)
        return
    record_path = OUT / "record.json"
    for energy in args.energies:
        rec = run(energy, args.epochs)
        records = json.loads(record_path.read_text()) if record_path.exists() else {}
        records[f"e{energy}"] = rec
        text = json.dumps(records, indent=2, sort_keys=True) + "\n"
        atomic_write(str(record_path), lambda tmp: Path(tmp).write_text(text))
        print(json.dumps({k: rec[k] for k in ("energy", "train_seconds")}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
