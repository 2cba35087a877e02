"""The reference models, fp32, both frameworks: the baseline every other bench compares to.

    python bench/baseline.py [--json PATH] [--frameworks torch,keras] [--runs N] [--device cpu|cuda] [--quick]

``--quick``: 256 test images, 3 timed runs (a smoke run: checks the script, its figures mean nothing).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import emit, mnist, parse_args, row, to_device  # noqa: E402

import compresslib as cl  # noqa: E402

MODELS = ("lenet300_100", "lenet5", "resnet8")


def main(argv=None) -> list[dict]:
    args = parse_args(__doc__, argv)
    rows = []
    for framework in args.frameworks:
        _, test = mnist(framework, args.quick)
        for name in MODELS:
            model = to_device(cl.zoo.pretrained(name, framework=framework), args.device)
            report = cl.measure(model, data=test, runs=args.runs, name=name)
            rows.append(row(report, name, "fp32"))
    emit(rows, args.json)
    return rows


if __name__ == "__main__":
    main()
