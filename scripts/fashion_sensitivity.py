"""Per-layer structured-pruning sensitivity of the wide Fashion-MNIST ResNet-20, cached for chapter 3.

For each of the nine block-internal convolutions (``layerS.B.conv1``: their output channels feed only
the block's second convolution, so removing them never touches a residual add) and each ratio, the
lowest-L1 share of that layer's output channels is switched off — the channel's convolution filter
and its BatchNorm scale and shift set to zero, which gives exactly the outputs of the network with
those channels removed — and the rest of the network is left as trained (no fine-tuning). Accuracy
is measured on a fixed, seeded sample of test images; each row keeps which images it got right, so
the chapter can put a paired test on any two curves and a test can re-derive a sample of points.

Evaluating the wide network 36 times on thousands of images takes minutes on 2 cores, longer than a
chapter may run, hence this script and its JSON (``compresslib/data/results/fashion_prune/
sensitivity.json``); the chapter says the figure is cached and ``tests/test_fashion_sensitivity.py``
recomputes two points.

    python scripts/fashion_sensitivity.py            # 2,000 test images, ratios 0.25 0.5 0.75 0.9
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402  (torch before tensorflow)

import compresslib as cl  # noqa: E402
from compresslib.core import stats  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "compresslib" / "data" / "results" / "fashion_prune" / "sensitivity.json"
MODEL = "fashion_resnet20_wide"


def internal_convs(model: torch.nn.Module) -> list[str]:
    """The block-internal convolutions (``…conv1`` inside residual blocks), in network order."""
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and n.endswith(".conv1")
            and n.startswith("layer")]


def switch_off(model: torch.nn.Module, conv: str, ratio: float) -> torch.nn.Module:
    """A copy of ``model`` with the lowest-L1 ``ratio`` of ``conv``'s output channels switched off."""
    import copy

    out = copy.deepcopy(model).eval()
    layer = out.get_submodule(conv)
    bn = out.get_submodule(conv[: -len("conv1")] + "bn1")
    scores = layer.weight.detach().abs().sum(dim=(1, 2, 3))
    drop = torch.argsort(scores)[: int(round(ratio * scores.numel()))]
    with torch.no_grad():
        layer.weight[drop] = 0
        bn.weight[drop] = 0
        bn.bias[drop] = 0
    return out


@torch.inference_mode()
def correct(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 500) -> np.ndarray:
    """Per-image correctness (bool) of ``model`` on ``x``."""
    return np.concatenate([model(torch.from_numpy(x[i:i + batch])).argmax(1).numpy() == y[i:i + batch]
                           for i in range(0, len(x), batch)])


def sample(n: int, seed: int = 0) -> np.ndarray:
    """The fixed test-image indices the scan uses (sorted)."""
    return np.sort(np.random.default_rng(seed).choice(10_000, size=n, replace=False))


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--ratios", type=float, nargs="*", default=[0.25, 0.5, 0.75, 0.9])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = cl.zoo.pretrained(MODEL, framework="torch").eval()
    x, y = cl.datasets.load_fashion_mnist("test", layout="torch")
    idx = sample(args.images)
    xs, ys = x[idx], y[idx]
    base = correct(model, xs, ys)
    rows = {}
    for conv in internal_convs(model):
        rows[conv] = {"channels": int(model.get_submodule(conv).out_channels), "points": []}
        for r in args.ratios:
            ok = switch_off(model, conv, r)
            c = correct(ok, xs, ys)
            rows[conv]["points"].append({"ratio": r, "accuracy": float(c.mean()),
                                         "correct": stats.pack_correctness(c)})
            print(f"{conv} r={r}: {100 * c.mean():.2f} %", flush=True)
    doc = {"model": MODEL, "images": args.images, "seed": 0, "ratios": args.ratios,
           "baseline": {"accuracy": float(base.mean()), "correct": stats.pack_correctness(base)},
           "layers": rows, "seconds": round(time.perf_counter() - t0, 1), "threads": 1,
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(str(OUT), lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    print(f"wrote {OUT} in {doc['seconds']} s")


if __name__ == "__main__":
    main(sys.argv[1:])
