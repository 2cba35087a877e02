"""Run the support matrix (every verb and config on every foreign model) and write the book's table.

    python scripts/support_matrix.py [--frameworks torch,keras] [--models name,...]

``--models`` re-runs only those models and keeps the other rows of the committed file. Every model of
the zoos is in the table: the CI matrix (``NAMES``) and the families tested verb by verb (``ROUND2``).

Writes ``book/data/support_matrix.json`` and ``book/data/support_table.md``; the matrix tests
(``tests/foreign/``) fail when a cell's status no longer matches the file.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CI", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402,F401  (torch before tensorflow)

from tests.foreign import support  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", default="torch,keras")
    parser.add_argument("--models", default="", help="only these models (comma-separated); the rest is kept")
    args = parser.parse_args(argv)
    only = [m for m in args.models.split(",") if m]
    results = support.load()
    for framework in args.frameworks.split(","):
        if framework == "torch":
            from tests.foreign import torch_cells as cells, torch_zoo as zoo
        else:
            from tests.foreign import keras_cells as cells, keras_zoo as zoo
        every = tuple(zoo.NAMES) + tuple(zoo.ROUND2)
        kept = results.get(framework, {}) if only else {}
        results[framework] = {m: kept[m] for m in every if m in kept}
        for model in (m for m in every if not only or m in only):
            case = zoo.case(model)
            results[framework][model] = {}
            for cell in cells.CELLS:
                t0 = time.perf_counter()
                outcome = cells.run(case, cell)
                results[framework][model][cell] = support.entry(outcome)
                print(f"{framework:6s} {model:18s} {cell:15s} {outcome.status:8s} {time.perf_counter() - t0:6.1f} s "
                      f"{outcome.detail[:100]}", flush=True)
    support.save(results)
    print(f"wrote {support.JSON.relative_to(Path.cwd()) if support.JSON.is_relative_to(Path.cwd()) else support.JSON}")


if __name__ == "__main__":
    main()
