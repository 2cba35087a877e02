"""Deep Compression (Han et al. 2016) in both frameworks: prune, share weights, entropy-code; a row per stage.

    python bench/deep_compression.py [--json PATH] [--quick] [--frameworks torch,keras] [--models a,b]

For each model the preset recipe ``"deep_compression"`` runs through
``compresslib.pipeline.compress``: global magnitude pruning with fine-tuning
(masks kept), k-means weight sharing (5 bits for fully connected layers, 8 for
convolutions) with centroid fine-tuning, then entropy coding in the ``.clz``
file. Rows: ``fp32`` (the native file: state_dict ``.pt`` / ``.keras``),
``pruned`` and ``+ shared`` (their ``.clz`` without entropy coding), ``+ coded``
(the ``.clz`` as saved). ``size_ratio`` is bytes of the fp32 native file over
bytes on disk; accuracy is always that of the model loaded back from its file.
Every row carries its accuracy's 95 % (Wilson) interval over the test images
(``accuracy_ci``), and every compressed row the paired comparison with the fp32
row on the same images (``compresslib.core.stats`` through ``cl.compare``): the
drop's 95 % interval in points (``drop_ci_pt``), McNemar's exact p (``p_value``)
and the verdict ("within noise", "lower", "higher"), the bench schema of
``compresslib.benchresults``.
The ``+ coded`` rows also give ``encode_s`` and ``decode_s`` (median of 5
``cl.save``/``cl.load`` of that model) and, for LeNet-300-100 and the Caffe
LeNet-5, whether the issue's target is met (≥ 50× / ≥ 45× at ≤ 0.5 pt drop).

A second table compares entropy coders on the index stream of the largest
shared layer (LeNet-300-100, fc1): fixed-width indices, Huffman (compresslib's
NumPy reference), zlib and lzma over the packed indices, and ANS
(``constriction``, what ``.clz`` uses): bytes and encode/decode milliseconds.
``--quick`` runs LeNet-300-100 only, on 512 training and 256 test images, one fine-tuning epoch per
stage: a smoke run that checks the script; its figures mean nothing.
"""
from __future__ import annotations

import lzma
import os
import statistics
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, machine, mnist  # noqa: E402

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402

import compresslib as cl  # noqa: E402
from compresslib import pipeline  # noqa: E402
from compresslib.core import sharing  # noqa: E402
from compresslib.core.encodings import entropy  # noqa: E402

TARGETS = {"lenet300_100": 50.0, "lenet5_caffe": 45.0}
MAX_DROP_PT = 0.5
MODELS = ("lenet300_100", "lenet5_caffe", "lenet5", "resnet8")
KEYS = ["framework", "model", "method", "params", "nonzero_params", "bytes", "accuracy", "accuracy_ci",
        "size_ratio", "accuracy_drop_pt", "drop_ci_pt", "p_value", "verdict", "encode_s", "decode_s", "target",
        "seconds"]
STAGES = {"input": "fp32", "+ Magnitude": "pruned", "+ WeightSharing": "+ shared", "+ entropy coding": "+ coded"}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    p.add_argument("--frameworks", default="torch,keras", help="comma-separated: torch,keras")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {MODELS}")
    p.add_argument("--quick", action="store_true", help="LeNet-300-100 only, 512 training and 256 test images, 1 + 1 fine-tuning epochs")
    args = p.parse_args(argv)
    args.frameworks = [f for f in args.frameworks.split(",") if f]
    args.models = ["lenet300_100"] if args.quick else [m for m in args.models.split(",") if m]
    for f in args.frameworks:
        if f not in ("torch", "keras"):
            p.error(f"--frameworks: unknown framework {f!r}")
    for m in args.models:
        if m not in MODELS:
            p.error(f"--models: unknown model {m!r}; choose from {MODELS}")
    return args


