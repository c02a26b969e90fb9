"""Every batch status ends in an answer or a clear error for every caller, never a hang."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    MissingResultError,
    OpenAIProvider,
    Scheduler,
    SchedulerClosedError,
)
from batch_llm.emulator import Emulator


def run(scheduler: Scheduler, provider: OpenAIProvider, n: int) -> list[Any]:
    futures = scheduler.submit_many(provider, CHAT, [chat(f"line-{i}") for i in range(n)])
    return batch_llm.wait(futures, return_exceptions=True, timeout=60)


def test_statuses_pass_through_validating_progress_and_finalizing(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.validating_delay = 0.1
    emulator.knobs.processing_delay = 0.3
    emulator.knobs.finalizing_delay = 0.1
    results = run(scheduler, openai_provider, 10)
    assert all(isinstance(r, dict) for r in results)
    (record,) = scheduler.batches
    assert (record.status, record.outcome) == ("completed", "completed")
    assert record.counts == {"total": 10, "succeeded": 10, "failed": 0}


def test_failed_validation_reaches_every_caller_with_the_reason(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.fail_validation = "quota for gpt-4o batch tokens exceeded"
    results = run(scheduler, openai_provider, 5)
    assert all(isinstance(r, BatchFailedError) for r in results)
    assert all("quota for gpt-4o batch tokens exceeded" in str(r) for r in results)


def test_expired_batch_delivers_finished_lines_and_names_the_rest(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, on_expiry="fail") as scheduler:
        results = run(scheduler, openai_provider, 40)
        assert scheduler.batches[0].outcome == "expired"
    done = [r for r in results if isinstance(r, dict)]
    expired = [r for r in results if isinstance(r, BatchExpiredError)]
    assert len(done) == 20 and len(expired) == 20


def test_cancelled_batch_delivers_partial_output(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.cancel_after_fraction = 0.25
    results = run(scheduler, openai_provider, 40)
    assert sum(isinstance(r, dict) for r in results) == 10
    assert sum(isinstance(r, BatchCancelledError) for r in results) == 30


def test_line_missing_from_both_files_fails_only_its_caller(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.drop_line_every = 10
    results = run(scheduler, openai_provider, 30)
    missing = [r for r in results if isinstance(r, MissingResultError)]
    assert len(missing) == 3
    assert all(r.batch_id == scheduler.batches[0].batch_id for r in missing)
    assert sum(isinstance(r, dict) for r in results) == 27


def test_submission_failure_reaches_every_caller_as_the_sdk_error(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.http_error_every = 1
    emulator.knobs.http_error_routes = {"POST /v1/files"}
    results = run(scheduler, openai_provider, 3)
    assert all(isinstance(r, openai.InternalServerError) for r in results)
    assert scheduler.batches[0].status == "submit_failed"
    # Retried, boundedly, before giving up.
    assert emulator.stats.calls_by_route["POST /v1/files"] == scheduler.retry.attempts


def test_close_fails_queued_requests_without_sending_them(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    sched = Scheduler(window=60)
    future = sched.submit(openai_provider, CHAT, chat("never sent"))
    sched.close()
    with pytest.raises(SchedulerClosedError):
        future.result(5)
    with pytest.raises(SchedulerClosedError):
        sched.submit(openai_provider, CHAT, chat("too late"))
    assert emulator.stats.files_uploaded == 0


def test_close_leaves_a_running_batch_upstream_and_says_so(
    openai_provider: OpenAIProvider, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.knobs.processing_delay = 30
    sched = Scheduler(poll_interval=0.02)
    future = sched.submit_many(openai_provider, CHAT, [chat("slow")])[0]
    deadline = time.monotonic() + 30
    while not (sched.batches and sched.batches[0].batch_id) and time.monotonic() < deadline:
        time.sleep(0.01)
    with caplog.at_level("WARNING", logger="batch_llm"):
        sched.close()
    with pytest.raises(SchedulerClosedError, match="left running upstream"):
        future.result(5)
    assert "left running" in caplog.text
    assert emulator.stats.batches[0]["status"] == "in_progress"
