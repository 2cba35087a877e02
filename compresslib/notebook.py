"""Helpers for the book's notebooks: numbers glued into prose, one figure style, the device to use.

Every chapter imports this once. It works with or without Jupyter Book: ``glue``
uses MyST-NB's when it is installed (the book build) and otherwise only keeps
the value (Colab, a plain Jupyter session), so a notebook runs anywhere.

The house style for figures (:func:`use_style`): figures at most :data:`COLUMN_WIDTH_IN`
inches wide and shown at 96 px per inch or more, so that text set at
:data:`MIN_FONT_PT` points or more is at least that large on the page; one colour per
framework (:data:`FRAMEWORK_COLORS`, with a marker each), and other series drawn from
:data:`OTHER_COLORS`, which never uses a framework's colour.

Example:
    >>> from compresslib import notebook as nb
    >>> nb.glue("demo_ratio", 4.0512, display=False)
    >>> nb.GLUED["demo_ratio"]
    4.0512
    >>> import numpy as np; nb.glue("demo_np", np.float32(0.5)); nb.GLUED["demo_np"]
    0.5
    >>> sorted(nb.FRAMEWORK_COLORS)
    ['keras', 'torch']
    >>> nb.framework_style("torch")
    {'color': '#D55E00', 'marker': 'o', 'label': 'PyTorch'}
    >>> nb.figsize(rows=2)
    (6.8, 5.6)
"""
from __future__ import annotations

import math
from typing import Any

# One colour per framework, everywhere in the book (colour-blind-safe Okabe–Ito pair), and one marker.
FRAMEWORK_COLORS = {"torch": "#D55E00", "keras": "#0072B2"}
FRAMEWORK_MARKERS = {"torch": "o", "keras": "s"}
FRAMEWORK_LABELS = {"torch": "PyTorch", "keras": "Keras"}
# Every other series (bit widths, encodings, layers...): the rest of the Okabe–Ito palette, so that a
# colour that means "PyTorch" or "Keras" in one figure never means something else in another.
OTHER_COLORS = ["#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#000000", "#999999", "#F0E442"]
NEUTRAL = "#555555"  # reference lines (the fp32 baseline, a ratio of 1)

# The book's text column is ~688 CSS px wide; at 96 px per inch that is 7.2 inches. Figures are drawn
# 6.8 inches wide at 96 dpi (retina PNGs carry twice the pixels and the 1x width), so they are shown
# unscaled and a point in the figure is a point on the page.
COLUMN_WIDTH_IN = 6.8
DPI = 96
MIN_FONT_PT = 9
ROW_HEIGHT_IN = 2.8

# name -> value of everything glued in this session (also what tests can read back)
GLUED: dict[str, Any] = {}


class GluedText:
    """A glued string, in two forms: plain text for ``{glue:text}`` and Markdown for ``{glue:md}``.

    ``{glue:text}`` pastes text verbatim, so Markdown in it (a `` `name` `` in backticks) would show its
    backticks to the reader: the plain form drops them. ``{glue:md}`` renders the Markdown form, code
    spans included. Written by :func:`glue` for every ``str`` value.

    Example:
        >>> t = GluedText("the member `resnet8_w8` is fastest")
        >>> repr(t), t._repr_markdown_()
        ("'the member resnet8_w8 is fastest'", 'the member `resnet8_w8` is fastest')
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:  # text/plain: MyST-NB strips the quotes with literal_eval
        return repr(self.text.replace("`", ""))

    def _repr_markdown_(self) -> str:
        return self.text


def glue(name: str, value: Any, display: bool = False) -> None:
    """Bind ``value`` to ``name`` for ``{glue:text}`name``` in Markdown cells (MyST-NB), and keep it in :data:`GLUED`.

    A theory page quotes it as ``{glue:text}`../notebooks/NN_topic.ipynb::name:.2f```. A string is glued as
    :class:`GluedText`: ``{glue:text}`` shows it without Markdown backticks, ``{glue:md}`` renders its Markdown.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()  # np.float64(0.5) -> 0.5: MyST-NB formats the repr, and "np.float64(0.5)" is no number
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab or plain Jupyter: nothing renders glued text, the value is still kept
        return
    _glue(name, GluedText(value) if isinstance(value, str) else value, display=display)


