"""The batch runner: a batch's life on the scheduler's loop, from submission to its last answer,
and what to do when it ends badly. Nothing is lost (every caller gets an answer or an error) and
nothing is paid for twice (every submission is journaled before and after it happens; runs that
find it pick it up).

- **claim**: before anything is sent, one journal transaction records the intent and takes the
  requests no other intent holds; requests another one holds (another process's, or an earlier
  run's) go to follow that one. The batch is created only for what was taken.
- **submit**: the input uploads, and the batch is created only if this scheduler still owns the
  intent. A create that fails in a way that may have reached the provider is reconciled through
  the provider's list API before it is tried again.
- **follow**: adaptive polling; transient failures retried with backoff; requests past their
  deadline are sent realtime (and a batch left with nobody waiting is cancelled).
- **collect**: result streams are read once, by the intent's owner, kept raw in the journal
  (the reader held back while the journal is behind), parsed as they arrive; marked stored only
  when every byte is in.
- **ended badly**: a batch whose validation failed on some lines fails only those callers and
  sends the rest again; expired lines are sent again (a bounded number of times) or realtime;
  cancelled and missing lines get clear errors. Lines without an answer are forgotten by the
  journal, so a later run asks again instead of waiting on a dead batch.
- **resume**: a journal entry found by a later run, or by another process, is followed from
  wherever it got to: stored results are replayed (a damaged copy is fetched again); an intent
  another scheduler owns is followed through the journal, never the provider, until its
  results are stored or its owner's lease lapses and this one takes it over; an intent nobody
  owns is taken over: a running batch is polled, an intent without a batch id is reconciled,
  and a batch the provider does not know is submitted afresh.

The runner owns none of its parts: the scheduler builds it from the journal's writer, the retry,
poll and lease policies, its event hub, its usage meter, its index of batches in flight, and its
two ways back into the scheduler (``requeue`` and ``attach``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from ._batch import Batch, BatchRecord
from ._cost import UsageMeter
from ._errors import (
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
    BatchFailedError,
    JournalError,
    SchedulerClosedError,
)
from ._events import EventHub, event_fields
from ._futures import RequestFuture
from ._inflight import InFlight
from ._journal import Intent, LeaseLostError, NullJournal
from ._journal_io import JournalWriter
from ._lease import Heartbeat, Leases, dead_here, new_owner, retire
from ._poll import PollPolicy
from ._retry import RetryPolicy
from ._trim import release_freed_memory
from ._waiters import (
    Waiters,
    add_waiters,
    deadline_of,
    each,
    earliest_deadline,
    fail_all,
    leftover_error,
    settle,
)
from .providers import BatchStatus, Line, Provider
from .providers._base import INTENT_KEY

__all__ = ["Attach", "BatchRunner", "ExpiryPolicy", "Requeue", "Runner", "batch_event"]

logger = logging.getLogger("batch_llm")

T = TypeVar("T")
ExpiryPolicy = Literal["resubmit", "realtime", "fail"]

# Realtime requests in flight at once when escalating (expiry, deadlines).
_ESCALATION_CONCURRENCY = 16
# Seconds ``close`` waits for ended batches to finish their bookkeeping.
_FINISHING_GRACE = 2.0
# Batches of at least this many lines hand the memory their tables took back when they end.
_TRIM_AFTER = 10_000


class Requeue(Protocol):
    """How a runner hands lines back to its scheduler's queues, to go in a new batch now."""

    def __call__(
        self,
        provider: Provider,
        items: list[tuple[Line, Waiters]],
        metadata: dict[str, str] | None = None,
    ) -> None: ...


class Attach(Protocol):
    """How a runner hands lines another intent holds to its scheduler, to follow that one."""

    def __call__(
        self,
        provider: Provider,
        intent: Intent | None,
        intent_id: str,
        items: list[tuple[Line, Waiters]],
        metadata: dict[str, str] | None = None,
    ) -> None: ...


class _Overtaken(Exception):
    """Another scheduler took the intent over while this one was about to create its batch."""


class Runner(Protocol):
    """What a scheduler asks of whatever runs its batches: ``BatchRunner`` submits them, a dry
    run's ``DryRunPlanner`` plans them instead. Everything but ``unsent`` runs on the
    scheduler's loop."""

    records: list[BatchRecord]

    def launch(self, batch: Batch) -> None:
        """Submit a freshly cut batch and follow it to its end."""

    def resume(self, batch: Batch) -> None:
        """Follow a batch submitted earlier (by this run or another), from where it got to."""

    def unsent(self, batches: list[Batch]) -> None:
        """Batches still queued when the scheduler closed (called from the closing thread)."""

    def realtime(self, provider: Provider, line: Line, future: RequestFuture) -> None:
        """Answer one request through the provider's realtime API."""

    async def shutdown(self, cancel: bool) -> dict[str, list[str]]:
        """Stop following batches: cancel them upstream, or leave them running."""


