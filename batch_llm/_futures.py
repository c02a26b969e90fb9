"""Per-request futures, and groups of them that complete with a single wake-up.

A fan-out creates one future per request, tens of thousands at a time, so the future is kept
lean: ``concurrent.futures.Future`` builds a ``threading.Condition`` (and an ``RLock``) for
every instance and wakes waiters one future at a time, which alone cost more than the rest of
the scheduler's per-request work. ``RequestFuture`` shares one module lock for its few state
changes, makes an ``Event`` only when somebody actually blocks on that one future, and lets
groups be awaited with a single wake-up (``on_all_done``, used by ``wait`` / ``gather``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import CancelledError, InvalidStateError
from typing import Any

from ._config import ProgressOption
from ._events import EventHub

__all__ = [
    "RequestFuture",
    "await_all",
    "before_blocking",
    "group_latch",
    "on_all_done",
    "outcome",
]

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
        "on_block",
        "provider",
    )

    def __init__(self, provider: str = "", latch: _Latch | None = None) -> None:
        self.provider = provider
        self._latch = latch
        self.custom_id: str | None = None
        self.batch_id: str | None = None
        self.deadline: float | None = None
        # Called before a thread blocks on this future: a round that holds the request
        # releases it if that thread is the one its own progress depends on.
        self.on_block: Callable[[], object] | None = None
        self._state = _PENDING
        self._value: Any = None
        self._event: threading.Event | None = None
        # One callback (the usual case: a group waiter) is kept bare, more in a list.
        self._callbacks: Callback | list[Callback] | None = None

    @classmethod
    def group(
        cls,
        count: int,
        provider: str = "",
        *,
        events: EventHub | None = None,
        progress: ProgressOption = None,
        fan_out: bool = False,
    ) -> list[RequestFuture]:
        """``count`` futures that ``wait``/``gather`` can await as one, with a single wake-up
        instead of a callback per future.

        ``events`` is where the batches answering them report (what a progress display
        follows), ``progress`` the submitter's wish for a display (``ProgressOption``), and
        ``fan_out`` says they were submitted together and flushed: by default only such a
        group gets a progress display while it is waited on.
        """
        latch = _Latch(count, events, progress, fan_out)
        return [cls(provider, latch) for _ in range(count)]

    @property
    def latch(self) -> _Latch | None:
        """The group this future belongs to, if it was made as one."""
        return self._latch

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
        before_blocking([self])
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
        results = yield from await_all([self]).__await__()
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

    __slots__ = (
        "_callbacks",
        "_fired",
        "event",
        "events",
        "fan_out",
        "progress",
        "remaining",
        "size",
    )

    def __init__(
        self,
        size: int,
        events: EventHub | None = None,
        progress: ProgressOption = None,
        fan_out: bool = False,
    ) -> None:
        self.size = size
        self.remaining = size
        self.events = events
        self.progress = progress
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


def before_blocking(futures: Sequence[RequestFuture]) -> None:
    """Tell whoever holds these unanswered requests that a thread is about to block on them."""
    hooks = {f.on_block for f in futures if f.on_block is not None and not f.done()}
    for hook in hooks:
        if hook is not None:
            hook()


def _call(fn: Callback, future: RequestFuture) -> None:
    try:
        fn(future)
    except Exception:  # one bad callback must not stop the others or the scheduler
        logger.exception("a done-callback of %r raised", future)


def outcome(future: RequestFuture, return_exceptions: bool) -> Any:
    """The future's result; with ``return_exceptions`` its error (or cancellation) instead of
    raising it."""
    if return_exceptions:
        if future.cancelled():
            return CancelledError()
        exc = future.exception()
        if exc is not None:
            return exc
    return future.result()


def group_latch(futures: Sequence[RequestFuture]) -> _Latch | None:
    """The latch of ``futures`` if they are exactly one group, in any order."""
    latch = futures[0]._latch if futures else None
    if latch is None or latch.size != len(futures):
        return None
    return latch if all(f._latch is latch for f in futures) else None


def on_all_done(futures: Sequence[RequestFuture], fn: Callable[[], object]) -> None:
    """Call ``fn()`` once, when the last of ``futures`` is done."""
    latch = group_latch(futures)
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


async def await_all(
    futures: Sequence[RequestFuture], *, return_exceptions: bool = False
) -> list[Any]:
    """Await every future from any event loop, with one wake-up of the caller's loop for the
    whole group; cancelling the awaiting task cancels the requests not yet submitted."""
    if not all(f.done() for f in futures):
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not waiter.done():
                waiter.set_result(None)

        def all_done() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(wake)

        on_all_done(futures, all_done)
        try:
            await waiter
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
    return [outcome(f, return_exceptions) for f in futures]
