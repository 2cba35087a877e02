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


# --- reader hygiene of every chapter (also the ones others add): checked on the stored notebooks ---

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLUMN_PX = 688          # the text column of the book theme at desktop width
MIN_PX_PER_INCH = 96     # at 96 CSS px per figure inch a 9 pt label is 9 pt (12 px) on the page


def _read(path):
    import nbformat

    return nbformat.read(path, as_version=4)


def _repository_url() -> str:
    url = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", (ROOT / "_config.yml").read_text(), re.M)
    assert url, "_config.yml has no repository.url"
    return url.group(1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_hygiene(path):
    nb = _read(path)
    number = int(path.stem.split("_")[0])
    title = nb.cells[0].source.splitlines()[0]
    assert re.match(rf"# {number}\. \S", title), f"{path.name}: the title must start with '# {number}. ', got {title!r}"
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0]
    assert '"google.colab" in sys.modules' in first.source and "pip" in first.source, (
        f"{path.name}: the first code cell must install compresslib only on Colab")
    assert _repository_url() in first.source, f"{path.name}: the Colab install cell must use {_repository_url()}"
    assert "hide-input" in first.metadata.get("tags", []) and "hide-input" in code[1].metadata.get("tags", []), (
        f"{path.name}: the install and setup cells must be tagged hide-input")
    for i, c in enumerate(nb.cells):
        assert "NBVAL_" not in c.source, f"{path.name} cell {i}: nbval is controlled by cell tags, not comments"
        if c.cell_type == "code":
            small = re.findall(r"fontsize\s*=\s*([0-9.]+)", c.source)
            assert all(float(v) >= 9 for v in small), f"{path.name} cell {i}: text below 9 pt ({small})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_figures_fit_the_column_at_full_size(path):
    """Every stored PNG is shown at >= 96 CSS px per figure inch, so text set at 9 pt is >= 9 pt on the page."""
    import base64
    import io

    from PIL import Image

    for i, c in enumerate(_read(path).cells):
        for out in c.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if not png:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(png)))
            dpi = image.info.get("dpi", (None,))[0]
            assert dpi, f"{path.name} cell {i}: PNG without a dpi (save figures with matplotlib)"
            css_width = float(out.get("metadata", {}).get("image/png", {}).get("width", image.width))
            inches = image.width / dpi
            px_per_inch = min(css_width, COLUMN_PX) / inches
            assert px_per_inch >= MIN_PX_PER_INCH * 0.97, (
                f"{path.name} cell {i}: a {inches:.1f} in figure is shown {min(css_width, COLUMN_PX):.0f} px wide "
                f"({px_per_inch:.0f} px per inch): its 9 pt text renders at {9 * px_per_inch / MIN_PX_PER_INCH:.1f} pt; "
                "draw it at most compresslib.notebook.COLUMN_WIDTH_IN wide (nb.figsize())")


def test_repository_url_in_one_place():
    """_config.yml's repository.url is the one place; every other mention of the repository must equal it."""
    url = _repository_url()
    files = [*NOTEBOOKS, *(ROOT / "book").glob("*.md"), ROOT / "README.md", ROOT / "environment.yml",
             *(ROOT / "binder").glob("*")]
    found = {}
    for f in files:
        for u in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", f.read_text()):
            if "compresslib" in u.lower():
                found.setdefault(u.removesuffix(".git"), []).append(f.relative_to(ROOT).as_posix())
    assert set(found) <= {url}, f"repository URLs other than _config.yml's {url}: { {u: v for u, v in found.items() if u != url} }"


def test_every_glue_reference_has_a_value():
    """Every {glue:text} in the chapters and theory pages names a value that its notebook's stored outputs glue."""
    glued = {}
    for path in NOTEBOOKS:
        keys = glued.setdefault(path.name, set())
        for c in _read(path).cells:
            for out in c.get("outputs", []):
                if "application/papermill.record/text/plain" in out.get("data", {}):
                    keys.add(out["metadata"]["scrapbook"]["name"])
    missing = []
    sources = [(p, "\n".join(c.source for c in _read(p).cells if c.cell_type == "markdown")) for p in NOTEBOOKS]
    sources += [(p, p.read_text()) for p in sorted((ROOT / "book").glob("*.md"))]
    for path, text in sources:
        for ref in re.findall(r"\{glue:(?:text|md|)\}`([^`]+)`", text):
            key = ref.rsplit(":", 1)[0] if ":" in ref else ref     # MyST-NB's parse: format spec after the last ':'
            doc, _, key = key.rpartition("::")
            if path.suffix == ".md" and not doc:
                missing.append(f"{path.name}: {ref} (from another document it needs path::key:format)")
                continue
            nb_name = Path(doc).name if doc else path.name
            if key not in glued.get(nb_name, set()):
                missing.append(f"{path.name}: {ref}")
    assert not missing, "glue references without a stored value:\n  " + "\n  ".join(missing)