def batch_event(event: str, record: BatchRecord, **extra: Any) -> dict[str, Any]:
    """The payload of a lifecycle event about one batch (see ``_events``)."""
    counts = record.counts
    payload: dict[str, Any] = {
        "event": event,
        "time": time.time(),
        "batch_id": record.batch_id,
        "intent_id": record.intent_id,
        "provider": record.provider,
        "requests": record.requests,
        "status": record.status,
        "state": record.state,
        "total": counts.get("total"),
        "succeeded": counts.get("succeeded"),
        "failed": counts.get("failed"),
        "resumed": record.resumed,
    }
    if record.metadata:
        payload["metadata"] = dict(record.metadata)
    payload.update(event_fields(extra))
    return payload


class BatchRunner:
    """Submits batches and follows each to its end (module docstring).

    Args:
        writer: the journal, called through its writer thread.
        events: where lifecycle events go.
        meter: the scheduler's usage meter; each batch's answers are counted into it.
        inflight: the scheduler's index of batches in flight.
        requeue: hands lines back to the scheduler's queues (expired, rejected, abandoned).
        attach: hands lines another intent holds to the scheduler, to follow that intent.
        retry, poll: how provider calls are retried and running batches polled.
        leases: how long this runner's claims hold, and how often it reads the journal while
            another owner works on a batch it waits for.
        owner: this runner's owner id in the journal (a new one by default).
        metadata: key/values stamped on every batch (the scheduler's own).
        on_expiry, max_resubmits: what becomes of lines an expired batch did not reach.
        sleep, clock: injected so tests never really wait.
    """

    def __init__(
        self,
        *,
        writer: JournalWriter,
        events: EventHub,
        meter: UsageMeter,
        inflight: InFlight,
        requeue: Requeue,
        attach: Attach | None = None,
        retry: RetryPolicy,
        poll: PollPolicy,
        leases: Leases | None = None,
        owner: str | None = None,
        metadata: dict[str, str] | None = None,
        on_expiry: ExpiryPolicy = "resubmit",
        max_resubmits: int = 2,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.journal = writer.journal
        self.events = events
        self.meter = meter
        self.inflight = inflight
        self.requeue = requeue
        self.attach = attach or _no_attach
        self.retry = retry
        self.poll_policy = poll
        self.metadata = metadata or {}
        self.on_expiry = on_expiry
        self.max_resubmits = max_resubmits
        #: Every batch this runner submitted or resumed, in order.
        self.records: list[BatchRecord] = []
        self._sleep = sleep
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self.leases = leases or Leases()
        self.owner = owner or new_owner()
        # With no journal nobody else can want these batches: no claims, leases or followers.
        self._shared = not isinstance(self.journal, NullJournal)
        # Intents this runner owns (claimed or taken over), whose leases it renews.
        self._owned: set[str] = set()
        # Intents this runner owned until another scheduler took them over (it had stalled
        # for a whole lease): their batches are followed through the journal from then on.
        self._lost: set[str] = set()
        self._heartbeat: Heartbeat | None = None

    # -- helpers ------------------------------------------------------------------------------

    def _emit(self, event: str, record: BatchRecord, **extra: Any) -> None:
        self.events.emit(batch_event(event, record, **extra))

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _record_status(
        self, intent_id: str, status: BatchStatus, outcome: str | None = None
    ) -> None:
        """Journal a batch's status with the provider's counts (which ``batch-llm batches``
        shows)."""
        counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
        self.writer.soon(self.journal.record_status, intent_id, status.raw_status, outcome, counts)

    async def _call(self, provider: Provider, fn: Callable[[], Awaitable[T]]) -> T:
        """A provider call, with transient failures retried."""
        policy = self.retry
        if policy.transient is not provider.is_transient:
            policy = RetryPolicy(
                attempts=policy.attempts,
                initial=policy.initial,
                cap=policy.cap,
                deadline=policy.deadline,
                transient=provider.is_transient,
                sleep=policy.sleep,
            )
        return await policy.call(fn)

    def _update(self, record: BatchRecord, status: BatchStatus) -> bool:
        """Copy a polled status onto the record; True if anything changed."""
        counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
        changed = record.status != status.raw_status or record.counts != counts
        record.batch_id = status.batch_id
        record.status = status.raw_status
        record.state = status.state
        record.outcome = status.outcome
        record.counts = counts
        return changed

    # -- ownership ----------------------------------------------------------------------------

    def _own(self, intent_id: str) -> None:
        """This runner works on the intent now: its lease is renewed until it lets go."""
        if not self._shared:
            return
        self._owned.add(intent_id)
        self._lost.discard(intent_id)
        if self._heartbeat is None:
            loop = asyncio.get_running_loop()
            journal, owner, length = self.journal, self.owner, self.leases.length
            self._heartbeat = Heartbeat(
                lambda: journal.renew(owner, length),
                self.leases.renew_every,
                lambda held: loop.call_soon_threadsafe(self._still_held, held),
            )

    def _still_held(self, held: Sequence[str]) -> None:
        """After a renewal: intents this runner works on that it no longer holds were taken
        over; their batches stop being polled here."""
        lost = self._owned.difference(held)
        if lost:
            logger.warning(
                "another scheduler took over %d batch(es) this one was following (it had "
                "stalled for a whole lease); following them through the journal instead",
                len(lost),
            )
            self._owned -= lost
            self._lost |= lost

    def _disown(self, intent_id: str) -> None:
        """Stop working on the intent, and say so, so that another can take it over at once."""
        if intent_id in self._owned:
            self._owned.discard(intent_id)
            self.writer.soon(self.journal.release, self.owner, [intent_id])

    async def _acquire(self, intent: Intent) -> Intent | None:
        """Take the intent over if nobody else holds it (an owner whose process is gone from
        this machine, where the journal is a local file, holds nothing)."""
        owner = intent.owner
        steal = owner if self.journal.local and owner and dead_here(owner) else None
        return await self.writer.call(
            functools.partial(
                self.journal.acquire,
                intent.intent_id,
                self.owner,
                self.leases.length,
                steal_from=steal,
            )
        )

    # -- a fresh batch ------------------------------------------------------------------------

    def launch(self, batch: Batch) -> None:
        """Submit a freshly cut batch and follow it to its end (on the loop)."""
        self._start(self._answer_all(batch, self._submit_and_follow(batch)))

    def unsent(self, batches: list[Batch]) -> None:
        """Batches still queued at close: nothing was sent for them."""
        for batch in batches:
            fail_all(
                batch.pending,
                lambda _cid: SchedulerClosedError(
                    "the scheduler closed before this request was submitted"
                ),
            )

    def _report_end(self, batch: Batch, outcome: str, **extra: Any) -> None:
        """The batch is over for its callers: its usage and cost go on its record and into
        the event that says how it ended."""
        record = batch.record
        extra = {name: value for name, value in extra.items() if value is not None}
        if batch.meter.totals:
            report = batch.meter.report()
            record.usage = batch.meter.summary()
            record.cost = (
                {
                    "cost": report.cost,
                    "realtime_cost": report.realtime_cost,
                    "saving": report.saving,
                }
                if report.complete
                else None
            )
            extra.setdefault("usage", dict(record.usage))
            extra.setdefault("cost", record.cost)
        self._emit(f"batch_{outcome}", record, outcome=outcome, **extra)

    async def _answer_all(self, batch: Batch, work: Coroutine[Any, Any, None]) -> None:
        """Run a batch's work so that every caller is answered, whatever happens."""
        try:
            await work
        except asyncio.CancelledError:
            batch_id = batch.record.batch_id
            if batch.status is not None and batch.status.ended:
                where = (
                    f"the results of batch {batch_id}, which has ended upstream, were being "
                    "read; a later run with the same journal reads them"
                )
            elif batch_id:
                where = f"batch {batch_id} was left running upstream"
            else:
                where = "its batch was being submitted"
            fail_all(
                batch.pending,
                lambda _cid: SchedulerClosedError(f"the scheduler closed while {where}"),
            )
            raise
        except Exception as exc:  # a bug here must still answer every caller, never hang them
            logger.exception("batch %s: unexpected error", batch.record.batch_id)
            fail_all(batch.pending, exc)
            self._report_end(batch, "failed", reason=f"unexpected error: {exc}")
        finally:
            self._let_go(batch)

    async def _claim(self, batch: Batch, lines: list[Line]) -> list[Line] | None:
        """Record the intent and take its requests in one journal transaction; lines another
        intent holds go to follow it. Returns the lines to submit (None: nothing to submit,
        every caller was answered or handed over)."""
        intent = batch.intent
        intent.owner = self.owner
        try:
            held = await self.writer.call(
                self.journal.claim, intent, list(batch.by_id), self.leases.length
            )
        except Exception as exc:
            # Without a claim nobody can tell who pays for these requests: send nothing.
            logger.error(
                "recording a batch of %d in the journal at %s failed; nothing was submitted: %s",
                len(lines),
                self.journal.describe(),
                exc,
            )
            error = exc if isinstance(exc, JournalError) else JournalError(str(exc))
            fail_all(batch.pending, error)
            return None
        if held:
            self._hand_over(batch, held)
            lines = [p for p in lines if p.custom_id in batch.by_id]
        if not lines:
            return None
        self._own(intent.intent_id)
        return lines

    def _hand_over(self, batch: Batch, held: dict[str, Intent]) -> None:
        """Lines another intent holds leave this batch: their callers follow that intent."""
        self.inflight.release(batch, held)
        groups: dict[str, tuple[Intent, list[tuple[Line, Waiters]]]] = {}
        for custom_id, other in held.items():
            prepared = batch.by_id.pop(custom_id, None)
            waiting = batch.pending.pop(custom_id, None)
            if prepared is None or waiting is None:
                continue
            groups.setdefault(other.intent_id, (other, []))[1].append((prepared, waiting))
        for intent_id, (other, items) in groups.items():
            self.attach(batch.provider, other, intent_id, items, batch.metadata)

    async def _submit_and_follow(self, batch: Batch) -> None:
        lines = batch.take_lines()
        if not lines:
            return
        batch.deadlines = earliest_deadline(batch.pending) is not None
        batch.by_id = {p.custom_id: p for p in lines}
        if self._shared:
            # The intent must be durable, and its requests ours, before anything is sent.
            claimed = await self._claim(batch, lines)
            if claimed is None:
                return
            lines, claimed = claimed, None  # one name for the lines (let go once submitted)
        intent, record, provider = batch.intent, batch.record, batch.provider
        intent.requests = record.requests = len(lines)
        record.metadata = {**self.metadata, **batch.metadata}
        self.records.append(record)
        metadata = {**record.metadata, INTENT_KEY: intent.intent_id}
        attempted = False

        async def still_ours() -> None:
            # The upload may have outlasted the lease (a stalled process): if another scheduler
            # took the intent over meanwhile, creating the batch now could pay twice.
            if self._shared and await self._acquire(intent) is None:
                raise _Overtaken(intent.intent_id)

        async def create() -> BatchStatus:
            # A create that failed may still have made the batch (its reply was lost): look
            # before every retry, and never retry where nobody can look.
            nonlocal attempted
            if attempted:
                if not provider.supports("reconcile"):
                    raise BatchError(
                        f"creating a batch at {record.provider} failed in a way that may have "
                        f"made it; not retried, since {provider.name} cannot find a batch by "
                        "the intent stamped on it, and a blind retry could pay twice"
                    )
                found = await provider.find_batch(
                    intent.intent_id, intent.created_at, intent.requests
                )
                if found is not None:
                    logger.info(
                        "batch %s was created although its create call failed; following it",
                        found.batch_id,
                    )
                    return found
            attempted = True
            return await provider.submit(batch.key, lines, metadata, before_create=still_ours)

        try:
            status = await self._call(provider, create)
            # Submitted: the lines live on in ``batch.by_id`` (to send again if need be) only
            # until each is answered.
            lines = []
        except _Overtaken:
            logger.warning(
                "intent %s was taken over by another scheduler while its input uploaded; "
                "following that one instead of creating a batch",
                intent.intent_id,
            )
            self._owned.discard(intent.intent_id)
            await self._follow_journal(batch)
            return
        except Exception as exc:
            record.status = "submit_failed"
            logger.warning(
                "submitting a batch of %d to %s failed: %s", len(lines), record.provider, exc
            )
            self._owned.discard(intent.intent_id)
            self.writer.soon(self.journal.abandon, intent.intent_id, "submit_failed")
            fail_all(batch.pending, exc)
            self._report_end(batch, "failed", reason=f"submitting failed: {exc}")
            return
        await self.writer.call(
            self.journal.record_batch, intent.intent_id, status.batch_id, status.raw_status
        )
        intent.batch_id = status.batch_id
        self._update(record, status)
        # Callers learn their batch before the event, so a listener can match them to it.
        for waiting in batch.pending.values():
            for future in each(waiting):
                future.batch_id = status.batch_id
        self._emit("batch_submitted", record)
        await self._follow(batch, status)

    # -- following to the end -----------------------------------------------------------------

    async def _follow(self, batch: Batch, status: BatchStatus, *, keep: bool = True) -> None:
        """Poll the batch to its end and answer its callers (``keep``: its results go to
        the journal too)."""
        ended = await self._wait_until_ended(batch, status)
        if ended is None:
            if batch.intent_id in self._lost:  # taken over: its new owner polls it now
                await self._follow_journal(batch)
            return
        batch.status = ended
        self._record_status(batch.intent_id, ended, ended.outcome)
        if ended.outcome == "failed":
            self._handle_rejected(batch, ended)
        else:
            await self._collect(batch, ended, keep=keep)
            self._settle_unanswered(batch, ended)
        # Only now, with every caller answered (or sent on), is the batch over for the user.
        self._report_end(batch, ended.outcome or "completed", reason=ended.reason)

    async def _wait_until_ended(self, batch: Batch, status: BatchStatus) -> BatchStatus | None:
        provider, record = batch.provider, batch.record
        # Counted from the provider's creation time, so a resumed batch is polled for its age.
        watch = self.poll_policy.watch(created=batch.intent.created_at)
        while not status.ended:
            delay = watch.next_delay(status)
            # Only a batch some of whose callers set a deadline is looked through for one.
            due = earliest_deadline(batch.pending) if batch.deadlines else None
            if due is not None:
                delay = min(delay, max(0.0, due - self._clock()))
            await self._sleep(delay)
            if batch.intent_id in self._lost:
                return None
            if due is not None and self._clock() >= due:
                self._escalate_overdue(batch)
                if not batch.pending:
                    await self._cancel_unwanted(batch, status)
                    return None
            try:
                status = await self._call(provider, functools.partial(provider.poll, status))
            except Exception as exc:
                if provider.is_not_found(exc):
                    self._submit_unknown_afresh(batch, exc)
                    return None
                logger.warning("polling batch %s failed: %s", status.batch_id, exc)
                fail_all(batch.pending, exc)
                self._report_end(batch, "failed", reason=f"polling failed: {exc}")
                return None
            if self._update(record, status):
                if not status.ended:
                    self._record_status(batch.intent_id, status)
                # The last one (state "ended") says the answers are on their way.
                self._emit("batch_progress", record)
        return status

    async def _collect(self, batch: Batch, status: BatchStatus, *, keep: bool = True) -> None:
        """Stream the results to their callers, keeping the raw bytes in the journal."""
        provider, pending = batch.provider, batch.pending
        endpoint = status.endpoint or batch.intent.endpoint
        keep = keep and self._shared
        store = self.writer.results(batch.intent_id, self.owner) if keep else None

        async def read() -> None:
            if store is not None:
                await store.restart()  # a retried read starts over
            # Counted as answers are handed out, so the scheduler's report is complete by the
            # time the last caller wakes; a retried read takes back what it counted before.
            self.meter.merge(batch.meter, sign=-1)
            batch.meter = UsageMeter()
            count = batch.meter.counter(
                provider.name, "batch", provider.usage, endpoint, batch.key, self.meter
            )
            sink = None if store is None else store.put
            async for chunk in provider.results(status, sink=sink, requests=batch.by_id):
                self._answer(batch, chunk, count)

        try:
            await self._call(provider, read)
        except Exception as exc:
            logger.warning("reading results of batch %s failed: %s", status.batch_id, exc)
            fail_all(pending, exc)
            return
        if store is not None:
            batch.stored = await store.finish()
            if not batch.stored and not isinstance(store.failed, LeaseLostError):
                logger.warning(
                    "batch %s: its answers were handed out, but its results are not all in the "
                    "journal; it stays recorded as unread, and a later run fetches them from "
                    "the provider again",
                    status.batch_id,
                )

    def _answer(
        self,
        batch: Batch,
        chunk: list[tuple[str, Any]],
        count: Callable[[Any], None] | None = None,
    ) -> None:
        """Hand each answer to its callers. A line the batch never ran (expired, cancelled) is
        not an answer: its callers stay waiting for what the batch's end decides (send it
        again...). ``count`` sees every successful answer (billed even when nobody waits for
        it any more).

        A line answered is done with: its body is let go and the index of who holds it
        forgets it, so a batch's memory shrinks as its answers are handed out instead of
        when its last one is.
        """
        pending, by_id = batch.pending, batch.by_id
        pop, forget = pending.pop, by_id.pop
        done: list[str] = []
        for custom_id, outcome in chunk:
            if isinstance(outcome, BaseException):
                if isinstance(outcome, BatchExpiredError | BatchCancelledError):
                    continue
            elif count is not None:
                count(outcome)
            forget(custom_id, None)
            done.append(custom_id)
            waiting = pop(custom_id, None)
            if waiting is not None:
                settle(waiting, outcome)
        self.inflight.release(batch, done)

    def _settle_unanswered(self, batch: Batch, status: BatchStatus) -> None:
        """Lines the ended batch returned nothing for: send them again, or say why not."""
        if not batch.pending:
            return
        leftover = list(batch.pending)
        self.writer.soon(self.journal.forget_requests, batch.intent_id, leftover)
        if status.outcome == "expired" and self.on_expiry != "fail":
            items = self._take_waiting(batch, leftover)
            if self.on_expiry == "realtime" and batch.provider.supports("realtime"):
                self._start(self._realtime(batch, items, "expired"))
                return
            self._send_again(batch, items, status, self.max_resubmits)
            return
        fail_all(batch.pending, lambda cid: leftover_error(status, cid))

    def _handle_rejected(self, batch: Batch, status: BatchStatus) -> None:
        """A batch the provider rejected. Errors tied to lines fail only those callers; the
        other lines were never run, so they are sent again (once)."""
        pending = batch.pending
        self.writer.soon(self.journal.forget_requests, batch.intent_id, list(pending))
        order = list(batch.by_id)
        blamed = {
            order[line - 1]: message
            for line, message in status.line_errors.items()
            if 0 < line <= len(order)
        }
        if not blamed:
            fail_all(pending, lambda cid: leftover_error(status, cid))
            return
        for custom_id, message in blamed.items():
            fail_all(
                pending,
                BatchFailedError(
                    f"batch {status.batch_id} rejected this request: {message}",
                    batch_id=status.batch_id,
                    custom_id=custom_id,
                ),
                [custom_id],
            )
        self._send_again(
            batch, self._take_waiting(batch, list(pending)), status, max(1, self.max_resubmits)
        )

    def _send_again(
        self,
        batch: Batch,
        items: list[tuple[Line, Waiters]],
        status: BatchStatus,
        limit: int,
    ) -> None:
        """Queue lines again (each at most ``limit`` times in all); the rest get their error."""
        again: list[tuple[Line, Waiters]] = []
        for prepared, waiting in items:
            if prepared.attempts < limit:
                prepared.attempts += 1
                again.append((prepared, waiting))
            else:
                settle(waiting, leftover_error(status, prepared.custom_id))
        if again:
            logger.info(
                "batch %s ended %s; sending %d of its requests again",
                status.batch_id,
                status.outcome,
                len(again),
            )
            self.requeue(batch.provider, again, batch.metadata)

    def _take_waiting(self, batch: Batch, custom_ids: Iterable[str]) -> list[tuple[Line, Waiters]]:
        """Remove lines from the batch's waiting callers, with their bodies (to send again)."""
        items = []
        for cid in custom_ids:
            waiting = batch.pending.pop(cid, None)
            prepared = batch.by_id.get(cid)
            if waiting is None:
                continue
            if prepared is None:  # resumed without the body: nothing to send again
                settle(waiting, BatchFailedError(f"no request body kept for {cid}", custom_id=cid))
                continue
            items.append((prepared, waiting))
        return items

    # -- realtime, for the tail ---------------------------------------------------------------

    def _escalate_overdue(self, batch: Batch) -> None:
        if not batch.deadlines:
            return
        now = self._clock()
        overdue = [
            cid
            for cid, waiting in batch.pending.items()
            if (d := deadline_of(waiting)) is not None and d <= now
        ]
        if overdue:
            self._start(self._realtime(batch, self._take_waiting(batch, overdue), "deadline"))

    async def _realtime(self, batch: Batch, items: list[tuple[Line, Waiters]], why: str) -> None:
        provider = batch.provider
        gate = asyncio.Semaphore(_ESCALATION_CONCURRENCY)
        # Realtime answers are billed at full price: they count as such in the cost report.
        count = self.meter.counter(
            provider.name, "realtime", provider.usage, batch.intent.endpoint, batch.key
        )
        logger.info(
            "sending %d request(s) of batch %s realtime (%s)",
            len(items),
            batch.record.batch_id,
            why,
        )

        async def one(prepared: Line, waiting: Waiters) -> None:
            async with gate:
                outcome = await self._send_realtime(provider, prepared, count)
            settle(waiting, outcome)
            self._emit("request_escalated", batch.record, custom_id=prepared.custom_id, reason=why)

        await asyncio.gather(*(one(p, w) for p, w in items))

    def realtime(self, provider: Provider, line: Line, future: RequestFuture) -> None:
        """Answer one request through the provider's realtime API, counted at realtime price
        (on the loop; the call runs as a task of its own)."""
        count = self.meter.counter(
            provider.name, "realtime", provider.usage, line.endpoint, line.key
        )

        async def send() -> None:
            settle(future, await self._send_realtime(provider, line, count))

        self._start(send())

    async def _send_realtime(
        self, provider: Provider, prepared: Line, count: Callable[[Any], object]
    ) -> Any:
        """One request through the realtime API (retried like every call): its body, counted
        as realtime usage, or its error."""
        try:
            outcome = await self._call(provider, lambda: provider.realtime(prepared))
        except Exception as exc:
            return exc
        count(outcome)
        return outcome

    async def _cancel_unwanted(self, batch: Batch, status: BatchStatus) -> None:
        """Everyone waiting was sent realtime: cancel the batch so its rest is not billed."""
        provider = batch.provider
        try:
            cancelled = await self._call(provider, lambda: provider.cancel(status))
        except Exception as exc:
            logger.warning("cancelling batch %s failed: %s", status.batch_id, exc)
            return
        self._update(batch.record, cancelled)
        self._record_status(batch.intent_id, cancelled)
        self._report_end(
            batch, "cancelled", reason="every request in it was sent realtime (deadline)"
        )

    # -- picking up an earlier run's batch ----------------------------------------------------

    def resume(self, batch: Batch) -> None:
        """Follow a batch submitted earlier, from where it got to (on the loop)."""
        self._start(self._answer_all(batch, self._pick_up(batch)))

    async def _pick_up(self, batch: Batch) -> None:
        record = batch.record
        self.records.append(record)
        self._emit("batch_resumed", record, waiting=len(batch.pending))
        await self._follow_journal(batch)

    async def _follow_journal(self, batch: Batch) -> None:
        """Wait on the journal until the intent's results are stored (then replay them) or
        nobody else holds it (then take it over); an intent that will never answer sends its
        requests again. Only the journal is read meanwhile, never the provider."""
        intent, record = batch.intent, batch.record
        wait = self.leases.follow_initial
        usable = True  # False once the stored copy proved damaged: fetch it again
        while True:
            if intent.results_stored and intent.batch_id and usable:
                usable = await self._replay(batch)
                if usable:
                    return
            if intent.dropped or (intent.outcome == "failed" and not intent.results_stored):
                self._ask_again(batch, f"it ended without answers ({intent.status})")
                return
            if not self._shared or intent.intent_id in self._owned:
                # Held, and seen as it is now (stored meanwhile, it was replayed above).
                await self._take_over(batch, refetch=not usable)
                return
            try:
                mine = await self._acquire(intent)
            except JournalError as exc:
                # The journal cannot be written (a full disk...): these callers still get
                # their answers, from the provider, with nothing stored.
                logger.warning(
                    "cannot take batch %s over in the journal (%s); reading it from the "
                    "provider without storing its results",
                    intent.batch_id or intent.intent_id,
                    exc,
                )
                await self._take_over(batch, refetch=False, keep=False)
                return
            if mine is not None:
                # Its owner may have just stored the results and let it go: look again.
                intent = batch.intent = mine
                self._own(mine.intent_id)
                continue
            self._escalate_overdue(batch)
            if not batch.pending:
                return
            # Real time: what is awaited is another scheduler's work, journaled as it happens.
            await asyncio.sleep(wait)
            fresh = await self.writer.call(self.journal.get, intent.intent_id)
            if fresh is None:
                self._ask_again(batch, "it is no longer in the journal")
                return
            if (fresh.status, fresh.succeeded, fresh.failed) != (
                intent.status,
                intent.succeeded,
                intent.failed,
            ):
                wait = self.leases.follow_initial  # it moves: look again soon
                self._copy_progress(record, fresh)
            else:
                wait = min(wait * 1.5, self.leases.follow_max)
            intent = batch.intent = fresh

    def _copy_progress(self, record: BatchRecord, intent: Intent) -> None:
        """What the owner journaled of a batch, on this runner's record (and its progress)."""
        record.batch_id = intent.batch_id
        record.status = intent.status
        record.counts = {
            "total": intent.total or 0,
            "succeeded": intent.succeeded or 0,
            "failed": intent.failed or 0,
        }
        self._emit("batch_progress", record)

    async def _take_over(self, batch: Batch, *, refetch: bool, keep: bool = True) -> None:
        """This runner owns the intent now: follow its batch from where it got to (with
        ``refetch``, its stored results were damaged: the provider's are read again; without
        ``keep``, the journal cannot be written, and nothing is stored)."""
        intent, record, provider = batch.intent, batch.record, batch.provider
        if refetch:
            logger.warning(
                "fetching the results of batch %s from the provider again", intent.batch_id
            )
        batch_id = intent.batch_id
        status: BatchStatus | None
        if batch_id is None:
            # The process died between creating the batch and recording it, or before creating.
            if not provider.supports("reconcile"):
                self._submit_afresh(
                    batch, f"{provider.name} cannot tell whether a batch was created for it"
                )
                return
            try:
                status = await self._call(
                    provider,
                    lambda: provider.find_batch(
                        intent.intent_id, intent.created_at, intent.requests
                    ),
                )
            except Exception as exc:
                logger.warning("reconciling intent %s failed: %s", intent.intent_id, exc)
                status = None
            if status is None:
                self._submit_afresh(batch, "no batch was created for it")
                return
            await self.writer.call(
                self.journal.record_batch, intent.intent_id, status.batch_id, status.raw_status
            )
        else:
            probe = BatchStatus(batch_id, "in_progress", intent.status, endpoint=intent.endpoint)
            try:
                status = await self._call(provider, lambda: provider.poll(probe))
            except Exception as exc:
                if provider.is_not_found(exc):
                    self._submit_unknown_afresh(batch, exc)
                    return
                raise
        self._update(record, status)
        for waiting in batch.pending.values():
            for future in each(waiting):
                future.batch_id = status.batch_id
        await self._follow(batch, status, keep=keep)

    async def _replay(self, batch: Batch) -> bool:
        """Answer the batch's callers from the results stored in the journal; False (having
        answered nobody) if the stored copy cannot be read whole."""
        intent = batch.intent
        try:
            streams = await self.writer.call(self.journal.load_results, intent.intent_id)
        except JournalError as exc:
            logger.warning(
                "the journal's copy of batch %s's results cannot be used: %s", intent.batch_id, exc
            )
            return False
        status = BatchStatus(
            intent.batch_id or "",
            "ended",
            intent.status,
            outcome=intent.outcome,  # type: ignore[arg-type]
            endpoint=intent.endpoint,
        )
        batch.status = status
        batch.stored = True
        pending = batch.pending
        provider = batch.provider
        # Answers an earlier run paid for: counted apart, as costing this run nothing.
        count = batch.meter.counter(
            provider.name, "replayed", provider.usage, intent.endpoint, batch.key, self.meter
        )
        async for chunk in provider.replay(status, streams, requests=batch.by_id):
            self._answer(batch, chunk, count)
        if pending:  # not in the stored results: that batch never answered them; ask again
            self.writer.soon(self.journal.forget_requests, intent.intent_id, list(pending))
            self.requeue(batch.provider, self._take_waiting(batch, list(pending)), batch.metadata)
        self._report_end(batch, intent.outcome or "completed", replayed=True)
        return True

    def _ask_again(self, batch: Batch, why: str) -> None:
        """The intent will not answer these callers: their requests go in a new claim."""
        if batch.pending:
            logger.info(
                "journal entry %s: %s; asking again for %d request(s)",
                batch.intent_id,
                why,
                len(batch.pending),
            )
            self.writer.soon(self.journal.forget_requests, batch.intent_id, list(batch.pending))
            self.requeue(
                batch.provider, self._take_waiting(batch, list(batch.pending)), batch.metadata
            )

    def _submit_unknown_afresh(self, batch: Batch, exc: BaseException) -> None:
        """The provider does not know the batch (a journal entry from another server): forget
        it and submit its requests afresh."""
        self._submit_afresh(
            batch, f"the provider does not know batch {batch.intent.batch_id} ({exc})"
        )

    def _submit_afresh(self, batch: Batch, why: str) -> None:
        logger.warning("journal entry %s: %s; submitting its requests again", batch.intent_id, why)
        self._owned.discard(batch.intent_id)
        self.writer.soon(self.journal.abandon, batch.intent_id, "abandoned")
        self.requeue(batch.provider, self._take_waiting(batch, list(batch.pending)), batch.metadata)

    def _let_go(self, batch: Batch) -> None:
        """The batch is over: stop following it. Callers that asked for one of its lines after
        its answer was handed out get the answer kept in the journal (or, with no journal, a
        fresh line)."""
        batch.finished = True
        self.inflight.untrack(batch)
        if batch.record.requests >= _TRIM_AFTER:
            # Its tables go once this task ends: then hand their memory back (see _trim).
            asyncio.get_running_loop().call_soon(release_freed_memory)
        self._disown(batch.intent_id)
        status = batch.status
        stored = batch.stored
        intent = batch.intent
        if stored and status is not None:
            intent.results_stored, intent.status, intent.outcome = (
                True,
                status.raw_status,
                status.outcome,
            )
            # A caller that joined the batch just before it was untracked finds it here.
            self.inflight.remember_answered(intent)
        if not batch.late:
            return
        late, batch.late = batch.late, []
        if not stored:
            self.requeue(batch.provider, late, batch.metadata)
            return
        again = Batch(batch.provider, batch.key, [], {}, intent=intent, metadata=batch.metadata)
        for prepared, waiting in late:
            again.by_id[prepared.custom_id] = prepared
            add_waiters(again.pending, prepared.custom_id, waiting)
        again.deadlines = earliest_deadline(again.pending) is not None
        self.inflight.follow(again)
        self.resume(again)

    # -- closing ------------------------------------------------------------------------------

    async def shutdown(self, cancel: bool) -> dict[str, list[str]]:
        """Stop following batches (on the loop): cancel them upstream with ``cancel``, else
        leave them running for a later run; returns the batch ids under ``cancelled``,
        ``left_running`` and ``left_unread`` (ended upstream, results not all read: a later
        run reads them). Claims this runner holds are let go, so another scheduler may take
        them over at once; results not all read stay unmarked in the journal."""
        # A batch that has ended and answered every caller is only finishing its bookkeeping
        # (its last result bytes, the event that says it completed): let it, briefly.
        loop = asyncio.get_running_loop()
        until = loop.time() + _FINISHING_GRACE
        while loop.time() < until and any(
            b.status is not None and not b.pending and not b.finished
            for b in self.inflight.batches()
        ):
            await asyncio.sleep(0.005)
        running = [b for b in self.inflight.batches() if b.record.batch_id and not b.finished]
        report: dict[str, list[str]] = {"cancelled": [], "left_running": [], "left_unread": []}
        for batch in running:
            batch_id = batch.record.batch_id or ""
            if batch.status is not None and batch.status.ended:
                report["left_unread"].append(batch_id)  # nothing upstream left to cancel
                continue
            # Only a batch this runner owns is its to cancel: one it follows is another's.
            if cancel and (not self._shared or batch.intent_id in self._owned):
                try:
                    probe = batch.status or BatchStatus(batch_id, "in_progress", "unknown")
                    await self._call(
                        batch.provider, functools.partial(batch.provider.cancel, probe)
                    )
                    report["cancelled"].append(batch_id)
                    self.writer.soon(self.journal.record_status, batch.intent_id, "cancelling")
                    continue
                except Exception as exc:
                    logger.warning("cancelling batch %s failed: %s", batch_id, exc)
            report["left_running"].append(batch_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._shared:
            self._owned.clear()
            retire(self.owner)
            self.writer.soon(self.journal.release, self.owner, None)
        providers = {b.provider for b in running} | {b.provider for b in self.inflight.batches()}
        for provider in providers:
            await provider.aclose()
        return report


def _no_attach(
    provider: Provider,
    intent: Intent | None,
    intent_id: str,
    items: list[tuple[Line, Waiters]],
    metadata: dict[str, str] | None = None,
) -> None:
    """For a runner built without a scheduler: lines another intent holds fail clearly."""
    for _prepared, waiting in items:
        settle(waiting, BatchError(f"another submission ({intent_id}) holds this request"))
