"""Progress bars that stay quiet in CI, notebooks being executed, and pipes."""
from __future__ import annotations

import os
import sys
from typing import Iterable, Optional, TypeVar

T = TypeVar("T")


def interactive() -> bool:
    """True when a person watches a terminal: stderr is a TTY and ``CI`` is not set."""
    return sys.stderr.isatty() and not os.environ.get("CI")


def progress(iterable: Iterable[T], enabled: Optional[bool] = None, **kwargs) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled`` (default: only when interactive)."""
    if enabled is None:
        enabled = interactive()
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)
