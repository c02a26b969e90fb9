"""Spotting a fan-out that a thread pool runs one pool's worth at a time.

A framework's default ``batch`` (LangChain's ``Runnable.batch``, its dynamic runnables',
LangGraph's sync runner) runs a call per input through a pool of a few threads. Each thread
blocks on its call, so the scheduler's window sees one pool's worth of calls at a time and
each wave becomes its own batch, one batch turnaround after another. Nothing a model wrapper
does can change that: the fix is to run the fan-out another way. What can be done is to see it
happen and say so, once, with numbers: a pool whose threads are inside a framework's fan-out
and which still has work queued.

This looks at every thread's stack (``sys._current_frames``), a few tens of microseconds, and
only on the slow path: a sync single call that is about to wait for a window.
"""

from __future__ import annotations

import concurrent.futures.thread
import sys
import threading
import weakref
from dataclasses import dataclass
from types import CodeType
from typing import Any

__all__ = ["PoolWave", "pool_wave"]

_WORKER: CodeType = concurrent.futures.thread._worker.__code__
_seen: weakref.WeakSet[Any] = weakref.WeakSet()
_seen_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class PoolWave:
    """A pool running a framework's fan-out: its threads and how many calls it has left."""

    threads: int
    queued: int

    @property
    def calls(self) -> int:
        """The calls of the fan-out, about (those running and those queued)."""
        return self.threads + self.queued

    @property
    def waves(self) -> int:
        """How many sequential batches the fan-out becomes, about."""
        return -(-self.calls // self.threads)


def _framework_fan_out(code: CodeType) -> bool:
    # LangChain's default Runnable.batch and DynamicRunnable.batch call a local ``invoke`` per
    # input; LangGraph's sync runner runs each task through ``run_with_retry``.
    return code.co_qualname.endswith("batch.<locals>.invoke") or (
        code.co_name == "run_with_retry" and "langgraph" in code.co_filename
    )


def pool_wave() -> PoolWave | None:
    """The first pool, not reported before, whose threads run a framework's fan-out and which
    has more work queued than threads to run it; None if there is none."""
    for frame in sys._current_frames().values():
        inside = False
        current: Any = frame
        while current is not None:
            code = current.f_code
            if code is _WORKER:
                if not inside:
                    break
                executor = current.f_locals.get("executor_reference")
                queue = current.f_locals.get("work_queue")
                pool = executor() if executor is not None else None
                if pool is None or queue is None:
                    break
                queued = queue.qsize()
                if queued <= 0:
                    break
                with _seen_lock:
                    if pool in _seen:
                        break
                    _seen.add(pool)
                return PoolWave(int(getattr(pool, "_max_workers", 1)) or 1, queued)
            inside = inside or _framework_fan_out(code)
            current = current.f_back
    return None
