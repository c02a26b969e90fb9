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

from helpers import CHAT, chat, wait_for
from journal_helpers import Worker

import batch_llm
from batch_llm import OpenAIProvider, Scheduler
from batch_llm._journal import SQLiteJournal
from batch_llm.emulator import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.1, "progress": False}


def test_the_same_script_in_two_processes_at_once_makes_one_batch(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.knobs.upload_delay = 1.0  # both have cut their batch before either has uploaded
    journal = str(tmp_path / "journal.sqlite3")
    workers = [Worker(emulator.openai_base_url, journal, 300, 0, tag) for tag in (1, 2)]
    digests = {w.assert_answered()["digest"] for w in workers}
    assert len(digests) == 1
    assert emulator.stats.batches_created == 1
    assert emulator.stats.lines_submitted == 300
    assert emulator.stats.calls_by_route["POST /v1/files"] == 1
    calls = emulator.stats.calls_by_route
    again = Worker(emulator.openai_base_url, journal, 300, 0, 3).assert_answered()
    assert again["digest"] in digests
    assert emulator.stats.calls_by_route == calls  # every answer from the journal


def test_four_processes_of_20000_identical_requests_make_one_batch(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.knobs.upload_delay = 0.5
    journal = str(tmp_path / "journal.sqlite3")
    workers = [Worker(emulator.openai_base_url, journal, 20_000, 0, tag) for tag in range(4)]
    digests = {w.assert_answered()["digest"] for w in workers}
    assert len(digests) == 1
    assert emulator.stats.batches_created == 1
    assert emulator.stats.lines_submitted == 20_000
    # One process read the results; the others read the journal's copy.
    assert emulator.stats.calls_by_route["GET /v1/files/{id}/content"] == 1
    calls = emulator.stats.calls_by_route
    Worker(emulator.openai_base_url, journal, 20_000, 0, 9).assert_answered()
    assert emulator.stats.calls_by_route == calls


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
