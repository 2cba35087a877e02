"""The book as a reader sees it: every page of ``_toc.yml`` opened in a real, offline, headless Chromium.

The book is built from the notebooks' stored outputs (``execute_notebooks: "off"``, as in
``tests/test_book.py``), served from ``127.0.0.1``, and every page is opened at desktop width
(1280 px) and at phone width (390 px). A page fails on:

* any failed request (an HTTP error, a blocked or unreachable URL: anything outside the build is blocked,
  so a CDN script fails here exactly as it does for a reader without internet);
* any page error other than the known upstream one (:data:`KNOWN_PAGE_ERRORS`);
* any formula not rendered: the ``mjx-container`` count must equal the math count, and no TeX error;
* any image not loaded;
* pipe-table text in a paragraph (a Markdown table rendered as CommonMark);
* any table wider than its column at 1280 px;
* raw MyST markup in the text (``{glue:...}`` or a ``{role}`` followed by a backtick: a role that did not
  render, e.g. one written inside backticks), except in code blocks;
* any code block whose lines are wider than its box at 1280 px (the reader would scroll inside it);
* any figure (an image of a notebook output or of a ``{figure}``) without a caption or without alt text;
* any sideways scroll of the page at 390 px.

Math is also checked over ``file://`` (a build opened from disk), and the search page must find
results. Screenshots of every page at both widths land in ``_build/screenshots/`` for humans.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it with apt-get), driven by
Playwright with ``executable_path`` (never ``playwright install``, which downloads a browser).
Without Chromium or Playwright the test skips with a message, except where
``COMPRESSLIB_REQUIRE_BROWSER=1`` (set by ``.ci/run``): there it fails.
"""
from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("COMPRESSLIB_REQUIRE_BROWSER") == "1"
DESKTOP, PHONE = (1280, 900), (390, 844)

# The only page error allowed, with its reason. Jupyter Book 1.0.4's theme inserts the sphinx-thebe
# configuration script twice, so every page (even an empty book's) logs
# "Identifier 'THEBE_JS_URL' has already been declared". Upstream; harmless (thebe is not used).
KNOWN_PAGE_ERRORS = {"THEBE_JS_URL": "Jupyter Book 1.0.4 declares the thebe script twice (upstream)"}

# Chromium flags that keep the browser off the network and quiet: every host name other than the
# local server resolves to nothing, and no background service (updates, sync, metrics) starts.
CHROMIUM_ARGS = [
    "--no-sandbox",                      # CI runs as root
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
]

