"""Every chapter notebook is paired with its jupytext percent text form, and the two agree.

Reviewers read and diff ``notebooks/NN_topic.py``; the book and nbval use the ``.ipynb``
(which also stores the outputs). After editing either, ``jupytext --sync notebooks/NN_topic.ipynb``
brings the other up to date. This test fails when they disagree: a cell added, removed, edited,
re-typed or re-tagged on one side only.
"""
from __future__ import annotations

from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SCRIPTS = sorted(p for p in (ROOT / "notebooks").glob("*.py"))


def cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """(type, source, tags) of every cell: what the pair must agree on (outputs live only in the .ipynb)."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_pairing_is_configured():
    config = (ROOT / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in config


def test_every_notebook_has_a_text_form_and_back():
    assert NOTEBOOKS, "no notebooks found"
    assert {p.stem for p in NOTEBOOKS} == {p.stem for p in SCRIPTS}, (
        f"unpaired: .ipynb without .py {sorted({p.stem for p in NOTEBOOKS} - {p.stem for p in SCRIPTS})}, "
        f".py without .ipynb {sorted({p.stem for p in SCRIPTS} - {p.stem for p in NOTEBOOKS})}; "
        "run `jupytext --sync notebooks/<name>.ipynb`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pair_agrees(path: Path):
    text = path.with_suffix(".py")
    if not text.exists():
        pytest.fail(f"{text.name} is missing: run `jupytext --sync {path.relative_to(ROOT)}`")
    nb = jupytext.read(path)
    assert text.read_text().startswith("# ---\n# jupyter:"), f"{text.name} is not in py:percent format with a header"
    py = jupytext.read(text, fmt="py:percent")
    a, b = cells(nb), cells(py)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, (f"{path.stem}: cell {i} differs between .ipynb and .py\n  ipynb: {x!r:.300}\n  py:    {y!r:.300}\n"
                        f"run `jupytext --sync {path.relative_to(ROOT)}`")
    assert len(a) == len(b), f"{path.stem}: {len(a)} cells in .ipynb, {len(b)} in .py"
    # and the .py is exactly what jupytext writes for the notebook (up to the version line in the header)
    drop_version = lambda s: "\n".join(l for l in s.splitlines() if "jupytext_version" not in l)
    assert drop_version(jupytext.writes(nb, fmt="py:percent")) == drop_version(text.read_text()), (
        f"{text.name} is not what `jupytext --sync` writes for {path.name}")
