"""The scheduler: collects requests into provider batches and resolves each caller's future.

Requests arrive from any thread or event loop. They are checked and encoded on the caller's
thread, looked up in the journal (a request an earlier run already submitted re-attaches to
that batch, or takes the answer already fetched), and the rest are appended to a queue keyed
by (adapter, the adapter's grouping key) under one short lock. A queue becomes a batch when it
is full (requests, bytes or inputs), when its window passes, or on an explicit flush. Every
batch then runs as its own task on the scheduler's event loop, driven by the scheduler's runner
(``_runner.BatchRunner``; a dry run's ``DryRunPlanner`` plans instead). No lock is held across a
network call or a disk write; the lock guards only the queues and the index of batches in
flight (``_inflight``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

from ._batch import Batch, BatchRecord, Queue
from ._config import Config, ProgressOption
from ._cost import CostReport, UsageMeter, get_prices
from ._dry_run import DryRunPlanner, DryRunReport
from ._errors import (
    InvalidRequestError,
    RequestTooLargeError,
    SchedulerClosedError,
)
from ._events import EventHub, Listener, events_from_env
from ._futures import RequestFuture, on_all_done
from ._gc import gc_paused
from ._inflight import InFlight
from ._journal import Intent, Journal, open_journal
from ._journal_io import JournalWriter
from ._lease import Leases
from ._loop import LoopThread
from ._poll import PollPolicy
from ._progress import ProgressDisplay, drawer
from ._retry import RetryPolicy
from ._rounds import Held, current_holder
from ._runner import BatchRunner, ExpiryPolicy, Runner
from ._waiters import Waiters, add_waiters, deadline_of, each, settle
from .providers import Line, Provider, resolve_provider

__all__ = ["BatchRecord", "Scheduler"]

logger = logging.getLogger("batch_llm")

Dedupe = bool | Literal["auto"]

# Windows a queue of single calls may stay open while calls keep joining it.
_WINDOW_CAP = 10
# Sampled requests whose repeats the scheduler counts at once (about 130 B each); when more
# come, counting starts over in a new round (``Scheduler._name_repeats``).
_OCCURRENCES_KEPT = 100_000


class _Submission(NamedTuple):
    """Checked requests on their way to the queues (possibly held by a round first)."""

    adapter: Provider
    prepared: list[Line | BaseException]
    futures: list[RequestFuture]
    stamp: Hashable
    extra: dict[str, str] | None


class Scheduler:
    """Turns requests from any thread or event loop into as few provider batches as allowed.

    Args:
        window: seconds without a new single request after which a queue of them is submitted
            (at most ten windows after its first; default ``BATCH_LLM_WINDOW`` or 3).
            ``submit_many`` and ``flush`` never wait for it, and a ``Round`` releases its
            requests as soon as every job waits.
        poll_interval: the first poll interval (default ``BATCH_LLM_POLL_INTERVAL`` or 1 s).
        poll_max: the longest poll interval (default ``BATCH_LLM_POLL_MAX`` or 3600 s).
        poll_policy: a full ``PollPolicy``, instead of the two settings above.
        journal: where submissions are recorded so a re-run (or another process sharing it)
            resumes instead of paying again: a path (SQLite), a ``postgresql://`` URL (a
            fleet of workers), a ``Journal`` (``SQLiteJournal``, ``PostgresJournal``), or
            "off"; default ``BATCH_LLM_JOURNAL``, else a SQLite file in the user's cache
            directory. A damaged or unreachable journal raises ``JournalError`` here, before
            anything is sent.
        dedupe: identical requests share one line (and one charge). ``"auto"`` (the default)
            shares only requests whose answer cannot differ: embeddings, and sampling at
            temperature 0; repeats of a sampled request stay separate samples.
        on_expiry: what happens to requests an expired batch did not reach: ``"resubmit"``
            them in a new batch (at most ``max_resubmits`` times), send them ``"realtime"``
            (full price), or ``"fail"`` them with ``BatchExpiredError``.
        max_resubmits: how many times one request may be sent again.
        retry: how transient provider failures are retried.
        metadata: key/values stamped on every batch where the provider allows it: OpenAI
            batch metadata (at most 16 pairs, keys clipped to 64 characters and values to
            512), Gemini's display name; Anthropic batches take no metadata.
            ``submit_many(metadata=...)`` adds more for one fan-out's batches.
        listeners: callables that receive each lifecycle event as a dict (``event`` is one of
            ``batch_submitted``, ``batch_progress``, ``batch_completed``, ``batch_failed``,
            ``batch_expired``, ``batch_cancelled``, ``batch_resumed``, ``request_escalated``;
            see ``batch_llm._events`` for the fields). They run on the scheduler's loop and
            must return quickly. ``JsonlEvents`` writes them to a file; so does setting
            ``BATCH_LLM_EVENTS=/path/events.jsonl``. Events are also logged on the
            ``batch_llm`` logger (INFO, progress at DEBUG).
        progress: the progress display of fan-outs waited on with ``wait``/``gather`` (and
            the wrappers' ``batch``...): None shows one when the output is a terminal or a
            notebook (``BATCH_LLM_PROGRESS=1|0`` forces it), True/False force it, and a
            tqdm-like factory draws with that.
        lease: seconds this scheduler's claim on a batch holds in a shared journal unless
            renewed (default ``BATCH_LLM_LEASE`` or 30; renewed every third of it while the
            scheduler lives): how long other processes wait before taking over the batches of
            one that died. On a SQLite journal, an owner whose process is gone from this
            machine is taken over at once.
        dry_run: plan instead of submit (default ``BATCH_LLM_DRY_RUN``): requests are checked,
            queued and cut into batches as usual, but nothing reaches the provider or the
            journal; every request fails with ``DryRunError`` and ``plan`` says what would
            have been submitted, with estimated tokens and cost.
        sleep, clock: injected for tests, so nothing has to really wait.

    ``cost()`` reports the tokens the providers billed and what they cost, from the usage in
    the answers.
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
        progress: ProgressOption = None,
        lease: float | None = None,
        dry_run: bool | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = Config.from_env(
            window=window,
            poll_interval=poll_interval,
            poll_max=poll_max,
            dry_run=dry_run,
            lease=lease,
        )
        self.dry_run = self.config.dry_run
        # A dry run draws no progress: nothing moves.
        self.progress: ProgressOption = False if self.dry_run else progress
        self.poll_policy = poll_policy or PollPolicy(
            initial=self.config.poll_interval,
            cap=max(self.config.poll_max, self.config.poll_interval),
            # An injected clock times polls too, so a test's fake time drives everything.
            clock=clock or time.time,
        )
        # A dry run neither reads nor writes the journal: it plans as if nothing was sent before.
        self.journal = open_journal("off" if self.dry_run else journal)
        self.dedupe: Dedupe = dedupe
        sleep = sleep or asyncio.sleep
        self.retry = retry or RetryPolicy(sleep=sleep)
        self.metadata = {str(k): str(v) for k, v in (metadata or {}).items()}
        self.events = EventHub(listeners)
        from_env = events_from_env()
        if from_env is not None:
            self.events.add(from_env)
        self._clock = clock or time.monotonic
        self._sleep = sleep
        # Window timers running on the loop (cancelled at close).
        self._timers: set[asyncio.Task[None]] = set()
        self._loop = LoopThread()
        # Batches this process follows, and the lock that guards them with the queues.
        self._inflight = InFlight()
        self._lock = self._inflight.lock
        self._queues: dict[tuple[Provider, Hashable, Hashable], Queue] = {}
        # How many times each sampled (not deduplicated) request was asked for: the n-th
        # repeat gets the same line id in every run, so a re-run finds each repeat's answer.
        # Bounded: ``_name_repeats`` starts a new round of counting when it is full.
        self._occurrences: dict[str, int] = {}
        self._occurrence_round = 0
        self._closed = False
        # Usage of every answer handed out, by provider, model and kind (see ``_cost``).
        self._meter = UsageMeter()
        self._writer = JournalWriter(self.journal)
        self._plan: DryRunReport | None = None
        self._runner: Runner
        if self.dry_run:
            self._plan = DryRunReport(prices_as_of=get_prices().as_of)
            self._runner = DryRunPlanner(self._plan, self._inflight)
        else:
            self._runner = BatchRunner(
                writer=self._writer,
                events=self.events,
                meter=self._meter,
                inflight=self._inflight,
                requeue=self._requeue,
                attach=self._attach,
                retry=self.retry,
                poll=self.poll_policy,
                leases=_leases(self.config.lease, self.poll_policy),
                metadata=self.metadata,
                on_expiry=on_expiry,
                max_resubmits=max_resubmits,
                sleep=sleep,
                clock=self._clock,
            )

    @property
    def batches(self) -> list[BatchRecord]:
        """Every batch this scheduler submitted or resumed, in order (``BatchRecord``)."""
        return self._runner.records

    # -- events -------------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Also send lifecycle events to ``listener``."""
        self.events.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop sending events to ``listener``."""
        self.events.remove(listener)

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self,
        provider: str | Provider,
        endpoint: str,
        body: Mapping[str, Any],
        *,
        flush: bool = False,
        deadline: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RequestFuture:
        """Queue one request and return its future.

        Bad input raises ``InvalidRequestError`` here, before anything is queued. Without
        ``flush`` the request waits for more company until the window passes. With a
        ``deadline`` (seconds), a request the batch has not answered by then is sent realtime.
        ``metadata`` is as for ``submit_many``.
        """
        return self._submit(
            provider, endpoint, [body], flush, False, deadline, metadata, fan_out=False
        )[0]

    def submit_many(
        self,
        provider: str | Provider,
        endpoint: str,
        bodies: Iterable[Mapping[str, Any]],
        *,
        flush: bool = True,
        return_exceptions: bool = False,
        deadline: float | None = None,
        metadata: Mapping[str, str] | None = None,
        share_round: bool = False,
    ) -> list[RequestFuture]:
        """Queue a fan-out and return one future per body, in order.

        The whole list goes into its queues at once and, with ``flush`` (the default), is
        submitted right away instead of waiting for the window. Bad input raises before any of
        the list is queued; with ``return_exceptions`` a bad body gets a failed future instead
        and the rest go ahead. Requests an earlier run already submitted re-attach to that
        batch (or take its stored answer) instead of being submitted again.

        ``metadata`` is stamped on these requests' batches on top of the scheduler's own
        (a run id, say); requests with different metadata never share a batch, but a request
        identical to one already in flight joins that batch, whatever its metadata.

        ``share_round``, for callers that await the futures on the running event loop: hold
        the fan-out for a few steps of that loop, so that fan-outs started together (an
        ``asyncio.gather`` of them) go up as one batch. Inside a job of a ``Round`` every
        request is held for the round anyway.
        """
        return self._submit(
            provider,
            endpoint,
            bodies,
            flush,
            return_exceptions,
            deadline,
            metadata,
            fan_out=flush,
            share_round=share_round,
        )

    def _submit(
        self,
        provider: str | Provider,
        endpoint: str,
        bodies: Iterable[Mapping[str, Any]],
        flush: bool,
        return_exceptions: bool,
        deadline: float | None,
        metadata: Mapping[str, str] | None,
        *,
        fan_out: bool,
        share_round: bool = False,
    ) -> list[RequestFuture]:
        adapter = resolve_provider(provider)
        # Only a flushed fan-out shares a loop's round: a single call waits for the window.
        if deadline is not None and not adapter.supports("realtime"):
            raise InvalidRequestError(
                f"a deadline sends late requests realtime, and {adapter.name} has no realtime "
                "API here"
            )
        holder, job = current_holder(share_round and flush)
        if job is not None and job.metadata:
            metadata = {**job.metadata, **(metadata or {})}
        extra = {str(k): str(v) for k, v in metadata.items()} if metadata else None
        stamp = tuple(sorted(extra.items())) if extra else None
        prepared: list[Line | BaseException] = []
        with gc_paused():
            for index, body in enumerate(bodies):
                try:
                    prepared.append(self._prepare(adapter, endpoint, body))
                except InvalidRequestError as exc:
                    if not return_exceptions:
                        raise type(exc)(f"request {index}: {exc}") from None
                    prepared.append(exc)
            # A flushed fan-out is waited on as one: it gets a progress display (single calls
            # do not, however they are flushed).
            futures = RequestFuture.group(
                len(prepared),
                adapter.name,
                events=self.events,
                progress=self.progress,
                fan_out=fan_out,
            )
        if deadline is not None:
            due = self._clock() + deadline
            for future in futures:
                future.deadline = due
        submission = _Submission(adapter, prepared, futures, stamp, extra)
        if holder is not None:
            with self._lock:
                if self._closed:
                    raise SchedulerClosedError("the scheduler is closed")
            holder.hold(Held(futures, self._release, submission, self.config.window), job)
            return futures
        self._queue([submission], flush=flush)
        return futures

    def _release(self, submissions: list[_Submission]) -> list[list[RequestFuture]]:
        """Submissions a round held, queued and flushed together: each queue they reach is
        cut once. Returns the futures of each batch cut."""
        return self._queue(submissions, flush=True)

    def _queue(self, submissions: list[_Submission], *, flush: bool) -> list[list[RequestFuture]]:
        """Requests checked already: joined to a batch that holds them, re-attached to one an
        earlier run submitted, or queued (and, with ``flush``, every queue they reach cut
        now). Returns the futures of each batch cut."""
        ready: list[Batch] = []
        timers: list[tuple[Queue, int]] = []
        attach: list[tuple[_Submission, dict[str, list[tuple[Line, RequestFuture]]]]] = []
        fresh: list[list[tuple[Line, RequestFuture]]] = []
        with self._lock, gc_paused():
            if self._closed:
                raise SchedulerClosedError("the scheduler is closed")
            for sub in submissions:
                self._name_repeats(sub.prepared)
                joins: dict[str, list[tuple[Line, RequestFuture]]] = {}
                fresh.append(self._attach_to_held(sub.adapter, sub.prepared, sub.futures, joins))
                attach.append((sub, joins))
        found = [
            self._journal_lookup(sub.adapter, new)
            for sub, new in zip(submissions, fresh, strict=True)
        ]
        flights: list[list[RequestFuture]] = []
        launched = 0
        with self._lock, gc_paused():
            touched: dict[int, Queue] = {}
            holder = self._inflight.holder
            for sub, new, known, (_, joins) in zip(submissions, fresh, found, attach, strict=True):
                provider_id = sub.adapter.identity()
                for item, future in new:
                    intent = known.get(item.custom_id)
                    # Another thread may have cut a batch holding this request while the
                    # journal was read (concurrent fan-outs of the same prompts): join it.
                    held_by = intent.intent_id if intent is not None else None
                    held_by = held_by or holder(provider_id, item.custom_id)
                    if held_by is not None:
                        joins.setdefault(held_by, []).append((item, future))
                        continue
                    queue = self._enqueue(
                        sub.adapter,
                        item,
                        future,
                        ready,
                        timers,
                        arm=not flush,
                        stamp=sub.stamp,
                        extra=sub.extra,
                    )
                    touched[id(queue)] = queue
                    if len(ready) > launched:
                        # A queue filled up: its batch goes now, while the rest is queued
                        # (which futures it answers read before it is launched).
                        for batch in ready[launched:]:
                            flights.append(_futures_of(batch))
                            self._loop.call_soon(self._runner.launch, batch)
                        launched = len(ready)
            if flush:
                ready.extend(self._cut(q) for q in touched.values() if q.lines)
            # Which futures each batch answers, read before any of them is launched.
            flights += [_futures_of(b) for b in ready[launched:]]
        for (sub, joins), known in zip(attach, found, strict=True):
            intents = {i.intent_id: i for i in known.values()}
            for intent_id, items in joins.items():
                self._loop.call_soon(
                    self._attach, sub.adapter, intents.get(intent_id), intent_id, items, sub.extra
                )
        for queue, generation in timers:
            self._loop.call_soon(self._arm_window, queue, generation)
        for batch in ready[launched:]:
            self._loop.call_soon(self._runner.launch, batch)
        return flights

    def flush(self) -> None:
        """Submit everything queued now, without waiting for any window."""
        with self._lock:
            ready = [self._cut(q) for q in self._queues.values() if q.lines]
        for batch in ready:
            self._loop.call_soon(self._runner.launch, batch)

    def _prepare(self, adapter: Provider, endpoint: str, body: Mapping[str, Any]) -> Line:
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

    def _shares(self, prepared: Line) -> bool:
        return prepared.deterministic if self.dedupe == "auto" else bool(self.dedupe)

    def _name_repeats(self, prepared: list[Line | BaseException]) -> None:
        """Give each repeat of a request that must not be shared its own line id; the lock is
        held.

        The n-th ask of a request is ``<digest>-<n>``. The counts are kept for at most
        ``_OCCURRENCES_KEPT`` requests: when one more comes, they are dropped and counting
        starts over in a new round, whose ids name it (``<digest>-<round>-<n>``). So no two
        asks in one process share a line (a line already answered would hand its sample out
        again), memory stays bounded, and a re-run asking the same requests in the same
        order (which fills the counts at the same points) gives every ask the id it had.
        """
        occurrences = self._occurrences
        for item in prepared:
            if isinstance(item, BaseException) or self._shares(item):
                continue
            digest = item.custom_id
            n = occurrences.get(digest)
            if n is None:
                n = 0
                if len(occurrences) >= _OCCURRENCES_KEPT:
                    occurrences = self._occurrences = {}
                    self._occurrence_round += 1
            occurrences[digest] = n + 1
            rnd = self._occurrence_round
            item.custom_id = f"{digest}-{rnd}-{n}" if rnd else f"{digest}-{n}"

    def _attach_to_held(
        self,
        adapter: Provider,
        prepared: list[Line | BaseException],
        futures: list[RequestFuture],
        attach: dict[str, list[tuple[Line, RequestFuture]]],
    ) -> list[tuple[Line, RequestFuture]]:
        """Requests a batch of this process already holds join it; the rest are returned. The
        lock is held."""
        holder = self._inflight.holder
        provider_id = adapter.identity()
        fresh: list[tuple[Line, RequestFuture]] = []
        for item, future in zip(prepared, futures, strict=True):
            if isinstance(item, BaseException):
                future.set_exception(item)
                continue
            future.custom_id = item.custom_id
            intent_id = holder(provider_id, item.custom_id)
            if intent_id is not None:
                attach.setdefault(intent_id, []).append((item, future))
            else:
                fresh.append((item, future))
        return fresh

    def _journal_lookup(
        self, adapter: Provider, fresh: list[tuple[Line, RequestFuture]]
    ) -> dict[str, Intent]:
        """Which of these requests an earlier run (or another process) submitted: a read, no
        lock held. Only a shortcut: the claim made before a batch is sent decides."""
        if not fresh:
            return {}
        try:
            return self.journal.lookup(adapter.identity(), [p.custom_id for p, _ in fresh])
        except Exception as exc:  # the claim before submitting reads the journal again
            logger.debug("journal lookup failed (the claim before submitting decides): %s", exc)
            return {}

    def _enqueue(
        self,
        adapter: Provider,
        prepared: Line,
        waiting: Waiters,
        ready: list[Batch],
        timers: list[tuple[Queue, int]],
        *,
        arm: bool,
        stamp: Hashable = None,
        extra: dict[str, str] | None = None,
    ) -> Queue:
        """Add one request to its queue; the lock is held. ``stamp`` is the hashable form of
        the batch metadata ``extra``: requests stamped differently queue apart."""
        queue_key = (adapter, prepared.key, stamp)
        queue = self._queues.get(queue_key)
        if queue is None:
            queue = self._queues[queue_key] = Queue(
                adapter, prepared.key, adapter.limits(prepared.key), extra
            )
        custom_id = prepared.custom_id
        if custom_id in queue.waiters:
            add_waiters(queue.waiters, custom_id, waiting)
            return queue
        if not queue.fits(prepared):
            ready.append(self._cut(queue))
        if arm:
            queue.joined = self._clock()
        if not queue.lines:
            queue.generation += 1
            if arm:
                queue.opened = queue.joined
                timers.append((queue, queue.generation))
        queue.add(prepared, waiting)
        return queue

    def _cut(self, queue: Queue) -> Batch:
        """A queue's lines become a batch, tracked from now on; the lock is held."""
        batch = queue.cut()
        self._inflight.track(batch)
        return batch

    def _requeue(
        self,
        provider: Provider,
        items: list[tuple[Line, Waiters]],
        metadata: dict[str, str] | None = None,
    ) -> None:
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
            stamp = tuple(sorted(metadata.items())) if metadata else None
            for prepared, waiting in items:
                queue = self._enqueue(
                    provider, prepared, waiting, ready, [], arm=False, stamp=stamp, extra=metadata
                )
                touched[id(queue)] = queue
            ready.extend(self._cut(q) for q in touched.values() if q.lines)
        for batch in ready:
            self._runner.launch(batch)

    # -- on the loop --------------------------------------------------------------------------

    def _attach(
        self,
        provider: Provider,
        intent: Intent | None,
        intent_id: str,
        items: list[tuple[Line, Waiters]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Requests an existing batch already holds (this process's, an earlier run's or
        another process's): wait on it, or on its stored answers."""
        batch = self._inflight.get(intent_id)
        if batch is None:
            # It finished between lookup and now: take its kept answers, else submit afresh.
            intent = intent or self._inflight.answered(intent_id)
            if intent is None:
                self._requeue(provider, list(items), metadata)
                return
            batch = Batch(provider, None, [], {}, intent=intent, metadata=metadata)
            self._inflight.follow(batch)
            # Let other attachments queued on the loop join before following it.
            asyncio.get_running_loop().call_soon(self._runner.resume, batch)
        for prepared, waiting in items:
            for future in each(waiting):
                future.batch_id = batch.record.batch_id
            if not batch.deadlines and deadline_of(waiting) is not None:
                batch.deadlines = True
            batch.by_id.setdefault(prepared.custom_id, prepared)
            if batch.finished or (
                batch.status is not None and prepared.custom_id not in batch.pending
            ):
                batch.late.append((prepared, waiting))
            else:
                add_waiters(batch.pending, prepared.custom_id, waiting)

    def _arm_window(self, queue: Queue, generation: int, delay: float | None = None) -> None:
        # A task on the injected sleep, not a loop timer: a test's fake time drives windows too.
        async def wait() -> None:
            await self._sleep(self.config.window if delay is None else delay)
            self._window_passed(queue, generation)

        task = asyncio.get_running_loop().create_task(wait())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    def _window_passed(self, queue: Queue, generation: int) -> None:
        # The window is quiet time: a queue of single calls goes once none has joined it for a
        # window, so calls arriving as a wave spread over seconds (an agent step's calls, as
        # its tool results come in one by one) still share a batch. A steady trickle is sent
        # after _WINDOW_CAP windows at the latest.
        window = self.config.window
        with self._lock:
            if queue.generation != generation or not queue.lines:
                return
            due = min(queue.joined + window, queue.opened + window * _WINDOW_CAP)
            wait = due - self._clock()
            if wait <= 0:
                batch = self._cut(queue)
        if wait > 0:
            self._arm_window(queue, generation, wait)
            return
        self._draw(batch)
        self._runner.launch(batch)

    def _draw(self, batch: Batch) -> None:
        """A progress display for a batch of single calls, which nobody waits on as a group
        (a fan-out's waiter draws its own): without one, a window's wait looks like a hang."""
        factory = drawer(self.progress)
        if factory is None:
            return
        futures = [f for waiting in batch.pending.values() for f in each(waiting)]
        try:
            display = ProgressDisplay(
                futures, factory, desc=f"batch-llm ({len(futures)} single calls)"
            )
        except Exception as exc:  # no tqdm, no terminal: the batch goes on without one
            logger.debug("no progress display: %s", exc)
            return
        # Closed off the loop: closing joins the display's own thread.
        on_all_done(futures, lambda: threading.Thread(target=display.close, daemon=True).start())

    # -- cost and plans -----------------------------------------------------------------------

    def realtime(
        self, provider: str | Provider, endpoint: str, body: Mapping[str, Any]
    ) -> RequestFuture:
        """Send one request through the provider's realtime API now, at full price.

        For calls where waiting for a batch costs more than the discount saves: a query
        embedding a retriever waits on, say. Checked and answered like a batched request (the
        same body, the same response body or SDK error), retried on transient failures, and
        counted as realtime in the cost report.
        """
        adapter = resolve_provider(provider)
        if not adapter.supports("realtime"):
            raise InvalidRequestError(f"{adapter.name} has no realtime API here")
        prepared = self._prepare(adapter, endpoint, body)
        future = RequestFuture(adapter.name)
        future.custom_id = prepared.custom_id
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("the scheduler is closed")
        self._loop.call_soon(self._runner.realtime, adapter, prepared, future)
        return future

    def cost(self) -> CostReport:
        """What this scheduler's answers cost so far: tokens per provider and model, from the
        usage the providers reported, priced from the price table (see ``set_prices``).

        Answers read from batches count at batch price, escalated ones at realtime price;
        answers replayed from the journal (paid for by an earlier run) are reported on rows of
        their own and left out of the totals.
        """
        return self._meter.report()

    @property
    def plan(self) -> DryRunReport:
        """In a dry run, the batches planned so far (live: it grows as batches are cut)."""
        if self._plan is None:
            raise RuntimeError("this scheduler is not a dry run; build it with dry_run=True")
        return self._plan

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, *, cancel: bool = False, timeout: float = 30.0) -> dict[str, list[str]]:
        """Stop taking requests and stop the loop; returns what happened to running batches.

        Requests still queued fail with ``SchedulerClosedError`` (nothing was sent for them).
        Batches already submitted are cancelled upstream with ``cancel=True``; by default
        they keep running at the provider, recorded in the journal for a later run to collect.
        A batch that has ended upstream but whose results were still being read is neither:
        it is left unread, and a later run with the same journal reads it. Waiting callers
        fail with ``SchedulerClosedError`` naming their batch. The returned dict lists batch
        ids under ``"cancelled"``, ``"left_running"`` and ``"left_unread"``, and each is
        logged. Journal writes already asked for are finished before the journal closes.
        """
        report: dict[str, list[str]] = {"cancelled": [], "left_running": [], "left_unread": []}
        with self._lock:
            if self._closed:
                return report
            self._closed = True
            queued = [q.cut() for q in self._queues.values() if q.lines]
        if self._loop.started:  # after the batches already handed to the loop
            self._loop.run(asyncio.sleep(0)).result(timeout)
        self._runner.unsent(queued)
        if self._loop.started:
            for timer in list(self._timers):
                self._loop.call_soon(timer.cancel)
            try:
                report = self._loop.run(self._runner.shutdown(cancel)).result(timeout)
            except Exception as exc:  # a stuck shutdown must not stop interpreter exit
                logger.warning("closing the scheduler: %s", exc)
        self._loop.stop()
        self._writer.close()
        for key, message in _CLOSING_MESSAGES.items():
            if report.get(key):
                logger.warning(message, len(report[key]), ", ".join(report[key]))
        return report

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# What ``close`` logs of each kind of batch it leaves (how many, and their ids).
_CLOSING_MESSAGES = {
    "cancelled": "scheduler closed; cancelled batches upstream (%d): %s",
    "left_running": (
        "scheduler closed with %d batch(es) still running upstream: %s; they were left "
        "running, and a later run with the same journal picks them up"
    ),
    "left_unread": (
        "scheduler closed while reading the results of %d batch(es) that ended upstream: %s; "
        "a later run with the same journal reads them"
    ),
}


def _futures_of(batch: Batch) -> list[RequestFuture]:
    """The futures a batch answers."""
    return [f for waiting in batch.pending.values() for f in each(waiting)]


def _leases(length: float, poll: PollPolicy) -> Leases:
    """Leases of ``length`` seconds; a batch another scheduler owns is looked up in the
    journal as often as this scheduler would poll a young batch (at most every 0.2 s, at
    least every 5 s): reading a journal costs nothing at the provider."""
    first = min(poll.initial, 0.2)
    return Leases(length=length, follow_initial=first, follow_max=max(first, min(poll.cap, 5.0)))
