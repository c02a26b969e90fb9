"""Journal calls off the scheduler's loop: one thread of the journal's own runs them in the order
they were made, so the loop never waits on disk or network and every write lands in order.

The thread is the writer's own, not a ``concurrent.futures`` pool: those stop taking work when
the interpreter starts to exit, and a batch whose results are still being read then must still
be able to write them (or to let its claim go) while the scheduler closes.

A write nobody waits on (``soon``) that fails is logged, once per cause, with its cause; it
never passes for done. Result bytes go through a ``ResultStore``, which holds the reader back
when more than ``max_queued`` bytes wait for the journal (the reader is then as fast as the
journal, not faster) and marks the results stored only when every chunk was written. The
bound is the writer's, over every batch whose results are being read at once: twenty
batches ending together hold 8 MiB of result bytes back, not twenty times that.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import zlib
from collections.abc import Callable
from typing import Any, TypeVar

from ._errors import JournalError
from ._journal import Journal, LeaseLostError, NullJournal
from ._redact import redact

__all__ = ["JournalWriter", "ResultStore"]

logger = logging.getLogger("batch_llm")

T = TypeVar("T")

#: Result bytes that may wait for the journal before the reader is held back.
MAX_QUEUED_BYTES = 8 * 1024 * 1024
#: About how many result bytes go into one row (one transaction) of the journal.
ROW_BYTES = 256 * 1024
# Causes of failed writes logged in full; more are only counted (a full disk fails every
# write after the first the same way).
_CAUSES_LOGGED = 5

_Job = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any]"]


class JournalWriter:
    """A journal, called from the scheduler's loop through one thread (started on the first
    call; a journal that is off is called inline, since it does nothing)."""

    def __init__(self, journal: Journal, *, max_queued: int = MAX_QUEUED_BYTES) -> None:
        self.journal = journal
        self.max_queued = max_queued
        self._inline = isinstance(journal, NullJournal)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._causes: set[str] = set()
        #: Writes nobody waited on that failed (each logged, or counted once causes repeat).
        self.failures = 0
        # Result bytes queued for the journal by every ResultStore, and what wakes the stores
        # waiting for them to drain (made on the scheduler's loop, where the stores run).
        self.queued = 0
        self._drained: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def submit(self, fn: Callable[..., T], args: tuple[Any, ...]) -> concurrent.futures.Future[T]:
        """Queue a journal call behind every other; its future completes on the journal's
        thread."""
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                done.set_exception(RuntimeError("the journal was closed"))
                return done
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="batch-llm-journal", daemon=True
                )
                self._thread.start()
            self._jobs.put((fn, args, done))
        return done

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, args, done = job
            if not done.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:
                done.set_exception(exc)
            else:
                done.set_result(result)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a journal call in order with every other, and wait for it."""
        if self._inline:
            return fn(*args)
        return await asyncio.wrap_future(self.submit(fn, args))

    def soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """A journal write nobody waits on (still in order with every other journal call); a
        failure is logged with its cause."""
        if self._inline:
            return
        what = getattr(fn, "__name__", "write")
        self.submit(fn, args).add_done_callback(lambda done: self._check(done, what))

    def _check(self, done: concurrent.futures.Future[Any], what: str) -> None:
        if done.cancelled():
            return
        exc = done.exception()
        if exc is not None:
            self.report(exc, what)

    def report(self, exc: BaseException, what: str) -> None:
        """Log a failed journal write once per cause (later ones with the same cause are
        counted, and their number given when the journal closes)."""
        self.failures += 1
        # A JournalError names the journal already; another error is named by its type.
        text = redact(str(exc))
        if not isinstance(exc, JournalError):
            text = f"{type(exc).__name__}: {text} (the journal at {self.journal.describe()})"
        cause = text
        with self._lock:
            new = cause not in self._causes and len(self._causes) < _CAUSES_LOGGED
            if new:
                self._causes.add(cause)
        if new:
            logger.error(
                "a journal write (%s) failed: %s; what it would have recorded is not in the "
                "journal",
                what,
                cause,
            )

    async def _room(self, store: ResultStore) -> None:
        """Wait while more result bytes than ``max_queued`` wait for the journal (on the
        scheduler's loop)."""
        while self.queued > self.max_queued and store.failed is None:
            loop = asyncio.get_running_loop()
            if self._drained is None or self._drained[0] is not loop:
                self._drained = (loop, asyncio.Event())
            drained = self._drained[1]
            drained.clear()
            await drained.wait()

    def _written(self, size: int) -> None:
        """``size`` queued result bytes are written (or failed); on the scheduler's loop."""
        self.queued -= size
        if self._drained is not None:
            self._drained[1].set()

    def results(self, intent_id: str, owner: str) -> ResultStore:
        """Where one batch's result bytes go, read by ``owner`` (module docstring)."""
        return ResultStore(self, intent_id, owner)

    def close(self) -> None:
        """Finish the calls already asked for, then close the journal."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._jobs.put(None)
            thread.join()
        if self.failures > len(self._causes):
            logger.error(
                "%d journal write(s) to %s failed in all", self.failures, self.journal.describe()
            )
        self.journal.close()


class ResultStore:
    """A batch's result bytes on their way into the journal, written by the one scheduler that
    owns the batch. ``put`` each chunk as it is read (awaiting it holds the reader back while
    the journal is behind), then ``finish``: the results are marked stored only if every
    chunk was written.

    Network chunks (64 KiB or less) are gathered into rows of about ``ROW_BYTES`` before they
    go to the writer thread, as one transaction each: a 50,000-line batch is then about 100
    transactions, not 400, and the journal keeps up with the reader instead of holding it
    back. A store gathers at most one row at a time; the writer's bound counts the rows
    handed to it.
    """

    def __init__(self, writer: JournalWriter, intent_id: str, owner: str) -> None:
        self._writer = writer
        self._journal = writer.journal
        self.intent_id = intent_id
        self.owner = owner
        self._seq = 0
        self._nbytes = 0
        self._crc = 0
        self._pending: list[concurrent.futures.Future[Any]] = []
        # Chunks gathered for the next row, all of one stream.
        self._row: list[bytes] = []
        self._row_bytes = 0
        self._row_stream = ""
        #: Why the results will not be marked stored, once a write failed.
        self.failed: BaseException | None = None

    async def restart(self) -> None:
        """Start (or start over): whatever an earlier read stored is dropped first."""
        self._drop_row()
        await self._settle()
        self._seq = self._nbytes = self._crc = 0
        self.failed = None
        try:
            await self._writer.call(self._journal.clear_results, self.intent_id, self.owner)
        except Exception as exc:
            self._fail(exc, "clear_results")

    async def put(self, stream: str, chunk: bytes) -> None:
        """Queue one chunk; waits while more than the writer's limit is queued (by this
        store and every other)."""
        if self.failed is not None:
            return
        if self._row and stream != self._row_stream:
            self._flush()
        self._nbytes += len(chunk)
        self._crc = zlib.crc32(chunk, self._crc)
        self._row.append(chunk)
        self._row_bytes += len(chunk)
        self._row_stream = stream
        if self._row_bytes >= ROW_BYTES:
            self._flush()
            await self._writer._room(self)

    def _flush(self) -> None:
        """The gathered chunks go to the writer thread as one row."""
        if not self._row:
            return
        row = self._row[0] if len(self._row) == 1 else b"".join(self._row)
        size, stream = self._row_bytes, self._row_stream
        self._row, self._row_bytes = [], 0
        seq, self._seq = self._seq, self._seq + 1
        loop = asyncio.get_running_loop()
        writer = self._writer
        writer.queued += size
        job = writer.submit(
            self._journal.append_results, (self.intent_id, self.owner, seq, stream, row)
        )
        self._pending.append(job)
        job.add_done_callback(lambda done: loop.call_soon_threadsafe(self._written, done, size))

    def _drop_row(self) -> None:
        self._row, self._row_bytes = [], 0

    def _written(self, done: concurrent.futures.Future[Any], size: int) -> None:
        exc = None if done.cancelled() else done.exception()
        if exc is not None and self.failed is None:
            self._fail(exc, "append_results")
        self._writer._written(size)

    def _fail(self, exc: BaseException, what: str) -> None:
        self.failed = exc
        self._drop_row()
        if isinstance(exc, LeaseLostError):
            logger.info("not storing results of intent %s: %s", self.intent_id, exc)
        else:
            self._writer.report(exc, what)

    async def _settle(self) -> None:
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*(asyncio.wrap_future(p) for p in pending), return_exceptions=True)

    async def finish(self) -> bool:
        """Wait for every chunk; mark the results stored if all were written. True if they
        are stored."""
        if self.failed is None:
            self._flush()
        await self._settle()
        if self.failed is None:
            try:
                await self._writer.call(
                    self._journal.finish_results,
                    self.intent_id,
                    self.owner,
                    self._seq,
                    self._nbytes,
                    self._crc,
                )
            except Exception as exc:
                self._fail(exc, "finish_results")
        return self.failed is None
