"""The batch runner alone: built from its parts, driving a FakeProvider on a fake clock.

No scheduler, no HTTP, no real waiting: a day-long batch runs in milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from batch_llm import BatchError, BatchFailedError, FakeProvider, PollPolicy, RequestFuture
from batch_llm._batch import Batch, Queue
from batch_llm._cost import UsageMeter
from batch_llm._events import EventHub
from batch_llm._futures import await_all
from batch_llm._inflight import InFlight
from batch_llm._journal import NullJournal
from batch_llm._journal_io import JournalWriter
from batch_llm._retry import RetryPolicy
from batch_llm._runner import BatchRunner
from batch_llm.emulator import Knobs
from batch_llm.providers import Capability
from batch_llm.testing import FakeClock

CHAT = "/v1/chat/completions"


class Parts:
    """A runner and what it was built from, with what it did recorded."""

    def __init__(self, provider: FakeProvider, clock: FakeClock, **options: Any) -> None:
        self.provider = provider
        self.clock = clock
        self.events: list[dict[str, Any]] = []
        self.requeued: list[list[Any]] = []
        self.inflight = InFlight()

        def requeue(_provider: Any, items: list[Any], _metadata: Any = None) -> None:
            self.requeued.append(items)

        self.runner = BatchRunner(
            writer=JournalWriter(NullJournal()),
            events=EventHub([self.events.append]),
            meter=UsageMeter(),
            inflight=self.inflight,
            requeue=requeue,
            retry=RetryPolicy(attempts=4, initial=0.5, cap=2, sleep=clock.sleep),
            poll=PollPolicy(clock=clock.now),
            sleep=clock.sleep,
            clock=clock.now,
            **options,
        )

    def batch(self, count: int) -> tuple[Batch, list[RequestFuture]]:
        queue: Queue | None = None
        futures = RequestFuture.group(count, "fake")
        for i, future in enumerate(futures):
            line = self.provider.prepare(
                CHAT,
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{i} + 1?"}]},
            )
            line.custom_id = f"line-{i}"
            future.custom_id = line.custom_id
            queue = queue or Queue(self.provider, line.key, self.provider.limits(line.key))
            queue.add(line, future)
        assert queue is not None
        with self.inflight.lock:
            batch = queue.cut()
            self.inflight.track(batch)
        return batch, futures

    def run(self, count: int) -> list[Any]:
        batch, futures = self.batch(count)

        async def go() -> list[Any]:
            self.runner.launch(batch)
            return await await_all(futures, return_exceptions=True)

        return asyncio.run(go())

    @property
    def names(self) -> list[str]:
        return [event["event"] for event in self.events if event["event"] != "batch_progress"]


def parts(knobs: Knobs, make: Callable[..., FakeProvider] = FakeProvider, **options: Any) -> Parts:
    clock = FakeClock()
    return Parts(make(knobs=knobs, clock=clock.now), clock, **options)


def test_a_day_long_batch_runs_on_the_fake_clock_in_few_polls() -> None:
    p = parts(Knobs(validating_delay=60, processing_delay=86_400, finalizing_delay=120))
    answers = p.run(20)
    assert all(isinstance(a, dict) and a["choices"] for a in answers)
    assert p.names == ["batch_submitted", "batch_completed"]
    assert p.provider.calls["poll"] < 100
    assert sum(p.clock.slept) >= 86_400
    assert not p.inflight.batches()  # let go once over


def test_an_expired_batch_answers_what_ran_and_hands_the_rest_back() -> None:
    p = parts(Knobs(processing_delay=100, expire_after_fraction=0.5))
    batch, futures = p.batch(10)

    async def go() -> None:
        p.runner.launch(batch)
        while not all(f.done() for f in futures[:5]) or not p.requeued:
            await p.clock.sleep(1)

    asyncio.run(go())
    assert all(f.done() and not f.exception() for f in futures[:5])
    assert not any(f.done() for f in futures[5:])  # handed back, waiting for a new batch
    assert sorted(line.custom_id for line, _ in p.requeued[0]) == [
        f"line-{i}" for i in range(5, 10)
    ]
    assert p.names == ["batch_submitted", "batch_expired"]


def lost_reply() -> Knobs:
    return Knobs(lose_create_reply=1)


def test_a_lost_create_reply_is_reconciled_not_paid_twice() -> None:
    p = parts(lost_reply())
    answers = p.run(4)
    assert all(isinstance(a, dict) for a in answers)
    assert p.provider.batches_created == 1
    assert p.provider.calls["submit"] == 1
    assert p.names == ["batch_submitted", "batch_completed"]


class NoReconcile(FakeProvider):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({"usage", "list", "realtime"})


def test_without_reconcile_an_ambiguous_create_is_not_retried() -> None:
    p = parts(lost_reply(), make=NoReconcile)
    answers = p.run(3)
    assert all(isinstance(a, BatchError) and "not retried" in str(a) for a in answers)
    assert p.provider.batches_created == 1
    assert p.names == ["batch_failed"]


def test_transient_poll_failures_are_retried_on_the_fake_clock() -> None:
    p = parts(Knobs(processing_delay=30, http_error_every=2, http_error_routes={"poll"}))
    answers = p.run(3)
    assert all(isinstance(a, dict) for a in answers)
    assert p.provider.calls["poll"] >= 4


def test_failed_validation_fails_every_caller_with_the_reason() -> None:
    p = parts(Knobs(validating_delay=5, fail_validation="the file is not JSONL"))
    answers = p.run(3)
    assert all(isinstance(a, BatchFailedError) for a in answers)
    assert all("the file is not JSONL" in str(a) for a in answers)
    assert not p.requeued
    assert p.names == ["batch_submitted", "batch_failed"]


@pytest.mark.parametrize("on_expiry", ["realtime"])
def test_expired_lines_go_realtime_when_asked(on_expiry: str) -> None:
    p = parts(Knobs(processing_delay=10, expire_after_fraction=0.5), on_expiry=on_expiry)
    answers = p.run(4)
    assert all(isinstance(a, dict) for a in answers)
    assert p.provider.realtime_calls == 2
    assert p.names.count("request_escalated") == 2


def test_the_whole_scheduler_runs_on_a_fake_clock() -> None:
    """Windows, polls and retries all follow the injected clock: a minute-long window and an
    hour-long batch take no real time."""
    from batch_llm import Scheduler, wait

    clock = FakeClock()
    provider = FakeProvider(knobs=Knobs(processing_delay=3600), clock=clock.now)
    with Scheduler(journal="off", window=60, clock=clock.now, sleep=clock.sleep) as sched:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "1 + 1?"}]}
        # Queued at once: the fake window's 60 s pass the moment the loop sleeps on them, so
        # single submits racing it from this thread could split into two batches.
        bodies = [{**body, "n": 1 + i % 2} for i in range(5)]
        futures = sched.submit_many(provider, CHAT, bodies, flush=False)
        # An hour of batch and a minute of window on the fake clock; a real wait that long
        # would end in wait's own TimeoutError instead of answers.
        answers = wait(futures, timeout=30)
    assert len(answers) == 5 and provider.batches_created == 1
    assert sum(clock.slept) >= 3600 + 60
