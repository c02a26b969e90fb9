"""Per-request futures and ways to wait for many of them at once.

A fan-out creates one future per request, tens of thousands at a time, so the future is kept
lean: ``concurrent.futures.Future`` builds a ``threading.Condition`` (and an ``RLock``) for
every instance and wakes waiters one future at a time, which alone cost more than the rest of
the scheduler's per-request work. ``RequestFuture`` shares one module lock for its few state
changes, makes an ``Event`` only when somebody actually blocks on that one future, and lets
groups be awaited with a single wake-up (``wait`` / ``gather``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import CancelledError, InvalidStateError
from typing import Any

from ._progress import ProgressOption, display_for

__all__ = ["RequestFuture", "gather", "raise_first_failure", "wait"]

logger = logging.getLogger("batch_llm")

_PENDING, _FINISHED, _FAILED, _CANCELLED = range(4)
Callback = Callable[["RequestFuture"], object]
# Guards the state of every RequestFuture; held only for a few assignments, never for I/O.
_LOCK = threading.Lock()


class RequestFuture:
    """The future of one request: its response body, or the error the provider raised.

    Thread-safe, with the familiar ``concurrent.futures.Future`` methods (``result``,
    ``exception``, ``done``, ``cancel``, ``add_done_callback``), and awaitable from any event
    loop: ``body = await future``.

    Attributes:
        provider: the provider's name.
        custom_id: the request's line id within its batch, once queued.
        batch_id: the provider's batch id, once submitted.
        deadline: when (``time.monotonic``) the request is sent realtime if the batch has not
            answered it yet; None to wait for the batch however long it takes.
    """

    __slots__ = (
        "_callbacks",
        "_event",
        "_latch",
        "_state",
        "_value",
        "batch_id",
        "custom_id",
        "deadline",
        "provider",
    )

    def __init__(self, provider: str = "", latch: _Latch | None = None) -> None:
        self.provider = provider
        self._latch = latch
        self.custom_id: str | None = None
        self.batch_id: str | None = None
        self.deadline: float | None = None
        self._state = _PENDING
        self._value: Any = None
        self._event: threading.Event | None = None
        # One callback (the usual case: a group waiter) is kept bare, more in a list.
        self._callbacks: Callback | list[Callback] | None = None

    @classmethod
    def group(
        cls, count: int, provider: str = "", *, owner: Any = None, fan_out: bool = False
    ) -> list[RequestFuture]:
        """``count`` futures that ``wait``/``gather`` can await as one, with a single wake-up
        instead of a callback per future. ``owner`` is the scheduler they were submitted to and
        ``fan_out`` says they were submitted together and flushed: such a group gets a progress
        display while it is waited on."""
        latch = _Latch(count, owner, fan_out)
        return [cls(provider, latch) for _ in range(count)]

    def __repr__(self) -> str:
        state = ("pending", "finished", "failed", "cancelled")[self._state]
        return f"<RequestFuture {state} custom_id={self.custom_id} batch_id={self.batch_id}>"

    # -- reading --------------------------------------------------------------------------

    def done(self) -> bool:
        """True once the future has a result, an error, or was cancelled."""
        return self._state != _PENDING

    def cancelled(self) -> bool:
        """True if the future was cancelled."""
        return self._state == _CANCELLED

    def running(self) -> bool:
        """Always False: a request is queued or in a batch, never running on this side."""
        return False

    def result(self, timeout: float | None = None) -> Any:
        """The response body; raises the request's error, or ``TimeoutError``."""
        self._wait(timeout)
        if self._state == _FINISHED:
            return self._value
        if self._state == _CANCELLED:
            raise CancelledError()
        raise self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """The request's error, or None if it succeeded."""
        self._wait(timeout)
        if self._state == _CANCELLED:
            raise CancelledError()
        return self._value if self._state == _FAILED else None

    def _wait(self, timeout: float | None) -> None:
        if self._state != _PENDING:
            return
        with _LOCK:
            if self._state != _PENDING:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(timeout):
            raise TimeoutError(f"request {self.custom_id} was not answered in {timeout} s")

    def add_done_callback(self, fn: Callback) -> None:
        """Call ``fn(future)`` once done, on the thread that completes it (or now, if done)."""
        with _LOCK:
            if self._state == _PENDING:
                callbacks = self._callbacks
                if callbacks is None:
                    self._callbacks = fn
                elif isinstance(callbacks, list):
                    callbacks.append(fn)
                else:
                    self._callbacks = [callbacks, fn]
                return
        _call(fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        results = yield from gather([self]).__await__()
        return results[0]

    # -- completing -----------------------------------------------------------------------

    def set_result(self, value: Any) -> None:
        """Complete with a response body."""
        self._complete(_FINISHED, value)

    def set_exception(self, exc: BaseException) -> None:
        """Complete with an error."""
        self._complete(_FAILED, exc)

    def cancel(self) -> bool:
        """Cancel if not done yet; a request not yet submitted is then never sent."""
        try:
            self._complete(_CANCELLED, None)
        except InvalidStateError:
            return self._state == _CANCELLED
        return True

    def _complete(self, state: int, value: Any) -> None:
        with _LOCK:
            if self._state != _PENDING:
                raise InvalidStateError(f"request {self.custom_id} is already done")
            self._state = state
            self._value = value
            event, callbacks = self._event, self._callbacks
            self._callbacks = None
            latch = self._latch
            if latch is not None:
                latch.remaining -= 1
                latch_done = latch.remaining == 0
        if latch is not None and latch_done:
            latch.release()
        if event is not None:
            event.set()
        if callbacks is None:
            return
        if isinstance(callbacks, list):
            for fn in callbacks:
                _call(fn, self)
        else:
            _call(callbacks, self)


class _Latch:
    """Counts down as the futures of one group complete; fires once, when the last does."""

    __slots__ = ("_callbacks", "_fired", "event", "fan_out", "owner", "remaining", "size")

    def __init__(self, size: int, owner: Any = None, fan_out: bool = False) -> None:
        self.size = size
        self.remaining = size
        self.owner = owner
        self.fan_out = fan_out
        self.event = threading.Event()
        self._callbacks: list[Callable[[], object]] = []
        self._fired = False

    def on_release(self, fn: Callable[[], object]) -> None:
        with _LOCK:
            if not self._fired:
                self._callbacks.append(fn)
                return
        fn()

    def release(self) -> None:
        with _LOCK:
            self._fired = True
            callbacks, self._callbacks = self._callbacks, []
        self.event.set()
        for fn in callbacks:
            fn()


def _call(fn: Callback, future: RequestFuture) -> None:
    try:
        fn(future)
    except Exception:  # one bad callback must not stop the others or the scheduler
        logger.exception("a done-callback of %r raised", future)


def _outcome(future: RequestFuture, return_exceptions: bool) -> Any:
    if return_exceptions:
        if future.cancelled():
            return CancelledError()
        exc = future.exception()
        if exc is not None:
            return exc
    return future.result()


def _group_latch(futures: Sequence[RequestFuture]) -> _Latch | None:
    """The latch of ``futures`` if they are exactly one group, in any order."""
    latch = futures[0]._latch if futures else None
    if latch is None or latch.size != len(futures):
        return None
    return latch if all(f._latch is latch for f in futures) else None


def _on_all_done(futures: Sequence[RequestFuture], fn: Callable[[], object]) -> None:
    """Call ``fn()`` once, when the last of ``futures`` is done."""
    latch = _group_latch(futures)
    if latch is not None:
        latch.on_release(fn)
        return
    pending = [f for f in futures if not f.done()]
    if not pending:
        fn()
        return
    remaining = len(pending)
    lock = threading.Lock()

    def one_done(_: RequestFuture) -> None:
        nonlocal remaining
        with lock:
            remaining -= 1
            last = remaining == 0
        if last:
            fn()

    for future in pending:
        future.add_done_callback(one_done)


def wait(
    futures: Sequence[RequestFuture],
    *,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
) -> list[Any]:
    """Block until every future is done and return their results in order.

    Without ``return_exceptions`` the first failed request's error (in input order) is raised
    once all are done, as ``Runnable.batch`` does. ``progress`` shows a progress display while
    waiting: True or False force it, a tqdm-like factory draws with it, and None (the default)
    shows one for fan-outs when the output is a terminal or a notebook (``BATCH_LLM_PROGRESS``
    and ``Scheduler(progress=...)`` change that).
    """
    display = display_for(futures, progress) if progress is not False else None
    try:
        latch = _group_latch(futures)
        if latch is not None:
            event = latch.event
        else:
            event = threading.Event()
            _on_all_done(futures, event.set)
        if not event.wait(timeout):
            left = sum(not f.done() for f in futures)
            raise TimeoutError(
                f"{left} of {len(futures)} requests were not answered in {timeout} s"
            )
    finally:
        if display is not None:
            display.close()
    return [_outcome(f, return_exceptions) for f in futures]


async def gather(
    futures: Sequence[RequestFuture],
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
) -> list[Any]:
    """Await every future from any event loop and return their results in order.

    One wake-up of the caller's loop for the whole group, instead of one per request, which is
    what keeps a 10,000-request ``abatch`` cheap. Cancelling the awaiting task cancels the
    requests that were not yet submitted. ``progress`` is as for ``wait``.
    """
    if not all(f.done() for f in futures):
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def all_done() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake)

        display = display_for(futures, progress) if progress is not False else None
        _on_all_done(futures, all_done)
        try:
            await waiter
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        finally:
            if display is not None:
                display.close()
    return [_outcome(f, return_exceptions) for f in futures]


def raise_first_failure(outcomes: Sequence[Any], sizes: Sequence[int], noun: str = "texts") -> None:
    """Raise the first error among the outcomes of requests that together cover consecutive
    items (request ``i`` covers the next ``sizes[i]``, as an embeddings call splits its texts),
    noting which items it was for and how the other requests fared; do nothing if none failed.

    The error raised is the request's own (the SDK error its realtime call would raise, or a
    batch-llm error), so callers catch what they would catch realtime; the note says which
    items to retry instead of all of them.
    """
    failed: list[tuple[int, int, BaseException]] = []
    start = 0
    for outcome, size in zip(outcomes, sizes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append((start, start + size, outcome))
        start += size
    if not failed:
        return
    total, requests = start, len(outcomes)
    spans = ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b, _ in failed[:10])
    if len(failed) > 10:
        spans += f" and {len(failed) - 10} more"
    error = failed[0][2]
    rest = (
        f"the other {noun} were answered"
        if len(failed) < requests
        else f"that is all of the {noun}"
    )
    note = (
        f"batch-llm: {len(failed)} of {requests} request(s) failed, for {noun} {spans} "
        f"(0-based, of {total:,}); {rest}. This error is the first one's."
    )
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)
    raise error
