"""The ``compresslib`` command.

    compresslib info                          versions and where weights are cached
    compresslib measure lenet5 --framework torch [--json]
    compresslib compress lenet300_100 --recipe deep_compression -o out.clz [--framework keras]
    compresslib compress model.keras --recipe recipe.yaml -o out.clz [--data data.npz]
    compresslib inspect model.clz             each tensor's encoding and bits per element (no arrays loaded)

Example:
    >>> main(["info"])   # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from typing import Optional


def _info() -> int:
    import compresslib
    from compresslib import zoo

    print(f"compresslib {compresslib.__version__}")
    print(f"weights cache: {zoo.cache_dir()}")
    for pkg in ("torch", "keras", "tensorflow", "torchao", "torch_pruning", "tensorly"):
        try:
            from importlib.metadata import version

            print(f"{pkg}: {version(pkg.replace('_', '-'))}")
        except Exception:
            print(f"{pkg}: not installed")
    return 0


def _measure(name: str, framework: str, as_json: bool) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import compresslib as cl

    model = cl.zoo.pretrained(name, framework=framework)
    report = cl.measure(model, data=cl.datasets.load_mnist("test", layout=framework), name=name)
    print(report.to_json() if as_json else report.to_markdown(layers=True))
    return 0


def _part_bytes(meta: dict) -> int:
    import numpy as np

    total = 0
    for where in (meta.get("parts") or {}).values():
        count = 1
        for d in where.get("shape", []):
            count *= int(d)
        total += count * np.dtype(where.get("dtype", "uint8")).itemsize
    return total


def _inspect(path: str) -> int:
    from compresslib.core.encodings import entropy
    from compresslib.io import read_manifest

    if not os.path.isfile(path):
        print(f"compresslib inspect: error: path: no such file {path!r}", file=sys.stderr)
        return 2
    try:
        manifest = read_manifest(path)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        print(f"compresslib inspect: error: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: {manifest['framework']} model, {len(manifest['tensors'])} tensors, {os.path.getsize(path):,} bytes")
    print(f"  {'tensor':32s} {'encoding':13s} {'dtype':8s} {'shape':16s} {'bytes':>9s} {'bits/elem':>9s}  details")
    for name, meta in manifest["tensors"].items():
        size = 1
        for d in meta.get("shape", []):
            size *= int(d)
        nbytes = _part_bytes(meta)
        bits = 8 * nbytes / size if size else 0.0
        details = entropy.describe(meta) if str(meta.get("encoding", "")).startswith("codebook") else ""
        print(f"  {name:32s} {meta.get('encoding', '?'):13s} {meta.get('dtype', '?'):8s} "
              f"{str(tuple(meta.get('shape', ()))):16s} {nbytes:9,d} {bits:9.3f}  {details}")
    return 0


def _load_model(spec: str, framework: str):
    """A zoo model by name, or a Keras ``.keras`` file (loaded in safe mode)."""
    from compresslib import zoo

    if spec in zoo.MODEL_NAMES:
        return zoo.pretrained(spec, framework=framework), framework, True
    if spec.endswith(".keras"):
        if not os.path.isfile(spec):
            raise ValueError(f"MODEL: no such file {spec!r}")
        import torch  # noqa: F401  (torch before tensorflow)
        import keras

        return keras.models.load_model(spec, compile=False, safe_mode=True), "keras", False
    raise ValueError(f"MODEL must be a zoo model {list(zoo.MODEL_NAMES)} or a Keras .keras file, got {spec!r}")


def _load_data(spec: Optional[str], framework: str, is_zoo: bool):
    """``(train, test)`` for fine-tuning and measuring: MNIST, an .npz (x_train, y_train[, x_test, y_test]), or none."""
    import numpy as np

    import compresslib as cl

    if spec is None:
        spec = "mnist" if is_zoo else "none"
    if spec == "none":
        return None, None
    if spec == "mnist":
        return cl.datasets.load_mnist("train", layout=framework), cl.datasets.load_mnist("test", layout=framework)
    if not os.path.isfile(spec):
        raise ValueError(f"--data must be 'mnist', 'none' or an .npz file with x_train, y_train; no file {spec!r}")
    with np.load(spec, allow_pickle=False) as npz:
        missing = [k for k in ("x_train", "y_train") if k not in npz.files]
        if missing:
            raise ValueError(f"--data {spec}: missing arrays {missing} (has {npz.files})")
        train = (npz["x_train"], npz["y_train"])
        test = (npz["x_test"], npz["y_test"]) if {"x_test", "y_test"} <= set(npz.files) else None
    return train, test


def _compress(args) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import time

    from compresslib import pipeline

    recipe = pipeline.load_recipe(args.recipe)  # a bad recipe fails before any model is loaded
    if args.framework == "keras" or args.model.endswith(".keras"):
        import torch  # noqa: F401  (torch before tensorflow)
    model, framework, is_zoo = _load_model(args.model, args.framework)
    train, test = _load_data(args.data, framework, is_zoo)
    if args.epochs is not None:
        for step in recipe.steps:
            step.finetune["epochs"] = args.epochs
    if train is None:
        print("no training data (--data): steps run without fine-tuning", file=sys.stderr)
    t0 = time.perf_counter()
    _, table = pipeline.compress(model, recipe, train_data=train, data=test, output=args.output,
                                 measure_kwargs={"latency": False}, progress_bar=args.progress)
    print(table.to_markdown())
    print(f"wrote {args.output} ({os.path.getsize(args.output):,} bytes) in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="compresslib", description="Model compression for PyTorch and Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions and cache folder")
    m = sub.add_parser("measure", help="measure a reference model")
    from compresslib import zoo
    from compresslib.pipeline import PRESETS

    m.add_argument("name", choices=list(zoo.MODEL_NAMES))
    m.add_argument("--framework", choices=["torch", "keras"], default="torch")
    m.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    i = sub.add_parser("inspect", help="list the tensors of a .clz file: encoding and bits per element")
    i.add_argument("path")
    c = sub.add_parser("compress", help="apply a recipe (prune, share, ...) and write a .clz file",
                       description="Compress a zoo model or a Keras .keras file with a recipe: a preset "
                                   f"({', '.join(sorted(PRESETS))}) "
                                   "or a YAML/JSON file; each stage is fine-tuned and measured.")
    c.add_argument("model", metavar="MODEL", help=f"a zoo model ({', '.join(zoo.MODEL_NAMES)}) or a .keras file")
    c.add_argument("--recipe", required=True, help="preset name or .yaml/.json recipe file")
    c.add_argument("-o", "--output", required=True, help="the .clz file to write")
    c.add_argument("--framework", choices=["torch", "keras"], default="torch", help="for zoo models (default torch)")
    c.add_argument("--data", default=None,
                   help="fine-tuning/measuring data: 'mnist' (default for zoo models), 'none' (default for files), "
                        "or an .npz with x_train, y_train[, x_test, y_test]")
    c.add_argument("--epochs", type=int, default=None, help="override every step's fine-tuning epochs")
    c.add_argument("--progress", action="store_true", default=None, help="show a progress bar")
    args = parser.parse_args(argv)
    if args.command == "compress":
        try:
            return _compress(args)
        except (ValueError, TypeError, ImportError) as exc:
            print(f"compresslib compress: error: {exc}", file=sys.stderr)
            return 2
    if args.command == "info":
        return _info()
    if args.command == "measure":
        if args.framework == "keras":
            import torch  # noqa: F401  (torch before tensorflow)
        return _measure(args.name, args.framework, args.json)
    return _inspect(args.path)


if __name__ == "__main__":
    sys.exit(main())
