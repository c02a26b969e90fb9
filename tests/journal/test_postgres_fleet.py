"""Many workers, one PostgreSQL journal, one set of batches: worker processes against the
emulator over real sockets, a worker killed mid-batch, the server restarted under them, and
the command line reading the shared journal without showing its password."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_for
from journal_helpers import POSTGRES, Worker, admin_connection, postgres_required

from batch_llm._journal import Intent, PostgresJournal
from batch_llm.emulator import Emulator


def polled_by_one(emulator: Emulator, results: list[dict[str, Any]]) -> None:
    """Every poll of each batch came from one worker: as many as one worker alone makes."""
    for batch in emulator.stats.batches:
        by_worker = [r["polls"][batch["id"]] for r in results if batch["id"] in r["polls"]]
        assert len(by_worker) == 1, (batch, by_worker)
        assert by_worker == [emulator.stats.calls_by_path[f"GET /v1/batches/{batch['id']}"]]


def test_four_workers_with_20000_shared_requests_make_one_set_of_batches(
    emulator: Emulator, postgres_url: str
) -> None:
    """Each worker asks the same 20,000 questions and 5,000 of its own: the shared ones go in
    one batch (with its claimer's own), each other worker's own in one more, and each batch is
    polled and downloaded by one worker only."""
    emulator.knobs.upload_delay = 0.5
    emulator.knobs.processing_delay = 1.5
    workers = [
        Worker(emulator.openai_base_url, postgres_url, 20_000, 5_000, t) for t in (1, 2, 3, 4)
    ]
    results = [w.assert_answered() for w in workers]
    assert len({r["digest"] for r in results}) == 1
    stats = emulator.stats
    assert stats.batches_created == 4
    assert stats.lines_submitted == 20_000 + 4 * 5_000  # the distinct requests, once each
    assert stats.calls_by_route["GET /v1/files/{id}/content"] == 4
    # Four workers waited on the shared batch; one of them polled it.
    polled_by_one(emulator, results)
    calls = stats.calls_by_route
    Worker(emulator.openai_base_url, postgres_url, 20_000, 5_000, 2).assert_answered()
    assert emulator.stats.calls_by_route == calls


def test_a_worker_killed_mid_batch_is_taken_over_once_its_lease_lapses(
    emulator: Emulator, postgres_url: str
) -> None:
    emulator.knobs.processing_delay = 4
    lease = 2.0
    workers = {
        t: Worker(emulator.openai_base_url, postgres_url, 5_000, 1_000, t, lease)
        for t in (1, 2, 3, 4)
    }
    journal = PostgresJournal(postgres_url)

    def shared_intent() -> Intent | None:
        found = [i for i in journal.intents() if i.requests == 6_000 and i.batch_id]
        return found[0] if found else None

    wait_for(lambda: shared_intent() is not None, timeout=60)
    owner = shared_intent().owner  # type: ignore[union-attr]
    assert owner is not None
    dead_pid = int(owner.split(":")[-2])
    (dead_tag,) = [t for t, w in workers.items() if w.pid == dead_pid]
    os.kill(dead_pid, signal.SIGKILL)
    workers[dead_tag].process.wait(10)
    for tag, worker in workers.items():
        if tag != dead_tag:
            worker.assert_answered(timeout=120)
    assert emulator.stats.batches_created == 4
    assert emulator.stats.lines_submitted == 5_000 + 4 * 1_000
    assert emulator.stats.calls_by_route["GET /v1/files/{id}/content"] == 4
    calls = emulator.stats.calls_by_route
    # A replacement for the dead worker: everything from the journal, nothing from upstream.
    Worker(emulator.openai_base_url, postgres_url, 5_000, 1_000, dead_tag, lease).assert_answered()
    assert emulator.stats.calls_by_route == calls
    assert emulator.stats.batches_created == 4
    left = [i.intent_id for i in journal.intents() if i.owner and f":{dead_pid}:" in i.owner]
    assert left == []
    assert all(i.results_stored for i in journal.intents())
    journal.close()


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or not POSTGRES.startswith("postgresql://postgres@127.0.0.1:5432/"):
        message = "restarting needs the local cluster (pg_ctlcluster) as the test server"
        if postgres_required():
            pytest.fail(message)
        pytest.skip(message)
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def test_workers_waiting_through_a_database_restart_lose_and_double_nothing(
    emulator: Emulator, postgres_url: str
) -> None:
    cluster = _cluster()
    emulator.knobs.processing_delay = 5
    workers = [Worker(emulator.openai_base_url, postgres_url, 2_000, 500, t, 10) for t in (1, 2, 3)]
    wait_for(lambda: emulator.stats.batches_created == 3, timeout=60)
    try:
        subprocess.run([*cluster, "restart"], check=True, capture_output=True, timeout=120)
    finally:
        subprocess.run([*cluster, "start"], capture_output=True, timeout=120)  # whatever happened
        wait_for(_reachable, timeout=60)
    for worker in workers:
        worker.assert_answered(timeout=180)
        assert "cannot be reached" in worker.stderr  # they did see it go
    stats = emulator.stats
    assert stats.batches_created == 3
    assert stats.lines_submitted == 2_000 + 3 * 500
    assert stats.calls_by_route["GET /v1/files/{id}/content"] == 3  # each read once
    calls = stats.calls_by_route
    Worker(emulator.openai_base_url, postgres_url, 2_000, 500, 1).assert_answered()
    assert emulator.stats.calls_by_route == calls


def _reachable() -> bool:
    try:
        admin_connection().close()
    except BaseException:
        return False
    return True


def test_the_command_line_reads_the_shared_journal_and_never_shows_its_password(
    emulator: Emulator, postgres_url: str, tmp_path: Path
) -> None:
    secret = "pg-s3cret-password"
    # Trust authentication ignores the password; what matters is that it is never shown.
    url = postgres_url.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@")
    events = tmp_path / "events.jsonl"
    env = {**os.environ, "BATCH_LLM_EVENTS": str(events)}
    worker = Worker(emulator.openai_base_url, url, 20, 0, 1, env=env)
    worker.assert_answered()
    assert secret not in worker.stderr
    listing = _cli(url, "batches")
    assert listing.returncode == 0, listing.stderr
    assert "1 batch(es) in postgresql://127.0.0.1:5432/test (schema t_" in listing.stdout
    assert "completed" in listing.stdout and "stored" in listing.stdout
    cost = _cli(url, "cost", "--json")
    assert cost.returncode == 0, cost.stderr
    assert json.loads(cost.stdout)["totals"]["requests"] == 20
    broken = _cli(url.replace(":5432/", ":5999/"), "batches")
    assert (
        broken.returncode == 2
        and "cannot reach the journal at postgresql://127.0.0.1:5999/test" in broken.stderr
    )
    for run in (listing, cost, broken):
        assert secret not in run.stdout + run.stderr
    assert secret not in events.read_text()


def _cli(journal: str, *args: str) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "batch_llm", *args, "--journal", journal],
        capture_output=True,
        text=True,
        timeout=60,
    )
