"""``Report``: what ``measure()`` found, as a table in Jupyter, markdown, a dict; and comparisons.

Example:
    >>> from compresslib.report import Report, compare
    >>> a = Report(name="fp32", framework="torch", params=100, nonzero_params=100, file_bytes=400,
    ...            gzip_bytes=380, macs=1000, latency_ms=2.0, accuracy=0.98)
    >>> b = Report(name="int8", framework="torch", params=100, nonzero_params=100, file_bytes=100,
    ...            gzip_bytes=90, macs=1000, latency_ms=0.5, accuracy=0.975)
    >>> row = compare([a, b]).rows[1]
    >>> row["size_ratio"], row["speedup"], round(row["accuracy_drop_pt"], 2)
    (4.0, 4.0, 0.5)
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import numpy as np


@dataclass
class LayerStats:
    """Parameters, non-zeros and multiply-accumulates of one layer."""

    name: str
    kind: str
    params: int
    nonzero_params: int
    macs: int


@dataclass
class Report:
    """Measurements of one model. Sizes in bytes, latency in milliseconds, accuracy in 0..1."""

    name: str
    framework: str
    params: int
    nonzero_params: int
    file_bytes: int
    gzip_bytes: int
    macs: int
    latency_ms: Optional[float] = None
    latency_spread_ms: Optional[float] = None  # half the inter-quartile range
    latency_runs: int = 0
    batch_size: Optional[int] = None
    threads: Optional[int] = None
    device: str = "cpu"
    load_average: Optional[float] = None  # 1-minute load average when latency was measured (os.getloadavg)
    accuracy: Optional[float] = None
    file_format: str = ""
    packed_bytes: Optional[int] = None
    layers: list[LayerStats] = field(default_factory=list)
    # each test sample's correctness (a boolean array), when accuracy was measured: the paired test of
    # ``compare`` needs it; not part of ``summary()``/``to_dict()``
    correct: Optional[Any] = field(default=None, repr=False, compare=False)
    # parameters held by more than one layer (tied weights), counted once in ``params``
    shared_params: int = 0
    # layers with weights whose work ``macs`` does not count (element-wise scales, normalizations), as "name (Kind)"
    macs_not_counted: list[str] = field(default_factory=list)

    @property
    def sparsity(self) -> float:
        """Fraction of parameters that are exactly zero."""
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0

    @property
    def accuracy_interval(self) -> Optional[tuple[float, float]]:
        """The 95 % (Wilson) interval of ``accuracy``, when the per-sample results are known."""
        if self.correct is None or not len(self.correct):
            return None
        from compresslib.core.stats import wilson_interval

        return wilson_interval(int(self.correct.sum()), int(len(self.correct)))

    def summary(self) -> dict[str, Any]:
        """The headline figures as a flat dict (no per-layer rows)."""
        out = asdict(self)
        out.pop("layers")
        out.pop("correct")
        out["sparsity"] = self.sparsity
        interval = self.accuracy_interval
        out["accuracy_low"], out["accuracy_high"] = interval if interval else (None, None)
        out["test_samples"] = int(len(self.correct)) if self.correct is not None else None
        return out

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable."""
        out = self.summary()
        out["layers"] = [asdict(layer) for layer in self.layers]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def _table(self) -> list[tuple[str, str]]:
        rows = [
            ("framework", self.framework),
            ("parameters", f"{self.params:,}" + (f" ({self.shared_params:,} shared by several layers, counted once)"
                                                 if self.shared_params else "")),
            ("non-zero parameters", f"{self.nonzero_params:,} ({100 * (1 - self.sparsity):.1f} %)"),
            (f"file bytes ({self.file_format})", f"{self.file_bytes:,}"),
            ("gzipped file bytes", f"{self.gzip_bytes:,}"),
        ]
        if self.packed_bytes is not None:
            rows.append(("packed .clz bytes", f"{self.packed_bytes:,}"))
        rows.append(("MACs per sample", f"{self.macs:,}"))
        if self.macs_not_counted:
            shown = ", ".join(self.macs_not_counted[:6]) + (f" and {len(self.macs_not_counted) - 6} more"
                                                             if len(self.macs_not_counted) > 6 else "")
            rows.append(("weighted layers not in MACs", shown))
        if self.latency_ms is not None:
            rows.append((
                "latency (median ± IQR/2)",
                f"{self.latency_ms:.3f} ± {self.latency_spread_ms or 0:.3f} ms, batch {self.batch_size}, "
                f"{self.threads} threads, {self.device}, {self.latency_runs} runs"
                + (f", load average {self.load_average:.2f}" if self.load_average is not None else ""),
            ))
        if self.accuracy is not None:
            interval = self.accuracy_interval
            rows.append(("accuracy", f"{100 * self.accuracy:.2f} %" + (
                f" (95 % CI {100 * interval[0]:.2f}–{100 * interval[1]:.2f}, {len(self.correct):,} samples)"
                if interval else "")))
        return rows

    def to_markdown(self, layers: bool = False) -> str:
        """A two-column markdown table; with ``layers=True`` the per-layer table follows."""
        lines = [f"**{self.name}**", "", "| quantity | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in self._table()]
        if layers and self.layers:
            lines += ["", "| layer | kind | params | non-zero | MACs |", "|---|---|---:|---:|---:|"]
            lines += [f"| {l.name} | {l.kind} | {l.params:,} | {l.nonzero_params:,} | {l.macs:,} |" for l in self.layers]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><th {_TH_LEFT}>{html.escape(k)}</th><td {_TD_NUM}>{html.escape(v)}</td></tr>"
                       for k, v in self._table())
        return (f'<div {_WRAP}><table class="dataframe compresslib-report" {_TABLE}>'
                f'<caption {_CAPTION}>{html.escape(self.name)}</caption><tbody>{body}</tbody></table></div>')

    def __str__(self) -> str:
        return self.to_markdown()