def _timed(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def paired_columns(row: dict, base: dict) -> dict:
    """The accuracy's 95 % interval and, against ``base`` (the fp32 row, same test images), the drop's 95 %
    interval in points, McNemar's p and the verdict, from a ``cl.compare`` row (``compresslib.core.stats``).

    >>> paired_columns({"accuracy_low": 0.97, "accuracy_high": 0.98, "test_samples": 2000,
    ...                 "drop_interval_pt": (-0.1, 0.3), "paired_p": 0.5, "paired_verdict": "within noise"}, {})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'accuracy_ci': [0.97, 0.98], 'test_samples': 2000, 'drop_ci_pt': [-0.1, 0.3], 'p_value': 0.5,
     'verdict': 'within noise'}
    """
    out = {"accuracy_ci": [row["accuracy_low"], row["accuracy_high"]], "test_samples": row["test_samples"]}
    if row is base or row.get("paired_p") is None:
        return {**out, "drop_ci_pt": None, "p_value": None, "verdict": None}
    lo, hi = row["drop_interval_pt"]
    return {**out, "drop_ci_pt": [lo, hi], "p_value": row["paired_p"], "verdict": row["paired_verdict"]}


def model_rows(name: str, framework: str, quick: bool) -> list[dict]:
    train, test = mnist(framework, quick)
    recipe = pipeline.load_recipe("deep_compression")
    if quick:
        for step, epochs in zip(recipe.steps, (1, 1)):
            step.finetune["epochs"] = epochs
    model = cl.zoo.pretrained(name, framework)
    t0 = time.perf_counter()
    out, table = pipeline.compress(model, recipe, train_data=train, data=test, measure_kwargs={"latency": False})
    seconds = time.perf_counter() - t0
    reports = {r["name"]: r for r in table.rows}
    base = reports["input"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.clz")
        _, encode_s = _timed(lambda: cl.save(out, path))
        _, decode_s = _timed(lambda: cl.load(path))
    for stage, label in STAGES.items():
        r = reports[stage]
        size = r["packed_bytes"] if r["packed_bytes"] is not None else r["file_bytes"]
        extra = {"nonzero_params": r["nonzero_params"], "bytes": size,
                 "size_ratio": base["file_bytes"] / size, "accuracy_drop_pt": r["accuracy_drop_pt"],
                 **paired_columns(r, base)}
        if stage == "+ entropy coding":
            extra.update(encode_s=round(encode_s, 4), decode_s=round(decode_s, 4), seconds=round(seconds, 1))
            if name in TARGETS:
                # drops are multiples of 0.05 pt on 2,000 test digits: compare them rounded, not as raw floats
                ok = extra["size_ratio"] >= TARGETS[name] and round(r["accuracy_drop_pt"], 6) <= MAX_DROP_PT
                extra["target"] = f"{'met' if ok else 'MISSED'} (>= {TARGETS[name]:.0f}x, <= {MAX_DROP_PT} pt)"
        rows.append({"framework": framework, "model": name, "method": label, "device": "cpu", "params": r["params"],
                     "accuracy": r["accuracy"], "latency_ms": None, "file_format": r["file_format"], **extra})
    return rows


def coder_rows() -> list[dict]:
    """Entropy coders on the indices of LeNet-300-100's shared fc1 (torch weights, 95 % pruned, 5 bits)."""
    import torch  # noqa: F401

    m = cl.prune(cl.zoo.pretrained("lenet300_100", "torch"), cl.Magnitude(0.95, scope="global"))
    w = m[1].weight.detach().numpy()
    codebook, labels = sharing.share(w, 5)
    symbols = labels[labels >= 0].astype(np.int64)
    counts = np.bincount(symbols, minlength=codebook.size)
    bits = int(codebook.size - 1).bit_length()
    packed = entropy.pack_bits(symbols, bits).tobytes()
    lengths = entropy.huffman_code_lengths(counts)
    out = [{"coder": "entropy (bound)", "bytes": entropy.entropy_bits(counts) / 8}]
    out.append({"coder": f"fixed {bits}-bit", "bytes": len(packed)})
    data, enc = _timed(lambda: entropy.huffman_encode(symbols, lengths), 3)
    dec_out, dec = _timed(lambda: entropy.huffman_decode(data, lengths, symbols.size), 3)
    assert np.array_equal(dec_out, symbols)
    out.append({"coder": "Huffman (NumPy reference)", "bytes": len(data) + counts.size, "encode_ms": 1e3 * enc,
                "decode_ms": 1e3 * dec})
    for label, comp, decomp in (("zlib -9 (packed indices)", lambda: zlib.compress(packed, 9), zlib.decompress),
                                ("lzma (packed indices)", lambda: lzma.compress(packed), lzma.decompress)):
        data, enc = _timed(comp, 3)
        _, dec = _timed(lambda: decomp(data), 3)
        out.append({"coder": label, "bytes": len(data), "encode_ms": 1e3 * enc, "decode_ms": 1e3 * dec})
    words, enc = _timed(lambda: entropy.ans_encode([(symbols, counts)]), 3)
    dec_out, dec = _timed(lambda: entropy.ans_decode(words, [counts]), 3)
    assert np.array_equal(dec_out[0], symbols)
    out.append({"coder": "ANS (constriction, .clz)", "bytes": words.nbytes + 2 * counts.size, "encode_ms": 1e3 * enc,
                "decode_ms": 1e3 * dec})
    for r in out:
        r["bits_per_index"] = 8 * r["bytes"] / symbols.size
    return out


def main(argv=None) -> None:
    args = parse(argv)
    rows = []
    for name in args.models:
        for framework in args.frameworks:
            rows += model_rows(name, framework, args.quick)
    emit(rows, None, KEYS)
    coders = coder_rows()
    print()
    print("| coder | bytes | bits/index | encode ms | decode ms |\n|---|---:|---:|---:|---:|")
    for r in coders:
        enc, dec = r.get("encode_ms"), r.get("decode_ms")
        print(f"| {r['coder']} | {r['bytes']:,.0f} | {r['bits_per_index']:.3f} | "
              f"{'' if enc is None else f'{enc:.2f}'} | {'' if dec is None else f'{dec:.2f}'} |")
    load = os.getloadavg()[0]
    print(f"\nload average {load:.2f} (timings are indicative when it exceeds the {os.cpu_count()} cores)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": dict(machine(), load_average=load), "rows": rows, "coders": coders}, fh, indent=2)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
