"""GPU compression that pays: every GPU config against bf16, chosen by measurement (``Auto``).

    python bench/gpu.py [--json PATH] [--quick] [--device cuda|cpu] [--mode eager|compiled|both]
                        [--models linear8,resnet,encoder] [--time-budget-s S]
    python bench/gpu.py --update-page        # book/data/gpu.json -> the table in book/gpu.md

Groups (model × batch), each one ``cl.quantize(model, cl.Auto(candidates, budget=0.99))`` call whose
table becomes the rows (so the bench measures exactly what a user's ``Auto`` measures):

* ``linear8``: 8 × ``Linear(4096, 4096)`` in bf16 at batch 1, 16 and 256;
* ``linear8_2:4``: the same stack pruned ``NM(2, 4)`` (its dense bf16 form is the baseline) at batch 256;
* ``resnet``: a ResNet-18 layout (basic blocks 64-128-256-512) at 224², batch 256, channels_last,
  fp32 baseline (its GPU wins are bf16/fp16: the GPU configs convert Linear layers only);
* ``encoder``: a MiniLM-sized transformer encoder (6 layers, width 384, 12 heads, 1536 hidden,
  128 tokens) in bf16 at batch 64, and its ``NM(2, 4)``-pruned twin with ``Sparse24``.

Candidates on CUDA: ``Float8Dynamic`` (row and tensor), ``Int8DynamicCUDA``, ``Int4WeightOnlyCUDA``,
``WeightOnly(bits=8)`` (torchao int8 weight-only, the path measured slow before) and, on the pruned
twins, ``Sparse24``. A candidate the GPU cannot run is a row with status ``refused``. ``--mode both``
(the default on CUDA) times every group eagerly, then again under ``torch.compile`` while time is
left (``--time-budget-s``, default 240 s; groups not reached are listed as skipped).

``--device cpu --quick``: the same script on small shapes on CPU (fp32 baseline, the CPU int8 modes
as candidates, the GPU ones refused), so that it is tested where there is no GPU. Its numbers say
nothing about GPUs.

Rows share the schema of ``bench/common.py`` (``framework, model, method, device, params, bytes,
accuracy, latency_ms, speedup`` …) plus ``group, batch_size, dtype, mode, agreement`` (cosine to the
baseline's outputs), ``status`` and ``note``; the row of the winner has ``auto`` = True. The JSON
(``--json``) also holds ``meta``: the command, the GPU's name, the date, torch and torchao versions.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import sys
import time
import warnings
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, machine  # noqa: E402  (imports torch first)

import torch  # noqa: E402
from torch import nn  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib.torch.models import BasicBlock  # noqa: E402

KEYS = ["group", "mode", "method", "batch_size", "dtype", "status", "agreement", "latency_ms", "speedup", "auto"]
MODELS = ("linear8", "resnet", "encoder")


def linear8(width: int) -> nn.Module:
    """Eight ``Linear(width, width)`` in a row (the shape of an LLM's MLP weights)."""
    return nn.Sequential(*[nn.Linear(width, width) for _ in range(8)])


class ResNet18(nn.Module):
    """The ResNet-18 layout (2 basic blocks per stage) for ``channels``-channel images; compresslib's BasicBlock."""

    def __init__(self, widths: tuple = (64, 128, 256, 512), classes: int = 1000) -> None:
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(w0), nn.ReLU(),
                                  nn.MaxPool2d(3, stride=2, padding=1))
        blocks, c = [], w0
        for i, w in enumerate(widths):
            blocks += [BasicBlock(c, w, stride=1 if i == 0 else 2), BasicBlock(w, w)]
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def encoder(width: int, heads: int, hidden: int, layers: int) -> nn.Module:
    """A BERT-style encoder stack (MiniLM-L6 is 6 × width 384, 12 heads, hidden 1536)."""
    layer = nn.TransformerEncoderLayer(width, heads, hidden, activation="gelu", batch_first=True, norm_first=False)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _shapes(quick: bool, device: str) -> dict:
    if not quick:
        return {"linear_width": 4096, "linear_batches": (1, 16, 256), "resnet": ((64, 128, 256, 512), 224, 256),
                "encoder": (384, 12, 1536, 6, 128, 64)}
    return {"linear_width": 256, "linear_batches": (1, 16), "resnet": ((8, 16, 32, 64), 32, 4),
            "encoder": (64, 4, 256, 2, 16, 4)}


