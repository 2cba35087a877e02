"""Helpers for the book's notebooks: numbers glued into prose, one plot style, the device to use.

Every chapter imports this once. It works with or without Jupyter Book: ``glue``
uses MyST-NB's when it is installed (the book build) and otherwise only keeps
the value (Colab, a plain Jupyter session), so a notebook runs anywhere.

Example:
    >>> from compresslib import notebook as nb
    >>> nb.glue("demo_ratio", 4.0512, display=False)
    >>> nb.GLUED["demo_ratio"]
    4.0512
    >>> sorted(nb.FRAMEWORK_COLORS)
    ['keras', 'torch']
"""
from __future__ import annotations

from typing import Any

# One colour per framework, everywhere in the book (colour-blind-safe Okabe–Ito pair).
FRAMEWORK_COLORS = {"torch": "#D55E00", "keras": "#0072B2"}

# name -> value of everything glued in this session (also what tests can read back)
GLUED: dict[str, Any] = {}


def glue(name: str, value: Any, display: bool = False) -> None:
    """Bind ``value`` to ``name`` for ``{glue:text}`name``` in Markdown cells (MyST-NB), and keep it in :data:`GLUED`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    GLUED[name] = value
    try:
        from myst_nb import glue as _glue
    except ImportError:  # Colab or plain Jupyter: nothing renders glued text, the value is still kept
        return
    _glue(name, value, display=display)


def device() -> str:
    """``"cuda"`` when PyTorch sees a GPU (e.g. a Colab GPU runtime), else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
