"""Load randomly corrupted and truncated ``.clz`` files and count what ``compresslib.load`` does with them.

Reproduces the check of issue 17: LeNet-5 saved three ways (fp32, 90 %-pruned, int8 static),
then ``--n`` corrupted copies in all (a third of them per file), each corrupted one of four ways:
truncated at a random byte, a few random bytes overwritten, a random burst of up to 64 bytes
overwritten, or one bit flipped. Every copy is loaded once, under an alarm of ``--timeout``
seconds. Outcomes:

* ``clear ValueError``: a ``ValueError`` whose message starts with the file's path;
* ``loaded, identical``: the corruption hit bytes that carry no data (a timestamp in a ZIP
  header, say) and the model that came back equals the saved one, output for output;
* ``loaded, DIFFERENT`` / ``other exception`` / ``unclear ValueError`` / ``hang``: failures.

The exit status is 1 when any failure occurred.

Example:
    python scripts/corrupt_clz.py --n 450 --seed 0 --json corrupt.json
    python scripts/corrupt_clz.py --framework keras --n 90
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import tempfile
import time
import warnings

import numpy as np
import torch  # before tensorflow

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import compresslib as cl  # noqa: E402

FAILURES = ("loaded, DIFFERENT", "other exception", "unclear ValueError", "hang")


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def _models(framework: str) -> dict:
    """LeNet-5 fp32, 90 %-pruned and int8 (static) in ``framework``."""
    base = cl.zoo.pretrained("lenet5", framework)
    x = cl.datasets.load_mnist("train", layout=framework).x[:256]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"fp32": base, "pruned90": cl.prune(base, cl.Magnitude(sparsity=0.9)),
                "int8": cl.quantize(base, cl.Int8Static(), calibration_data=x)}


def _outputs(model, framework: str, x: np.ndarray) -> np.ndarray:
    if framework == "torch":
        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    return np.asarray(model.predict_on_batch(x) if hasattr(model, "predict_on_batch") else model(x))


def _corrupt(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = ("truncate", "bytes", "burst", "bit")[int(rng.integers(4))]
    b = bytearray(data)
    if kind == "truncate":
        return kind, bytes(b[:int(rng.integers(0, len(b)))])
    if kind == "bytes":
        for _ in range(int(rng.integers(1, 17))):
            b[int(rng.integers(len(b)))] = int(rng.integers(256))
    elif kind == "burst":
        n = int(rng.integers(1, 65))
        at = int(rng.integers(0, len(b) - n))
        b[at:at + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    else:
        at = int(rng.integers(len(b)))
        b[at] ^= 1 << int(rng.integers(8))
    return kind, bytes(b)


def _changed(original: bytes, data: bytes) -> str:
    """Where ``data`` differs from ``original``, and in which part of the ZIP layout."""
    if len(data) != len(original):
        return f"truncated to {len(data)} of {len(original)} bytes"
    diff = np.flatnonzero(np.frombuffer(original, np.uint8) != np.frombuffer(data, np.uint8))
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(original)) as zf:
        regions = sorted((i.header_offset, i.filename) for i in zf.infolist())
        central = zf.start_dir
    where = []
    for at in diff[:8]:
        region = "central directory" if at >= central else next(
            (f"{name} (local header or data from byte {off})" for off, name in reversed(regions) if at >= off), "?")
        where.append(f"byte {at} in {region}")
    return "changed " + ", ".join(where)


def run(framework: str, n: int, seed: int, timeout: int) -> dict:
    rng = np.random.default_rng(seed)
    x = cl.datasets.load_mnist("test", layout=framework).x[:32]
    counts: collections.Counter = collections.Counter()
    by_model: dict = collections.defaultdict(collections.Counter)
    examples: dict = {}
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(framework)
        originals = {}
        for name, model in models.items():
            path = os.path.join(tmp, f"{name}.clz")
            cl.save(model, path)
            with open(path, "rb") as fh:
                originals[name] = fh.read()
            saved = _outputs(model, framework, x)
            if not np.array_equal(_outputs(cl.load(path), framework, x), saved, equal_nan=True):
                raise AssertionError(f"the intact {name} file does not load back exactly")
            models[name] = saved
        names = list(models)
        for i in range(n):
            name = names[i % len(names)]
            kind, data = _corrupt(originals[name], rng)
            path = os.path.join(tmp, f"bad{i:04d}.clz")
            with open(path, "wb") as fh:
                fh.write(data)
            signal.alarm(timeout)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    loaded = cl.load(path)
                signal.alarm(0)
                same = np.array_equal(_outputs(loaded, framework, x), models[name], equal_nan=True)
                outcome = "loaded, identical" if same else "loaded, DIFFERENT"
                message = _changed(originals[name], data)
            except _Hang:
                outcome, message = "hang", f"more than {timeout} s"
            except ValueError as exc:
                signal.alarm(0)
                message = str(exc)
                outcome = "clear ValueError" if message.startswith(f"{path}: ") else "unclear ValueError"
            except Exception as exc:  # noqa: BLE001  (what the check is looking for)
                signal.alarm(0)
                outcome, message = "other exception", f"{type(exc).__name__}: {exc}"
            finally:
                signal.alarm(0)
            counts[outcome] += 1
            by_model[name][outcome] += 1
            if outcome not in examples or outcome in FAILURES and len(examples[outcome]) < 5:
                examples.setdefault(outcome, []).append(f"{name}/{kind}: {message[:300]}")
            os.remove(path)
    return {"framework": framework, "n": n, "seed": seed, "counts": dict(counts),
            "by_model": {k: dict(v) for k, v in by_model.items()}, "examples": examples}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=450, help="corrupted files in all (default 450)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--framework", choices=("torch", "keras", "both"), default="torch")
    parser.add_argument("--timeout", type=int, default=30, help="seconds one load may take (a hang above)")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")
    results = []
    for framework in (("torch", "keras") if args.framework == "both" else (args.framework,)):
        start = time.perf_counter()
        result = run(framework, args.n, args.seed, args.timeout)
        result["seconds"] = round(time.perf_counter() - start, 1)
        results.append(result)
        print(f"{framework}: {args.n} corrupted or truncated LeNet-5 files (fp32, 90 %-pruned, int8), "
              f"seed {args.seed}, {result['seconds']} s")
        for outcome, count in sorted(result["counts"].items(), key=lambda kv: -kv[1]):
            print(f"  {count:4d}  {outcome}")
        for outcome, lines in result["examples"].items():
            for line in lines[:2 if outcome not in FAILURES else 5]:
                print(f"        e.g. [{outcome}] {line}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return int(any(r["counts"].get(f) for r in results for f in FAILURES))


if __name__ == "__main__":
    sys.exit(main())
