"""Issue 25's first figures: GPTQ / AWQ / round-to-nearest int4 (int3) and magnitude / Wanda / SparseGPT
(50 %, 2:4) on the pretrained MiniLM (torch) and on the foreign zoo's transformers (random weights).

Quality is measured against the fp32 model on held-out inputs: MiniLM's embedding cosine and 5-NN
agreement on 200 shipped sentences; the zoo models' output cosine and relative error. Bytes are the
``.clz`` file's. Not a benchmark (nothing is timed). Usage::

    python scripts/transformer_figures.py [minilm] [zoo] [--json out.json]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import compresslib as cl  # noqa: E402

QUANT = [("rtn-int4-g128", lambda g: cl.WeightOnly(bits=4, group_size=g), False),
         ("gptq-int4-g128", lambda g: cl.GPTQ(bits=4, group_size=g), True),
         ("gptq-int4-g128-actorder", lambda g: cl.GPTQ(bits=4, group_size=g, act_order=True), True),
         ("awq-int4-g128", lambda g: cl.AWQ(bits=4, group_size=g), True),
         ("gptq-int3-g128", lambda g: cl.GPTQ(bits=3, group_size=g, act_order=True), True)]
PRUNE = [("magnitude-50%", cl.Magnitude(0.5), False), ("wanda-50%", cl.Wanda(0.5), True),
         ("sparsegpt-50%", cl.SparseGPT(0.5), True), ("magnitude-2:4", cl.NM(2, 4), False),
         ("wanda-2:4", cl.Wanda(n=2, m=4), True), ("sparsegpt-2:4", cl.SparseGPT(n=2, m=4), True)]


def _size(model, example_model=None) -> int:
    with tempfile.TemporaryDirectory() as d:
        try:
            return cl.save(model, os.path.join(d, "m.clz"))
        except Exception:  # noqa: BLE001 - a user class without registry entry: size unknown
            return -1


def _methods(group: int):
    for name, make, calibrated in QUANT:
        yield name.replace("g128", f"g{group}"), "quantize", make(group), calibrated
    for name, config, calibrated in PRUNE:
        yield name, "prune", config, calibrated


def minilm(rows: list) -> None:
    from compresslib.casestudies import minilm as mm

    enc, tok = mm.load()
    sents = mm.sentences()
    cal, test = mm.tokenize(tok, sents[:128], 32), mm.tokenize(tok, sents[200:400], 32)
    ref = mm.embed(enc, test)
    rows.append({"model": "minilm", "method": "fp32", "cosine": 1.0, "bytes": _size(enc)})
    for name, verb, config, calibrated in _methods(128):
        t = time.time()
        kwargs = {"calibration_data": cal} if calibrated else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = getattr(cl, verb)(enc, config, **kwargs)
        e = mm.embed(out, test)
        row = {"model": "minilm", "method": name, "cosine": round(float(mm.cosine(ref, e).mean()), 5),
               "rel_error": round(float(np.linalg.norm(e - ref) / np.linalg.norm(ref)), 4),
               "nn5": round(mm.neighbour_agreement(ref, e), 3), "bytes": _size(out),
               "seconds": round(time.time() - t, 1)}
        rows.append(row)
        print(row, flush=True)


def zoo(rows: list) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tests.foreign.torch_zoo import case

    for name in ("torch_transformer", "hf_bert", "hf_distilbert", "hf_vit", "hf_gpt2"):
        c = case(name)
        m = c.model()
        with torch.no_grad():
            ref = _out(m, c.example)
        for method, verb, config, calibrated in _methods(32):
            kwargs = {"calibration_data": c.calibration} if calibrated else {}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = getattr(cl, verb)(m, config, **kwargs)
                with torch.no_grad():
                    y = _out(out, c.example)
                cos = float(torch.nn.functional.cosine_similarity(ref.flatten(), y.flatten(), 0))
                row = {"model": name, "method": method, "cosine": round(cos, 5),
                       "rel_error": round(float((y - ref).norm() / ref.norm()), 4)}
            except Exception as exc:  # noqa: BLE001 - a refusal is a result too
                row = {"model": name, "method": method, "refused": f"{type(exc).__name__}: {str(exc)[:160]}"}
            rows.append(row)
            print(row, flush=True)


def _out(model, example):
    y = model(**example) if isinstance(example, dict) else model(example)
    if hasattr(y, "logits"):
        y = y.logits
    elif isinstance(y, dict) or hasattr(y, "last_hidden_state"):
        y = y["last_hidden_state"] if "last_hidden_state" in y else next(iter(y.values()))
    return y.float()


def main(argv: list) -> None:
    torch.set_num_threads(1)
    rows: list = []
    which = [a for a in argv if not a.startswith("--") and not a.endswith(".json")] or ["minilm", "zoo"]
    if "zoo" in which:
        zoo(rows)
    if "minilm" in which:
        minilm(rows)
    if "--json" in argv:
        with open(argv[argv.index("--json") + 1], "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
