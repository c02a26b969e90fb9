"""Journal calls off the scheduler's loop: one worker thread keeps them in order, so the loop
never waits on disk and every write lands in the order it was made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._journal import Journal, NullJournal

__all__ = ["JournalWriter"]

T = TypeVar("T")


class JournalWriter:
    """A journal, called from the scheduler's loop through one worker thread (started on the
    first call; a journal that is off is called inline, since it does nothing)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._inline = isinstance(journal, NullJournal)
        self._executor: ThreadPoolExecutor | None = None

    def _worker(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="batch-llm-journal")
        return self._executor

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a journal call in order with every other, and wait for it."""
        if self._inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._worker(), fn, *args)

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """A journal write nobody waits on (still in order with every other journal call)."""
        if self._inline:
            return
        self._worker().submit(fn, *args)

    def close(self) -> None:
        """Finish the writes already asked for, then close the journal."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.journal.close()
