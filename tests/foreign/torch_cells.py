"""The PyTorch cells of the support matrix: one function per (verb, config), and the torch judging helpers."""
from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch

import compresslib as cl
from compresslib.torch import inputs

from .matrix import Outcome, judge
from .torch_zoo import Case


def cells(case: Case) -> dict[str, Callable[[Any], Any]]:
    ex, cal = case.example, case.calibration
    return {
        "measure": lambda m: cl.measure(m, example_input=ex, latency=False),
        "Int8Dynamic": lambda m: cl.quantize(m, cl.Int8Dynamic()),
        "Int8Static": lambda m: cl.quantize(m, cl.Int8Static(), calibration_data=cal),
        "WeightOnly(8)": lambda m: cl.quantize(m, cl.WeightOnly(8)),
        "WeightOnly(4)": lambda m: cl.quantize(m, cl.WeightOnly(4, group_size=16)),
        "Float16": lambda m: cl.quantize(m, cl.Float16()),
        "BFloat16": lambda m: cl.quantize(m, cl.BFloat16()),
        "QAT": lambda m: cl.convert(_observe(cl.prepare_qat(m, cl.QAT(), example_input=ex), cal)),
        "Magnitude": lambda m: cl.prune(m, cl.Magnitude(0.5)),
        "NM(2:4)": lambda m: cl.prune(m, cl.NM(2, 4)),
        "Structured": lambda m: cl.prune(m, cl.Structured(0.3), example_input=ex),
        "SVD": lambda m: cl.decompose(m, cl.SVD(ratio=0.5)),
        "Tucker": lambda m: cl.decompose(m, cl.Tucker(energy=0.9)),
        "fold_batchnorm": lambda m: cl.fold_batchnorm(m, example_input=ex),
    }


def _observe(prepared: torch.nn.Module, calibration: Any) -> torch.nn.Module:
    """A few forward passes in training mode, as a short QAT fine-tune would do (fake-quantizers observe)."""
    prepared.train()
    with torch.no_grad():
        for _ in range(2):
            inputs.call(prepared, calibration)
    return prepared


CELLS = tuple(cells(Case("", lambda: None, None, None, "")))


def snapshot(model: torch.nn.Module) -> dict:
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "training": [m.training for m in model.modules()],
            "grad": [p.requires_grad for p in model.parameters()],
            "repr": repr(model)}


def changed(before: dict, after: dict) -> str:
    if before["repr"] != after["repr"]:
        return "its module structure changed"
    if before["training"] != after["training"]:
        return "its train/eval flags changed"
    if before["grad"] != after["grad"]:
        return "its requires_grad flags changed"
    if before["state"].keys() != after["state"].keys():
        return "its state_dict keys changed"
    for k, v in before["state"].items():
        w = after["state"][k]
        if v.shape != w.shape or not torch.equal(v, w):
            return f"tensor {k} changed"
    return ""


def outputs_of(example: Any) -> Callable[[torch.nn.Module], list[np.ndarray]]:
    def run(model: torch.nn.Module) -> list[np.ndarray]:
        work = copy.deepcopy(model).eval()  # never flip the caller's flags
        with torch.no_grad():
            return [t.detach().float().cpu().numpy() for t in inputs.flatten(inputs.call(work, example))]
    return run


def run(case: Case, cell: str) -> Outcome:
    original = case.make()
    return judge(case.name, cell, original, cells(case)[cell], snapshot=snapshot, same_snapshot=changed,
                 outputs=outputs_of(case.example),
                 save_load=lambda m, path: (cl.save(m, path), cl.load(path, model=case.make()))[1],
                 is_model=lambda r: isinstance(r, torch.nn.Module))