def pace(ratio: float, noise: float = 0.05, other: str = "it") -> str:
    """How a speed ratio (``other``'s time ÷ this model's) reads in prose, so a sentence cannot say
    "faster" where the table says slower: "faster than ``other``", "slower than ``other``" or, when the
    ratio is within ``noise`` (relative) of 1, "as fast as ``other`` within the timing noise".

    ``noise``: the relative spread the timing allows, e.g. the two latencies' relative half-IQRs added
    (:func:`timing_noise`); 5 % when not given (the drift of interleaved rounds on a shared machine).

    Example:
        >>> pace(1.12), pace(0.82, other="fp32")
        ('faster than it', 'slower than fp32')
        >>> pace(1.03), pace(1.12, noise=0.2)
        ('as fast as it within the timing noise', 'as fast as it within the timing noise')
    """
    if not ratio > 0:
        raise ValueError(f"ratio must be a positive number, got {ratio!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    if ratio > 1 + noise:
        return f"faster than {other}"
    if ratio < 1 / (1 + noise):
        return f"slower than {other}"
    return f"as fast as {other} within the timing noise"


def timing_noise(*reports: Any, floor: float = 0.05) -> float:
    """The relative noise of a ratio of the reports' latencies: their relative half-IQRs added (at least ``floor``).

    Example:
        >>> from types import SimpleNamespace as R
        >>> round(timing_noise(R(latency_ms=2.0, latency_spread_ms=0.2), R(latency_ms=1.0, latency_spread_ms=0.05)), 3)
        0.15
    """
    rel = sum((r.latency_spread_ms or 0.0) / r.latency_ms for r in reports if r.latency_ms)
    return max(floor, rel)


def ratio_ticks(values: list[float], max_ticks: int = 6) -> list[float]:
    """Ticks for a log axis of ratios: powers of two around ``values``, 1 always among them, thinned to
    every 2nd, 4th... power until at most ``max_ticks`` remain (so their labels never overprint).

    Example:
        >>> ratio_ticks([0.6, 1.8])
        [0.5, 1, 2]
        >>> ratio_ticks([0.2, 40.0])
        [0.25, 1, 4, 16, 64]
    """
    lo, hi = min(min(values), 1.0) / 2, max(max(values), 1.0) * 2
    k_lo, k_hi = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
    step = 1
    while len(range(k_lo - k_lo % step, k_hi + 1, step)) > max_ticks:
        step *= 2
    return [2.0 ** k if k < 0 else 2 ** k for k in range(k_lo - k_lo % step, k_hi + 1, step)
            if lo <= 2.0 ** k <= hi or k == 0]


def device() -> str:
    """``"cuda"`` when PyTorch sees a GPU (e.g. a Colab GPU runtime), else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The x86 vector extensions that decide which int8 and bfloat16 kernels run, in words.

    Read from ``/proc/cpuinfo`` (Linux); elsewhere PyTorch's own view of the CPU, or "unknown CPU".
    Chapters glue it into their prose instead of stating the machine from memory.
    """
    try:
        with open(cpuinfo) as f:
            flags = next(line.split(":", 1)[1].split() for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        try:
            import torch

            return f"{torch.backends.cpu.get_cpu_capability()} (as PyTorch sees it)"
        except ImportError:
            return "unknown CPU"
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    has = lambda *names: "with" if any(n in flags for n in names) else "no"
    return (f"x86 with {isa}, {has('avx512_vnni', 'avx_vnni')} VNNI, {has('avx512_bf16')} AVX-512 BF16, "
            f"{has('amx_int8')} AMX")


def figsize(rows: int = 1, height: float | None = None, width: float = COLUMN_WIDTH_IN) -> tuple[float, float]:
    """A figure size that fits the text column: full column width, ``rows`` rows of plots (or ``height`` inches)."""
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows must be a positive int, got {rows!r}")
    if width > COLUMN_WIDTH_IN:
        raise ValueError(f"width must be at most COLUMN_WIDTH_IN={COLUMN_WIDTH_IN} inches, got {width}")
    return (width, round(height if height is not None else ROW_HEIGHT_IN * rows, 2))


def framework_style(framework: str) -> dict[str, str]:
    """``color``, ``marker`` and ``label`` of a framework (``"torch"`` or ``"keras"``), for any plot call."""
    if framework not in FRAMEWORK_COLORS:
        raise ValueError(f"framework must be one of {sorted(FRAMEWORK_COLORS)}, got {framework!r}")
    return {"color": FRAMEWORK_COLORS[framework], "marker": FRAMEWORK_MARKERS[framework],
            "label": FRAMEWORK_LABELS[framework]}


def style_rc() -> dict[str, Any]:
    """The Matplotlib settings of the house style (what :func:`use_style` applies)."""
    from cycler import cycler

    return {
        "figure.figsize": figsize(),
        "figure.dpi": DPI,
        "savefig.dpi": 2 * DPI,
        "figure.constrained_layout.use": True,
        "figure.facecolor": "white",
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.titleweight": "semibold",
        "axes.labelsize": 10,
        "xtick.labelsize": MIN_FONT_PT,
        "ytick.labelsize": MIN_FONT_PT,
        "legend.fontsize": MIN_FONT_PT,
        "legend.title_fontsize": MIN_FONT_PT,
        "legend.frameon": False,
        "figure.titlesize": 11,
        "axes.prop_cycle": cycler(color=OTHER_COLORS),
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "lines.markersize": 5,
        "image.cmap": "RdBu",
    }


def use_style() -> None:
    """Apply the house style to Matplotlib and, inside IPython, show figures as sharp (retina) PNGs."""
    import matplotlib as mpl

    mpl.rcParams.update(style_rc())
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")
