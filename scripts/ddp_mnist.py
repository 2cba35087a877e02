"""QAT and gradual pruning of the zoo's LeNet-300-100 on MNIST, 2 processes (DDP, gloo) against 1 (issue 26).

    python scripts/ddp_mnist.py          # launches torchrun --nproc-per-node 2 itself, then the 1-process run

Both runs fine-tune on the 8,000 training digits with the same global batch (64) and seed; the 2,000 test
digits judge them, paired (McNemar). Writes ``book/data/ddp_mnist.json``. No timing: the point is what
agrees, and the 2 cores of the machines this book is built on cannot show a speed-up.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import numpy as np
import torch

import compresslib as cl
from compresslib.core import stats
from compresslib.core.schedules import PolynomialDecay
from compresslib.torch import distributed as tdist
from compresslib.torch import train
from compresslib.torch.pruning import GradualPruning

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS, BATCH = 2, 64


def recipes(distributed: bool, out: str) -> dict:
    x, y = cl.datasets.load_mnist("train", layout="torch")
    base = cl.zoo.pretrained("lenet300_100", "torch")
    q = cl.prepare_qat(base, cl.QAT(), example_input=torch.as_tensor(x[:1]))
    train.fit(q, (x, y), epochs=EPOCHS, batch_size=BATCH, lr=1e-4, distributed=distributed)
    steps = EPOCHS * -(-len(x) // BATCH)
    pruned = copy.deepcopy(base)
    hook = GradualPruning(cl.Magnitude(0.9, schedule=PolynomialDecay(0.0, 0.9, 0, steps // 2, steps // 40)), pruned)
    train.fit(pruned, (x, y), epochs=EPOCHS, batch_size=BATCH, lr=1e-3, on_step=[hook], teacher=base,
              distributed=distributed)
    if tdist.is_writer():
        torch.save({"qat": q.state_dict(), "pruned": pruned.state_dict()}, out)
    return {"qat": q, "pruned": pruned}


def main() -> None:
    out = os.path.join(ROOT, "book", "data", "ddp_mnist_rank0.pt")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    __file__, "--rank", out], env=env, check=True)
    torch.set_num_threads(1)
    one = recipes(False, os.devnull)
    two_state = torch.load(out, weights_only=True)
    xt, yt = cl.datasets.load_mnist("test", layout="torch")
    rows = {}
    for name in ("qat", "pruned"):
        two = copy.deepcopy(one[name])
        two.load_state_dict(two_state[name])
        p1, p2 = train.predict(one[name], xt).argmax(1), train.predict(two, xt).argmax(1)
        result = stats.paired(yt, p1, p2)
        w1, w2 = one[name].state_dict(), two.state_dict()
        rows[name] = {
            "accuracy_1proc": float((p1 == yt).mean()), "accuracy_2proc": float((p2 == yt).mean()),
            "predictions_differ": int((p1 != p2).sum()), "paired_verdict": result.verdict,
            "mcnemar_p": result.p_value,
            "max_weight_diff": max(float((w1[k] - w2[k]).abs().max()) for k in w1 if w1[k].is_floating_point()),
            "zeros_differ": sum(int(((w1[k] == 0) != (w2[k] == 0)).sum()) for k in w1 if k.endswith("weight")),
            "weights": sum(w1[k].numel() for k in w1 if k.endswith("weight")),
        }
    os.remove(out)
    with open(os.path.join(ROOT, "book", "data", "ddp_mnist.json"), "w") as f:
        json.dump(rows, f, indent=1)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if "--rank" in sys.argv:
        torch.set_num_threads(1)
        tdist.setup(True, torch.nn.Linear(1, 1))
        recipes(True, sys.argv[-1])
        torch.distributed.destroy_process_group()
    else:
        main()
