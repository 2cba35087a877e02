"""Peak resident memory of ``fit`` over a streamed data set, at two data-set sizes (issue 26).

Each size runs in a fresh process (``ru_maxrss`` is a high-water mark of the whole process): a
``DataLoader`` over a ``Dataset`` that makes each row when asked for (nothing is held), one epoch of
fine-tuning an MLP (784-300-100-10) with gradual pruning, batch 128. A second mode holds the same rows as
``(x, y)`` arrays for comparison. Writes ``book/data/stream_memory.json``.

    python scripts/stream_memory.py            # sizes 20,000 and 200,000 rows
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(mode: str, n: int) -> None:
    import numpy as np
    import torch
    from torch import nn

    import compresslib as cl
    from compresslib.torch import train
    from compresslib.torch.pruning import GradualPruning

    torch.set_num_threads(1)

    class Rows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int):
            rng = np.random.default_rng(i)
            x = rng.standard_normal(784).astype(np.float32)
            return torch.from_numpy(x), int(x[:10].argmax())

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    hook = GradualPruning(cl.Magnitude(0.8), model)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "stream":
        data = torch.utils.data.DataLoader(Rows(), batch_size=128, shuffle=True)
    else:
        rows = [Rows()[i] for i in range(n)]
        data = (np.stack([r[0].numpy() for r in rows]), np.array([r[1] for r in rows]))
        del rows
    loss = train.fit(model, data, epochs=1, batch_size=128, on_step=hook)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "rows": n, "peak_mib": round(peak / 1024, 1),
                      "before_fit_mib": round(before / 1024, 1), "loss": loss[0]}))


def main() -> None:
    out = []
    for mode in ("stream", "arrays"):
        for n in (20_000, 200_000):
            proc = subprocess.run([sys.executable, __file__, mode, str(n)], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}, check=True)
            out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(out[-1], flush=True)
    with open(os.path.join(ROOT, "book", "data", "stream_memory.json"), "w") as f:
        json.dump({"machine": platform.processor() or platform.machine(), "runs": out}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) == 3:
        child(sys.argv[1], int(sys.argv[2]))
    else:
        main()
