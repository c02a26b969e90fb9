"""Nothing lost, nothing paid twice: the journal, resuming, retries, expiry, deadlines,
cancellation and secrets, shown with the emulator's fault knobs."""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from core_helpers import wait_for
from helpers import CHAT, chat

import batch_llm
from batch_llm import (
    BatchExpiredError,
    OpenAIProvider,
    Scheduler,
    SchedulerClosedError,
)
from batch_llm._journal import Intent, SQLiteJournal
from batch_llm._retry import RetryPolicy
from batch_llm.emulator import Emulator

FAST = {
    "poll_interval": 0.02,
    "poll_max": 0.1,
    "retry": RetryPolicy(attempts=6, initial=0.01, cap=0.05),
}


def answer(body: Any) -> str:
    return str(body["choices"][0]["message"]["content"])


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


def test_every_7th_line_errors_and_every_4th_call_fails_yet_one_batch_answers_all(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.line_error_every = 7
    emulator.knobs.line_error_status = 400
    emulator.knobs.line_error_message = "line seven is refused"
    emulator.knobs.http_error_every = 4
    emulator.knobs.processing_delay = 0.4  # enough polls for some to fail
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            openai_provider, CHAT, [chat(i, temperature=0) for i in range(140)]
        )
        results = batch_llm.wait(futures, return_exceptions=True, timeout=60)
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [i for i in range(140) if (i + 1) % 7 == 0]
    assert all(isinstance(results[i], openai.BadRequestError) for i in failed)
    assert all("line seven is refused" in str(results[i]) for i in failed)
    assert all(answer(r) == str(i + 1) for i, r in enumerate(results) if i not in failed)
    assert emulator.stats.batches_created == 1
    assert emulator.stats.http_errors_injected > 0


def test_every_kind_of_call_is_retried_through_a_failure(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    """Each route's second call fails: the second fan-out meets a failed upload, create, poll
    and download, and still gets every answer from one batch."""
    emulator.knobs.http_error_every = 2
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        for round_ in range(2):
            bodies = [chat(100 * round_ + i, temperature=0) for i in range(10)]
            results = batch_llm.wait(
                scheduler.submit_many(openai_provider, CHAT, bodies), timeout=30
            )
            assert [answer(r) for r in results] == [str(100 * round_ + i + 1) for i in range(10)]
    assert emulator.stats.batches_created == 2
    calls = emulator.stats.calls_by_route
    # A failed create re-runs the submission, upload included (uploads cost nothing).
    assert calls["POST /v1/files"] >= 3
    for route in ("POST /v1/batches", "GET /v1/files/{id}/content"):
        assert calls[route] == 3, route


def test_expired_half_done_batch_resubmits_only_the_unfinished_half(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            openai_provider, CHAT, [chat(i, temperature=0) for i in range(40)]
        )
        wait_for(lambda: emulator.stats.batches_created == 1)
        emulator.knobs.expire_after_fraction = None  # the second batch runs to the end
        results = batch_llm.wait(futures, timeout=60)
    assert [answer(r) for r in results] == [str(i + 1) for i in range(40)]
    assert emulator.stats.lines_submitted == 40 + 20
    assert [b["status"] for b in emulator.stats.batches] == ["expired", "completed"]


def test_expired_lines_can_go_realtime_instead(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(journal=journal_path, on_expiry="realtime", **FAST) as scheduler:
        results = batch_llm.wait(
            scheduler.submit_many(
                openai_provider, CHAT, [chat(i, temperature=0) for i in range(20)]
            ),
            timeout=60,
        )
    assert [answer(r) for r in results] == [str(i + 1) for i in range(20)]
    assert emulator.stats.batches_created == 1
    assert emulator.stats.realtime_calls == 10


def test_expiry_gives_up_after_the_resubmit_limit(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(journal=journal_path, max_resubmits=1, **FAST) as scheduler:
        results = batch_llm.wait(
            scheduler.submit_many(
                openai_provider, CHAT, [chat(i, temperature=0) for i in range(8)]
            ),
            return_exceptions=True,
            timeout=60,
        )
    assert sum(isinstance(r, dict) for r in results) == 6  # 4, then 2 of the other 4
    assert sum(isinstance(r, BatchExpiredError) for r in results) == 2
    assert emulator.stats.lines_submitted == 8 + 4


def test_rerun_reattaches_to_the_running_batch(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.processing_delay = 2
    first = Scheduler(journal=journal_path, **FAST)
    pending = first.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(10)])
    wait_for(lambda: first.batches and first.batches[0].status == "in_progress")
    report = first.close()
    assert report["left_running"] == [first.batches[0].batch_id]
    with pytest.raises(SchedulerClosedError, match="left running upstream"):
        pending[0].result(5)
    with Scheduler(journal=journal_path, **FAST) as second:
        results = batch_llm.wait(
            second.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(10)]),
            timeout=60,
        )
        assert second.batches[0].resumed
    assert [answer(r) for r in results] == [str(i + 1) for i in range(10)]
    assert emulator.stats.batches_created == 1


