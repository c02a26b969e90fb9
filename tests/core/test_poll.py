"""Adaptive polling: quick at first, then a bounded fraction of the elapsed time."""

import random

from batch_llm import PollPolicy


def test_first_polls_use_the_initial_interval() -> None:
    policy = PollPolicy(initial=1.0, jitter=0.0)
    assert policy.delay(0.0) == 1.0
    assert policy.delay(5.0) == 1.0


def test_wait_grows_with_elapsed_time_up_to_the_cap() -> None:
    policy = PollPolicy(initial=1.0, cap=300.0, growth=0.1, jitter=0.0)
    assert policy.delay(600.0) == 60.0
    assert policy.delay(86_400.0) == 300.0


def test_a_24_hour_batch_costs_hundreds_of_polls_not_thousands() -> None:
    policy = PollPolicy(rng=random.Random(7))
    elapsed, polls = 0.0, 0
    while elapsed < 86_400:
        elapsed += policy.delay(elapsed)
        polls += 1
    assert polls < 500


def test_jitter_spreads_waits_within_bounds() -> None:
    policy = PollPolicy(initial=10.0, jitter=0.2, rng=random.Random(1))
    waits = {round(policy.delay(0.0), 6) for _ in range(50)}
    assert len(waits) > 10
    assert all(8.0 <= w <= 12.0 for w in waits)