def _candidates(device: str, pruned: bool) -> list:
    if pruned:
        return [cl.Sparse24()]
    gpu = [cl.Float8Dynamic(), cl.Float8Dynamic(granularity="tensor"), cl.Int8DynamicCUDA(), cl.Int4WeightOnlyCUDA(),
           cl.WeightOnly(bits=8)]
    return gpu if device == "cuda" else [cl.Int8Dynamic(), cl.BFloat16()] + gpu


def _groups(args: argparse.Namespace) -> list[dict]:
    """Every (model, batch) group to time: name, model factory, input factory, candidates, baseline dtype."""
    s = _shapes(args.quick, args.device)
    half = torch.bfloat16 if args.device == "cuda" else torch.float32
    groups = []
    if "linear8" in args.models:
        w = s["linear_width"]
        for b in s["linear_batches"]:
            groups.append(dict(group=f"linear8@{b}", model="linear8", make=lambda w=w: linear8(w), dtype=half,
                               input=lambda b=b, w=w: torch.randn(b, w), prune=False))
        b = s["linear_batches"][-1]
        groups.append(dict(group=f"linear8_2:4@{b}", model="linear8", make=lambda w=w: linear8(w), dtype=half,
                           input=lambda b=b, w=w: torch.randn(b, w), prune=True))
    if "resnet" in args.models:
        widths, px, b = s["resnet"]
        groups.append(dict(group=f"resnet18@{b}", model="resnet18", make=lambda widths=widths: ResNet18(widths),
                           dtype=torch.float32, channels_last=True, prune=False,
                           input=lambda b=b, px=px: torch.randn(b, 3, px, px), extra=[cl.BFloat16(), cl.Float16()]))
    if "encoder" in args.models:
        width, heads, hidden, layers, tokens, b = s["encoder"]
        make = lambda: encoder(width, heads, hidden, layers)  # noqa: E731
        for prune in (False, True):
            groups.append(dict(group=f"encoder{'_2:4' if prune else ''}@{b}", model="encoder", make=make, dtype=half,
                               input=lambda b=b: torch.randn(b, tokens, width), prune=prune))
    return groups


@torch.no_grad()
def prune24(model: nn.Module) -> nn.Module:
    """``model`` with every Linear weight cut to 2:4 by magnitude, on its own device.

    The rule of ``cl.prune(model, cl.NM(2, 4))`` (the 2 largest magnitudes of every 4 consecutive
    inputs stay), computed with torch on the GPU: compresslib's NumPy masks take most of a minute
    on 8 × 4096² weights, time the bench spends better on timing.
    """
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.in_features % 4 == 0:
            groups = m.weight.reshape(-1, 4)
            keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, groups.abs().topk(2, dim=1).indices, True)
            m.weight.mul_(keep.reshape(m.weight.shape))
    return model


def _file_bytes(model: nn.Module) -> Optional[int]:
    try:
        from compresslib.torch.measure import native_file_bytes

        return native_file_bytes(model)[0]
    except Exception:  # noqa: BLE001 - some GPU kernel tensors do not pickle
        return None


def _short(config_repr: str) -> str:
    return (config_repr.replace("(granularity='row')", "[row]").replace("(granularity='tensor')", "[tensor]")
            .replace("(bits=8, group_size=None)", "[8]").replace("(group_size=128)", "[g128]")
            .replace("(per_channel=True)", "").replace("()", ""))


def run_group(g: dict, args: argparse.Namespace, compiled: bool) -> list[dict]:
    """One ``Auto`` call; its table as bench rows (the baseline first)."""
    if compiled:
        torch._dynamo.reset()  # each group compiles afresh (the models of earlier groups are gone)
    torch.manual_seed(0)
    model = g["make"]().eval().to(args.device, g["dtype"])
    x = g["input"]().to(args.device, g["dtype"])
    if g.get("channels_last"):
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if g["prune"]:
        model = prune24(model)
    candidates = list(dict.fromkeys(g.get("extra", []) + _candidates(args.device, g["prune"])))
    timing = dict(rounds=2, runs=3, warmup=1) if args.quick else dict(rounds=5, runs=20, warmup=5)
    auto = cl.Auto(candidates, budget=0.99, compile=compiled, **timing)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chosen = cl.quantize(model, auto, calibration_data=x)
    table = chosen.compresslib_auto
    seconds = time.perf_counter() - t0
    s = table.setting
    common = dict(framework="torch", model=g["model"], group=g["group"], device=s["device"], batch_size=s["batch_size"],
                  mode="compiled" if compiled else "eager", accuracy=None, accuracy_drop_pt=None,
                  load_average=s["load_average"], threads=s["threads"])
    params = sum(p.numel() for p in model.parameters())
    base_dtype = str(g["dtype"]).removeprefix("torch.")
    rows = [dict(common, method=("pruned 2:4 " if g["prune"] else "") + base_dtype, dtype=base_dtype, status="baseline",
                 agreement=1.0, latency_ms=s["input_ms"], latency_spread_ms=s["input_spread_ms"], speedup=1.0,
                 params=params, bytes=_file_bytes(model), auto=table.chosen is None, note="", seconds=round(seconds, 1))]
    for r in table.rows:
        rows.append(dict(common, method=_short(r["candidate"]), dtype=None, status=r["status"], agreement=r["agreement"],
                         latency_ms=r["latency_ms"], latency_spread_ms=r["spread_ms"], speedup=r["speedup"],
                         params=params, bytes=_file_bytes(chosen) if r["candidate"] == table.chosen else None,
                         auto=r["candidate"] == table.chosen, note=r["note"][:240], config=r["config"]))
    print(f"{g['group']} [{common['mode']}]: {table.reason} ({seconds:.0f} s)", file=sys.stderr, flush=True)
    return rows