def test_rerun_after_completion_takes_the_stored_answers(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    with Scheduler(journal=journal_path, **FAST) as first:
        expected = batch_llm.wait(
            first.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(30)])
        )
    calls = dict(emulator.stats.calls_by_route)
    with Scheduler(journal=journal_path, **FAST) as second:
        again = batch_llm.wait(
            second.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(30)])
        )
    assert again == expected
    assert emulator.stats.batches_created == 1
    assert emulator.stats.calls_by_route == calls  # not even a poll: answers came from disk


def test_identical_request_joins_a_batch_already_running(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.processing_delay = 0.5
    with Scheduler(journal="off", **FAST) as scheduler:
        first = scheduler.submit_many(
            openai_provider, CHAT, [chat(1, temperature=0), chat(2, temperature=0)]
        )
        wait_for(lambda: emulator.stats.batches_created == 1)
        second = scheduler.submit_many(openai_provider, CHAT, [chat(2, temperature=0)])
        results = batch_llm.wait(first + second, timeout=30)
    assert [answer(r) for r in results] == ["2", "3", "3"]
    assert emulator.stats.lines_submitted == 2


def test_crash_between_create_and_record_is_reconciled_through_the_list_api(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    class DiesAfterCreate(SQLiteJournal):
        def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
            raise RuntimeError("power cut")

    emulator.knobs.processing_delay = 1
    first = Scheduler(journal=DiesAfterCreate(journal_path), **FAST)
    lost = first.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(5)])
    assert all(
        isinstance(e, RuntimeError)
        for e in batch_llm.wait(lost, return_exceptions=True, timeout=30)
    )
    first.close()
    (intent,) = SQLiteJournal(journal_path).intents()
    assert intent.batch_id is None  # only the intent reached the disk
    with Scheduler(journal=journal_path, **FAST) as second:
        results = batch_llm.wait(
            second.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(5)]),
            timeout=30,
        )
    assert [answer(r) for r in results] == ["1", "2", "3", "4", "5"]
    assert emulator.stats.batches_created == 1


