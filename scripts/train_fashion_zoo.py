"""Train the Fashion-MNIST reference networks and ship them in both frameworks.

The networks (``compresslib.zoo.FASHION``): He et al.'s CIFAR ResNet-20 (6n+2 basic blocks,
widths 16/32/64), a twice-as-wide ResNet-20 (32/64/128, where 3×3 convolutions take almost all
of the time) and He et al.'s plain-20, the same stack without shortcuts (the VGG-style network
of the ResNet paper). Trained in PyTorch from scratch on the 60,000 training images:
SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, a linear warm-up for one epoch
then cosine decay from lr 0.1, random 2-pixel shifts and horizontal flips, bf16 autocast where
the CPU has bf16 matrix units (fp32 master weights), one thread. Every epoch writes a checkpoint
(model, optimizer, epoch; the data order and augmentation are seeded by epoch), so a killed run
resumes where it stopped and ends where an uninterrupted one would.
At the end the weights go to ``compresslib/data/weights/torch_<name>.npz``, the same weights
through ``compresslib.transfer`` to ``keras_<name>.npz``, and both test accuracies (fp32, all
10,000 test images), the training time, CPU and recipe to ``manifest.json``.

    python scripts/train_fashion_zoo.py fashion_resnet20          # one network
    python scripts/train_fashion_zoo.py                           # all of them, one after another
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)
import torch.nn.functional as F  # noqa: E402

from compresslib import zoo  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402
from compresslib.datasets import load_fashion_mnist  # noqa: E402
from compresslib.torch.models import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "weights"
CKPT = Path(os.environ.get("COMPRESSLIB_CACHE", ROOT / ".cache" / "compresslib")) / "fashion_train"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def has_bf16_units() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def augment(x: np.ndarray, rng: np.random.Generator, pad: int = 2) -> np.ndarray:
    """Random shifts of up to ``pad`` pixels (zero padding) and horizontal flips, per image."""
    n = len(x)
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy = rng.integers(0, 2 * pad + 1, n)
    dx = rng.integers(0, 2 * pad + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip][..., ::-1]
    return out


def lr_at(step: int, steps_per_epoch: int, epochs: int, peak: float) -> float:
    warm = steps_per_epoch
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, epochs * steps_per_epoch - warm)
    return float(0.5 * peak * (1 + np.cos(np.pi * progress)))  # a Python float: checkpoints load weights_only


@torch.no_grad()
def accuracy(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += int((model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]).sum())
    return correct / len(x)


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float]:
    """Load ``model`` and ``opt`` from the checkpoint at ``path`` if there is one; (epochs done, seconds)."""
    if not path.is_file():
        return 0, 0.0
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    return int(state["epoch"]), float(state["seconds"])


def checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int, seconds: float) -> None:
    """Write the checkpoint atomically: a killed run never leaves half a file."""
    # plain Python numbers only: the checkpoint is read back with weights_only=True (no unpickling)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": int(epoch),
             "seconds": float(seconds)}
    atomic_write(str(path), lambda tmp: torch.save(state, tmp))


def train(name: str) -> dict:
    recipe = zoo.RECIPES[name]
    torch.set_num_threads(1)
    x, y = load_fashion_mnist("train", layout="torch")
    xt, yt = load_fashion_mnist("test", layout="torch")
    torch.manual_seed(recipe.seed)
    model = build(recipe.arch)
    decay, no_decay = [], []
    for pname, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=recipe.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = len(x) // recipe.batch_size
    use_bf16 = has_bf16_units()
    CKPT.mkdir(parents=True, exist_ok=True)
    ckpt_path = CKPT / f"{name}.pt"
    start_epoch, seconds = resume(ckpt_path, model, opt)
    if start_epoch:
        print(f"{name}: resumed after epoch {start_epoch}", flush=True)
    for epoch in range(start_epoch, recipe.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([recipe.seed, epoch])
        order = rng.permutation(len(x))
        total = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * recipe.batch_size:(b + 1) * recipe.batch_size]
            xb = torch.from_numpy(augment(x[idx], rng))
            yb = torch.from_numpy(y[idx])
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + b, steps_per_epoch, recipe.epochs, recipe.lr)
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
            loss.backward()
            opt.step()
            total += loss.item()
        seconds += time.perf_counter() - t0
        acc = accuracy(model, xt, yt)
        checkpoint(ckpt_path, model, opt, epoch + 1, seconds)
        print(f"{name}: epoch {epoch + 1}/{recipe.epochs} loss {total / steps_per_epoch:.4f} "
              f"test {acc:.4f} ({seconds / 60:.1f} min)", flush=True)
    model.eval()
    return {"model": model, "seconds": seconds, "bf16": use_bf16}


def ship(name: str, trained: dict) -> dict:
    import compresslib as cl
    from compresslib.keras import zoo_io as keras_io
    from compresslib.keras.train import evaluate as keras_evaluate
    from compresslib.torch import zoo_io as torch_io

    recipe = zoo.RECIPES[name]
    model = trained["model"]
    torch_io.to_npz(model, OUT / f"torch_{name}.npz")
    keras_model = cl.transfer(model, framework="keras")
    keras_io.to_npz(keras_model, OUT / f"keras_{name}.npz")
    xt, yt = load_fashion_mnist("test", layout="torch")
    xk, _ = load_fashion_mnist("test", layout="keras")
    common = {"name": name, "arch": recipe.arch, "dataset": recipe.dataset, "recipe": recipe.as_dict(),
              "train_seconds": round(trained["seconds"], 1), "threads": 1, "cpu": cpu_model(),
              "bf16_autocast": trained["bf16"],
              "timing_note": "PyTorch training, one thread, while other jobs shared the 2 cores; "
                             "the Keras weights are the same weights through cl.transfer"}
    records = {
        f"torch_{name}": {**common, "framework": "torch", "test_accuracy": accuracy(model, xt, yt)},
        f"keras_{name}": {**common, "framework": "keras", "test_accuracy": keras_evaluate(keras_model, (xk, yt))},
    }
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update(records)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return records


def main(names: list[str]) -> None:
    for name in names:
        if name not in zoo.FASHION:
            sys.exit(f"{name!r} is not one of {zoo.FASHION}")
        records = ship(name, train(name))
        print(json.dumps(records), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(zoo.FASHION))
