"""Handing memory that finished batches freed back to the system.

A batch's bookkeeping lives in tables of its own size: the maps from each line to its caller
and its body, the index of which batch holds each request (about 5 MB per 50,000 lines, and
more for the index of everything in flight). Python takes tables this big from the C
allocator, not from its own small-object arenas, and glibc's allocator keeps what is freed
inside its heap for later C allocations: the answers that arrive meanwhile, small Python
objects, cannot use it. At a million requests that is about 90 MB resident for nothing once
the batches end. ``release_freed_memory`` asks glibc to give such memory back
(``malloc_trim``, microseconds to a few milliseconds); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys
from collections.abc import Callable

__all__ = ["release_freed_memory"]

logger = logging.getLogger("batch_llm")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        # The process's own symbols, the C library's among them (no ldconfig to run).
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None
    return trim


def release_freed_memory() -> None:
    """Give the memory the C allocator holds free back to the system, where it can."""
    trim = _malloc_trim()
    if trim is None:
        return
    try:
        trim(0)
    except Exception as exc:  # never worth failing a batch for
        logger.debug("malloc_trim failed: %s", exc)