def _si(n: float) -> str:
    """A count in three significant digits with a k/M/G suffix: ``_si(266610) == '267 k'``."""
    for factor, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.3g} {suffix}"
    return f"{n:,}" if isinstance(n, int) else f"{n:.3g}"


def _bytes(n: int) -> str:
    """Bytes in decimal units, three significant digits: ``_bytes(328831) == '329 kB'``."""
    return _si(n) + "B" if n >= 1000 else f"{n} B"


# Inline styles, so a table looks the same in the book, JupyterLab, classic Jupyter and Colab (no <style>
# block to strip). Numbers right-aligned in tabular figures; the wrapper scrolls sideways on a narrow
# screen instead of the page. class="dataframe" picks up the book theme's table colours.
_WRAP = 'style="max-width:100%;overflow-x:auto"'
_TABLE = 'style="border-collapse:collapse;font-size:0.8em;font-variant-numeric:tabular-nums;margin:0"'
_CAPTION = 'style="caption-side:top;text-align:left;font-weight:600;padding:0 0 0.3em 0"'
_TH = 'style="text-align:right;vertical-align:bottom;padding:0.3em 0.35em;line-height:1.2"'
_TH_LEFT = 'style="text-align:left;vertical-align:bottom;padding:0.3em 0.35em;line-height:1.2"'
_TD_NUM = 'style="text-align:right;padding:0.2em 0.35em;white-space:nowrap"'
_TD_TEXT = 'style="text-align:left;padding:0.2em 0.35em;white-space:nowrap"'
_TD_NAME = 'style="text-align:left;padding:0.2em 0.35em;min-width:8em"'  # long names wrap at spaces
_MUTED = 'style="opacity:0.7;font-size:0.9em"'

_COLUMNS = [  # (key, header, formatter): every column, exact values (markdown, and the HTML "all columns" table)
    ("name", "model", str),
    ("framework", "framework", str),
    ("params", "params", "{:,}".format),
    ("nonzero_params", "non-zero", "{:,}".format),
    ("file_bytes", "file bytes", "{:,}".format),
    ("gzip_bytes", "gzip bytes", "{:,}".format),
    ("packed_bytes", "packed bytes", "{:,}".format),
    ("macs", "MACs", "{:,}".format),
    ("latency_ms", "latency ms", "{:.3f}".format),
    ("accuracy", "accuracy %", lambda v: f"{100 * v:.2f}"),
    ("size_ratio", "size ×", "{:.2f}".format),
    ("speedup", "speedup ×", "{:.2f}".format),
    ("accuracy_drop_pt", "acc. drop pt", "{:+.2f}".format),
    ("drop_interval_pt", "drop 95 % CI pt", lambda v: f"{v[0]:+.2f} to {v[1]:+.2f}"),
    ("paired_p", "McNemar p", "{:.2g}".format),
    ("paired_verdict", "vs baseline", str),
]

