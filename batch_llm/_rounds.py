"""Rounds: a fan-out's requests held until every job of it waits, then sent as one batch.

The scheduler's window groups calls that arrive within a few seconds of each other. Fan-outs
that frameworks run themselves arrive more spread out than that, or in waves: each job of an
evaluation sweep retrieves, ranks and packs a prompt before its model call (milliseconds to
seconds of work), an agent runs its tools between model calls, a graph fans out to a hundred
nodes. When the jobs are known (an entry point such as ``langchain_batch_llm.batch`` starts
them), something better than a window is possible: hold each job's requests until every
unfinished job is waiting on a batch, then send what is held, one batch per queue. Each round
of calls (the answers, the evaluations, each agent step) is then one batch, however long the
work between rounds takes.

- **Jobs.** A job is one input's work. It runs with ``Round.run`` (as a task on the round's
  loop); every task and thread it starts inherits it (context variables), so requests from
  its parallel branches, sub-tasks and executor threads are its own.
- **Waiting.** A job waits while it has a request held or unanswered, and, where its
  framework reports the units of work it runs (``Job.run_started``/``run_ended``; the
  LangChain integration feeds its callback runs), while every unit of it that is not waiting
  for a child is blocked on one of its requests. A job with a branch still working is not
  waiting, though another branch is.
- **Release.** Once every unfinished job waits, the round settles for a few steps of its loop
  (tasks that were just created start, and show up), then sends everything held: one
  ``submit`` per scheduler, flushed, so each queue becomes one batch. No round is released
  while the previous one's answers are still being handed out (a job that wakes first must
  not send its next request alone).
- **Never a hang.** A quiet period as long as the scheduler's window, with held requests and
  no new one, releases them anyway: a job waiting on something else (a realtime call, a slow
  tool) delays a round, never blocks it. A job that blocks the round's own loop thread on a
  held request (sync code called where async was expected) releases the round at once, since
  nothing else can run until it is answered.

A round without known jobs (``Round()``) releases a few loop steps after its last request:
concurrent fan-outs started together on one event loop (``asyncio.gather`` of ``agenerate``
calls) share a batch that way (see ``share_round`` in ``Scheduler.submit_many``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

from ._futures import RequestFuture

__all__ = [
    "Held",
    "Job",
    "Round",
    "current_holder",
    "current_job",
    "current_round",
    "shared_round",
    "together",
]

logger = logging.getLogger("batch_llm")

T = TypeVar("T")

#: Loop steps a round waits, once every job waits, for anything new before it is released.
SETTLE_STEPS = 3
#: Seconds without a new request after which held requests go anyway, unless told otherwise.
DEFAULT_QUIET = 3.0

_JOB: ContextVar[Job | None] = ContextVar("batch_llm_round_job", default=None)
_TOGETHER: ContextVar[_Together | None] = ContextVar("batch_llm_together", default=None)

#: What releases held requests: the scheduler's, called with every payload it handed the round
#: (in order); it queues and flushes them, and returns the futures of each batch it cut.
Release = Callable[[list[Any]], list[list[RequestFuture]]]


class Held:
    """Requests a round holds for one scheduler until it is released."""

    __slots__ = ("futures", "payload", "quiet", "release")

    def __init__(
        self,
        futures: list[RequestFuture],
        release: Release,
        payload: Any,
        quiet: float | None = None,
    ) -> None:
        self.futures = futures
        self.release = release
        self.payload = payload
        # The holder's own bound on waiting (its scheduler's window).
        self.quiet = quiet


class _Flight:
    """A round's requests that went in one batch: their answers arrive together."""

    __slots__ = ("answered", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.answered = 0


class _Ticket:
    """One held request: whose it is, from which unit of work, and in which flight."""

    __slots__ = ("flight", "job", "unit")

    def __init__(self, job: Job | None, unit: Hashable) -> None:
        self.job = job
        self.unit = unit
        self.flight: _Flight | None = None


class _Run:
    __slots__ = ("children", "parent", "unit")

    def __init__(self, parent: Hashable | None, unit: Hashable) -> None:
        self.parent = parent
        self.unit = unit
        self.children = 0


class Job:
    """One job of a round: its unanswered requests, by the unit of work that made them, and
    the units of work it reported. Touched only on the round's loop."""

    __slots__ = ("metadata", "pending", "round", "runs", "units")

    def __init__(self, round_: Round, metadata: dict[str, str] | None = None) -> None:
        self.round = round_
        # Stamped on the batches of the job's requests (a sweep names its cell this way).
        self.metadata = metadata
        self.pending = 0
        self.units: dict[Hashable, int] = {}
        self.runs: dict[Hashable, _Run] = {}

    def waiting(self) -> bool:
        """True while the job has a request unanswered and nothing of it is still working."""
        if not self.pending:
            return False
        units = self.units
        # Every leaf of its work (a unit with no child running) is blocked on a request.
        return all(run.children or units.get(run.unit) for run in self.runs.values())

    # -- from the framework, on any thread ----------------------------------------------------

    def run_started(self, run_id: Hashable, parent_id: Hashable | None) -> None:
        """A unit of the job's work started (in the calling task or thread)."""
        self.round._call(self.round._run_started, self, run_id, parent_id, unit_of_caller())

    def run_ended(self, run_id: Hashable) -> None:
        """A unit of the job's work ended."""
        self.round._call(self.round._run_ended, self, run_id)


class Round:
    """Jobs whose batch requests go up together, one round at a time (module docstring).

    Args:
        jobs: how many jobs will run (each through ``run``); None for a round that releases
            a few loop steps after its last request instead.
        quiet: seconds without a new request after which held requests go anyway (default:
            the window of the scheduler they were submitted to).
        settle: loop steps to wait, once every job waits, for anything new.

    Build it inside the event loop its jobs run on.
    """

    def __init__(
        self, *, jobs: int | None = None, quiet: float | None = None, settle: int = SETTLE_STEPS
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._known = jobs is not None
        self._remaining = jobs or 0
        self._quiet = quiet
        self._settle = max(1, settle)
        self._jobs: set[Job] = set()
        self._held: list[Held] = []
        self._tickets: dict[int, _Ticket] = {}
        self._delivering = 0
        self._activity = 0
        self._last_hold = 0.0
        self._quiet_timer: asyncio.TimerHandle | None = None
        self._quiet_for = DEFAULT_QUIET
        self._settling = False
        self._check_soon = False
        #: Rounds released, and how: ``("all waiting" | "quiet" | "blocked", requests)``.
        self.releases: list[tuple[str, int]] = []

    # -- jobs ---------------------------------------------------------------------------------

    async def run(self, awaitable: Awaitable[T], metadata: dict[str, str] | None = None) -> T:
        """Run one job: ``awaitable`` and everything it starts belong to it. ``metadata`` is
        stamped on the batches of its requests, on top of what their submitter stamps (so
        jobs stamped differently never share a batch)."""
        job = Job(self, metadata)
        token = _JOB.set(job)
        self._jobs.add(job)
        self._touch()
        try:
            return await awaitable
        finally:
            _JOB.reset(token)
            self._jobs.discard(job)
            self._remaining -= 1
            if self._known and self._remaining <= 0 and self._held:
                # The last job is over: nothing held may wait on a loop that may close now.
                self._release("all waiting")
            else:
                self._touch()

    async def gather(
        self, *awaitables: Awaitable[Any], return_exceptions: bool = False
    ) -> list[Any]:
        """``asyncio.gather`` of the awaitables, each run as a job of this round."""
        return list(
            await asyncio.gather(
                *(self.run(a) for a in awaitables), return_exceptions=return_exceptions
            )
        )

    # -- requests, from any thread ------------------------------------------------------------

    def hold(self, held: Held, job: Job | None = None) -> None:
        """Keep ``held`` until the round is released; its futures resolve as usual after."""
        unit = unit_of_caller()
        tickets = [_Ticket(job, unit) for _ in held.futures]
        # Sync code that blocks this round's own loop on a held request must not wait for
        # the others: nothing else runs until it is answered.
        blocked = self._blocked
        for future, ticket in zip(held.futures, tickets, strict=True):
            future.add_done_callback(functools.partial(self._answer_soon, ticket))
            future.on_block = blocked
        self._call(self._hold, held, tickets)

    # -- on the round's loop ------------------------------------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        if threading.get_ident() == self._thread:
            fn(*args)
        else:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting
                self.loop.call_soon_threadsafe(fn, *args)

    def _hold(self, held: Held, tickets: list[_Ticket]) -> None:
        self._held.append(held)
        for future, ticket in zip(held.futures, tickets, strict=True):
            if future.done():
                continue  # a bad input, failed already
            self._tickets[id(future)] = ticket
            job = ticket.job
            if job is not None:
                job.pending += 1
                job.units[ticket.unit] = job.units.get(ticket.unit, 0) + 1
        self._last_hold = self.loop.time()
        if self._quiet_timer is None:
            quiet = self._quiet if self._quiet is not None else held.quiet
            self._arm_quiet(DEFAULT_QUIET if quiet is None else quiet)
        self._touch()

    def _answer_soon(self, ticket: _Ticket, future: RequestFuture) -> None:
        # On whichever thread answered; queued ahead of the job's own wake-up.
        self._call(self._answered, ticket, future)

    def _answered(self, ticket: _Ticket, future: RequestFuture) -> None:
        if self._tickets.pop(id(future), None) is None:
            return
        job = ticket.job
        if job is not None:
            job.pending -= 1
            left = job.units.get(ticket.unit, 0) - 1
            if left > 0:
                job.units[ticket.unit] = left
            else:
                job.units.pop(ticket.unit, None)
        flight = ticket.flight
        if flight is not None:
            flight.answered += 1
            if flight.size > 1 and flight.answered == 1:
                self._delivering += 1
            if flight.answered == flight.size and flight.size > 1:
                self._delivering -= 1
        self._touch()

    def _run_started(
        self, job: Job, run_id: Hashable, parent_id: Hashable | None, unit: Hashable
    ) -> None:
        if job not in self._jobs:
            return
        parent = job.runs.get(parent_id) if parent_id is not None else None
        if parent is not None:
            parent.children += 1
        job.runs[run_id] = _Run(parent_id if parent is not None else None, unit)
        self._touch()

    def _run_ended(self, job: Job, run_id: Hashable) -> None:
        run = job.runs.pop(run_id, None)
        if run is None:
            return
        parent = job.runs.get(run.parent) if run.parent is not None else None
        if parent is not None:
            parent.children -= 1
        self._touch()

    def _touch(self) -> None:
        """Something changed: look again, once, at the end of this loop step."""
        self._activity += 1
        if not self._check_soon:
            self._check_soon = True
            self.loop.call_soon(self._check)

    def _ready(self) -> bool:
        if not self._held or self._delivering:
            return False
        if not self._known:
            return True
        jobs = self._jobs
        return len(jobs) >= self._remaining and all(job.waiting() for job in jobs)

    def _check(self) -> None:
        self._check_soon = False
        if self._settling or not self._ready():
            return
        self._settling = True
        self.loop.call_soon(self._settle_step, self._settle, self._activity)

    def _settle_step(self, left: int, seen: int) -> None:
        if not self._ready():
            self._settling = False
            return
        if self._activity != seen:
            self.loop.call_soon(self._settle_step, self._settle, self._activity)
        elif left > 1:
            self.loop.call_soon(self._settle_step, left - 1, seen)
        else:
            self._settling = False
            self._release("all waiting")

    def _arm_quiet(self, quiet: float) -> None:
        self._quiet_for = quiet
        self._quiet_timer = self.loop.call_later(quiet, self._quiet_passed)

    def _quiet_passed(self) -> None:
        self._quiet_timer = None
        if not self._held:
            return
        due = self._last_hold + self._quiet_for
        if self.loop.time() < due:  # a request came since: wait out the rest from it
            self._quiet_timer = self.loop.call_at(due, self._quiet_passed)
            return
        logger.debug(
            "round released after %.1f s without a new request (%d of %d jobs waiting)",
            self._quiet_for,
            sum(job.waiting() for job in self._jobs),
            max(self._remaining, len(self._jobs)),
        )
        self._release("quiet")

    def _blocked(self) -> None:
        """A held request is being waited on synchronously: if that blocks this round's own
        loop, release now (nothing else could run to complete the round)."""
        if threading.get_ident() == self._thread and self._held:
            self._release("blocked")

    def _release(self, why: str) -> None:
        if self._quiet_timer is not None:
            self._quiet_timer.cancel()
            self._quiet_timer = None
        held, self._held = self._held, []
        tickets = self._tickets
        for futures in _release_all(held):
            mine = [t for f in futures if (t := tickets.get(id(f))) is not None]
            flight = _Flight(len(mine))
            for ticket in mine:
                ticket.flight = flight
        self.releases.append((why, sum(len(item.futures) for item in held)))


def unit_of_caller() -> Hashable:
    """The unit of work calling: its asyncio task, else its thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


def current_job() -> Job | None:
    """The job of a round the calling code belongs to, if any."""
    return _JOB.get()


def current_round() -> Round | None:
    """The round of the calling code's job, if any."""
    job = _JOB.get()
    return job.round if job is not None else None


_shared: dict[asyncio.AbstractEventLoop, Round] = {}
_shared_lock = threading.Lock()


def shared_round() -> Round | None:
    """The running loop's round without known jobs, which fan-outs started together on it
    share (None outside a running loop)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    with _shared_lock:
        found = _shared.get(loop)
        if found is None or found.loop.is_closed():
            # Forget rounds of loops that were closed since (asyncio.run makes many).
            for old in [lp for lp in _shared if lp.is_closed()]:
                del _shared[old]
            found = _shared[loop] = Round()
        return found


def _release_all(held: list[Held]) -> list[list[RequestFuture]]:
    """Send what was held: one release per scheduler, so each queue is cut once. A release
    that fails (a closed scheduler) fails its own callers."""
    groups: dict[Release, list[Held]] = {}
    for item in held:
        groups.setdefault(item.release, []).append(item)
    batches: list[list[RequestFuture]] = []
    for release, items in groups.items():
        try:
            batches += release([item.payload for item in items])
        except Exception as exc:
            for item in items:
                for future in item.futures:
                    if not future.done():
                        future.set_exception(exc)
    return batches


class _Together:
    """Submissions of one ``together()`` block, sent when it ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: list[Held] = []

    def hold(self, held: Held, job: Job | None = None) -> None:
        for future in held.futures:
            future.on_block = self.release  # waiting inside the block must not deadlock it
        with self._lock:
            self._held.append(held)

    def release(self) -> None:
        with self._lock:
            held, self._held = self._held, []
        if held:
            _release_all(held)


@contextlib.contextmanager
def together() -> Iterator[None]:
    """Everything submitted in this block goes up together as it ends: fan-outs made one
    after another (one per model of a configurable chain, say) reach each queue once, and
    become one batch per queue. Code in the block that waits on its own requests sends
    what is held so far at once, rather than wait for the block to end."""
    holder = _Together()
    token = _TOGETHER.set(holder)
    try:
        yield
    finally:
        _TOGETHER.reset(token)
        holder.release()


class Holder(Protocol):
    """Something that holds submissions for a while: a ``Round``, or a ``together()`` block."""

    def hold(self, held: Held, job: Job | None = None) -> None: ...


def current_holder(share_round: bool) -> tuple[Holder | None, Job | None]:
    """Who holds a submission made now: the caller's round job, else its ``together()``
    block, else (for a fan-out awaited on a running loop, ``share_round``) that loop's shared
    round; ``(None, None)`` to queue it at once."""
    job = _JOB.get()
    if job is not None:
        return job.round, job
    block = _TOGETHER.get()
    if block is not None:
        return block, None
    if share_round:
        return shared_round(), None
    return None, None
