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

    @property
    def sparsity(self) -> float:
        """Fraction of parameters that are exactly zero."""
        return 1.0 - self.nonzero_params / self.params if self.params else 0.0

    def summary(self) -> dict[str, Any]:
        """The headline figures as a flat dict (no per-layer rows)."""
        out = asdict(self)
        out.pop("layers")
        out["sparsity"] = self.sparsity
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
            ("parameters", f"{self.params:,}"),
            ("non-zero parameters", f"{self.nonzero_params:,} ({100 * (1 - self.sparsity):.1f} %)"),
            (f"file bytes ({self.file_format})", f"{self.file_bytes:,}"),
            ("gzipped file bytes", f"{self.gzip_bytes:,}"),
        ]
        if self.packed_bytes is not None:
            rows.append(("packed .clz bytes", f"{self.packed_bytes:,}"))
        rows.append(("MACs per sample", f"{self.macs:,}"))
        if self.latency_ms is not None:
            rows.append((
                "latency (median ± IQR/2)",
                f"{self.latency_ms:.3f} ± {self.latency_spread_ms or 0:.3f} ms, batch {self.batch_size}, "
                f"{self.threads} threads, {self.device}, {self.latency_runs} runs"
                + (f", load average {self.load_average:.2f}" if self.load_average is not None else ""),
            ))
        if self.accuracy is not None:
            rows.append(("accuracy", f"{100 * self.accuracy:.2f} %"))
        return rows

    def to_markdown(self, layers: bool = False) -> str:
        """A two-column markdown table; with ``layers=True`` the per-layer table follows."""
        lines = [f"**{self.name}**", "", "| quantity | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in self._table()]
        if layers and self.layers:
            lines += ["", "| layer | kind | params | non-zero | MACs |", "|---|---|---:|---:|---:|"]
            lines += [f"| {l.name} | {l.kind} | {l.params:,} | {l.nonzero_params:,} | {l.macs:,} |" for l in self.layers]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        body = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in self._table())
        return f"<table><caption>{html.escape(self.name)}</caption>{body}</table>"

    def __str__(self) -> str:
        return self.to_markdown()


_COLUMNS = [  # (key, header, formatter)
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
]


@dataclass(repr=False)
class Comparison:
    """Several reports against a baseline: ratios > 1 mean smaller / faster than the baseline."""

    rows: list[dict[str, Any]]

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        cols = [c for c in _COLUMNS if any(r.get(c[0]) is not None for r in self.rows)]
        header = [c[1] for c in cols]
        body = [["" if r.get(key) is None else fmt(r[key]) for key, _, fmt in cols] for r in self.rows]
        return header, body

    def to_markdown(self) -> str:
        header, body = self._cells()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        header, body = self._cells()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def __str__(self) -> str:
        return self.to_markdown()

    __repr__ = __str__


def compare(reports: Sequence[Report], baseline: int | Report = 0) -> Comparison:
    """Compare ``reports`` against ``baseline`` (an index into ``reports`` or a Report).

    Adds ``size_ratio`` (baseline file bytes / file bytes; packed bytes when
    present), ``speedup`` (baseline latency / latency) and ``accuracy_drop_pt``
    (percentage points lost against the baseline).
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
        rows.append(row)
    return Comparison(rows)


def plot_accuracy_vs_bytes(reports: Sequence[Report], ax=None, label_points: bool = True):
    """Scatter accuracy (%) against file bytes (log scale), one marker per framework."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    markers = {"torch": "o", "keras": "s"}
    for fw in sorted({r.framework for r in reports}):
        pts = [r for r in reports if r.framework == fw and r.accuracy is not None]
        ax.scatter([r.packed_bytes or r.file_bytes for r in pts], [100 * r.accuracy for r in pts],
                   marker=markers.get(fw, "^"), label=fw, s=50)
        if label_points:
            for r in pts:
                ax.annotate(r.name, (r.packed_bytes or r.file_bytes, 100 * r.accuracy), fontsize=8,
                            xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("bytes on disk")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax
