"""Polling that knows when to look: by the batch's age from its creation, and by the pace its
request counts foretell. Everything runs on an injected clock; nothing waits."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from core_helpers import wait_for

import batch_llm
from batch_llm import OpenAIProvider, PollPolicy, Scheduler, SchedulerClosedError
from batch_llm._poll import PollWatch
from batch_llm._retry import RetryPolicy
from batch_llm.emulator import Emulator
from batch_llm.providers import BatchStatus

EPOCH = 1_700_000_000.0
DAY = 86_400.0
TOTAL = 10_000


class Clock:
    """Unix seconds that move only when told."""

    def __init__(self, now: float = EPOCH) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def status(
    done: int = 0,
    *,
    ended: bool = False,
    created: float | None = None,
    in_progress: float | None = None,
    expires: float | None = None,
) -> BatchStatus:
    named = {"created": created, "in_progress": in_progress, "expires": expires}
    times = {name: when for name, when in named.items() if when is not None}
    return BatchStatus(
        "b",
        "ended" if ended else "in_progress",
        "completed" if ended else "in_progress",
        total=TOTAL,
        succeeded=done,
        outcome="completed" if ended else None,
        times=times,
    )


def linear(run: float) -> Callable[[float], float]:
    """Counts that advance steadily from creation until 2 % before the end (then results)."""
    return lambda t: min(1.0, t / (0.98 * run))


def silent(_t: float) -> float:
    return 0.0


def bursts(run: float) -> Callable[[float], float]:
    """Counts that jump a few times, unevenly, the last quarter at the very end."""
    steps = [(0.1 * run, 0.1), (0.45 * run, 0.35), (0.5 * run, 0.15), (0.98 * run, 0.4)]
    return lambda t: sum(share for when, share in steps if when <= t)


def follow(
    run: float,
    progress: Callable[[float], float],
    *,
    start: float = 0.0,
    seed: int = 0,
    policy: PollPolicy | None = None,
) -> tuple[int, float, list[float]]:
    """Poll a simulated batch created at ``EPOCH`` and ending ``run`` seconds later, from
    ``start`` seconds into its life: (polls, seconds its end went unnoticed, the waits)."""
    clock = Clock(EPOCH + start)
    policy = policy or PollPolicy(rng=random.Random(seed), clock=clock)
    watch = policy.watch(created=EPOCH)

    def poll() -> BatchStatus:
        t = clock.now - EPOCH
        if t >= run:
            return status(TOTAL, ended=True, created=EPOCH)
        return status(round(TOTAL * progress(t)), created=EPOCH)

    waits: list[float] = []
    current, polls = poll(), 0
    while not current.ended:
        waits.append(watch.next_delay(current))
        clock.now += waits[-1]
        current, polls = poll(), polls + 1
    return polls, clock.now - EPOCH - run, waits


def allowed(run: float) -> float:
    """The goal: an end noticed within 2 % of the run time, 30 s at least."""
    return max(0.02 * run, 30.0)


# -- the goals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_24_hour_batch_costs_under_100_polls_and_is_noticed_within_2_percent(seed: int) -> None:
    run = DAY * (0.9 + 0.02 * seed)
    polls, late, _ = follow(run, linear(run), seed=seed)
    assert polls < 100
    assert 0 <= late <= allowed(run)


@pytest.mark.parametrize("run", [300.0, 1800.0, 3600.0, 6 * 3600.0])
def test_a_steady_batch_is_noticed_within_2_percent_or_30_s(run: float) -> None:
    for seed in range(5):
        polls, late, _ = follow(run * (1 - 0.01 * seed), linear(run), seed=seed)
        assert late <= allowed(run)
        assert polls < 60


@pytest.mark.parametrize("progress", [silent, bursts(DAY)], ids=["silent", "bursts"])
def test_a_24_hour_batch_whose_counts_say_nothing_still_costs_under_100_polls(
    progress: Callable[[float], float],
) -> None:
    for seed in range(5):
        polls, late, _ = follow(DAY, progress, seed=seed)
        assert polls < 100
        # Noticed within 8 % of its age at worst, and within the hourly cap.
        assert late <= min(0.08 * DAY, PollPolicy().cap)


def test_a_silent_batch_is_noticed_within_8_percent_of_its_age_or_two_minutes() -> None:
    for run in (60.0, 300.0, 1500.0, 3600.0, 6 * 3600.0):
        for seed in range(5):
            _, late, _ = follow(run, silent, seed=seed)
            assert late <= max(0.08 * run, 120.0)


@pytest.mark.parametrize("run", [2.5, 5.0, 8.0])
def test_a_batch_of_a_few_seconds_is_noticed_within_a_second_or_two(run: float) -> None:
    for progress in (linear(run), silent):
        _, late, _ = follow(run, progress)
        assert late <= max(1.0, 0.3 * run)


def test_a_batch_writing_its_results_is_looked_at_again_soon() -> None:
    # Processing began at 10 s and every request was counted by 110 s: writing the results
    # takes a small part of those 100 s. The age rule alone would wait a third of the age
    # (30 s, the slack) for a batch this young.
    watch = watched([(50, 4000), (80, 7000), (110, TOTAL)], started=EPOCH + 10)
    assert watch.writing_wait() == pytest.approx(2.0)  # 2 % of the processing time
    watch = watched([(50, 4000), (80, 7000), (110, TOTAL), (115, TOTAL)], started=EPOCH + 10)
    assert watch.writing_wait() == pytest.approx(5.0)  # still writing: the waits double
    watch = watched([(50, 4000), (80, TOTAL)], started=EPOCH + 10)
    assert watch.writing_wait() == pytest.approx(1.4)
    assert watched([(50, 4000), (80, 7000)]).writing_wait() is None  # still counting
    # A day's batch: 2 % of its processing is about 2 % of its age, as the age rule waits.
    day = watched([(40_000, 4000), (80_000, 9000), (86_000, TOTAL)], started=EPOCH + 600)
    assert day.writing_wait() == pytest.approx(0.02 * 85_400)


def test_the_policy_it_replaced_cost_hundreds_of_polls_for_the_same_day() -> None:
    # The yardstick for the bound above: waits of 5 % of the age, 1-300 s, poll about 400
    # times in 24 h (the issue counted 406).
    age, polls = 0.0, 0
    while age < DAY:
        age += min(max(1.0, 0.05 * age), 300.0)
        polls += 1
    assert polls > 400
    assert follow(DAY, linear(DAY))[0] < polls / 4


# -- age ----------------------------------------------------------------------------------------


def test_a_resumed_batch_is_polled_for_its_age_not_from_the_first_interval() -> None:
    polls, late, waits = follow(DAY, linear(DAY), start=DAY / 2)
    # Half a day old: the first wait is a share of that, not the 1 s a new batch gets.
    assert waits[0] >= 0.5 * 0.08 * DAY / 2
    assert polls < 25
    assert late <= allowed(DAY)


def test_age_counts_from_the_providers_creation_time() -> None:
    clock = Clock(EPOCH + 3600)
    watch = PollPolicy(jitter=0, clock=clock).watch()
    watch.next_delay(status(created=EPOCH))
    assert watch.age == 3600


def test_age_falls_back_to_the_journals_intent_time() -> None:
    clock = Clock(EPOCH + 3600)
    watch = PollPolicy(jitter=0, clock=clock).watch(created=EPOCH + 600)
    assert watch.next_delay(status()) == PollPolicy(jitter=0).delay(3000)
    assert watch.age == 3000


def test_age_starts_at_the_first_poll_when_nobody_says_when_the_batch_began() -> None:
    clock = Clock()
    watch = PollPolicy(jitter=0, clock=clock).watch()
    assert watch.next_delay(status()) == 1.0
    clock.now += 50
    watch.next_delay(status())
    assert watch.age == 50


def test_a_provider_clock_running_behind_does_not_make_a_new_batch_look_old() -> None:
    clock = Clock(EPOCH + 2)
    watch = PollPolicy(jitter=0, clock=clock).watch(created=EPOCH)
    # The provider stamps the batch ten minutes before we asked for it.
    assert watch.next_delay(status(created=EPOCH - 600)) == 1.0
    assert watch.age == 2


# -- progress -----------------------------------------------------------------------------------


def watched(samples: list[tuple[float, int]], started: float | None = None) -> PollWatch:
    clock = Clock()
    watch = PollPolicy(jitter=0, clock=clock).watch(created=EPOCH)
    for t, done in samples:
        clock.now = EPOCH + t
        watch.observe(status(done, created=EPOCH, in_progress=started))
    return watch


def test_a_steady_pace_foretells_the_end() -> None:
    watch = watched([(1000, 1000), (2000, 2000), (3000, 3000)])
    assert watch.expected_end() == pytest.approx(EPOCH + 10_000)


def test_the_pace_counts_from_when_processing_began() -> None:
    watch = watched([(1000, 0), (2000, 1000), (3000, 2000)], started=EPOCH + 1000)
    assert watch.expected_end() == pytest.approx(EPOCH + 11_000)


def test_paces_that_disagree_foretell_nothing() -> None:
    assert watched([(1000, 100), (2000, 100), (3000, 2000)]).expected_end() is None
    assert watched([(1000, 0), (2000, 0), (3000, 0)]).expected_end() is None
    assert watched([(1000, 1000), (2000, 2000)]).expected_end() is None  # too few yet


def test_every_request_counted_means_the_end_is_now() -> None:
    assert watched([(1000, TOTAL)]).expected_end() == EPOCH + 1000


def test_far_from_the_end_a_wait_is_at_most_half_the_age() -> None:
    watch = watched([(1000, 100), (2000, 200), (3000, 300)])
    end = watch.expected_end()
    assert end is not None
    # 97 % to go at 1 % per 1000 s: the end is a day away, yet the wait stays within reach.
    assert watch.policy._wait(watch.age, end - EPOCH - 3000) == 1500


def test_near_the_expected_end_the_poll_lands_on_it() -> None:
    watch = watched([(1000, 3300), (2000, 6600), (3000, 9900)])
    end = watch.expected_end()
    assert end is not None
    assert watch.policy._wait(watch.age, end - EPOCH - 3000) == pytest.approx(end - EPOCH - 3000)


def test_no_wait_passes_the_batch_expiry() -> None:
    clock = Clock(EPOCH + DAY - 100)
    watch = PollPolicy(jitter=0, clock=clock).watch()
    assert watch.next_delay(status(created=EPOCH, expires=EPOCH + DAY)) == 101


# -- construction and settings ----------------------------------------------------------------


def test_initial_and_cap_bound_every_wait() -> None:
    policy = PollPolicy(initial=5.0, cap=60.0, jitter=0.0)
    assert policy.delay(0.0) == 5.0
    assert policy.delay(DAY) == 60.0


def test_jitter_only_shortens_waits_and_spreads_them() -> None:
    policy = PollPolicy(initial=10.0, jitter=0.2, rng=random.Random(1))
    waits = {round(policy.delay(0.0), 6) for _ in range(50)}
    assert len(waits) > 10
    assert all(8.0 <= w <= 10.0 for w in waits)


def test_settings_reach_the_schedulers_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_LLM_POLL_INTERVAL", "0.5")
    monkeypatch.setenv("BATCH_LLM_POLL_MAX", "60")
    with Scheduler(journal="off") as scheduler:
        assert (scheduler.poll_policy.initial, scheduler.poll_policy.cap) == (0.5, 60.0)
    monkeypatch.delenv("BATCH_LLM_POLL_INTERVAL")
    monkeypatch.delenv("BATCH_LLM_POLL_MAX")
    with Scheduler(journal="off") as scheduler:
        assert (scheduler.poll_policy.initial, scheduler.poll_policy.cap) == (1.0, 3600.0)


# -- through the lifecycle ----------------------------------------------------------------------


def test_a_resumed_batch_is_polled_for_its_age_against_the_emulator(
    emulator: Emulator, openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    """A later run picks up a batch the provider created two hours ago (by the policy's
    clock): its first polls wait a share of those two hours, not the first interval."""
    journal = tmp_path / "journal.sqlite3"
    fast: dict[str, Any] = {"retry": RetryPolicy(attempts=4, initial=0.01, cap=0.05)}
    emulator.knobs.processing_delay = 60  # still running when the second run looks
    bodies = [
        {"model": "gpt-4o", "temperature": 0, "messages": [{"role": "user", "content": f"{i}"}]}
        for i in range(10)
    ]
    first = Scheduler(journal=journal, poll_interval=0.02, poll_max=0.1, **fast)
    first.submit_many(openai_provider, "/v1/chat/completions", bodies)
    wait_for(lambda: first.batches and first.batches[0].status == "in_progress")
    first.close()

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0.01)  # the waits themselves are not the point

    later = PollPolicy(initial=0.02, jitter=0.0, clock=lambda: time.time() + 7200)
    with Scheduler(journal=journal, poll_policy=later, sleep=record, **fast) as second:
        futures = second.submit_many(openai_provider, "/v1/chat/completions", bodies)
        wait_for(lambda: len(waits) >= 3)
        assert second.batches[0].resumed
    assert emulator.stats.batches_created == 1
    # Two hours old and its counts telling nothing yet: 8 % of its age, not 0.02 s.
    assert all(w >= 0.08 * 7200 * 0.99 for w in waits[:3])
    with pytest.raises(SchedulerClosedError):
        batch_llm.wait(futures, timeout=5)
