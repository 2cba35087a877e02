"""Residual models, both frameworks: distillation into small members, degradation, folding, where convs dominate.

    python bench/residual.py [--json PATH] [--quick] [--frameworks torch,keras] [--threads 1] [--runs N]
                             [--sections distill,degradation,fold,convdom] [--students resnet8_w8,resnet14_w8]
                             [--ranks 16x32,16x16] [--finetune-epochs 3] [--student-epochs 15]

Every section's figures come from this one run; the end prints which chapter-5 targets pass.

* ``distill``: the teacher ``resnet20_w16`` (zoo, recipe in ``compresslib.zoo.RECIPES``; the Keras
  rows use the *same* weights, moved with ``compresslib.transfer``) against small students, each
  trained alone and distilled (``fit(..., teacher=...)``) with the family recipe of
  ``scripts/residual_experiments.py`` but ``--student-epochs`` epochs (15: the chapter's cached
  runs stop at 6 to fit a CPU budget, and the target asks what a student can reach). ``params_ratio`` = teacher ÷ student parameters,
  beside ``size_ratio`` (file bytes). Target: a student with ``params_ratio`` ≥ 4 and ≥ 2× the
  teacher's speed ends within 0.5 pt of the teacher and above the same student trained alone, in
  both frameworks.
* ``degradation``: ``resnet20_w16`` against ``resnet20_w16_plain`` (no shortcuts), the short
  same-budget recipe of ``scripts/residual_experiments.py``. Target: the residual net trains
  better at depth ≥ 20 — a lower training loss after every epoch (the degradation problem is one
  of training error, He et al. 2016) — in both frameworks; test accuracy is reported beside it.
* ``fold``: BatchNorm folding (of the teacher, and of the wide member when ``convdom`` runs): max
  difference of the logits relative to their largest value (target ≤ 1e-5), identical
  predictions on the 2,000 test digits, speedup.
* ``convdom``: ``resnet8_w64`` (64, 128, 256 channels; zoo), where 3×3 convolutions take ~80 %
  of the time (~60 % with 16 channels): Tucker-2 of every 3×3 conv but the stem at ``--ranks``
  and ``Structured(0.5)``, each fine-tuned for ``--finetune-epochs`` distilling from the
  original, then folded. Target: Tucker-2 ≥ 2× faster at ≤ 1 pt drop, in both frameworks.
  ``speedup`` is against ``resnet8_w64`` as given, ``speedup_vs_folded`` against it folded.

Latency: batch 32 on ``--threads`` CPU threads (1 by default: on a shared 2-core machine 2-thread
timings swing far more), every model of a framework timed in the same interleaved rounds
(``bench/common.interleaved_latency``; the teacher's group and the wide member's group each in
their own rounds); ``load_average`` is recorded on each row. The zoo models train on first use
(a few minutes each on a quiet machine) and are cached. ``--quick`` trains on 512 digits for
one epoch (the zoo models on 1,024, when none are cached), evaluates on 256, takes the first
student and the first rank only and times fewer rounds: it checks the script, its figures mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from common import QUICK_TEST, QUICK_TRAIN, interleaved_latency, machine, markdown, parse_args, row  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402  (common imported it already: torch before tensorflow)

import compresslib as cl  # noqa: E402
import residual_experiments as exp  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402
from compresslib.core.measure import load_average  # noqa: E402

KEYS = ["framework", "model", "method", "params", "bytes", "accuracy", "latency_ms", "params_ratio", "size_ratio",
        "speedup", "speedup_vs_folded", "accuracy_drop_pt", "final_loss"]
SECTIONS = ("distill", "degradation", "fold", "convdom")
WIDE = "resnet8_w64"  # 64-128-256 channels: 3×3 convolutions take ~80 % of its time


def _extra_args(argv):
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quick", action="store_true", help="tiny training budgets: checks the script runs")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per framework (0: the frameworks' defaults)")
    p.add_argument("--sections", default=",".join(SECTIONS))
    p.add_argument("--students", default="resnet8_w8,resnet14_w8")
    p.add_argument("--ranks", default="16x32,16x16", help="Tucker-2 ranks R1xR2 for the convdom section")
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--student-epochs", type=int, default=15,
                   help="epochs for each student, alone and distilled (the chapter's cached runs have 6)")
    return p.parse_known_args(argv)


def _is_3x3(framework):
    if framework == "torch":
        return lambda name, m: tuple(m.kernel_size) == (3, 3) and m.in_channels > 1 and m.groups == 1
    return lambda name, layer: (type(layer).__name__ == "Conv2D" and tuple(layer.kernel_size) == (3, 3)
                                and layer.kernel.shape[2] > 1)


def _zoo(name, framework, args):
    """A zoo model in PyTorch, or its weights moved to Keras with ``transfer``. Quick: a 1-epoch stand-in
    when the zoo has none cached."""
    try:
        t = cl.zoo.pretrained(name, "torch", train_if_missing=not args.quick)
    except FileNotFoundError:
        t = backend("torch", "models").build(name)
        backend("torch", "train").fit(t, exp.data("torch", quick=True)[0], epochs=1, batch_size=128, lr=2e-3)
        args.notes[name] = "quick stand-in (1 epoch on 1,024 digits)"
    t.eval()
    return t if framework == "torch" else cl.transfer(t, framework="keras")


def _max_rel_diff(framework, a, b, x):
    pa, pb = backend(framework, "train").predict(a, x), backend(framework, "train").predict(b, x)
    return float(np.abs(pa - pb).max() / np.abs(pa).max()), bool((pa.argmax(1) == pb.argmax(1)).all())


def framework_rows(framework, args):
    train_data, test = exp.data(framework, quick=False)
    if args.quick:
        train_data = (train_data[0][:QUICK_TRAIN], train_data[1][:QUICK_TRAIN])
        test = (test[0][:QUICK_TEST], test[1][:QUICK_TEST])
    recipe = dict(exp.FAMILY_RECIPE, epochs=1 if args.quick else args.student_epochs)
    x32 = test[0][:32]
    example = torch.as_tensor(x32) if framework == "torch" else x32
    lowrank = backend(framework, "lowrank")
    rows = []
    groups: dict = {}  # timing group -> {timing key: model}; speedups are against the group's first model

    def add(model, name, method, base, group, **extra):
        r = cl.measure(model, data=test, name=method, latency=False)  # timed below, in interleaved rounds
        out = row(r, name, method, base, **extra)
        out["timing_key"], out["timing_group"] = f"{name}/{method}", group
        groups.setdefault(group, {})[out["timing_key"]] = model
        rows.append(out)
        return r, out

    def baseline(model, name, group):
        r, out = add(model, name, "fp32", None, group)
        out.update(size_ratio=1.0, accuracy_drop_pt=0.0, params_ratio=1.0)
        folded = cl.fold_batchnorm(model)
        diff, same = _max_rel_diff(framework, model, folded, test[0])
        add(folded, name, "fold BN", r, group, max_rel_logit_diff=diff, same_predictions=same,
            params_ratio=r.params / cl.measure(folded, example_input=example, latency=False).params)
        return r, folded

    if set(args.sections) & {"fold", "distill", "degradation"}:
        teacher = _zoo(exp.TEACHER, framework, args)
        base, _ = baseline(teacher, exp.TEACHER, "teacher")
        for student in args.students if "distill" in args.sections else ():
            for mode in ("alone", "distilled"):
                model, record = exp.train(framework, student, train_data, test, recipe,
                                          teacher if mode == "distilled" else None)
                add(model, student, f"student {mode}", base, "teacher", params_ratio=base.params / record["params"],
                    final_loss=record["loss"][-1], train_s=record["train_seconds"])
        for name in ("resnet20_w16", "resnet20_w16_plain") if "degradation" in args.sections else ():
            model, record = exp.train(framework, name, train_data, test, dict(exp.RECIPE, epochs=1) if args.quick
                                      else exp.RECIPE)
            add(model, name, "degradation (plain)" if "plain" in name else "degradation (residual)", base, "teacher",
                params_ratio=base.params / record["params"], final_loss=record["loss"][-1],
                train_s=record["train_seconds"], epoch_loss=record["loss"], epoch_accuracy=record["test_accuracy"])

    if "convdom" in args.sections:
        wide = _zoo(WIDE, framework, args)
        base, _ = baseline(wide, WIDE, "wide")
        epochs = 1 if args.quick else args.finetune_epochs
        compressed = []
        for r in args.ranks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # layers a rank would not shrink are kept (and named)
                compressed.append((f"tucker ({r[0]},{r[1]})", cl.decompose(wide, cl.Tucker(ranks=r), layers=_is_3x3(framework))))
        kwargs = {"example_input": torch.zeros(1, 1, 28, 28)} if framework == "torch" else {}
        compressed.append(("structured 0.5", cl.prune(wide, cl.Structured(0.5), **kwargs)))
        for label, model in compressed:
            t0 = time.perf_counter()
            f = lowrank.finetune(model, train_data, epochs=epochs, lr=1e-3, lr_schedule="step", teacher=wide)
            add(cl.fold_batchnorm(f), WIDE, f"{label} + ft + fold", base, "wide",
                finetune_s=round(time.perf_counter() - t0, 1))

    # every group's models timed in the same interleaved rounds; speedup against the group's fp32 model,
    # speedup_vs_folded against the same model with BatchNorm folded
    rounds, runs = (3, 5) if args.quick else (7, 15)
    for group, models in groups.items():
        medians = interleaved_latency(framework, models, example, rounds=rounds, runs=runs)
        name = exp.TEACHER if group == "teacher" else WIDE
        ref, folded_ref = medians[f"{name}/fp32"], medians[f"{name}/fold BN"]
        for r in rows:
            if r["timing_group"] != group:
                continue
            r["latency_ms"] = medians[r["timing_key"]]
            r["speedup"] = ref / r["latency_ms"]
            if r["method"] not in ("fp32", "fold BN"):
                r["speedup_vs_folded"] = folded_ref / r["latency_ms"]
            r.update(latency_spread_ms=None, timing="interleaved", load_average=load_average(),
                     speedup_against=f"{name} fp32")
            if r["model"] in args.notes:
                r["note"] = args.notes[r["model"]]
    for r in rows:
        del r["timing_key"], r["timing_group"]
    return rows


def targets(rows, frameworks) -> list[dict]:
    """Each chapter-5 target per framework: the figures it was judged on and whether it passes."""
    out = []
    for fw in frameworks:
        mine = [r for r in rows if r["framework"] == fw]
        teacher = next((r for r in mine if r["model"] == exp.TEACHER and r["method"] == "fp32"), None)
        students = {r["model"] for r in mine if r["method"].startswith("student")}
        best = None
        for s in sorted(students):
            alone = next(r for r in mine if r["model"] == s and r["method"] == "student alone")
            dist = next(r for r in mine if r["model"] == s and r["method"] == "student distilled")
            ok = (dist["params_ratio"] >= 4 and dist["speedup"] >= 2 and dist["accuracy_drop_pt"] <= 0.5
                  and dist["accuracy"] > alone["accuracy"])
            fig = {"student": s, "params_ratio": round(dist["params_ratio"], 2), "speedup": round(dist["speedup"], 2),
                   "drop_pt": round(dist["accuracy_drop_pt"], 2), "distilled": dist["accuracy"],
                   "alone": alone["accuracy"], "teacher": teacher["accuracy"], "pass": ok}
            if best is None or (ok, -fig["drop_pt"]) > (best["pass"], -best["drop_pt"]):
                best = fig
        if best:
            out.append({"target": "distillation", "framework": fw, **best})
        res = [r for r in mine if r["method"] == "degradation (residual)"]
        plain = [r for r in mine if r["method"] == "degradation (plain)"]
        if res and plain:
            # the degradation problem is about training error (He et al. 2016): judged on the training loss of
            # every epoch; test accuracy is reported beside it
            r_loss, p_loss = res[0]["epoch_loss"], plain[0]["epoch_loss"]
            out.append({"target": "degradation (depth 20)", "framework": fw,
                        "residual_loss": [round(v, 4) for v in r_loss], "plain_loss": [round(v, 4) for v in p_loss],
                        "residual_accuracy": res[0]["accuracy"], "plain_accuracy": plain[0]["accuracy"],
                        "pass": all(a < b for a, b in zip(r_loss, p_loss))})
        for f in (r for r in mine if r["method"] == "fold BN"):
            out.append({"target": f"folding ({f['model']})", "framework": fw,
                        "max_rel_logit_diff": f["max_rel_logit_diff"], "same_predictions": f["same_predictions"],
                        "speedup": round(f["speedup"], 2),
                        "pass": f["max_rel_logit_diff"] <= 1e-5 and f["same_predictions"]})
        tucker = [r for r in mine if r["method"].startswith("tucker")]
        if tucker:
            t = max(tucker, key=lambda r: (r["accuracy_drop_pt"] <= 1, r["speedup"]))
            out.append({"target": "tucker-2 where convs dominate", "framework": fw, "method": t["method"],
                        "speedup": round(t["speedup"], 2), "speedup_vs_folded": round(t["speedup_vs_folded"], 2),
                        "drop_pt": round(t["accuracy_drop_pt"], 2),
                        "pass": t["speedup"] >= 2 and t["accuracy_drop_pt"] <= 1})
    return out


def main(argv=None):
    extra, rest = _extra_args(sys.argv[1:] if argv is None else argv)
    args = parse_args(__doc__.splitlines()[0], rest)
    if args.device != "cpu":
        sys.exit("bench/residual.py: CPU only (the targets are CPU speedups)")
    args.quick, args.finetune_epochs, args.student_epochs = extra.quick, extra.finetune_epochs, extra.student_epochs
    args.sections = [s for s in extra.sections.split(",") if s]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        sys.exit(f"--sections: unknown {unknown}; choose from {SECTIONS}")
    args.students = [s for s in extra.students.split(",") if s][:1 if args.quick else None]
    args.ranks = [tuple(int(v) for v in r.split("x")) for r in extra.ranks.split(",") if r][:1 if args.quick else None]
    args.notes = {}
    exp.set_threads(extra.threads, tuple(args.frameworks))
    rows = []
    for framework in args.frameworks:
        rows += framework_rows(framework, args)
    print(markdown(rows, KEYS))
    found = targets(rows, args.frameworks)
    print("\ntargets (indicative unless the machine was quiet; load average "
          f"{max((r['load_average'] or 0) for r in rows):.1f} on {os.cpu_count()} CPUs):")
    for t in found:
        figures = ", ".join(f"{k}={v}" for k, v in t.items() if k not in ("target", "framework", "pass"))
        print(f"  [{'PASS' if t['pass'] else 'FAIL'}] {t['target']} ({t['framework']}): {figures}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": {**machine(), "threads": extra.threads, "quick": args.quick}, "rows": rows,
                       "targets": found}, fh, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
