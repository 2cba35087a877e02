"""Every verb and config on every foreign PyTorch model: works or refuses clearly, as the book's table says.

``COMPRESSLIB_FULL_MATRIX=1`` adds the cells in :data:`SLOW` (``scripts/support_matrix.py`` always runs them).
"""
from __future__ import annotations

import os

import pytest
import torch  # noqa: F401  (torch before tensorflow)

pytest.importorskip("transformers")

from tests.foreign import support, torch_cells, torch_zoo  # noqa: E402

COMMITTED = support.load().get("torch", {})
# (model, cell) -> why it is left to the full run: minutes of CI for one cell
SLOW = {
    ("hf_resnet", "QAT"): "torch.export falls back to PT2E, whose convert_pt2e exports ~230 conv-BN patterns "
                          "(about 1.5 min per convert; the save/load check converts twice)",
}
FULL = bool(os.environ.get("COMPRESSLIB_FULL_MATRIX"))


@pytest.mark.parametrize("model", torch_zoo.NAMES)
def test_every_cell_works_or_refuses(model):
    case = torch_zoo.case(model)
    failures, drift = [], []
    for cell in torch_cells.CELLS:
        if (model, cell) in SLOW and not FULL:
            continue
        outcome = torch_cells.run(case, cell)
        if not outcome.ok:
            failures.append(f"{cell}: {outcome.status}: {outcome.detail}")
        expected = COMMITTED.get(model, {}).get(cell, {}).get("status")
        if expected != outcome.status:
            drift.append(f"{cell}: the book says {expected}, the code {outcome.status}")
    assert not failures, f"{model}: " + "; ".join(failures)
    assert not drift, (f"{model}: book/data/support_matrix.json is out of date "
                       f"(run python scripts/support_matrix.py): " + "; ".join(drift))


def test_table_is_generated_from_the_json():
    assert support.TABLE.read_text() == support.render(support.load())
