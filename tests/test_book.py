"""The book builds with warnings as errors (from the notebooks' stored outputs; nbval re-runs them)."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_and_page_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    entries = set(re.findall(r"file:\s*(\S+)", toc)) | set(re.findall(r"root:\s*(\S+)", toc))
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "notebooks").glob("*.ipynb")}
    pages |= {str(p.relative_to(ROOT).with_suffix("")) for p in (ROOT / "book").glob("*.md")}
    assert pages <= entries, f"not in _toc.yml: {sorted(pages - entries)}"
    assert entries <= pages, f"in _toc.yml but missing: {sorted(entries - pages)}"


def test_notebooks_are_stored_executed():
    import nbformat

    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        assert code and all(c.get("execution_count") for c in code), f"{path.name} has unexecuted cells"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name} has stored errors"


def test_book_builds_without_warnings(tmp_path):
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        pytest.skip("jupyter-book not installed")
    config = (ROOT / "_config.yml").read_text().replace("execute_notebooks: cache", 'execute_notebooks: "off"')
    assert 'execute_notebooks: "off"' in config
    (tmp_path / "_config.yml").write_text(config)
    proc = subprocess.run([str(jb), "build", str(ROOT), "--config", str(tmp_path / "_config.yml"),
                           "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = tmp_path / "_build" / "html"
    assert (html / "book" / "errata.html").is_file() and (html / "notebooks" / "01_measuring.html").is_file()
    assert "Measure a model of either framework" in (html / "book" / "api.html").read_text()
    shutil.rmtree(tmp_path / "_build", ignore_errors=True)
