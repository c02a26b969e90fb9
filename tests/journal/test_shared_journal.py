"""Several processes on one SQLite journal, against the emulator over real sockets: one set of
batches, every process answered, and a re-run that asks the provider nothing.

The issue these pin: a notebook cell run twice, two workers, a re-run while the first is still
going. Before claims were atomic, two processes with a 0.5-2 s upload made 2 batches in most
runs, and 4 processes of 20,000 identical requests made 3 or 4 (4x the lines).
"""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import CHAT, chat, wait_for
from journal_helpers import Worker

import batch_llm
from batch_llm import OpenAIProvider, Scheduler
from batch_llm._journal import SQLiteJournal
from batch_llm.emulator import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.1, "progress": False}


@pytest.mark.parametrize(
    ("processes", "requests", "upload_delay"),
    [(2, 300, 1.0), (4, 20_000, 0.5)],
    ids=["the same script twice at once", "4 processes x 20,000"],
)
def test_processes_asking_the_same_requests_at_once_make_one_batch(
    emulator: Emulator, tmp_path: Path, processes: int, requests: int, upload_delay: float
) -> None:
    # The upload is slow: every process has cut its batch before any has uploaded.
    emulator.knobs.upload_delay = upload_delay
    journal = str(tmp_path / "journal.sqlite3")
    workers = [Worker(emulator.openai_base_url, journal, requests, 0, t) for t in range(processes)]
    digests = {w.assert_answered()["digest"] for w in workers}
    assert len(digests) == 1
    stats = emulator.stats
    assert (stats.batches_created, stats.lines_submitted) == (1, requests)
    # One process uploaded and read the results; the others read the journal's copy.
    assert stats.calls_by_route["POST /v1/files"] == 1
    assert stats.calls_by_route["GET /v1/files/{id}/content"] == 1
    again = Worker(emulator.openai_base_url, journal, requests, 0, 9).assert_answered()
    assert again["digest"] in digests
    assert emulator.stats.calls_by_route == stats.calls_by_route  # all from the journal


def test_two_schedulers_in_one_process_share_one_batch_and_one_download(
    emulator: Emulator, openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    emulator.knobs.upload_delay = 0.3
    emulator.knobs.processing_delay = 0.3
    path = tmp_path / "journal.sqlite3"
    bodies = [chat(i, temperature=0) for i in range(50)]
    start = threading.Barrier(2, timeout=30)

    def run(_: int) -> list[Any]:
        with Scheduler(journal=path, **FAST) as scheduler:
            start.wait()
            return batch_llm.wait(scheduler.submit_many(openai_provider, CHAT, bodies), timeout=60)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(2)))
    assert results[0] == results[1]
    assert emulator.stats.batches_created == 1
    assert emulator.stats.calls_by_route["GET /v1/files/{id}/content"] == 1
    (batch,) = emulator.stats.batches
    # Only the owner polled the batch; the other read the journal.
    polls = emulator.stats.calls_by_path[f"GET /v1/batches/{batch['id']}"]
    assert polls <= 0.3 / 0.02 + 5


def test_an_owner_killed_mid_batch_is_taken_over_at_once_by_those_waiting_for_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Two workers follow a third's batch; it is killed. Its process is gone from this
    machine, so they take over at once, without waiting out its 60 s lease."""
    emulator.knobs.processing_delay = 2
    path = tmp_path / "journal.sqlite3"
    owner = Worker(emulator.openai_base_url, str(path), 200, 0, 1, lease=60)
    wait_for(lambda: any(b["status"] == "in_progress" for b in emulator.stats.batches))
    followers = [Worker(emulator.openai_base_url, str(path), 200, 0, t, lease=60) for t in (2, 3)]
    journal = SQLiteJournal(path)
    wait_for(lambda: bool(journal.intents()) and journal.intents()[0].batch_id is not None)
    (intent,) = journal.intents()
    assert intent.owner is not None and f":{owner.pid}:" in intent.owner
    os.kill(owner.pid, signal.SIGKILL)
    owner.process.wait(10)
    for follower in followers:
        follower.assert_answered(timeout=30)
    assert emulator.stats.batches_created == 1
    (taken,) = journal.intents()
    assert taken.results_stored and taken.owner is None
    journal.close()


def test_closing_with_cancel_never_cancels_a_batch_another_scheduler_owns(
    emulator: Emulator, openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    emulator.knobs.processing_delay = 1.0
    path = tmp_path / "journal.sqlite3"
    bodies = [chat(i, temperature=0) for i in range(20)]
    with Scheduler(journal=path, **FAST) as owner:
        answers = owner.submit_many(openai_provider, CHAT, bodies)
        wait_for(lambda: owner.batches and owner.batches[0].batch_id)
        follower = Scheduler(journal=path, **FAST)
        waiting = follower.submit_many(openai_provider, CHAT, bodies)
        wait_for(lambda: follower.batches and follower.batches[0].resumed)
        report = follower.close(cancel=True)
        assert report["cancelled"] == [] and report["left_running"] == [owner.batches[0].batch_id]
        assert all(isinstance(f.exception(), batch_llm.SchedulerClosedError) for f in waiting)
        results = batch_llm.wait(answers, timeout=60)
    assert [r["choices"][0]["message"]["content"] for r in results] == [
        str(i + 1) for i in range(20)
    ]
    assert [b["status"] for b in emulator.stats.batches] == ["completed"]
