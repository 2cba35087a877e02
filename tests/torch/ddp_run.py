"""One rank of the DDP tests (``tests/torch/test_ddp.py`` launches it with ``torchrun --nproc-per-node 2``).

Each rank runs, with ``compresslib.torch.train.fit(..., distributed=True)`` on gloo: QAT (fake-quant +
observers), gradual pruning with distillation and a checkpoint (and the same run interrupted, then resumed),
a ``DataLoader`` with a ``DistributedSampler``, centroid fine-tuning after weight sharing, and a user's own
DDP loop with :func:`sync_observers` and the pruning hook; then writes what it ended with to
``<out>/<name>_rank<r>.pt`` for the test to compare across ranks.
"""
from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from torch import nn

import compresslib as cl
from compresslib.core.schedules import PolynomialDecay
from compresslib.torch import distributed as tdist
from compresslib.torch import train
from compresslib.torch.pruning import GradualPruning
from tests.fit_data import SCHEDULE, Stop, rows

N, BATCH = 256, 32


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 4))


def qat(distributed: bool) -> nn.Module:
    x, y = rows(range(N))
    q = cl.prepare_qat(mlp(), cl.QAT(), example_input=torch.from_numpy(x[:1]))
    train.fit(q, (x, y), epochs=2, batch_size=BATCH, lr=3e-3, distributed=distributed)
    return q


def pruned(distributed: bool, checkpoint: str | None = None,
           stop_at: int = 0) -> tuple[nn.Module, GradualPruning]:
    """Gradual pruning with distillation; ``stop_at``: raise :class:`Stop` after that step (every rank)."""
    x, y = rows(range(N))
    model = mlp()
    hook = GradualPruning(cl.Magnitude(0.75, schedule=PolynomialDecay(0.0, 0.75, **SCHEDULE)), model)

    def interrupt(m: nn.Module, step: int) -> None:
        if step == stop_at:
            raise Stop

    train.fit(model, (x, y), epochs=2, batch_size=BATCH, lr=3e-3, teacher=mlp(1), on_step=[hook, interrupt],
              distributed=distributed, checkpoint=checkpoint, checkpoint_every=5 if checkpoint else 0)
    return model, hook


def main(out: str) -> None:
    rank, world = tdist.setup(True, mlp())
    save = lambda name, obj: torch.save(obj, os.path.join(out, f"{name}_rank{rank}.pt"))  # noqa: E731
    save("qat", qat(True).state_dict())
    model, hook = pruned(True, os.path.join(out, "pruning.ckpt"))
    save("pruning", {"state": model.state_dict(), "masks": hook.masks})
    try:                                    # interrupted at step 7 (last checkpoint: step 5), then resumed
        pruned(True, os.path.join(out, "interrupted.ckpt"), stop_at=7)
    except Stop:
        pass
    save("resumed", pruned(True, os.path.join(out, "interrupted.ckpt"))[0].state_dict())

    x, y = rows(range(N))
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    sampler = torch.utils.data.DistributedSampler(ds, shuffle=True, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH // world, sampler=sampler)
    streamed = mlp()
    train.fit(streamed, loader, epochs=2, distributed=True)
    save("stream", streamed.state_dict())

    from compresslib.torch.sharing import CentroidTuning   # weight sharing: only the centroids move
    tuning = CentroidTuning(cl.apply(mlp(), cl.WeightSharing(bits=3)))
    train.fit(tuning.model, (x, y), epochs=1, batch_size=BATCH, lr=1e-3, distributed=True)
    save("centroids", tuning.finalize().state_dict())

    # the user's own DDP loop: compresslib's pieces inside it
    q = cl.prepare_qat(mlp(), cl.QAT(), example_input=torch.from_numpy(x[:1]))
    hook = GradualPruning(cl.Magnitude(0.5), q)
    net = nn.parallel.DistributedDataParallel(q)
    handles = tdist.sync_observers(q)
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    for step in range(1, 6):
        xb = torch.from_numpy(x[(step * world + rank) * 16:(step * world + rank + 1) * 16])
        yb = torch.from_numpy(y[(step * world + rank) * 16:(step * world + rank + 1) * 16])
        opt.zero_grad()
        nn.functional.cross_entropy(net(xb), yb).backward()
        opt.step()
        hook(net, step)
    for h in handles:
        h.remove()
    save("own_loop", {"state": q.state_dict(), "masks": hook.masks})
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
