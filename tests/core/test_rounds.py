"""Rounds: requests held until every job of a fan-out waits, then sent as one batch.

Each test counts batches in the emulator's stats. The scheduler's window is long (60 s) unless
a test is about the window: a round that was released by its jobs all waiting takes no
window to go.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import CHAT, chat

from batch_llm import OpenAIProvider, RequestFuture, Scheduler
from batch_llm._retry import RetryPolicy
from batch_llm._rounds import Round, current_job
from batch_llm.emulator import Emulator

FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, cap=0.05)


@pytest.fixture
def patient() -> Iterator[Scheduler]:
    """A scheduler whose window would take a minute: anything sent sooner was sent by a round."""
    with Scheduler(
        journal="off", window=60, poll_interval=0.02, poll_max=0.1, retry=FAST_RETRY
    ) as sched:
        yield sched


async def ask(sched: Scheduler, provider: OpenAIProvider, text: str | int) -> Any:
    return await sched.submit(provider, CHAT, chat(text))


def test_concurrent_small_fan_outs_started_together_share_one_batch(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    async def one(i: int) -> list[Any]:
        bodies = [chat(f"sample {i}: what is {k} + 1?", temperature=1) for k in range(3)]
        futures = patient.submit_many(openai_provider, CHAT, bodies, share_round=True)
        return [await f for f in futures]

    async def main() -> list[list[Any]]:
        return await asyncio.gather(*(one(i) for i in range(30)))

    answers = asyncio.run(main())
    assert len(answers) == 30 and all(len(a) == 3 for a in answers)
    assert emulator.stats.batches_created == 1
    assert emulator.stats.lines_submitted == 90


def test_uneven_jobs_make_one_batch_per_round_without_waiting_out_the_window(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    rng = random.Random(7)
    work = [rng.uniform(0, 0.3) for _ in range(20)]

    async def job(i: int) -> tuple[Any, Any]:
        await asyncio.sleep(work[i])  # retrieval, ranking... before the first call
        first = await ask(patient, openai_provider, i)
        time.sleep(work[i] / 20)  # CPU work between the calls, blocking the loop
        second = await ask(patient, openai_provider, f"{i} again")
        return first, second

    async def main() -> tuple[list[Any], Round]:
        rounds = Round(jobs=20)
        return await rounds.gather(*(job(i) for i in range(20))), rounds

    started = time.monotonic()
    answers, rounds = asyncio.run(main())
    assert time.monotonic() - started < 30  # no 60 s window was waited out
    assert len(answers) == 20
    assert emulator.stats.batches_created == 2
    assert rounds.releases == [("all waiting", 20), ("all waiting", 20)]


def test_parallel_branches_of_one_job_go_in_its_round(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    async def job(i: int) -> list[Any]:
        return await asyncio.gather(*(ask(patient, openai_provider, f"{i}/{b}") for b in range(3)))

    async def main() -> list[Any]:
        return await Round(jobs=10).gather(*(job(i) for i in range(10)))

    assert len(asyncio.run(main())) == 10
    assert emulator.stats.batches_created == 1
    assert emulator.stats.lines_submitted == 30


def test_a_branch_still_working_keeps_the_round_open(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    """A job reports its units of work (as the LangChain integration does with its callback
    runs): one branch holds a request while another is still working; the round waits."""

    async def slow_branch(i: int) -> Any:
        job = current_job()
        assert job is not None
        job.run_started(("slow", i), None)
        await asyncio.sleep(0.3)  # a retriever, say: not a request of ours
        job.run_ended(("slow", i))
        return await ask(patient, openai_provider, f"slow {i}")

    async def job(i: int) -> list[Any]:
        return await asyncio.gather(ask(patient, openai_provider, f"fast {i}"), slow_branch(i))

    async def main() -> Round:
        rounds = Round(jobs=5)
        await rounds.gather(*(job(i) for i in range(5)))
        return rounds

    rounds = asyncio.run(main())
    assert emulator.stats.batches_created == 1
    assert rounds.releases == [("all waiting", 10)]


def test_a_job_busy_elsewhere_delays_the_round_but_quiet_releases_it(
    emulator: Emulator, openai_provider: OpenAIProvider
) -> None:
    with Scheduler(journal="off", window=0.3, poll_interval=0.02, retry=FAST_RETRY) as sched:

        async def job(i: int) -> Any:
            if i == 0:
                await asyncio.sleep(1.5)  # never asks in time: the others must not wait for it
                return None
            return await sched.submit(openai_provider, CHAT, chat(i))

        async def main() -> tuple[float, Round]:
            rounds = Round(jobs=4)
            started = time.monotonic()
            tasks = [asyncio.ensure_future(rounds.run(job(i))) for i in range(4)]
            await asyncio.gather(*tasks[1:])
            answered = time.monotonic() - started
            await tasks[0]
            return answered, rounds

        answered, rounds = asyncio.run(main())
    assert answered < 1.4
    assert rounds.releases == [("quiet", 3)]
    assert emulator.stats.batches_created == 1


def test_sync_code_blocking_the_rounds_own_loop_releases_it_at_once(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    async def job() -> Any:
        future = patient.submit(openai_provider, CHAT, chat(1))
        return future.result(timeout=30)  # blocks the loop: the round must not wait

    async def main() -> tuple[Any, Round]:
        rounds = Round(jobs=3)
        answers = await rounds.gather(job(), asyncio.sleep(0.5), asyncio.sleep(0.5))
        return answers[0], rounds

    answer, rounds = asyncio.run(main())
    assert answer["choices"]
    assert rounds.releases[0] == ("blocked", 1)


def test_jobs_in_executor_threads_are_held_with_the_rest(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    def sync_step(i: int) -> Any:
        # As LangChain runs a sync function of an async chain: in a thread, context copied.
        assert current_job() is not None
        return patient.submit(openai_provider, CHAT, chat(i)).result(timeout=30)

    async def job(i: int) -> Any:
        if i % 2:
            return await asyncio.to_thread(sync_step, i)
        return await ask(patient, openai_provider, i)

    async def main() -> list[Any]:
        return await Round(jobs=8).gather(*(job(i) for i in range(8)))

    answers = asyncio.run(main())
    assert all(a["choices"] for a in answers)
    assert emulator.stats.batches_created == 1


def test_a_held_request_is_still_checked_at_submit_time(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    from batch_llm import InvalidRequestError

    async def job() -> None:
        with pytest.raises(InvalidRequestError):
            patient.submit(openai_provider, CHAT, {"messages": []})  # no model

    async def main() -> None:
        await Round(jobs=1).gather(job())

    asyncio.run(main())
    assert emulator.stats.batches_created == 0


def test_futures_are_handed_out_at_once_and_cancelling_one_drops_its_line(
    emulator: Emulator, openai_provider: OpenAIProvider, patient: Scheduler
) -> None:
    async def job(i: int) -> Any:
        future: RequestFuture = patient.submit(openai_provider, CHAT, chat(i))
        assert not future.done()
        if i == 0:
            future.cancel()
            return None
        return await future

    async def main() -> list[Any]:
        return await Round(jobs=4).gather(*(job(i) for i in range(4)))

    answers = asyncio.run(main())
    assert answers[0] is None and all(a["choices"] for a in answers[1:])
    assert emulator.stats.lines_submitted == 3