HOUSE_STYLE = [p for p in NOTEBOOKS if p.stem[:2] in {"01", "02", "03", "04"}]  # widen as chapters adopt it


@pytest.mark.parametrize("path", HOUSE_STYLE, ids=[p.stem for p in HOUSE_STYLE])
def test_every_figure_has_alt_text_and_a_caption(path):
    """A plot cell carries MyST-NB metadata: alt text for screen readers, a caption for everyone."""
    for i, c in enumerate(_read(path).cells):
        if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            meta = c.metadata.get("mystnb", {})
            alt = meta.get("image", {}).get("alt", "")
            caption = meta.get("figure", {}).get("caption", "")
            assert len(alt) > 20 and len(caption) > 20, f"{path.name} cell {i}: a figure without alt text or caption"
            assert "nb.use_style()" in "\n".join(x.source for x in _read(path).cells if x.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_figure_of_every_chapter_has_a_caption_and_alt_text(path):
    """Every chapter, not only the house-style ones: a cell that shows a figure carries both."""
    for i, c in enumerate(_read(path).cells):
        if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            meta = c.metadata.get("mystnb", {})
            assert len(meta.get("image", {}).get("alt", "")) > 20, f"{path.name} cell {i}: a figure without alt text"
            assert len(meta.get("figure", {}).get("caption", "")) > 20, f"{path.name} cell {i}: a figure without caption"
            shown = [o for o in c.outputs if o.get("output_type") in ("display_data", "execute_result")
                     and "application/papermill.record/text/plain" not in o.get("data", {})]
            assert len(shown) == 1, (f"{path.name} cell {i}: {len(shown)} outputs under one caption (a table and a "
                                     "figure share it): split the cell")


# --- compresslib.notebook: the helpers every chapter uses ---

def test_house_style_sizes_and_colours(tmp_path):
    from compresslib import notebook as nb

    assert nb.figsize() == (nb.COLUMN_WIDTH_IN, nb.ROW_HEIGHT_IN) and nb.figsize(rows=3)[1] == round(3 * nb.ROW_HEIGHT_IN, 2)
    assert nb.COLUMN_WIDTH_IN * nb.DPI <= COLUMN_PX                     # shown unscaled: 1 pt in the figure = 1 pt on the page
    with pytest.raises(ValueError, match="width"):
        nb.figsize(width=11)
    with pytest.raises(ValueError, match="rows"):
        nb.figsize(rows=0)
    with pytest.raises(ValueError, match="framework"):
        nb.framework_style("jax")
    assert not set(nb.FRAMEWORK_COLORS.values()) & set(nb.OTHER_COLORS)  # a framework's colour means only that
    rc = nb.style_rc()
    sizes = [rc[k] for k in rc if k == "font.size" or k.endswith(("labelsize", "titlesize", "legend.fontsize"))]
    assert len(sizes) >= 7
    assert min(sizes) >= nb.MIN_FONT_PT == 9
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni amx_int8\n")
    assert nb.cpu_features(str(tmp_path / "cpuinfo")) == "x86 with AVX-512, with VNNI, no AVX-512 BF16, with AMX"
    (tmp_path / "cpuinfo").write_text("flags\t\t: fpu avx2\n")
    assert nb.cpu_features(str(tmp_path / "cpuinfo")) == "x86 with AVX2, no VNNI, no AVX-512 BF16, no AMX"


def test_glue_keeps_plain_python_values():
    import numpy as np

    from compresslib import notebook as nb

    nb.glue("test_np_float", np.float64(0.25)); nb.glue("test_np_int", np.int64(7))
    assert type(nb.GLUED["test_np_float"]) is float and type(nb.GLUED["test_np_int"]) is int
    with pytest.raises(ValueError, match="name"):
        nb.glue("", 1)


def test_glued_strings_have_no_markup_as_text_and_render_as_markdown():
    """{glue:text} pastes text verbatim: a glued string must not show Markdown backticks to the reader."""
    pytest.importorskip("myst_nb")
    from IPython.core.formatters import format_display_data

    from compresslib import notebook as nb

    nb.glue("test_member", "`resnet8_w8` is fastest")
    assert nb.GLUED["test_member"] == "`resnet8_w8` is fastest"       # the value itself is kept
    data, _ = format_display_data(nb.GluedText("`resnet8_w8` is fastest"))
    assert data["text/plain"] == "'resnet8_w8 is fastest'"            # {glue:text}: no backticks
    assert data["text/markdown"] == "`resnet8_w8` is fastest"          # {glue:md}: a code span
