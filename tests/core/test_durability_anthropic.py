"""The durability acceptance, on Anthropic: faults, half-expired batches, SIGKILL mid-batch, and
a private journal without the key."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import pytest
from core_helpers import wait_for
from helpers import MESSAGES, claude

import batch_llm
from batch_llm import AnthropicProvider, Scheduler
from batch_llm._retry import RetryPolicy
from batch_llm.emulator import Emulator

FAST = {
    "poll_interval": 0.02,
    "poll_max": 0.1,
    "retry": RetryPolicy(attempts=6, initial=0.01, cap=0.05),
}


def answer(body: Any) -> str:
    return str(body["content"][0]["text"])


@pytest.fixture
def provider(batch_llm_emulator: Emulator) -> AnthropicProvider:
    return AnthropicProvider(
        base_url=batch_llm_emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0
    )


def test_every_7th_line_errors_and_every_4th_call_fails_yet_one_batch_answers_all(
    batch_llm_emulator: Emulator, provider: AnthropicProvider, tmp_path: Path
) -> None:
    emulator = batch_llm_emulator
    emulator.knobs.line_error_every = 7
    emulator.knobs.line_error_status = 400
    emulator.knobs.line_error_message = "line seven is refused"
    emulator.knobs.http_error_every = 4
    emulator.knobs.processing_delay = 0.4  # enough polls for some to fail
    bodies = [
        claude(i, "claude-opus-4-5" if i % 2 else "claude-sonnet-4-5", max_tokens=20, temperature=0)
        for i in range(140)
    ]
    with Scheduler(journal=tmp_path / "j.sqlite3", **FAST) as scheduler:
        results = batch_llm.wait(
            scheduler.submit_many(provider, MESSAGES, bodies), return_exceptions=True, timeout=60
        )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert failed == [i for i in range(140) if (i + 1) % 7 == 0]
    assert all(isinstance(results[i], anthropic.BadRequestError) for i in failed)
    assert all("line seven is refused" in str(results[i]) for i in failed)
    assert all(answer(r) == str(i + 1) for i, r in enumerate(results) if i not in failed)
    assert emulator.stats.batches_created == 1  # two models, one batch
    assert emulator.stats.http_errors_injected > 0


def test_expired_half_done_batch_resubmits_only_the_unfinished_half(
    batch_llm_emulator: Emulator, provider: AnthropicProvider, tmp_path: Path
) -> None:
    emulator = batch_llm_emulator
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(journal=tmp_path / "j.sqlite3", **FAST) as scheduler:
        futures = scheduler.submit_many(
            provider,
            MESSAGES,
            [claude(i, "claude-sonnet-4-5", max_tokens=20, temperature=0) for i in range(40)],
        )
        wait_for(lambda: emulator.stats.batches_created == 1)
        emulator.knobs.expire_after_fraction = None
        results = batch_llm.wait(futures, timeout=60)
    assert [answer(r) for r in results] == [str(i + 1) for i in range(40)]
    assert emulator.stats.lines_submitted == 40 + 20


def test_sigkill_mid_batch_then_rerun_reattaches_without_a_new_batch(
    batch_llm_emulator: Emulator, tmp_path: Path
) -> None:
    emulator = batch_llm_emulator
    journal = tmp_path / "j.sqlite3"
    worker = Path(__file__).with_name("resume_worker.py")
    emulator.knobs.processing_delay = 3
    args = [
        sys.executable,
        str(worker),
        emulator.anthropic_base_url,
        str(journal),
        "25",
        "anthropic",
    ]
    victim = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: any(b["status"] == "in_progress" for b in emulator.stats.batches))
    time.sleep(0.2)  # the batch id is recorded right after create returns
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(10)
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    answers = [json.loads(line) for line in rerun.stdout.splitlines()[1:]]
    assert answers == [str(i + 1) for i in range(25)]
    assert emulator.stats.batches_created == 1
    for path in tmp_path.glob("j.sqlite3*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert b"sk-worker-secret" not in path.read_bytes()


def test_crash_between_create_and_record_is_reconciled_by_time_and_size(
    batch_llm_emulator: Emulator, provider: AnthropicProvider, tmp_path: Path
) -> None:
    from batch_llm._journal import SQLiteJournal

    class DiesAfterCreate(SQLiteJournal):
        def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
            raise RuntimeError("power cut")

    emulator = batch_llm_emulator
    journal = tmp_path / "j.sqlite3"
    emulator.knobs.processing_delay = 1
    first = Scheduler(journal=DiesAfterCreate(journal), **FAST)
    lost = first.submit_many(
        provider,
        MESSAGES,
        [claude(i, "claude-sonnet-4-5", max_tokens=20, temperature=0) for i in range(7)],
    )
    assert all(isinstance(e, RuntimeError) for e in batch_llm.wait(lost, return_exceptions=True))
    first.close()
    with Scheduler(journal=journal, **FAST) as second:
        results = batch_llm.wait(
            second.submit_many(
                provider,
                MESSAGES,
                [claude(i, "claude-sonnet-4-5", max_tokens=20, temperature=0) for i in range(7)],
            ),
            timeout=30,
        )
    assert [answer(r) for r in results] == [str(i + 1) for i in range(7)]
    assert emulator.stats.batches_created == 1
