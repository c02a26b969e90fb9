"""Stages: concurrent jobs whose batch requests go up together once every job waits for one.

The scheduler's window groups calls that arrive within a few seconds of each other. LlamaIndex
jobs arrive more spread out than that: before its LLM call each query of an evaluation sweep
retrieves, ranks and packs a prompt, milliseconds to tens of milliseconds of CPU on the one
event loop, so 200 queries reach their LLM calls over several seconds and a fixed window cuts
them into many batches. When the jobs are known (the sweep helper creates them), something
better is possible: hold each job's requests until every unfinished job is waiting on a batch,
then send what is held as one batch. Each round of calls (query embeddings, answers,
evaluations, each refine step) is then one batch, however long the CPU work in between.

A job counts as waiting while it has a request held or unanswered. Answers are noted on the
loop before the job that gets one resumes (their callbacks are queued first), and no round is
released while the previous one is still being delivered, so a job that is about to wake up
is never mistaken for one that is waiting. A quiet period as long as the scheduler's window
releases whatever is held anyway: a job waiting on something else can delay a round, never
hang it.

Outside a stage (no job in the current context, or on another event loop) requests go
straight to the scheduler and its window.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

import batch_llm
from batch_llm import BatchRequest, RequestFuture, Scheduler

__all__ = ["Stage", "StagedGather", "gather_in_batches", "submit_and_wait", "wait_submitted"]

T = TypeVar("T")


class _Job:
    __slots__ = ("stage", "waiting")

    def __init__(self, stage: Stage) -> None:
        self.stage = stage
        self.waiting = 0  # requests held or unanswered


class _Flight:
    """Requests submitted together; their answers arrive together, in a few chunks."""

    __slots__ = ("answered", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.answered = 0


class _Held:
    __slots__ = ("job", "provider", "request", "scheduler", "ticket")

    def __init__(
        self,
        job: _Job,
        scheduler: Scheduler,
        provider: batch_llm.Provider,
        request: BatchRequest,
        ticket: asyncio.Future[RequestFuture],
    ) -> None:
        self.job = job
        self.scheduler = scheduler
        self.provider = provider
        self.request = request
        self.ticket = ticket


_JOB: ContextVar[_Job | None] = ContextVar("batch_llm_stage_job", default=None)


class Stage:
    """A known number of concurrent jobs on the running event loop (see the module docstring).

    Args:
        jobs: how many jobs will run; the stage waits for all of them.
        quiet: seconds without a new request after which held requests go anyway (default:
            the scheduler's window).
    """

    def __init__(self, jobs: int, *, quiet: float | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.remaining = jobs
        self._quiet = quiet
        self._blocked = 0  # unfinished jobs with a request held or unanswered
        self._delivering = 0  # flights partly answered
        self._held: list[_Held] = []
        self._timer: asyncio.TimerHandle | None = None

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Run one job of the stage."""
        token = _JOB.set(_Job(self))
        try:
            return await awaitable
        finally:
            _JOB.reset(token)
            self.remaining -= 1
            self._check()

    # -- a job's requests ---------------------------------------------------------------------

    async def hold(
        self, job: _Job, scheduler: Scheduler, provider: batch_llm.Provider, request: BatchRequest
    ) -> tuple[RequestFuture, Any]:
        """Keep ``request`` until the round is complete, then wait for its answer."""
        ticket: asyncio.Future[RequestFuture] = self.loop.create_future()
        held = _Held(job, scheduler, provider, request, ticket)
        self._held.append(held)
        self._block(job)
        self._arm(scheduler)
        self._check()
        try:
            future = await ticket
        except BaseException:
            if held in self._held:  # cancelled while held: it is never sent
                self._held.remove(held)
                self._unblock(job)
            raise
        return future, await future

    def track(self, job: _Job, futures: Sequence[RequestFuture]) -> None:
        """Count ``job`` as waiting on ``futures``, submitted already, until they are answered."""
        flight = _Flight(len(futures))
        for future in futures:
            self._block(job)
            future.add_done_callback(functools.partial(self._notify, job, flight))
        self._check()

    # -- bookkeeping, on the loop -------------------------------------------------------------

    def _block(self, job: _Job) -> None:
        job.waiting += 1
        if job.waiting == 1:
            self._blocked += 1

    def _unblock(self, job: _Job) -> None:
        job.waiting -= 1
        if job.waiting == 0:
            self._blocked -= 1

    def _notify(self, job: _Job, flight: _Flight, _future: RequestFuture) -> None:
        # On whichever thread answered; queued ahead of the job's own wake-up. A closed loop
        # has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._answered, job, flight)

    def _answered(self, job: _Job, flight: _Flight) -> None:
        flight.answered += 1
        if flight.size > 1 and flight.answered == 1:
            self._delivering += 1
        self._unblock(job)
        if flight.answered == flight.size:
            if flight.size > 1:
                self._delivering -= 1
            self._check()

    def _arm(self, scheduler: Scheduler) -> None:
        if self._timer is not None:
            self._timer.cancel()
        quiet = self._quiet if self._quiet is not None else scheduler.config.window
        self._timer = self.loop.call_later(quiet, self._release)

    def _check(self) -> None:
        if self._held and not self._delivering and self._blocked >= self.remaining:
            self._release()

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        held, self._held = self._held, []
        groups: dict[tuple[int, batch_llm.Provider, str], list[_Held]] = {}
        for item in held:
            key = (id(item.scheduler), item.provider, item.request.endpoint)
            groups.setdefault(key, []).append(item)
        for items in groups.values():
            first = items[0]
            try:
                futures = first.scheduler.submit_many(
                    first.provider,
                    first.request.endpoint,
                    [item.request.body for item in items],
                    flush=True,
                    return_exceptions=True,
                )
            except Exception as exc:  # a closed scheduler: every caller hears of it
                for item in items:
                    self._unblock(item.job)
                    item.ticket.set_exception(exc)
                continue
            flight = _Flight(len(futures))
            # Every answer callback is registered before any job is woken.
            for item, future in zip(items, futures, strict=True):
                future.add_done_callback(functools.partial(self._notify, item.job, flight))
            for item, future in zip(items, futures, strict=True):
                if not item.ticket.done():
                    item.ticket.set_result(future)


class StagedGather:
    """Stands in for the ``asyncio`` module where LlamaIndex gathers jobs: each ``gather`` is a
    stage. Anything else is taken from the module it wraps (``asyncio`` or tqdm's)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    async def gather(self, *awaitables: Awaitable[Any], **kwargs: Any) -> list[Any]:
        stage = Stage(len(awaitables))
        return list(await self._module.gather(*(stage.run(a) for a in awaitables), **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


async def gather_in_batches(
    *awaitables: Awaitable[Any], return_exceptions: bool = False
) -> list[Any]:
    """``asyncio.gather`` for a fan-out through LlamaIndex components that use ``BatchLLM`` or
    ``BatchEmbedding``: each round of their calls goes up as one batch, sent as soon as every
    awaitable is waiting on it (no window to wait out, however spread out the calls are)::

        answers = await gather_in_batches(*(query_engine.aquery(q) for q in questions))
    """
    return await StagedGather(asyncio).gather(*awaitables, return_exceptions=return_exceptions)


def _current_job() -> _Job | None:
    job = _JOB.get()
    if job is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return job if job.stage.loop is loop else None


async def submit_and_wait(
    scheduler: Scheduler, provider: batch_llm.Provider, request: BatchRequest
) -> tuple[RequestFuture, Any]:
    """Send one request and wait for its response body; held for its round inside a stage."""
    job = _current_job()
    if job is None:
        future = scheduler.submit(provider, request.endpoint, request.body)
        return future, await future
    return await job.stage.hold(job, scheduler, provider, request)


async def wait_submitted(futures: Sequence[RequestFuture]) -> list[Any]:
    """Await requests submitted already; inside a stage the job counts as waiting on them."""
    job = _current_job()
    if job is not None:
        job.stage.track(job, futures)
    return await batch_llm.gather(futures)
