"""Pausing Python's cyclic garbage collector around bulk work.

Encoding a fan-out and parsing a result file allocate tens of thousands of small, acyclic
containers; each allocation burst triggers generational collections that rescan every live
object, which made parsing a 10,000-line result file take twice as long as the parsing itself.
Nothing built here forms reference cycles, so collection is paused for the burst only (never
across a network wait) and restored afterwards, nesting safely across threads.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable cyclic GC inside the block; re-enable it after the outermost block if it was."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
