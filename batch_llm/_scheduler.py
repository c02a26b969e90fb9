"""The scheduler: collects requests into provider batches and resolves each caller's future.

Requests arrive from any thread or event loop. They are checked and encoded on the caller's
thread, then appended to a queue keyed by (adapter, the adapter's grouping key) under one short
lock. A queue becomes a batch when it is full (requests, bytes or inputs), when its window
passes, or on an explicit flush. Every batch then runs as its own task on the scheduler's event
loop: submit, poll with adaptive backoff, stream the results back and resolve each future. No
lock is held across a network call; the lock guards only the queues.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._config import Config
from ._errors import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    InvalidRequestError,
    MissingResultError,
    RequestTooLargeError,
    SchedulerClosedError,
)
from ._futures import RequestFuture
from ._gc import gc_paused
from ._loop import LoopThread
from ._poll import PollPolicy
from .providers import BatchStatus, Limits, Prepared, Provider, resolve_provider

__all__ = ["BatchRecord", "Scheduler", "get_scheduler", "set_scheduler"]

logger = logging.getLogger("batch_llm")

# Consecutive failed polls (after the SDK's own retries) before a batch's callers are told.
_MAX_POLL_ERRORS = 5
# Attempts at reading a finished batch's results before its remaining callers are told.
_MAX_RESULT_ATTEMPTS = 3


@dataclass
class BatchRecord:
    """What the scheduler knows of one batch it made; kept for inspection and tests.

    Attributes:
        provider: the adapter's description (no secrets).
        key: the adapter's grouping key (for OpenAI, endpoint and model).
        requests: lines in the batch.
        batch_id: the provider's id, once created.
        status: the provider's latest status word, or ``queued`` / ``submit_failed``.
        outcome: how it ended, once it has.
    """

    provider: str
    key: Hashable
    requests: int
    batch_id: str | None = None
    status: str = "queued"
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


# The callers waiting on one line: usually one future; a list once identical requests share it.
Waiters = RequestFuture | list[RequestFuture]


class _Queue:
    """Requests waiting to share one batch."""

    __slots__ = ("generation", "inputs", "key", "limits", "lines", "nbytes", "provider", "waiters")

    def __init__(self, provider: Provider, key: Hashable, limits: Limits) -> None:
        self.provider = provider
        self.key = key
        self.limits = limits
        self.lines: list[Prepared] = []
        self.waiters: dict[str, Waiters] = {}
        self.nbytes = 0
        self.inputs = 0
        self.generation = 0

    def fits(self, prepared: Prepared) -> bool:
        limits = self.limits
        if len(self.lines) >= limits.max_requests:
            return False
        if self.nbytes + prepared.nbytes > limits.max_bytes:
            return False
        return limits.max_inputs is None or self.inputs + prepared.inputs <= limits.max_inputs

    def add(self, prepared: Prepared, future: RequestFuture) -> None:
        self.lines.append(prepared)
        self.waiters[prepared.custom_id] = future
        self.nbytes += prepared.nbytes
        self.inputs += prepared.inputs

    def cut(self) -> _Batch:
        batch = _Batch(self.provider, self.key, self.lines, self.waiters)
        self.lines = []
        self.waiters = {}
        self.nbytes = self.inputs = 0
        return batch


class _Batch:
    """A group of lines on its way to becoming one provider batch."""

    __slots__ = ("key", "lines", "provider", "record", "waiters")

    def __init__(
        self, provider: Provider, key: Hashable, lines: list[Prepared], waiters: dict[str, Waiters]
    ) -> None:
        self.provider = provider
        self.key = key
        self.lines = lines
        self.waiters = waiters
        self.record = BatchRecord(provider.describe(), key, len(lines))


class Scheduler:
    """Turns requests from any thread or event loop into as few provider batches as allowed.

    Args:
        window: seconds a queue waits for more single requests before it is submitted
            (default ``BATCH_LLM_WINDOW`` or 3). ``submit_many`` and ``flush`` never wait for it.
        poll_interval: the first poll interval (default ``BATCH_LLM_POLL_INTERVAL`` or 1 s).
        poll_max: the longest poll interval (default ``BATCH_LLM_POLL_MAX`` or 300 s).
        poll_policy: a full ``PollPolicy``, instead of the two settings above.
        dedupe: identical requests queued together share one line (and one charge).
        metadata: key/values stamped on every batch where the provider allows it.
        listeners: callables that receive each lifecycle event as a dict (``event`` is one of
            ``batch_submitted``, ``batch_progress``, ``batch_completed``, ``batch_failed``,
            ``batch_expired``, ``batch_cancelled``). They run on the scheduler's loop and must
            return quickly.
        sleep, clock: injected for tests, so nothing has to really wait.
    """

    def __init__(
        self,
        *,
        window: float | None = None,
        poll_interval: float | None = None,
        poll_max: float | None = None,
        poll_policy: PollPolicy | None = None,
        dedupe: bool = True,
        metadata: Mapping[str, str] | None = None,
        listeners: Iterable[Callable[[dict[str, Any]], object]] = (),
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = Config.from_env(window=window, poll_interval=poll_interval, poll_max=poll_max)
        self.poll_policy = poll_policy or PollPolicy(
            initial=self.config.poll_interval,
            cap=max(self.config.poll_max, self.config.poll_interval),
        )
        self.dedupe = dedupe
        self.metadata = dict(metadata or {})
        self._listeners = list(listeners)
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._loop = LoopThread()
        self._lock = threading.Lock()
        self._queues: dict[tuple[Provider, Hashable], _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._counter = itertools.count()
        self._closed = False
        self.batches: list[BatchRecord] = []

    def add_listener(self, listener: Callable[[dict[str, Any]], object]) -> None:
        """Also send lifecycle events to ``listener``."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[dict[str, Any]], object]) -> None:
        """Stop sending events to ``listener``."""
        self._listeners.remove(listener)

    def _emit(self, event: str, record: BatchRecord, **extra: Any) -> None:
        if not self._listeners:
            return
        payload = {
            "event": event,
            "batch_id": record.batch_id,
            "provider": record.provider,
            "requests": record.requests,
            "status": record.status,
            **record.counts,
            **extra,
        }
        for listener in list(self._listeners):
            try:
                listener(payload)
            except Exception:  # a broken listener must not break the batch
                logger.exception("event listener %r raised", listener)

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self,
        provider: str | Provider,
        endpoint: str,
        body: Mapping[str, Any],
        *,
        flush: bool = False,
    ) -> RequestFuture:
        """Queue one request and return its future.

        Bad input raises ``InvalidRequestError`` here, before anything is queued. Without
        ``flush`` the request waits for more company until the window passes.
        """
        return self.submit_many(provider, endpoint, [body], flush=flush)[0]

    def submit_many(
        self,
        provider: str | Provider,
        endpoint: str,
        bodies: Iterable[Mapping[str, Any]],
        *,
        flush: bool = True,
        return_exceptions: bool = False,
    ) -> list[RequestFuture]:
        """Queue a fan-out and return one future per body, in order.

        The whole list goes into its queues at once and, with ``flush`` (the default), is
        submitted right away instead of waiting for the window. Bad input raises before any of
        the list is queued; with ``return_exceptions`` a bad body gets a failed future instead
        and the rest go ahead.
        """
        adapter = resolve_provider(provider)
        prepared: list[Prepared | BaseException] = []
        with gc_paused():
            for index, body in enumerate(bodies):
                try:
                    prepared.append(self._prepare(adapter, endpoint, body))
                except InvalidRequestError as exc:
                    if not return_exceptions:
                        raise type(exc)(f"request {index}: {exc}") from None
                    prepared.append(exc)
            futures = RequestFuture.group(len(prepared), adapter.name)
        ready: list[_Batch] = []
        timers: list[tuple[_Queue, int]] = []
        with self._lock, gc_paused():
            if self._closed:
                raise SchedulerClosedError("the scheduler is closed")
            touched: dict[int, _Queue] = {}
            for item, future in zip(prepared, futures, strict=True):
                if isinstance(item, BaseException):
                    future.set_exception(item)
                    continue
                queue = self._enqueue(adapter, item, future, ready, timers, arm=not flush)
                touched[id(queue)] = queue
            if flush:
                ready.extend(q.cut() for q in touched.values() if q.lines)
        for queue, generation in timers:
            self._loop.call_soon(self._arm_window, queue, generation)
        for batch in ready:
            self._loop.call_soon(self._launch, batch)
        return futures

    def flush(self) -> None:
        """Submit everything queued now, without waiting for any window."""
        with self._lock:
            ready = [q.cut() for q in self._queues.values() if q.lines]
        for batch in ready:
            self._loop.call_soon(self._launch, batch)

    def _prepare(self, adapter: Provider, endpoint: str, body: Mapping[str, Any]) -> Prepared:
        prepared = adapter.prepare(endpoint, body)
        limits = adapter.limits(prepared.key)
        if prepared.nbytes > limits.max_bytes:
            raise RequestTooLargeError(
                f"request is {prepared.nbytes:,} bytes; a {adapter.name} batch holds at most "
                f"{limits.max_bytes:,}"
            )
        if limits.max_inputs is not None and prepared.inputs > limits.max_inputs:
            raise RequestTooLargeError(
                f"request has {prepared.inputs:,} inputs; a {adapter.name} batch holds at most "
                f"{limits.max_inputs:,}"
            )
        # The line's id is a digest of what it asks, so identical requests can share a line.
        digest = hashlib.blake2b(prepared.endpoint.encode(), digest_size=16)
        digest.update(prepared.data)
        prepared.custom_id = digest.hexdigest()
        return prepared

    def _enqueue(
        self,
        adapter: Provider,
        prepared: Prepared,
        future: RequestFuture,
        ready: list[_Batch],
        timers: list[tuple[_Queue, int]],
        *,
        arm: bool,
    ) -> _Queue:
        """Add one request to its queue; the caller holds the lock."""
        queue_key = (adapter, prepared.key)
        queue = self._queues.get(queue_key)
        if queue is None:
            queue = self._queues[queue_key] = _Queue(
                adapter, prepared.key, adapter.limits(prepared.key)
            )
        custom_id = prepared.custom_id
        if not self.dedupe:
            custom_id = prepared.custom_id = f"{custom_id}-{next(self._counter)}"
        future.custom_id = custom_id
        waiting = queue.waiters.get(custom_id)
        if waiting is not None:
            if isinstance(waiting, list):
                waiting.append(future)
            else:
                queue.waiters[custom_id] = [waiting, future]
            return queue
        if not queue.fits(prepared):
            ready.append(queue.cut())
        if not queue.lines:
            queue.generation += 1
            if arm:
                timers.append((queue, queue.generation))
        queue.add(prepared, future)
        return queue

    # -- on the loop --------------------------------------------------------------------------

    def _arm_window(self, queue: _Queue, generation: int) -> None:
        asyncio.get_running_loop().call_later(
            self.config.window, self._window_passed, queue, generation
        )

    def _window_passed(self, queue: _Queue, generation: int) -> None:
        with self._lock:
            if queue.generation != generation or not queue.lines:
                return
            batch = queue.cut()
        self._launch(batch)

    def _launch(self, batch: _Batch) -> None:
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: _Batch) -> None:
        pending, batch.waiters = batch.waiters, {}
        lines, batch.lines = batch.lines, []
        # Callers that gave up before submission cost nothing: leave them out.
        gone = [cid for cid, waiting in pending.items() if _all_cancelled(waiting)]
        if gone:
            for cid in gone:
                del pending[cid]
            lines = [line for line in lines if line.custom_id in pending]
        if not pending:
            return
        record = batch.record
        try:
            await self._submit_and_collect(batch, lines, pending)
        except asyncio.CancelledError:
            where = (
                f"batch {record.batch_id} was left running upstream"
                if record.batch_id
                else "its batch was being submitted"
            )
            _fail_all(
                pending, lambda _cid: SchedulerClosedError(f"the scheduler closed while {where}")
            )
            raise
        except Exception as exc:  # a bug here must still answer every caller, never hang them
            logger.exception("batch %s: unexpected error", record.batch_id)
            _fail_all(pending, exc)

    async def _submit_and_collect(
        self, batch: _Batch, lines: list[Prepared], pending: dict[str, Waiters]
    ) -> None:
        record = batch.record
        record.requests = len(lines)
        self.batches.append(record)
        try:
            status = await batch.provider.submit(batch.key, lines, self.metadata)
        except Exception as exc:
            record.status = "submit_failed"
            logger.warning(
                "submitting a batch of %d to %s failed: %s", len(lines), record.provider, exc
            )
            _fail_all(pending, exc)
            return
        lines.clear()  # the payload is uploaded: do not hold it for hours
        self._update(record, status)
        self._emit("batch_submitted", record)
        logger.info(
            "submitted batch %s: %d requests to %s",
            status.batch_id,
            record.requests,
            record.provider,
        )
        for waiting in pending.values():
            for future in _each(waiting):
                future.batch_id = status.batch_id
        ended = await self._wait_until_ended(batch, status, pending)
        if ended is None:
            return
        if ended.outcome != "failed":
            await self._collect(batch, ended, pending)
        _fail_all(pending, lambda cid: _leftover_error(ended, cid))
        # Only now, with every caller answered, is the batch over for the user.
        self._emit(f"batch_{ended.outcome}", record, reason=ended.reason)

    async def _wait_until_ended(
        self, batch: _Batch, status: BatchStatus, pending: dict[str, Waiters]
    ) -> BatchStatus | None:
        started = self._clock()
        errors = 0
        while not status.ended:
            await self._sleep(self.poll_policy.delay(self._clock() - started))
            try:
                status = await batch.provider.poll(status)
            except Exception as exc:
                errors += 1
                logger.warning("polling batch %s failed (%d): %s", status.batch_id, errors, exc)
                if errors >= _MAX_POLL_ERRORS:
                    _fail_all(pending, exc)
                    return None
                continue
            errors = 0
            if self._update(batch.record, status) and not status.ended:
                self._emit("batch_progress", batch.record)
        logger.info(
            "batch %s ended %s: %d succeeded, %d failed",
            status.batch_id,
            status.outcome,
            status.succeeded,
            status.failed,
        )
        return status

    async def _collect(
        self, batch: _Batch, status: BatchStatus, pending: dict[str, Waiters]
    ) -> None:
        """Stream the results to their callers; a broken download is read again."""
        for attempt in range(1, _MAX_RESULT_ATTEMPTS + 1):
            try:
                async for chunk in batch.provider.results(status):
                    pop = pending.pop
                    for custom_id, outcome in chunk:
                        waiting = pop(custom_id, None)
                        if waiting is not None:
                            _settle(waiting, outcome)
                return
            except Exception as exc:
                logger.warning(
                    "reading results of batch %s failed (%d): %s", status.batch_id, attempt, exc
                )
                if attempt == _MAX_RESULT_ATTEMPTS:
                    _fail_all(pending, exc)
                    return
                await self._sleep(self.poll_policy.delay(0))

    def _update(self, record: BatchRecord, status: BatchStatus) -> bool:
        """Copy a polled status onto the record; True if anything changed."""
        counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
        changed = record.status != status.raw_status or record.counts != counts
        record.batch_id = status.batch_id
        record.status = status.raw_status
        record.outcome = status.outcome
        record.counts = counts
        return changed

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, *, timeout: float = 10.0) -> None:
        """Stop taking requests and stop the loop.

        Requests still queued fail with ``SchedulerClosedError`` (nothing was sent for them).
        Batches already submitted keep running at the provider and are left for a later run
        to collect; their waiting callers fail with ``SchedulerClosedError`` naming the batch.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queued = [q.cut() for q in self._queues.values() if q.lines]
        for batch in queued:
            _fail_all(
                batch.waiters,
                lambda _cid: SchedulerClosedError(
                    "the scheduler closed before this request was submitted"
                ),
            )
        if self._loop.started:
            try:
                self._loop.run(self._shutdown()).result(timeout)
            except Exception as exc:  # a stuck shutdown must not stop interpreter exit
                logger.warning("closing the scheduler: %s", exc)
        self._loop.stop()

    async def _shutdown(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        left = [r for r in self.batches if r.outcome is None and r.batch_id]
        if left:
            logger.warning(
                "scheduler closed with %d batch(es) still running upstream: %s; they were left "
                "running for a later run to collect",
                len(left),
                ", ".join(r.batch_id or "" for r in left),
            )
        for adapter in {q.provider for q in self._queues.values()}:
            await adapter.aclose()

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _each(waiting: Waiters) -> list[RequestFuture]:
    return waiting if isinstance(waiting, list) else [waiting]


def _all_cancelled(waiting: Waiters) -> bool:
    if isinstance(waiting, list):
        return all(f.cancelled() for f in waiting)
    return waiting.cancelled()


def _settle(waiting: Waiters, outcome: Any) -> None:
    """Complete every caller of one line; callers already done (cancelled) are skipped."""
    if isinstance(waiting, list):
        for future in waiting:
            _settle(future, outcome)
    elif not waiting.done():
        if isinstance(outcome, BaseException):
            waiting.set_exception(outcome)
        else:
            waiting.set_result(outcome)


def _fail_all(
    pending: dict[str, Waiters],
    error: BaseException | Callable[[str], BaseException],
) -> None:
    """Fail every caller still waiting: with one shared error, or one made per request."""
    for custom_id, waiting in pending.items():
        _settle(waiting, error if isinstance(error, BaseException) else error(custom_id))
    pending.clear()


def _leftover_error(status: BatchStatus, custom_id: str) -> BaseException:
    """The error for a request its ended batch returned nothing for."""
    batch_id = status.batch_id
    if status.outcome == "failed":
        return BatchFailedError(
            f"batch {batch_id} failed: {status.reason}", batch_id=batch_id, custom_id=custom_id
        )
    if status.outcome == "expired":
        return BatchExpiredError(
            f"batch {batch_id} expired before this request was processed",
            batch_id=batch_id,
            custom_id=custom_id,
        )
    if status.outcome == "cancelled":
        return BatchCancelledError(
            f"batch {batch_id} was cancelled before this request was processed",
            batch_id=batch_id,
            custom_id=custom_id,
        )
    return MissingResultError(
        f"batch {batch_id} ended without a result line for request {custom_id}",
        batch_id=batch_id,
        custom_id=custom_id,
    )


_default: Scheduler | None = None
_default_lock = threading.Lock()


def get_scheduler() -> Scheduler:
    """The process-wide scheduler that wrappers use unless given their own."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Scheduler()
            atexit.register(_default.close)
        return _default


def set_scheduler(scheduler: Scheduler | None) -> Scheduler | None:
    """Replace the process-wide scheduler (None: build a new one on next use); returns the old."""
    global _default
    with _default_lock:
        old, _default = _default, scheduler
    return old
