"""The scheduler: collects requests into provider batches and resolves each caller's future.

Requests arrive from any thread or event loop. They are checked and encoded on the caller's
thread, looked up in the journal (a request an earlier run already submitted re-attaches to
that batch, or takes the answer already fetched), and the rest are appended to a queue keyed
by (adapter, the adapter's grouping key) under one short lock. A queue becomes a batch when it
is full (requests, bytes or inputs), when its window passes, or on an explicit flush. Every
batch then runs as its own task on the scheduler's event loop (see ``_lifecycle``). No lock is
held across a network call or a disk write; the lock guards only the queues and the index of
batches in flight.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Literal

from ._batch import Batch, BatchRecord, Queue
from ._config import Config
from ._errors import InvalidRequestError, RequestTooLargeError, SchedulerClosedError
from ._futures import RequestFuture
from ._gc import gc_paused
from ._journal import Intent, Journal, open_journal
from ._lifecycle import ExpiryPolicy, Lifecycle
from ._loop import LoopThread
from ._poll import PollPolicy
from ._retry import RetryPolicy
from ._waiters import Waiters, add_waiters, fail_all, settle
from .providers import Prepared, Provider, resolve_provider

__all__ = ["BatchRecord", "Scheduler", "get_scheduler", "set_scheduler"]

logger = logging.getLogger("batch_llm")

Dedupe = bool | Literal["auto"]


class Scheduler(Lifecycle):
    """Turns requests from any thread or event loop into as few provider batches as allowed.

    Args:
        window: seconds a queue waits for more single requests before it is submitted
            (default ``BATCH_LLM_WINDOW`` or 3). ``submit_many`` and ``flush`` never wait for it.
        poll_interval: the first poll interval (default ``BATCH_LLM_POLL_INTERVAL`` or 1 s).
        poll_max: the longest poll interval (default ``BATCH_LLM_POLL_MAX`` or 300 s).
        poll_policy: a full ``PollPolicy``, instead of the two settings above.
        journal: where submissions are recorded so a re-run resumes instead of paying again:
            a path, a ``Journal``, or "off"; default ``BATCH_LLM_JOURNAL``, else a SQLite file
            in the user's cache directory.
        dedupe: identical requests share one line (and one charge). ``"auto"`` (the default)
            shares only requests whose answer cannot differ: embeddings, and sampling at
            temperature 0; repeats of a sampled request stay separate samples.
        on_expiry: what happens to requests an expired batch did not reach: ``"resubmit"``
            them in a new batch (at most ``max_resubmits`` times), send them ``"realtime"``
            (full price), or ``"fail"`` them with ``BatchExpiredError``.
        max_resubmits: how many times one request may be sent again.
        retry: how transient provider failures are retried.
        metadata: key/values stamped on every batch where the provider allows it.
        listeners: callables that receive each lifecycle event as a dict (``event`` is one of
            ``batch_submitted``, ``batch_progress``, ``batch_completed``, ``batch_failed``,
            ``batch_expired``, ``batch_cancelled``, ``batch_resumed``, ``request_escalated``).
            They run on the scheduler's loop and must return quickly.
        sleep, clock: injected for tests, so nothing has to really wait.
    """

    def __init__(
        self,
        *,
        window: float | None = None,
        poll_interval: float | None = None,
        poll_max: float | None = None,
        poll_policy: PollPolicy | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        dedupe: Dedupe = "auto",
        on_expiry: ExpiryPolicy = "resubmit",
        max_resubmits: int = 2,
        retry: RetryPolicy | None = None,
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
        self.journal = open_journal(journal)
        self.dedupe: Dedupe = dedupe
        self.on_expiry = on_expiry
        self.max_resubmits = max_resubmits
        self._sleep = sleep or asyncio.sleep
        self.retry = retry or RetryPolicy(sleep=self._sleep)
        self.metadata = dict(metadata or {})
        self._listeners = list(listeners)
        self._clock = clock or time.monotonic
        self._loop = LoopThread()
        self._lock = threading.Lock()
        self._queues: dict[tuple[Provider, Hashable], Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._journal_io = None
        # Batches this process follows (queued ones from the moment they are cut), by intent,
        # and which of them holds each request: identical requests join them.
        self._tracked: dict[str, Batch] = {}
        self._holding: dict[tuple[str, str], str] = {}
        # How many times each sampled (not deduplicated) request was asked for: the n-th
        # repeat gets the same line id in every run, so a re-run finds each repeat's answer.
        self._occurrences: dict[str, int] = {}
        self._closed = False
        self.batches: list[BatchRecord] = []

    # -- events -------------------------------------------------------------------------------

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
            "intent_id": record.intent_id,
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
        deadline: float | None = None,
    ) -> RequestFuture:
        """Queue one request and return its future.

        Bad input raises ``InvalidRequestError`` here, before anything is queued. Without
        ``flush`` the request waits for more company until the window passes. With a
        ``deadline`` (seconds), a request the batch has not answered by then is sent realtime.
        """
        return self.submit_many(provider, endpoint, [body], flush=flush, deadline=deadline)[0]

    def submit_many(
        self,
        provider: str | Provider,
        endpoint: str,
        bodies: Iterable[Mapping[str, Any]],
        *,
        flush: bool = True,
        return_exceptions: bool = False,
        deadline: float | None = None,
    ) -> list[RequestFuture]:
        """Queue a fan-out and return one future per body, in order.

        The whole list goes into its queues at once and, with ``flush`` (the default), is
        submitted right away instead of waiting for the window. Bad input raises before any of
        the list is queued; with ``return_exceptions`` a bad body gets a failed future instead
        and the rest go ahead. Requests an earlier run already submitted re-attach to that
        batch (or take its stored answer) instead of being submitted again.
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
        if deadline is not None:
            due = self._clock() + deadline
            for future in futures:
                future.deadline = due
        ready: list[Batch] = []
        timers: list[tuple[Queue, int]] = []
        attach: dict[str, list[tuple[Prepared, RequestFuture]]] = {}
        with self._lock, gc_paused():
            if self._closed:
                raise SchedulerClosedError("the scheduler is closed")
            self._name_repeats(prepared)
            fresh = self._attach_to_held(adapter, prepared, futures, attach)
        found = self._journal_lookup(adapter, fresh)
        with self._lock, gc_paused():
            touched: dict[int, Queue] = {}
            for item, future in fresh:
                intent = found.get(item.custom_id)
                if intent is not None:
                    attach.setdefault(intent.intent_id, []).append((item, future))
                    continue
                queue = self._enqueue(adapter, item, future, ready, timers, arm=not flush)
                touched[id(queue)] = queue
            if flush:
                ready.extend(self._cut(q) for q in touched.values() if q.lines)
        intents = {i.intent_id: i for i in found.values()}
        for intent_id, items in attach.items():
            self._loop.call_soon(self._attach, adapter, intents.get(intent_id), intent_id, items)
        for queue, generation in timers:
            self._loop.call_soon(self._arm_window, queue, generation)
        for batch in ready:
            self._loop.call_soon(self._launch, batch)
        return futures

    def flush(self) -> None:
        """Submit everything queued now, without waiting for any window."""
        with self._lock:
            ready = [self._cut(q) for q in self._queues.values() if q.lines]
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
        # The line's id is a digest of what it asks, so identical requests can share a line
        # and a later run can recognise a request it already paid for.
        digest = hashlib.blake2b(prepared.endpoint.encode(), digest_size=16)
        digest.update(prepared.data)
        prepared.custom_id = digest.hexdigest()
        return prepared

    def _shares(self, prepared: Prepared) -> bool:
        return prepared.deterministic if self.dedupe == "auto" else bool(self.dedupe)

    def _name_repeats(self, prepared: list[Prepared | BaseException]) -> None:
        """Give each repeat of a request that must not be shared its own line id; the lock is
        held."""
        occurrences = self._occurrences
        for item in prepared:
            if isinstance(item, BaseException) or self._shares(item):
                continue
            digest = item.custom_id
            n = occurrences.get(digest, 0)
            occurrences[digest] = n + 1
            item.custom_id = f"{digest}-{n}"

    def _attach_to_held(
        self,
        adapter: Provider,
        prepared: list[Prepared | BaseException],
        futures: list[RequestFuture],
        attach: dict[str, list[tuple[Prepared, RequestFuture]]],
    ) -> list[tuple[Prepared, RequestFuture]]:
        """Requests a batch of this process already holds join it; the rest are returned. The
        lock is held."""
        holding = self._holding
        provider_id = adapter.identity() if holding else ""
        fresh: list[tuple[Prepared, RequestFuture]] = []
        for item, future in zip(prepared, futures, strict=True):
            if isinstance(item, BaseException):
                future.set_exception(item)
                continue
            future.custom_id = item.custom_id
            intent_id = holding.get((provider_id, item.custom_id)) if holding else None
            if intent_id is not None:
                attach.setdefault(intent_id, []).append((item, future))
            else:
                fresh.append((item, future))
        return fresh

    def _journal_lookup(
        self, adapter: Provider, fresh: list[tuple[Prepared, RequestFuture]]
    ) -> dict[str, Intent]:
        """Which of these requests an earlier run submitted (a local disk read, no lock)."""
        if not fresh:
            return {}
        try:
            return self.journal.lookup(adapter.identity(), [p.custom_id for p, _ in fresh])
        except Exception as exc:  # a broken journal must not stop work: submit afresh
            logger.warning("journal lookup failed; submitting afresh: %s", exc)
            return {}

    def _enqueue(
        self,
        adapter: Provider,
        prepared: Prepared,
        waiting: Waiters,
        ready: list[Batch],
        timers: list[tuple[Queue, int]],
        *,
        arm: bool,
    ) -> Queue:
        """Add one request to its queue; the lock is held."""
        queue_key = (adapter, prepared.key)
        queue = self._queues.get(queue_key)
        if queue is None:
            queue = self._queues[queue_key] = Queue(
                adapter, prepared.key, adapter.limits(prepared.key)
            )
        custom_id = prepared.custom_id
        if custom_id in queue.waiters:
            add_waiters(queue.waiters, custom_id, waiting)
            return queue
        if not queue.fits(prepared):
            ready.append(self._cut(queue))
        if not queue.lines:
            queue.generation += 1
            if arm:
                timers.append((queue, queue.generation))
        queue.add(prepared, waiting)
        return queue

    def _cut(self, queue: Queue) -> Batch:
        """A queue's lines become a batch, tracked from now on; the lock is held."""
        batch = queue.cut()
        self._tracked[batch.intent_id] = batch
        provider_id = batch.intent.provider_id
        holding = self._holding
        for custom_id in batch.pending:
            holding[(provider_id, custom_id)] = batch.intent_id
        return batch

    def _untrack(self, batch: Batch) -> None:
        with self._lock:
            if self._tracked.get(batch.intent_id) is batch:
                del self._tracked[batch.intent_id]
            provider_id = batch.intent.provider_id
            holding = self._holding
            for custom_id in batch.by_id or batch.pending:
                if holding.get((provider_id, custom_id)) == batch.intent_id:
                    del holding[(provider_id, custom_id)]

    def _requeue(self, provider: Provider, items: list[tuple[Prepared, Waiters]]) -> None:
        """Send lines again, in a new batch, now (on the loop)."""
        if not items:
            return
        ready: list[Batch] = []
        with self._lock:
            if self._closed:
                for _, waiting in items:
                    settle(
                        waiting,
                        SchedulerClosedError(
                            "the scheduler closed before this request was sent again"
                        ),
                    )
                return
            touched: dict[int, Queue] = {}
            for prepared, waiting in items:
                queue = self._enqueue(provider, prepared, waiting, ready, [], arm=False)
                touched[id(queue)] = queue
            ready.extend(self._cut(q) for q in touched.values() if q.lines)
        for batch in ready:
            self._launch(batch)

    # -- on the loop --------------------------------------------------------------------------

    def _attach(
        self,
        provider: Provider,
        intent: Intent | None,
        intent_id: str,
        items: list[tuple[Prepared, RequestFuture]],
    ) -> None:
        """Requests an existing batch already holds: wait on it (or on its stored answers)."""
        batch = self._tracked.get(intent_id)
        if batch is None:
            if intent is None:  # it finished between lookup and now: submit afresh
                self._requeue(provider, list(items))
                return
            batch = Batch(provider, None, [], {}, intent=intent)
            self._tracked[intent_id] = batch
            self._resume_soon(batch)
        for prepared, future in items:
            future.batch_id = batch.record.batch_id
            batch.by_id.setdefault(prepared.custom_id, prepared)
            if batch.finished or (
                batch.status is not None and prepared.custom_id not in batch.pending
            ):
                batch.late.append((prepared, future))
            else:
                add_waiters(batch.pending, prepared.custom_id, future)

    def _resume_soon(self, batch: Batch) -> None:
        # Give other attachments queued on the loop a chance to join before following it.
        asyncio.get_running_loop().call_soon(self._resume, batch)

    def _arm_window(self, queue: Queue, generation: int) -> None:
        asyncio.get_running_loop().call_later(
            self.config.window, self._window_passed, queue, generation
        )

    def _window_passed(self, queue: Queue, generation: int) -> None:
        with self._lock:
            if queue.generation != generation or not queue.lines:
                return
            batch = self._cut(queue)
        self._launch(batch)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, *, cancel: bool = False, timeout: float = 30.0) -> dict[str, list[str]]:
        """Stop taking requests and stop the loop; returns what happened to running batches.

        Requests still queued fail with ``SchedulerClosedError`` (nothing was sent for them).
        Batches already submitted are cancelled upstream with ``cancel=True``; by default
        they keep running at the provider, recorded in the journal for a later run to collect.
        Waiting callers fail with ``SchedulerClosedError`` naming their batch. The returned
        dict lists batch ids under ``"cancelled"`` and ``"left_running"``, and both are logged.
        """
        report: dict[str, list[str]] = {"cancelled": [], "left_running": []}
        with self._lock:
            if self._closed:
                return report
            self._closed = True
            queued = [q.cut() for q in self._queues.values() if q.lines]
        for batch in queued:
            fail_all(
                batch.pending,
                lambda _cid: SchedulerClosedError(
                    "the scheduler closed before this request was submitted"
                ),
            )
        if self._loop.started:
            try:
                report = self._loop.run(self._shutdown(cancel)).result(timeout)
            except Exception as exc:  # a stuck shutdown must not stop interpreter exit
                logger.warning("closing the scheduler: %s", exc)
        self._loop.stop()
        if self._journal_io is not None:
            self._journal_io.shutdown(wait=True)
        self.journal.close()
        if report["cancelled"]:
            logger.warning(
                "scheduler closed; cancelled batches upstream: %s", ", ".join(report["cancelled"])
            )
        if report["left_running"]:
            logger.warning(
                "scheduler closed with %d batch(es) still running upstream: %s; they were left "
                "running, and a later run with the same journal picks them up",
                len(report["left_running"]),
                ", ".join(report["left_running"]),
            )
        return report

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