# Runs in the page; returns the measurements every check reads. `wide` is at the current viewport.
PAGE_PROBE = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
    if (MathJax.typesetPromise) { await MathJax.typesetPromise(); }
  }
  const math = [...document.querySelectorAll('.math')].filter(e => !e.closest('.math') || e.closest('.math') === e);
  const images = await Promise.all([...document.images].map(async img => {
    img.loading = 'eager';
    let ok = true;
    try { await img.decode(); } catch (e) { ok = false; }
    return {src: img.getAttribute('src'), ok: ok && img.naturalWidth > 0};
  }));
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  const st = getComputedStyle(article);
  const column = article.clientWidth - parseFloat(st.paddingLeft) - parseFloat(st.paddingRight);
  // tables a reader sees: not inside a closed <details> ("all columns" on demand scrolls in its own box)
  const tables = [...article.querySelectorAll('table')].filter(t => t.checkVisibility()).map((t, i) => ({
    index: i, caption: (t.caption ? t.caption.textContent : t.rows[0] ? t.rows[0].textContent : '').trim().slice(0, 60),
    width: Math.max(t.scrollWidth, t.getBoundingClientRect().width),
  }));
  // MyST markup that did not render: a {glue...} or {role}` left as text (inside code spans too: a role in
  // backticks is the usual cause), anywhere but in code blocks (<pre>), where a chapter may show MyST source
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  const rawMarkup = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, script, style')) continue;
    const m = n.textContent.match(/\{glue(:[a-z]+)?\}|\{[a-z]+(:[a-z]+)?\}`/);
    if (m) rawMarkup.push(n.textContent.slice(Math.max(0, m.index - 20), m.index + 40).trim());
  }
  // code blocks whose lines do not fit their box (the reader scrolls sideways inside the cell); a folded
  // (hide-input) cell is not checked until opened
  const wideCode = [...article.querySelectorAll('pre')]
      .filter(p => p.checkVisibility() && !p.closest('.cell_output'))   // code, not printed output
      .filter(p => p.scrollWidth > p.clientWidth + 1)
      .map(p => ({width: p.scrollWidth, box: p.clientWidth,
                  line: p.textContent.split('\n').reduce((a, b) => b.length > a.length ? b : a, '').trim().slice(0, 70)}));
  // figures a reader sees without a caption or alt text: images of notebook outputs and of {figure}s
  const figures = [...article.querySelectorAll('.cell_output img, figure img, img.figure')]
      .filter(i => i.checkVisibility())
      .map(i => ({src: (i.getAttribute('src') || '').split('/').pop().slice(0, 40),
                  caption: !!(i.closest('figure') && i.closest('figure').querySelector('figcaption')
                              && i.closest('figure').querySelector('figcaption').textContent.trim()),
                  alt: (i.getAttribute('alt') || '').trim().length > 0}));
  const pipeText = [...document.querySelectorAll('p')].map(p => p.textContent)
      .filter(t => /\|\s*:?(-{3,}|[\u2013\u2014]+):?\s*\|/.test(t)          // a separator row (smartquotes turn --- into a dash)
                   || t.split('\n').filter(l => /^\s*\|.*\|\s*$/.test(l)).length >= 2)
      .map(t => t.slice(0, 80));
  return {
    math: math.length,
    mjx: document.querySelectorAll('mjx-container').length,
    mathWithout: math.filter(e => !e.querySelector('mjx-container')).map(e => e.textContent.slice(0, 60)),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 60)),
    images: images.filter(i => !i.ok).map(i => i.src),
    imageCount: images.length,
    column: column,
    wideTables: tables.filter(t => t.width > column + 1),
    pipeText: pipeText,
    rawMarkup: rawMarkup,
    wideCode: wideCode,
    uncaptioned: figures.filter(f => !f.caption || !f.alt),
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  };
}
"""


def toc_pages() -> list[str]:
    """Every document of ``_toc.yml`` (root first), as paths without suffix."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [str(Path(p).with_suffix("")) for p in pages]


PAGES = toc_pages()


def _unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (COMPRESSLIB_REQUIRE_BROWSER=1: .ci/run needs the browser test to run)")
    pytest.skip(f"browser test skipped: {reason}. Install Debian's chromium (apt-get install chromium) "
                "and `pip install playwright` (no `playwright install`), or set CHROMIUM=/path/to/chromium")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Python package playwright is not installed")
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory, browser):
    """The book built from stored outputs, and a local HTTP server for it: (html folder, base URL)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    if not jb.exists():
        _unavailable("jupyter-book is not installed")
    out = tmp_path_factory.mktemp("book")
    config = (ROOT / "_config.yml").read_text().replace("execute_notebooks: cache", 'execute_notebooks: "off"')
    assert 'execute_notebooks: "off"' in config
    (out / "_config.yml").write_text(config)
    proc = subprocess.run([str(jb), "build", str(ROOT), "--config", str(out / "_config.yml"), "--path-output", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    html = out / "_build" / "html"
    handler = functools.partial(_QuietHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    yield html, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    shutil.rmtree(out, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output readable
        pass


def open_page(browser, url: str, viewport: tuple[int, int], allowed_prefixes: tuple[str, ...]):
    """Open ``url``; returns (page, problems list that the page's events keep filling)."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, service_workers="block")
    page = context.new_page()
    problems: list[str] = []

    def route(r):
        if r.request.url.startswith(allowed_prefixes) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            problems.append(f"request outside the build: {r.request.url}")
            r.abort("blockedbyclient")

    page.route("**/*", route)
    page.on("requestfailed", lambda req: problems.append(f"failed request: {req.url} ({req.failure})")
            if not any(req.url in p for p in problems) else None)
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
    page.on("pageerror", lambda exc: None if any(k in str(exc) for k in KNOWN_PAGE_ERRORS)
            else problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console error: {msg.text}")
            if msg.type == "error" and not any(k in msg.text for k in KNOWN_PAGE_ERRORS)
            and not msg.text.startswith("Failed to load resource") else None)
    page.goto(url, wait_until="load")
    return page, problems


def check_page(probe: dict, at_desktop: bool) -> list[str]:
    """Problems found in one probe (see ``PAGE_PROBE``)."""
    problems = []
    if probe["mjx"] != probe["math"] or probe["mathWithout"]:
        problems.append(f"formulas not rendered: {probe['mjx']} mjx-container for {probe['math']} math elements"
                        + (f", e.g. {probe['mathWithout'][:3]}" if probe["mathWithout"] else ""))
    if probe["mathErrors"]:
        problems.append(f"TeX errors: {probe['mathErrors'][:3]}")
    if probe["images"]:
        problems.append(f"images not loaded: {probe['images'][:5]}")
    if probe["pipeText"]:
        problems.append(f"pipe-table text in a paragraph (Markdown table rendered as CommonMark): {probe['pipeText'][:2]}")
    if probe["rawMarkup"]:
        problems.append(f"raw MyST markup in the text (a role or glue that did not render): {probe['rawMarkup'][:3]}")
    if at_desktop and probe["wideCode"]:
        problems.append(f"{len(probe['wideCode'])} code block(s) wider than their box (wrap lines at ~80 characters), "
                        f"e.g. {probe['wideCode'][0]['width']} px in {probe['wideCode'][0]['box']} px: "
                        f"{probe['wideCode'][0]['line']!r}")
    if probe["uncaptioned"]:
        problems.append(f"figures without caption or alt text: "
                        + "; ".join(f"{f['src']} (caption: {f['caption']}, alt: {f['alt']})" for f in probe["uncaptioned"][:3]))
    if at_desktop and probe["wideTables"]:
        problems.append(f"tables wider than the {probe['column']:.0f} px column: "
                        + "; ".join(f"#{t['index']} {t['width']:.0f} px ({t['caption']!r})" for t in probe["wideTables"]))
    if not at_desktop and probe["scrollWidth"] > probe["innerWidth"]:
        problems.append(f"page scrolls sideways at {probe['innerWidth']} px: {probe['scrollWidth']} px wide")
    return problems


def shot_name(page_path: str, width: int) -> Path:
    return SCREENSHOTS / f"{page_path.replace('/', '__')}-{width}.png"


@pytest.mark.parametrize("page_path", PAGES)
def test_page_as_a_reader_sees_it(site, browser, page_path):
    html, base = site
    assert (html / f"{page_path}.html").is_file(), f"{page_path}.html was not built"
    found = []
    for width, height in (DESKTOP, PHONE):
        page, problems = open_page(browser, f"{base}/{page_path}.html", (width, height), (base,))
        probe = page.evaluate(PAGE_PROBE)
        page.screenshot(path=str(shot_name(page_path, width)), full_page=True)
        found += [f"[{width} px] {p}" for p in problems + check_page(probe, width == DESKTOP[0])]
        page.context.close()
    assert not found, f"{page_path}:\n  " + "\n  ".join(dict.fromkeys(found))


@pytest.mark.parametrize("page_path", [p for p in PAGES])
def test_math_renders_from_disk(site, browser, page_path):
    """Opened from disk (file://), as after `make book`: MathJax and its fonts come from the build too."""
    html, _ = site
    url = (html / f"{page_path}.html").as_uri()
    page, problems = open_page(browser, url, DESKTOP, (html.as_uri(),))
    probe = page.evaluate(PAGE_PROBE)
    page.context.close()
    found = problems + [p for p in check_page(probe, True) if p.startswith(("formulas", "TeX", "images"))]
    assert not found, f"{page_path} over file://:\n  " + "\n  ".join(dict.fromkeys(found))


@pytest.mark.parametrize("term", ["quantization", "Tucker", "bitmask"])
def test_search_finds_pages(site, browser, term):
    _, base = site
    page, problems = open_page(browser, f"{base}/search.html?q={term}", DESKTOP, (base,))
    page.wait_for_function("() => document.querySelector('#search-results .search-summary, #search-results p')"
                           " && !/Preparing search|Searching/.test(document.querySelector('#search-results').textContent)",
                           timeout=30_000)
    hits = page.locator("#search-results ul.search li").count()
    page.context.close()
    assert not problems, problems
    assert hits > 0, f"search for {term!r} returned no results"


def test_the_checks_catch_each_defect(browser, tmp_path):
    """The probe itself can fail: a page with every defect put back is flagged for each of them."""
    (tmp_path / "bad.html").write_text("""<!doctype html><html><head><meta name=viewport content="width=device-width">
      <script src="https://cdn.example.invalid/mathjax/tex-chtml.js"></script></head><body>
      <article class="bd-article" style="width:600px">
        <p>| a | b |
|---|---|
| 1 | 2 |</p>
        <span class="math notranslate nohighlight">\\(x^2\\)</span>
        <img src="missing.png" alt="gone">
        <table><tr>""" + "".join(f"<td>column{i:02d}-wide-cell</td>" for i in range(12)) + """</tr></table>
        <div style="width:900px">wide block</div>
        <p>The student is <code>{glue:text}</code>student_torch``, with {glue:text}`ratio` fewer.</p>
        <div class="highlight"><pre style="width:500px;overflow-x:auto">short line
""" + "x = " + "1 + " * 60 + """1</pre></div>
        <div class="cell_output"><img src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="></div>
      </article><script>throw new Error("boom")</script></body></html>""")
    url = (tmp_path / "bad.html").as_uri()
    page, problems = open_page(browser, url, DESKTOP, (tmp_path.as_uri(),))
    desktop = check_page(page.evaluate(PAGE_PROBE), True)
    page.context.close()
    page, _ = open_page(browser, url, PHONE, (tmp_path.as_uri(),))
    phone = check_page(page.evaluate(PAGE_PROBE), False)
    page.context.close()
    text = "\n".join(problems + desktop + phone)
    for expected in ("request outside the build", "page error: boom", "formulas not rendered",
                     "images not loaded", "pipe-table text", "tables wider than", "scrolls sideways",
                     "raw MyST markup", "code block(s) wider than their box", "figures without caption or alt text"):
        assert expected in text, f"{expected!r} not flagged in:\n{text}"
    assert any(re.search(r"failed request: .*missing\.png", p) for p in problems), problems
