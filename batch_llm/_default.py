"""The process-wide scheduler that the framework wrappers use unless given their own, and the
ways to swap it: ``set_scheduler``, and ``dry_run()`` for a block."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._cost import CostReport, get_prices

# The scheduler (asyncio, the journal, the runner) loads when one is first built, not when
# ``batch_llm.set_scheduler`` or ``cost_report`` is first named.
if TYPE_CHECKING:
    from ._dry_run import DryRunReport
    from ._scheduler import Scheduler

__all__ = ["cost_report", "dry_run", "get_scheduler", "set_scheduler"]

_default: Scheduler | None = None
_default_lock = threading.Lock()


def get_scheduler() -> Scheduler:
    """The process-wide scheduler that wrappers use unless given their own."""
    global _default
    with _default_lock:
        if _default is None:
            from ._scheduler import Scheduler

            _default = Scheduler()
            atexit.register(_default.close)
        return _default


def set_scheduler(scheduler: Scheduler | None) -> Scheduler | None:
    """Replace the process-wide scheduler (None: build a new one on next use); returns the old."""
    global _default
    with _default_lock:
        old, _default = _default, scheduler
    return old


def cost_report(scheduler: Scheduler | None = None) -> CostReport:
    """``scheduler.cost()``, for the process-wide scheduler by default (an empty report if it
    was never used)."""
    if scheduler is None:
        with _default_lock:
            scheduler = _default
    if scheduler is None:
        return CostReport((), get_prices().as_of)
    return scheduler.cost()


@contextlib.contextmanager
def dry_run(**options: Any) -> Iterator[DryRunReport]:
    """Plan instead of submit, for everything that uses the default scheduler in the block.

    Installs a dry-run scheduler (``Scheduler(dry_run=True, **options)``) as the process-wide
    one, and restores the previous one on exit; the yielded report is complete once the block
    has ended (requests still waiting for their window are planned then).
    """
    from ._scheduler import Scheduler

    scheduler = Scheduler(dry_run=True, **options)
    previous = set_scheduler(scheduler)
    try:
        yield scheduler.plan
    finally:
        set_scheduler(previous)
        scheduler.close()
