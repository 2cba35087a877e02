"""One thread count for every framework and runtime compresslib runs and times.

A latency means little without the number of threads that produced it, and a ratio means nothing when
its two sides ran with different counts (PyTorch uses every core by default, TensorFlow its own pools,
ONNX Runtime, OpenVINO and LiteRT theirs). :func:`set_threads` sets one count for all of them: PyTorch's
intra-op pool, TensorFlow's intra-op pool (inter-op 1: on these graphs a second inter-op thread did not
help, see DESIGN), and the default of every runtime model compresslib loads afterwards
(:class:`compresslib.deploy.OnnxRuntimeModel`, OpenVINO, LiteRT). The book calls it once per chapter
with all cores, the way a deployed model runs.

Frameworks are only configured when already imported (this module imports neither). TensorFlow fixes
its pools at its first operation; a later call leaves TensorFlow as it is and says so in the return
value's ``"tensorflow"`` entry.

Example:
    >>> import compresslib as cl
    >>> cl.set_threads(1)["threads"]
    1
    >>> cl.get_threads()
    1
    >>> cl.set_threads(None)["threads"] == cl.get_threads()  # back to all cores
    True
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

_threads: Optional[int] = None


def get_threads() -> int:
    """The thread count set by :func:`set_threads`, or all cores when none was set."""
    return _threads if _threads is not None else (os.cpu_count() or 1)


def set_threads(threads: Optional[int]) -> dict[str, Any]:
    """Use ``threads`` threads (None: all cores) in PyTorch, TensorFlow and every runtime loaded later.

    Returns what was set: ``{"threads": n, "torch": n or None, "tensorflow": n or a reason}``.

    Example:
        >>> set_threads(2)["threads"], get_threads()
        (2, 2)
    """
    global _threads
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    _threads = threads
    n = get_threads()
    done: dict[str, Any] = {"threads": n, "torch": None, "tensorflow": None}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
        done["torch"] = n
    if "tensorflow" in sys.modules:
        threading = sys.modules["tensorflow"].config.threading
        if threading.get_intra_op_parallelism_threads() == n and threading.get_inter_op_parallelism_threads() == 1:
            done["tensorflow"] = n
        else:
            try:
                threading.set_intra_op_parallelism_threads(n)
                threading.set_inter_op_parallelism_threads(1)
                done["tensorflow"] = n
            except RuntimeError:  # TensorFlow already ran an operation: its pools are fixed
                done["tensorflow"] = "unchanged (TensorFlow was already initialised)"
    return done


__all__ = ["get_threads", "set_threads"]
