"""Train the shipped reference models and write them to ``compresslib/data/weights``.

Each model is trained from scratch with its recipe (``compresslib.zoo.RECIPES``),
seeded, on the 8,000 training digits; the training time and test accuracy go
to ``manifest.json`` beside the weights. Run it on a quiet machine:

    python scripts/train_zoo.py            # all shipped models, both frameworks
    python scripts/train_zoo.py lenet5     # one model
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import torch  # noqa: E402,F401  (torch before tensorflow)

from compresslib import zoo  # noqa: E402
from compresslib._dispatch import backend  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "compresslib" / "data" / "weights"


def main(names: list[str]) -> None:
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        for framework in ("torch", "keras"):
            model, record = zoo.train(name, framework)
            backend(framework, "zoo_io").to_npz(model, OUT / f"{framework}_{name}.npz")
            record["threads"] = torch.get_num_threads()
            manifest[f"{framework}_{name}"] = record
            print(json.dumps(record), flush=True)
            manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or list(zoo.SHIPPED))
