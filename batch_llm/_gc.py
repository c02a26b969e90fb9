"""Pausing Python's cyclic garbage collector around bulk work.

Encoding a fan-out and parsing a result file allocate tens of thousands of small, acyclic
containers; each allocation burst triggers generational collections that rescan every live
object, which made parsing a 10,000-line result file take twice as long as the parsing itself.
Nothing built here forms reference cycles, so collection is paused for the burst only (never
across a network wait) and restored afterwards, nesting safely across threads.

Re-enabling alone is not enough: every object the burst left alive is still in the youngest
generation, and the first allocation after the block pays for a collection that walks them all
(a quarter of finishing a 10,000-input LangChain fan-out). So the outermost block ends by
moving the young generations (mostly what the block allocated), unscanned, to the oldest one
(``gc.freeze()`` then ``gc.unfreeze()``), where the next full collection still finds any cycle
among them. The move is skipped while the application keeps objects frozen itself (before a
fork, say): ``unfreeze`` would hand those back to the collector.
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
    """Disable cyclic GC inside the block; after the outermost block, move what it allocated
    to the oldest generation and re-enable collection if it was enabled."""
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
                if gc.get_freeze_count() == 0:
                    gc.freeze()
                    gc.unfreeze()
                gc.enable()