# --------------------------------------------------------------------------- the book's GPU page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOOK_JSON = os.path.join(ROOT, "book", "data", "gpu.json")
BOOK_PAGE = os.path.join(ROOT, "book", "gpu.md")
START, END = "<!-- gpu-results:start (written by: python bench/gpu.py --update-page) -->", "<!-- gpu-results:end -->"
NO_RUN = ("**No GPU run has been recorded yet: nothing on this page has been measured on a GPU.** The book is "
          "built on CPU machines. What the tests check there is that every GPU config refuses, before doing any "
          "work, a model it cannot run (on the CPU, on a GPU without the kernel, without torchao, in a dtype the "
          "kernel does not take) and that `Auto`'s choice follows its own table. No GPU kernel's speed or accuracy "
          "has been measured; the hardware each needs is taken from the documentation cited below. The results "
          "table appears here once `bench/gpu.py` has run on a GPU and its JSON is committed as "
          "`book/data/gpu.json` (see *Producing a run*).")


def _cell(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return "nan" if v != v else (f"{v:.{digits}f}" if abs(v) < 10 else f"{v:.1f}")
    return str(v).replace("|", "/").replace("\n", " ")


def render_results(data: Optional[dict]) -> str:
    """The Markdown between the page's markers: the run's GPU, date and command, then one table per mode.

    ``data`` is what ``--json`` wrote (None: no run recorded). Only a full run on a named CUDA GPU is
    shown (``ValueError`` otherwise): the page reports GPU results, not a smoke test.
    """
    if data is None:
        return NO_RUN
    m = data.get("meta") or {}
    if m.get("device") != "cuda" or not m.get("gpu") or m.get("quick"):
        raise ValueError(f"data: the page shows a full run on a named CUDA GPU, got device={m.get('device')!r}, "
                         f"gpu={m.get('gpu')!r}, quick={m.get('quick')!r}")
    lines = [f"Measured on **{m['gpu']}** (compute capability {m.get('capability')}) on {m['date']}, "
             f"torch {m.get('torch')}, torchao {m.get('torchao')}, CUDA {m.get('cuda')}, with",
             "", "```bash", m["command"], "```", "",
             "Each group is one `cl.quantize(model, cl.Auto(candidates, budget=0.99), calibration_data=x)` call; "
             "*× baseline* is the baseline's median time over the row's (interleaved rounds, CUDA synchronised), "
             "*cosine* the agreement of the outputs with the baseline's, and ✔ marks what `Auto` returned."]
    rows = data.get("rows") or []
    for mode in ("eager", "compiled"):
        chunk = [r for r in rows if r.get("mode") == mode]
        if not chunk:
            continue
        lines += ["", f"**{'Eager PyTorch' if mode == 'eager' else 'Under torch.compile'}**", "",
                  "| group | method | status | cosine | ms | × baseline | Auto |", "|---|---|---|---|---|---|---|"]
        for r in chunk:
            lines.append("| " + " | ".join([_cell(r.get("group")), _cell(r.get("method")), _cell(r.get("status")),
                                             _cell(r.get("agreement")), _cell(r.get("latency_ms"), 3),
                                             _cell(r.get("speedup"), 2), "✔" if r.get("auto") else ""]) + " |")
    if m.get("skipped"):
        lines += ["", f"Not reached within the run's time budget: {', '.join(m['skipped'])}."]
    return "\n".join(lines)


def update_page(json_path: str = BOOK_JSON, page_path: str = BOOK_PAGE) -> str:
    """Rewrite the results section of ``page_path`` from ``json_path`` (or say no run is recorded); return it."""
    data = None
    if os.path.exists(json_path):
        with open(json_path) as fh:
            data = json.load(fh)
    with open(page_path) as fh:
        page = fh.read()
    if START not in page or END not in page:
        raise ValueError(f"{page_path} has no results markers {START!r} … {END!r}")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{render_results(data)}\n{END}{tail}"
    with open(page_path, "w") as fh:
        fh.write(new)
    return new


def _parse(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", metavar="PATH", help="also write the rows (and the run's meta) as JSON to PATH")
    p.add_argument("--quick", action="store_true", help="small shapes, few timed runs (a smoke test)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--mode", choices=("eager", "compiled", "both"), default=None,
                   help="eager, torch.compile, or both (default: both on cuda, eager on cpu)")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--time-budget-s", type=float, default=240.0,
                   help="start no new group after this many seconds (the groups left are listed as skipped)")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    for m in args.models:
        if m not in MODELS:
            p.error(f"--models: unknown model {m!r}; choose from {MODELS}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device here (use --device cpu --quick to try the script)")
    args.mode = args.mode or ("both" if args.device == "cuda" else "eager")
    return args


def meta(argv: list[str], args: argparse.Namespace) -> dict:
    try:
        import torchao

        ao = torchao.__version__
    except ImportError:
        ao = None
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    return {"command": "python bench/gpu.py " + " ".join(argv), "gpu": gpu, "device": args.device,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "torch": torch.__version__, "torchao": ao, "cuda": torch.version.cuda, "quick": args.quick,
            "capability": ".".join(map(str, torch.cuda.get_device_capability(0))) if gpu else None}


# under torch.compile each model compiles first (tens of seconds on a GPU): the groups the targets name go first
COMPILED_ORDER = ("linear8@256", "encoder@64", "linear8@1", "linear8@16", "linear8_2:4@256", "encoder_2:4@64")


def _ordered(groups: list[dict], compiled: bool) -> list[dict]:
    if not compiled:
        return groups
    rank = {name: i for i, name in enumerate(COMPILED_ORDER)}
    return sorted(groups, key=lambda g: rank.get(g["group"], len(rank)))


def _write(path: str, info: dict, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump({"meta": info, "machine": machine(), "rows": rows}, fh, indent=2, default=str)
    os.replace(path + ".tmp", path)


def main(argv: Optional[list[str]] = None) -> list[dict]:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--update-page"]:  # book/data/gpu.json -> book/gpu.md
        update_page()
        print(f"updated {BOOK_PAGE} from {BOOK_JSON if os.path.exists(BOOK_JSON) else '(no run recorded)'}",
              file=sys.stderr)
        return []
    args = _parse(argv)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # what a GPU user runs; bf16 baselines do not use TF32 anyway
    start = time.perf_counter()
    info = meta(argv, args)
    modes = {"eager": [False], "compiled": [True], "both": [False, True]}[args.mode]
    rows: list[dict] = []
    skipped: list[str] = []
    for compiled in modes:
        for g in _ordered(_groups(args), compiled):
            label = f"{g['group']} [{'compiled' if compiled else 'eager'}]"
            if time.perf_counter() - start > args.time_budget_s:
                skipped.append(label)
                continue
            try:
                rows += run_group(g, args, compiled)
            except Exception as exc:  # noqa: BLE001 - one group's failure is a row, not the end of the run
                rows.append(dict(framework="torch", model=g["model"], group=g["group"], method="(group)", device=args.device,
                                 mode="compiled" if compiled else "eager", status="failed",
                                 note=f"{type(exc).__name__}: {str(exc)[:300]}"))
                print(f"{label}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            finally:
                if args.device == "cuda":
                    torch.cuda.empty_cache()
            if args.json:  # after every group: a run stopped from outside keeps what it measured
                _write(args.json, dict(info, skipped=skipped, seconds=round(time.perf_counter() - start, 1),
                                       complete=False), rows)
    if skipped:
        print(f"time budget of {args.time_budget_s:.0f} s reached; skipped: {', '.join(skipped)}", file=sys.stderr)
    emit(rows, None, KEYS)
    if args.json:
        _write(args.json, dict(info, skipped=skipped, seconds=round(time.perf_counter() - start, 1), complete=True), rows)
        print(f"wrote {args.json}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
