"""A batch's life on the scheduler's loop: submit, follow, collect, and what to do when it ends
badly. Nothing is lost (every caller gets an answer or an error) and nothing is paid for twice
(every submission is journaled before and after it happens; runs that find it pick it up).

- **submit**: the intent is written to the journal while the input uploads, and the batch is
  created only once it is durable. A create that fails in a way that may have reached the
  provider is reconciled through the provider's list API before it is tried again.
- **follow**: adaptive polling; transient failures retried with backoff; requests past their
  deadline are sent realtime (and a batch left with nobody waiting is cancelled).
- **collect**: result streams are read once, kept raw in the journal, parsed as they arrive.
- **ended badly**: a batch whose validation failed on some lines fails only those callers and
  sends the rest again; expired lines are sent again (a bounded number of times) or realtime;
  cancelled and missing lines get clear errors. Lines without an answer are forgotten by the
  journal, so a later run asks again instead of waiting on a dead batch.
- **resume**: a journal entry found by a later run is followed from wherever it got to:
  stored results are replayed, a running batch is polled, an intent without a batch id is
  reconciled, and a batch the provider does not know is submitted afresh.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._batch import Batch, BatchRecord
from ._cost import UsageMeter
from ._errors import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    SchedulerClosedError,
)
from ._futures import RequestFuture
from ._journal import Intent, Journal, NullJournal
from ._poll import PollPolicy
from ._retry import RetryPolicy
from ._waiters import Waiters, add_waiters, all_cancelled, each, fail_all, leftover_error, settle
from .providers import BatchStatus, Prepared, Provider
from .providers._base import INTENT_KEY

if TYPE_CHECKING:
    from ._loop import LoopThread

__all__ = ["Lifecycle"]

logger = logging.getLogger("batch_llm")

T = TypeVar("T")
ExpiryPolicy = Literal["resubmit", "realtime", "fail"]

# Realtime requests in flight at once when escalating (expiry, deadlines).
_ESCALATION_CONCURRENCY = 16
# Finished batches whose answers the journal keeps, remembered for callers that joined them
# as they finished (the most recent ones; the window is a single loop step).
_ANSWERED_KEPT = 64
# Seconds ``close`` waits for ended batches to finish their bookkeeping.
_FINISHING_GRACE = 2.0


class Lifecycle:
    """The part of ``Scheduler`` that drives batches; see the module docstring."""

    journal: Journal
    dry_run: bool
    _meter: UsageMeter
    poll_policy: PollPolicy
    retry: RetryPolicy
    metadata: dict[str, str]
    on_expiry: ExpiryPolicy
    max_resubmits: int
    batches: list[BatchRecord]
    _loop: LoopThread
    _sleep: Callable[[float], Awaitable[Any]]
    _clock: Callable[[], float]
    _tracked: dict[str, Batch]
    _answered: dict[str, Intent]
    _journal_io: ThreadPoolExecutor | None
    _tasks: set[asyncio.Task[None]]

    # Provided by Scheduler.
    def _emit(self, event: str, record: BatchRecord, **extra: Any) -> None:
        raise NotImplementedError

    def _requeue(
        self,
        provider: Provider,
        items: list[tuple[Prepared, Waiters]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def _untrack(self, batch: Batch) -> None:
        raise NotImplementedError

    def _plan_batch(self, batch: Batch) -> None:
        raise NotImplementedError

    # -- helpers ------------------------------------------------------------------------------

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """A journal call, off the loop (one worker thread keeps them in order)."""
        if isinstance(self.journal, NullJournal):
            return fn(*args)
        if self._journal_io is None:
            self._journal_io = ThreadPoolExecutor(1, thread_name_prefix="batch-llm-journal")
        return await asyncio.get_running_loop().run_in_executor(self._journal_io, fn, *args)

    def _write_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """A journal write nobody waits on (still in order with every other journal call)."""
        if isinstance(self.journal, NullJournal):
            return
        if self._journal_io is None:
            self._journal_io = ThreadPoolExecutor(1, thread_name_prefix="batch-llm-journal")
        self._journal_io.submit(fn, *args)

    def _record_status(
        self, intent_id: str, status: BatchStatus, outcome: str | None = None
    ) -> None:
        """Journal a batch's status with the provider's counts (which ``batch-llm batches``
        shows)."""
        counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
        self._write_soon(self.journal.record_status, intent_id, status.raw_status, outcome, counts)

    async def _call(
        self,
        provider: Provider,
        fn: Callable[[], Awaitable[T]],
        before_retry: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> T:
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
        return await policy.call(fn, before_retry=before_retry)

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

    # -- a fresh batch ------------------------------------------------------------------------

    def _launch(self, batch: Batch) -> None:
        if self.dry_run:
            self._plan_batch(batch)
            return
        self._start(self._guarded(batch, self._run(batch)))

    def _ended(self, batch: Batch, outcome: str, **extra: Any) -> None:
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

    async def _guarded(self, batch: Batch, work: Coroutine[Any, Any, None]) -> None:
        """Run a batch's work so that every caller is answered, whatever happens."""
        try:
            await work
        except asyncio.CancelledError:
            where = (
                f"batch {batch.record.batch_id} was left running upstream"
                if batch.record.batch_id
                else "its batch was being submitted"
            )
            fail_all(
                batch.pending,
                lambda _cid: SchedulerClosedError(f"the scheduler closed while {where}"),
            )
            raise
        except Exception as exc:  # a bug here must still answer every caller, never hang them
            logger.exception("batch %s: unexpected error", batch.record.batch_id)
            fail_all(batch.pending, exc)
            self._ended(batch, "failed", reason=f"unexpected error: {exc}")
        finally:
            self._finish(batch)

    async def _run(self, batch: Batch) -> None:
        # Callers that gave up before submission cost nothing: leave them out.
        gone = [cid for cid, waiting in batch.pending.items() if all_cancelled(waiting)]
        for cid in gone:
            del batch.pending[cid]
        lines = [p for p in batch.lines if p.custom_id in batch.pending] if gone else batch.lines
        batch.lines = []
        if not lines:
            return
        batch.by_id = {p.custom_id: p for p in lines}
        intent, record, provider = batch.intent, batch.record, batch.provider
        intent.requests = record.requests = len(lines)
        record.metadata = {**self.metadata, **batch.metadata}
        self.batches.append(record)
        # The intent must be durable before the batch exists; write it while the input uploads.
        loop = asyncio.get_running_loop()
        intent_written = loop.create_task(
            self._write(self.journal.record_intent, intent, list(batch.by_id))
        )
        metadata = {**record.metadata, INTENT_KEY: intent.intent_id}
        found: BatchStatus | None = None

        async def create() -> BatchStatus:
            if found is not None:
                return found
            return await provider.submit(
                batch.key, lines, metadata, before_create=lambda: asyncio.shield(intent_written)
            )

        async def reconcile(_exc: BaseException) -> None:
            # The failed create may have reached the provider: look before trying again.
            nonlocal found
            if intent_written.done() and not intent_written.exception():
                try:
                    found = await provider.find_batch(
                        intent.intent_id, intent.created_at, intent.requests
                    )
                except Exception as exc:  # reconciling is best effort; the retry still runs
                    logger.debug("reconciling intent %s: %s", intent.intent_id, exc)

        try:
            status = await self._call(provider, create, before_retry=reconcile)
        except Exception as exc:
            record.status = "submit_failed"
            logger.warning(
                "submitting a batch of %d to %s failed: %s", len(lines), record.provider, exc
            )
            await intent_written
            self._write_soon(
                self.journal.record_status, intent.intent_id, "submit_failed", "failed"
            )
            self._write_soon(self.journal.forget_requests, intent.intent_id, list(batch.by_id))
            fail_all(batch.pending, exc)
            self._ended(batch, "failed", reason=f"submitting failed: {exc}")
            return
        await intent_written
        await self._write(
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

    async def _follow(self, batch: Batch, status: BatchStatus) -> None:
        ended = await self._wait_until_ended(batch, status)
        if ended is None:
            return
        batch.status = ended
        self._record_status(batch.intent_id, ended, ended.outcome)
        if ended.outcome == "failed":
            self._failed(batch, ended)
        else:
            await self._collect(batch, ended)
            self._unanswered(batch, ended)
        # Only now, with every caller answered (or sent on), is the batch over for the user.
        self._ended(batch, ended.outcome or "completed", reason=ended.reason)

    async def _wait_until_ended(self, batch: Batch, status: BatchStatus) -> BatchStatus | None:
        provider, record = batch.provider, batch.record
        started = self._clock()
        while not status.ended:
            delay = self.poll_policy.delay(self._clock() - started)
            due = _earliest_deadline(batch.pending)
            if due is not None:
                delay = min(delay, max(0.0, due - self._clock()))
            await self._sleep(delay)
            if due is not None and self._clock() >= due:
                self._escalate_overdue(batch)
                if not batch.pending:
                    await self._cancel_unwanted(batch, status)
                    return None
            try:
                status = await self._call(provider, functools.partial(provider.poll, status))
            except Exception as exc:
                if provider.is_not_found(exc):
                    self._lost(batch, exc)
                    return None
                logger.warning("polling batch %s failed: %s", status.batch_id, exc)
                fail_all(batch.pending, exc)
                self._ended(batch, "failed", reason=f"polling failed: {exc}")
                return None
            if self._update(record, status):
                if not status.ended:
                    self._record_status(batch.intent_id, status)
                # The last one (state "ended") says the answers are on their way.
                self._emit("batch_progress", record)
        return status

    async def _collect(self, batch: Batch, status: BatchStatus) -> None:
        """Stream the results to their callers, keeping the raw bytes in the journal."""
        provider, pending = batch.provider, batch.pending
        journal, intent_id = self.journal, batch.intent_id
        endpoint = status.endpoint or batch.intent.endpoint

        def keep(stream: str, chunk: bytes) -> None:
            self._write_soon(journal.append_results, intent_id, stream, chunk)

        async def read() -> None:
            self._write_soon(journal.clear_results, intent_id)  # a retried read starts over
            # Counted as answers are handed out, so the scheduler's report is complete by the
            # time the last caller wakes; a retried read takes back what it counted before.
            self._meter.merge(batch.meter, sign=-1)
            batch.meter = UsageMeter()
            count = batch.meter.counter(
                provider.name, "batch", provider.usage, endpoint, batch.key, self._meter
            )
            async for chunk in provider.results(status, sink=keep, requests=batch.by_id):
                _dispatch(pending, chunk, count)

        try:
            await self._call(provider, read)
        except Exception as exc:
            logger.warning("reading results of batch %s failed: %s", status.batch_id, exc)
            fail_all(pending, exc)
            return
        self._write_soon(journal.finish_results, intent_id)

    def _unanswered(self, batch: Batch, status: BatchStatus) -> None:
        """Lines the ended batch returned nothing for: send them again, or say why not."""
        if not batch.pending:
            return
        leftover = list(batch.pending)
        self._write_soon(self.journal.forget_requests, batch.intent_id, leftover)
        if status.outcome == "expired" and self.on_expiry != "fail":
            items = self._take(batch, leftover)
            if self.on_expiry == "realtime":
                self._start(self._realtime(batch, items, "expired"))
                return
            self._send_again(batch, items, status, self.max_resubmits)
            return
        fail_all(batch.pending, lambda cid: leftover_error(status, cid))

    def _failed(self, batch: Batch, status: BatchStatus) -> None:
        """A batch the provider rejected. Errors tied to lines fail only those callers; the
        other lines were never run, so they are sent again (once)."""
        pending = batch.pending
        self._write_soon(self.journal.forget_requests, batch.intent_id, list(pending))
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
            batch, self._take(batch, list(pending)), status, max(1, self.max_resubmits)
        )

    def _send_again(
        self,
        batch: Batch,
        items: list[tuple[Prepared, Waiters]],
        status: BatchStatus,
        limit: int,
    ) -> None:
        """Queue lines again (each at most ``limit`` times in all); the rest get their error."""
        again: list[tuple[Prepared, Waiters]] = []
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
            self._requeue(batch.provider, again, batch.metadata)

    def _take(self, batch: Batch, custom_ids: Iterable[str]) -> list[tuple[Prepared, Waiters]]:
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
        now = self._clock()
        overdue = [
            cid
            for cid, waiting in batch.pending.items()
            if (d := _deadline(waiting)) is not None and d <= now
        ]
        if overdue:
            self._start(self._realtime(batch, self._take(batch, overdue), "deadline"))

    async def _realtime(
        self, batch: Batch, items: list[tuple[Prepared, Waiters]], why: str
    ) -> None:
        provider = batch.provider
        gate = asyncio.Semaphore(_ESCALATION_CONCURRENCY)
        # Realtime answers are billed at full price: they count as such in the cost report.
        count = self._meter.counter(
            provider.name, "realtime", provider.usage, batch.intent.endpoint, batch.key
        )
        logger.info(
            "sending %d request(s) of batch %s realtime (%s)",
            len(items),
            batch.record.batch_id,
            why,
        )

        async def one(prepared: Prepared, waiting: Waiters) -> None:
            async with gate:
                outcome = await self._send_realtime(provider, prepared, count)
            settle(waiting, outcome)
            self._emit("request_escalated", batch.record, custom_id=prepared.custom_id, reason=why)

        await asyncio.gather(*(one(p, w) for p, w in items))

    async def _send_realtime(
        self, provider: Provider, prepared: Prepared, count: Callable[[Any], object]
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
        self._ended(batch, "cancelled", reason="every request in it was sent realtime (deadline)")

    # -- picking up an earlier run's batch ----------------------------------------------------

    def _resume(self, batch: Batch) -> None:
        self._start(self._guarded(batch, self._pick_up(batch)))

    async def _pick_up(self, batch: Batch) -> None:
        intent, record, provider = batch.intent, batch.record, batch.provider
        self.batches.append(record)
        self._emit("batch_resumed", record, waiting=len(batch.pending))
        if intent.results_stored and intent.batch_id:
            await self._replay(batch)
            return
        batch_id = intent.batch_id
        status: BatchStatus | None
        if batch_id is None:
            # The process died between creating the batch and recording it, or before creating.
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
                self._abandon(batch, "no batch was created for it")
                return
            await self._write(
                self.journal.record_batch, intent.intent_id, status.batch_id, status.raw_status
            )
        else:
            probe = BatchStatus(batch_id, "in_progress", intent.status, endpoint=intent.endpoint)
            try:
                status = await self._call(provider, lambda: provider.poll(probe))
            except Exception as exc:
                if provider.is_not_found(exc):
                    self._lost(batch, exc)
                    return
                raise
        self._update(record, status)
        for waiting in batch.pending.values():
            for future in each(waiting):
                future.batch_id = status.batch_id
        await self._follow(batch, status)

    async def _replay(self, batch: Batch) -> None:
        intent = batch.intent
        streams = await self._write(self.journal.load_results, intent.intent_id)
        status = BatchStatus(
            intent.batch_id or "",
            "ended",
            intent.status,
            outcome=intent.outcome,  # type: ignore[arg-type]
            endpoint=intent.endpoint,
        )
        batch.status = status
        pending = batch.pending
        provider = batch.provider
        # Answers an earlier run paid for: counted apart, as costing this run nothing.
        count = batch.meter.counter(
            provider.name, "replayed", provider.usage, intent.endpoint, batch.key, self._meter
        )
        async for chunk in provider.replay(status, streams, requests=batch.by_id):
            _dispatch(pending, chunk, count)
        if pending:  # not in the stored results: that batch never answered them; ask again
            self._write_soon(self.journal.forget_requests, intent.intent_id, list(pending))
            self._requeue(batch.provider, self._take(batch, list(pending)), batch.metadata)
        self._ended(batch, intent.outcome or "completed", replayed=True)

    def _lost(self, batch: Batch, exc: BaseException) -> None:
        """The provider does not know the batch (a journal entry from another server): forget
        it and submit its requests afresh."""
        self._abandon(batch, f"the provider does not know batch {batch.intent.batch_id} ({exc})")

    def _abandon(self, batch: Batch, why: str) -> None:
        logger.warning("journal entry %s: %s; submitting its requests again", batch.intent_id, why)
        self._write_soon(self.journal.record_status, batch.intent_id, "abandoned", "failed")
        self._write_soon(self.journal.forget_requests, batch.intent_id, list(batch.by_id))
        self._requeue(batch.provider, self._take(batch, list(batch.pending)), batch.metadata)

    def _finish(self, batch: Batch) -> None:
        """The batch is over. Callers that asked for one of its lines after its answer was
        handed out get the answer kept in the journal (or, with no journal, a fresh line)."""
        batch.finished = True
        self._untrack(batch)
        status = batch.status
        stored = not (
            isinstance(self.journal, NullJournal) or status is None or status.outcome == "failed"
        )
        intent = batch.intent
        if stored and status is not None:
            intent.results_stored, intent.status, intent.outcome = (
                True,
                status.raw_status,
                status.outcome,
            )
            # A caller that joined the batch just before it was untracked finds it here.
            self._answered[intent.intent_id] = intent
            while len(self._answered) > _ANSWERED_KEPT:
                del self._answered[next(iter(self._answered))]
        if not batch.late:
            return
        late, batch.late = batch.late, []
        if not stored:
            self._requeue(batch.provider, late, batch.metadata)
            return
        again = Batch(batch.provider, batch.key, [], {}, intent=intent, metadata=batch.metadata)
        for prepared, waiting in late:
            again.by_id[prepared.custom_id] = prepared
            add_waiters(again.pending, prepared.custom_id, waiting)
        self._tracked[intent.intent_id] = again
        self._resume(again)

    # -- closing ------------------------------------------------------------------------------

    async def _shutdown(self, cancel: bool) -> dict[str, list[str]]:
        # A batch that has ended and answered every caller is only finishing its bookkeeping
        # (its last result bytes, the event that says it completed): let it, briefly.
        loop = asyncio.get_running_loop()
        until = loop.time() + _FINISHING_GRACE
        while loop.time() < until and any(
            b.status is not None and not b.pending and not b.finished
            for b in list(self._tracked.values())
        ):
            await asyncio.sleep(0.005)
        running = [b for b in self._tracked.values() if b.record.batch_id and not b.finished]
        report: dict[str, list[str]] = {"cancelled": [], "left_running": []}
        for batch in running:
            batch_id = batch.record.batch_id or ""
            if cancel:
                try:
                    probe = batch.status or BatchStatus(batch_id, "in_progress", "unknown")
                    await self._call(
                        batch.provider, functools.partial(batch.provider.cancel, probe)
                    )
                    report["cancelled"].append(batch_id)
                    self._write_soon(self.journal.record_status, batch.intent_id, "cancelling")
                    continue
                except Exception as exc:
                    logger.warning("cancelling batch %s failed: %s", batch_id, exc)
            report["left_running"].append(batch_id)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        providers = {b.provider for b in running} | {b.provider for b in self._tracked.values()}
        for provider in providers:
            await provider.aclose()
        return report


def _dispatch(
    pending: dict[str, Waiters],
    chunk: list[tuple[str, Any]],
    count: Callable[[Any], None] | None = None,
) -> None:
    """Hand each answer to its callers. A line the batch never ran (expired, cancelled) is not
    an answer: its callers stay waiting for what the batch's end decides (send it again...).
    ``count`` sees every successful answer (billed even when nobody waits for it any more)."""
    pop = pending.pop
    for custom_id, outcome in chunk:
        if isinstance(outcome, BaseException):
            if isinstance(outcome, BatchExpiredError | BatchCancelledError):
                continue
        elif count is not None:
            count(outcome)
        waiting = pop(custom_id, None)
        if waiting is not None:
            settle(waiting, outcome)


def _deadline(waiting: Waiters) -> float | None:
    deadlines = [f.deadline for f in each(waiting) if f.deadline is not None]
    return min(deadlines) if deadlines else None


def _earliest_deadline(pending: dict[str, Waiters]) -> float | None:
    earliest: float | None = None
    for waiting in pending.values():
        due = waiting.deadline if isinstance(waiting, RequestFuture) else _deadline(waiting)
        if due is not None and (earliest is None or due < earliest):
            earliest = due
    return earliest
