"""The ``compresslib`` command.

    compresslib info                          versions and where weights are cached
    compresslib measure lenet5 --framework torch [--json]
    compresslib inspect model.clz             what a .clz file holds (no arrays loaded)

Example:
    >>> main(["info"])   # doctest: +SKIP
"""
from __future__ import annotations

import argparse
import json
import os
import sys
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


def _inspect(path: str) -> int:
    from compresslib.io import read_manifest

    manifest = read_manifest(path)
    print(f"{path}: {manifest['framework']} model, {len(manifest['tensors'])} tensors, {os.path.getsize(path):,} bytes")
    for name, meta in manifest["tensors"].items():
        print(f"  {name:40s} {meta['encoding']:8s} {meta['dtype']:8s} {tuple(meta['shape'])}")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="compresslib", description="Model compression for PyTorch and Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions and cache folder")
    m = sub.add_parser("measure", help="measure a reference model")
    m.add_argument("name", choices=["lenet300_100", "lenet5", "resnet8", "mlp_wide"])
    m.add_argument("--framework", choices=["torch", "keras"], default="torch")
    m.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    i = sub.add_parser("inspect", help="list the tensors of a .clz file")
    i.add_argument("path")
    args = parser.parse_args(argv)
    if args.command == "info":
        return _info()
    if args.command == "measure":
        if args.framework == "keras":
            import torch  # noqa: F401  (torch before tensorflow)
        return _measure(args.name, args.framework, args.json)
    return _inspect(args.path)


if __name__ == "__main__":
    sys.exit(main())