def test_intent_that_never_became_a_batch_is_submitted_again(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    journal = SQLiteJournal(journal_path)
    prepared = [openai_provider.prepare(CHAT, chat(i, temperature=0)) for i in range(3)]
    with Scheduler(journal="off") as probe:
        ids = [
            probe._prepare(openai_provider, CHAT, chat(i, temperature=0)).custom_id
            for i in range(3)
        ]
    journal.claim(
        Intent(
            "dead-intent", "openai", openai_provider.identity(), CHAT, 3, created_at=time.time()
        ),
        ids,
        lease=-1,  # its owner is long gone
    )
    journal.close()
    del prepared
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        results = batch_llm.wait(
            scheduler.submit_many(openai_provider, CHAT, [chat(i, temperature=0) for i in range(3)])
        )
    assert [answer(r) for r in results] == ["1", "2", "3"]
    assert emulator.stats.batches_created == 1


def test_journal_entry_for_a_batch_the_provider_never_heard_of_is_submitted_again(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    with Scheduler(journal=journal_path, **FAST) as first:
        emulator.knobs.processing_delay = 60
        first.submit_many(openai_provider, CHAT, [chat(7, temperature=0)])
        wait_for(lambda: first.batches and first.batches[0].batch_id)
    emulator.reset()  # as if the journal came from another server
    with Scheduler(journal=journal_path, **FAST) as second:
        (result,) = batch_llm.wait(
            second.submit_many(openai_provider, CHAT, [chat(7, temperature=0)]), timeout=30
        )
    assert answer(result) == "8"
    assert emulator.stats.batches_created == 1


def test_deadline_sends_the_tail_realtime_and_cancels_the_batch(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    emulator.knobs.processing_delay = 60
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            openai_provider, CHAT, [chat(i, temperature=0) for i in range(5)], deadline=0.3
        )
        results = batch_llm.wait(futures, timeout=30)
        wait_for(lambda: emulator.stats.batches[0]["status"] in ("cancelling", "cancelled"))
    assert [answer(r) for r in results] == ["1", "2", "3", "4", "5"]
    assert emulator.stats.realtime_calls == 5


def test_a_deadline_joining_a_batch_in_flight_is_kept(
    emulator: Emulator, openai_provider: OpenAIProvider, journal_path: Path
) -> None:
    # The batch was cut with no deadline in it; the identical request that joins it later
    # brings one, and is still sent realtime when it passes.
    emulator.knobs.processing_delay = 60
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        patient = scheduler.submit_many(openai_provider, CHAT, [chat(3, temperature=0)])
        wait_for(lambda: scheduler.batches and scheduler.batches[0].batch_id)
        hurried = scheduler.submit_many(
            openai_provider, CHAT, [chat(3, temperature=0)], deadline=0.3
        )
        (result,) = batch_llm.wait(hurried, timeout=30)
        assert answer(result) == "4"
        assert patient[0].result(30) == result  # the line went realtime for both callers
    assert emulator.stats.realtime_calls == 1
    assert emulator.stats.batches_created == 1


def test_close_with_cancel_cancels_upstream_and_says_so(
    emulator: Emulator,
    openai_provider: OpenAIProvider,
    journal_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.knobs.processing_delay = 60
    scheduler = Scheduler(journal=journal_path, **FAST)
    scheduler.submit_many(openai_provider, CHAT, [chat(1, temperature=0)])
    wait_for(lambda: scheduler.batches and scheduler.batches[0].batch_id)
    with caplog.at_level(logging.WARNING, logger="batch_llm"):
        report = scheduler.close(cancel=True)
    assert report == {
        "cancelled": [scheduler.batches[0].batch_id],
        "left_running": [],
        "left_unread": [],
    }
    assert "cancelled batches upstream" in caplog.text
    assert emulator.stats.batches[0]["status"] in ("cancelling", "cancelled")


def test_retry_honours_retry_after_and_is_bounded(
    emulator: Emulator, openai_provider: OpenAIProvider
) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    emulator.knobs.http_error_every = 1
    emulator.knobs.http_error_status = 429
    emulator.knobs.http_error_routes = {"POST /v1/batches"}
    retry = RetryPolicy(attempts=3, initial=5.0, sleep=record)
    with Scheduler(journal="off", poll_interval=0.02, retry=retry) as scheduler:
        (result,) = batch_llm.wait(
            scheduler.submit_many(openai_provider, CHAT, [chat(1, temperature=0)]),
            return_exceptions=True,
            timeout=30,
        )
    assert isinstance(result, openai.RateLimitError)
    assert emulator.stats.calls_by_route["POST /v1/batches"] == 3
    # The emulator's 429 says retry-after-ms: 1; the backoff alone would wait seconds.
    assert len(waits) == 2 and all(w <= 0.01 for w in waits)


def test_journal_is_private_and_holds_no_secret(
    emulator: Emulator, journal_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-very-secret-key-123"
    provider = OpenAIProvider(base_url=emulator.openai_base_url, api_key=secret, max_retries=0)
    events: list[dict[str, Any]] = []
    emulator.knobs.line_error_every = 2
    with (
        caplog.at_level(logging.DEBUG, logger="batch_llm"),
        Scheduler(journal=journal_path, listeners=[events.append], **FAST) as scheduler,
    ):
        results = batch_llm.wait(
            scheduler.submit_many(provider, CHAT, [chat(i, temperature=0) for i in range(4)]),
            return_exceptions=True,
        )
        text_of_errors = " ".join(repr(r) + str(r) for r in results if isinstance(r, BaseException))
        describe = repr(provider) + provider.describe() + repr(scheduler.batches)
    for path in journal_path.parent.glob(journal_path.name + "*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert secret.encode() not in path.read_bytes()
    assert secret not in caplog.text
    assert secret not in json.dumps(events, default=str)
    assert secret not in text_of_errors
    assert secret not in describe


def test_sigkill_mid_batch_then_rerun_reattaches_without_a_new_batch(
    emulator: Emulator, journal_path: Path
) -> None:
    worker = Path(__file__).with_name("resume_worker.py")
    emulator.knobs.processing_delay = 3
    args = [sys.executable, str(worker), emulator.openai_base_url, str(journal_path), "25"]
    victim = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: any(b["status"] == "in_progress" for b in emulator.stats.batches))
    time.sleep(0.2)  # the batch id is recorded right after create returns
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    answers = [json.loads(line) for line in rerun.stdout.splitlines()[1:]]
    assert answers == [str(i + 1) for i in range(25)]
    assert emulator.stats.batches_created == 1