_COMPACT = [  # what a reader compares first, in short units, so the table fits a ~700 px column
    ("name", "model", str),
    ("params", "params", _si),  # MACs are in the full table: parameters and size say "how big" here
    ("stored_bytes", "size", _bytes),  # the packed .clz where there is one, else the native file: what size × compares
    ("latency_ms", "latency ms", "{:.3g}".format),
    ("accuracy", "accuracy %", lambda v: f"{100 * v:.2f}"),
    ("size_ratio", "size ×", "{:.2f}".format),
    ("speedup", "speedup ×", "{:.2f}".format),
    ("accuracy_drop_pt", "drop pt", "{:+.2f}".format),
    ("paired_verdict", "vs baseline", str),
]
_TEXT_KEYS = {"name", "framework", "paired_verdict"}


def _value(row: dict[str, Any], key: str) -> Any:
    """``row[key]``; ``stored_bytes`` is the packed size where there is one, else the file's."""
    if key == "stored_bytes":
        return row.get("packed_bytes") if row.get("packed_bytes") is not None else row.get("file_bytes")
    return row.get(key)


@dataclass(repr=False)
class Comparison:
    """Several reports against a baseline: ratios > 1 mean smaller / faster than the baseline.

    In Jupyter it shows a compact table that fits the book's 688 px column (at most 8 columns: short units,
    the columns a reader compares first, one size column, a column that is the same in every row named once
    under it) and, folded under it, every column with exact values; :meth:`full` shows only that one,
    :meth:`to_markdown` and :meth:`to_html` give either form.
    """

    rows: list[dict[str, Any]]

    def _constant(self, key: str) -> bool:
        values = [_value(r, key) for r in self.rows]
        return len(self.rows) > 1 and key not in _TEXT_KEYS and not key.endswith("_ratio") and len(set(values)) == 1

    def _cells(self, columns=_COLUMNS, drop_constant: bool = False) -> tuple[list[tuple[str, str]], list[list[str]]]:
        cols = [c for c in columns if any(_value(r, c[0]) is not None for r in self.rows)]
        if drop_constant:
            cols = [c for c in cols if not self._constant(c[0])]
        header = [(key, title) for key, title, _ in cols]
        body = [["" if _value(r, key) is None else fmt(_value(r, key)) for key, _, fmt in cols] for r in self.rows]
        return header, body

    def to_markdown(self) -> str:
        """Every column, exact values, numbers right-aligned."""
        header, body = self._cells()
        lines = ["| " + " | ".join(t for _, t in header) + " |",
                 "|" + "".join("---|" if k in _TEXT_KEYS else "---:|" for k, _ in header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)

    def _html_table(self, columns, compact: bool) -> str:
        header, body = self._cells(columns, drop_constant=compact)
        frameworks = {r.get("framework") for r in self.rows}
        head = "".join(f"<th {_TH_LEFT if k in _TEXT_KEYS else _TH}>{html.escape(t)}</th>" for k, t in header)
        rows = []
        for r, cells in zip(self.rows, body):
            tds = []
            for (key, _), cell in zip(header, cells):
                text = html.escape(cell)
                if key == "name" and compact and len(frameworks) > 1 and r.get("framework") not in cell:
                    text += f" <span {_MUTED}>{html.escape(str(r.get('framework')))}</span>"
                style = _TD_NAME if key == "name" and compact else _TD_TEXT if key in _TEXT_KEYS else _TD_NUM
                tds.append(f"<td {style}>{text}</td>")
            rows.append("<tr>" + "".join(tds) + "</tr>")
        return (f'<table class="dataframe compresslib-comparison" {_TABLE}><thead><tr>{head}</tr></thead>'
                f'<tbody>{"".join(rows)}</tbody></table>')

    def to_html(self, compact: bool = True) -> str:
        """HTML: the compact table with every column folded under it, or (``compact=False``) every column."""
        if not compact:
            return f"<div {_WRAP}>{self._html_table(_COLUMNS, compact=False)}</div>"
        n = len(self._cells()[0])
        same = [(title, fmt(_value(self.rows[0], key))) for key, title, fmt in _COMPACT
                if _value(self.rows[0], key) is not None and self._constant(key)]
        note = (f'<div {_MUTED}>the same in every row: {html.escape(" · ".join(f"{t} {v}" for t, v in same))}</div>'
                if same else "")
        return (f"<div {_WRAP}>{self._html_table(_COMPACT, compact=True)}</div>{note}"
                f'<details style="margin-top:0.3em"><summary {_MUTED}>all {n} columns, exact values</summary>'
                f"<div {_WRAP}>{self._html_table(_COLUMNS, compact=False)}</div></details>")

    def _repr_html_(self) -> str:
        return self.to_html()

    def full(self) -> "_Html":
        """Every column with exact values, shown as one table in Jupyter (it scrolls sideways in a narrow column).

        Example:
            >>> a = Report(name="a", framework="torch", params=1, nonzero_params=1, file_bytes=4, gzip_bytes=4, macs=1)
            >>> "gzip bytes" in compare([a]).full()._repr_html_()
            True
        """
        return _Html(self.to_html(compact=False))

    def __str__(self) -> str:
        return self.to_markdown()

    __repr__ = __str__


@dataclass(repr=False)
class _Html:
    """Ready HTML that Jupyter displays as it is."""

    html: str

    def _repr_html_(self) -> str:
        return self.html


def compare(reports: Sequence[Report], baseline: int | Report = 0) -> Comparison:
    """Compare ``reports`` against ``baseline`` (an index into ``reports`` or a Report).

    Adds ``size_ratio`` (baseline file bytes / file bytes; packed bytes when
    present), ``speedup`` (baseline latency / latency) and ``accuracy_drop_pt``
    (percentage points lost against the baseline). When both reports carry per-sample
    results (``measure(..., data=...)`` records them) on the same test set, the drop is judged
    with McNemar's exact test (:func:`compresslib.core.stats.paired`): ``drop_interval_pt``
    (its 95 % interval), ``paired_p`` and ``paired_verdict`` ("within noise", "lower", "higher").
    """
    reports = list(reports)
    if not reports or not all(isinstance(r, Report) for r in reports):
        raise TypeError("reports must be a non-empty sequence of Report")
    if isinstance(baseline, int):
        if not -len(reports) <= baseline < len(reports):
            raise ValueError(f"baseline index {baseline} is out of range for {len(reports)} reports")
        base = reports[baseline]
    elif isinstance(baseline, Report):
        base = baseline
    else:
        raise TypeError(f"baseline must be an index or a Report, got {type(baseline).__name__}")
    rows = []
    for r in reports:
        row = r.summary()
        size = r.packed_bytes if r.packed_bytes is not None else r.file_bytes
        row["size_ratio"] = base.file_bytes / size if size else None
        row["speedup"] = (base.latency_ms / r.latency_ms) if (base.latency_ms and r.latency_ms) else None
        row["accuracy_drop_pt"] = (
            100.0 * (base.accuracy - r.accuracy) if base.accuracy is not None and r.accuracy is not None else None
        )
        row.update(_paired_columns(base, r))
        rows.append(row)
    return Comparison(rows)


def _paired_columns(base: Report, r: Report) -> dict[str, Any]:
    """McNemar's test of ``r`` against ``base`` on the same test samples (empty when either lacks them)."""
    if r is base or base.correct is None or r.correct is None or len(base.correct) != len(r.correct):
        return {}
    from compresslib.core.stats import paired

    result = paired(None, np.asarray(base.correct, dtype=bool), np.asarray(r.correct, dtype=bool))
    lo, hi = result.difference_interval_pt
    return {"drop_interval_pt": (-hi, -lo), "paired_p": result.p_value, "paired_verdict": result.verdict}


def plot_accuracy_vs_bytes(reports: Sequence[Report], ax=None, label_points: bool = True):
    """Scatter accuracy (%) against bytes on disk (log scale), in the book's colour and marker per framework."""
    import matplotlib.pyplot as plt

    from compresslib.notebook import FRAMEWORK_COLORS, FRAMEWORK_LABELS, FRAMEWORK_MARKERS, MIN_FONT_PT, figsize

    if ax is None:
        _, ax = plt.subplots(figsize=figsize())
    present = {r.framework for r in reports}
    for fw in [f for f in FRAMEWORK_COLORS if f in present] + sorted(present - set(FRAMEWORK_COLORS)):
        pts = [r for r in reports if r.framework == fw and r.accuracy is not None]
        ax.scatter([r.packed_bytes or r.file_bytes for r in pts], [100 * r.accuracy for r in pts],
                   marker=FRAMEWORK_MARKERS.get(fw, "^"), color=FRAMEWORK_COLORS.get(fw), label=FRAMEWORK_LABELS.get(fw, fw),
                   s=36, zorder=3)
        if label_points:
            for r in pts:
                ax.annotate(r.name, (r.packed_bytes or r.file_bytes, 100 * r.accuracy), fontsize=MIN_FONT_PT,
                            xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax
