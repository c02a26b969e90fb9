"""A journal that fails: a full disk while results are stored, a damaged file, a damaged copy
of stored results, an exit or a close while results are read, and writes that fail with no one
waiting on them. In each, nothing is marked done that is not, nothing fails silently, and a
re-run answers every request without paying again."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHAT, chat, wait_for

import batch_llm
from batch_llm import JournalError, OpenAIProvider, Scheduler, SchedulerClosedError
from batch_llm._errors import JournalError as _JournalError
from batch_llm._journal import Intent, Journal, SQLiteJournal
from batch_llm._journal_io import ROW_BYTES, JournalWriter
from batch_llm.emulator import Emulator

FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.1, "progress": False}


def answer(body: Any) -> str:
    return str(body["choices"][0]["message"]["content"])


def fan_out(
    provider: OpenAIProvider, journal: str | Path | Journal, n: int, **options: Any
) -> list[Any]:
    with Scheduler(journal=journal, **FAST, **options) as scheduler:
        bodies = [chat(i, temperature=0) for i in range(n)]
        return batch_llm.wait(
            scheduler.submit_many(provider, CHAT, bodies), return_exceptions=True, timeout=120
        )


# -- a full disk ----------------------------------------------------------------------------------


class _FillingJournal(SQLiteJournal):
    """Where no file system can be made small (not root): a journal whose result writes find
    the disk full once ``room`` bytes are written, as SQLite reports it."""

    def __init__(self, path: Path, room: int) -> None:
        super().__init__(path)
        self.room = room

    def append_results(
        self, intent_id: str, owner: str, seq: int, stream: str, data: bytes
    ) -> None:
        self.room -= len(data)
        if self.room < 0:
            raise _JournalError(f"the journal at {self.path}: database or disk is full")
        super().append_results(intent_id, owner, seq, stream, data)

    def clear_results(self, intent_id: str, owner: str) -> None:
        if self.room < 0:
            raise _JournalError(f"the journal at {self.path}: database or disk is full")
        super().clear_results(intent_id, owner)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Any]:
    """A 700 KB file system (a tmpfs) holding the journal: room for 2,000 claims, not for
    their answers. ``grow()`` frees room."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(where)], capture_output=True
    )

    class Disk:
        journal: str | Path | Journal

        def grow(self) -> None:
            if mounted.returncode == 0:
                subprocess.run(["mount", "-o", "remount,size=16m", str(where)], check=True)
            else:
                assert isinstance(self.journal, _FillingJournal)
                self.journal.room = 1 << 30

    disk = Disk()
    if mounted.returncode == 0:
        disk.journal = where / "journal.sqlite3"
    else:
        disk.journal = _FillingJournal(where / "journal.sqlite3", room=400_000)
    try:
        yield disk
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "--lazy", str(where)], check=True)


def test_a_full_disk_while_results_are_stored_is_logged_and_a_rerun_still_answers_all(
    emulator: Emulator,
    openai_provider: OpenAIProvider,
    small_disk: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = [str(i + 1) for i in range(2000)]
    with caplog.at_level(logging.WARNING, logger="batch_llm"):
        first = fan_out(openai_provider, small_disk.journal, 2000)
    assert [answer(r) for r in first] == expected
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1  # once, with its cause, however many chunks failed
    assert "database or disk is full" in errors[0].getMessage()
    journal = small_disk.journal
    journal = journal if isinstance(journal, Journal) else SQLiteJournal(journal)
    (intent,) = journal.intents()
    assert intent.batch_id and not intent.results_stored  # never marked stored
    if journal is not small_disk.journal:
        journal.close()

    # Still full: the answers come from the provider again, not from a broken copy.
    again = fan_out(openai_provider, small_disk.journal, 2000)
    assert [answer(r) for r in again] == expected
    assert emulator.stats.batches_created == 1
    assert emulator.stats.calls_by_route["GET /v1/files/{id}/content"] == 2

    # Room again: the next run stores them, and the one after asks the provider nothing.
    small_disk.grow()
    assert [answer(r) for r in fan_out(openai_provider, small_disk.journal, 2000)] == expected
    calls = emulator.stats.calls_by_route
    assert [answer(r) for r in fan_out(openai_provider, small_disk.journal, 2000)] == expected
    assert emulator.stats.calls_by_route == calls
    assert emulator.stats.batches_created == 1


# -- a damaged journal ----------------------------------------------------------------------------


def test_a_damaged_journal_is_refused_at_open_before_anything_is_sent(
    emulator: Emulator, openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite3"
    fan_out(openai_provider, path, 50)
    uploads = emulator.stats.files_uploaded
    size = path.stat().st_size
    with path.open("r+b") as damaged:  # garbage over every page but the first
        damaged.seek(4096)
        damaged.write(b"\x00garbage\xff" * ((size - 4096) // 9))
    with pytest.raises(JournalError) as refused:
        Scheduler(journal=path)
    message = str(refused.value)
    assert str(path) in message and "damaged" in message
    assert "mv" in message and "BATCH_LLM_JOURNAL" in message
    assert emulator.stats.files_uploaded == uploads

    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(JournalError, match="damaged"):
        Scheduler(journal=path)


def test_a_damaged_copy_of_stored_results_is_fetched_again_from_the_provider(
    emulator: Emulator, openai_provider: OpenAIProvider, tmp_path: Path
) -> None:
    path = tmp_path / "journal.sqlite3"
    expected = [answer(r) for r in fan_out(openai_provider, path, 30)]
    db = sqlite3.connect(path)
    db.execute("UPDATE results SET data = substr(data, 1, length(data) / 2)")  # cut short
    db.commit()
    db.close()
    assert [answer(r) for r in fan_out(openai_provider, path, 30)] == expected
    assert emulator.stats.calls_by_route["GET /v1/files/{id}/content"] == 2
    calls = emulator.stats.calls_by_route  # and stored whole again:
    assert [answer(r) for r in fan_out(openai_provider, path, 30)] == expected
    assert emulator.stats.calls_by_route == calls
    assert emulator.stats.batches_created == 1


# -- exit or close while results are read ---------------------------------------------------------


def test_a_script_that_raises_while_results_download_leaves_the_journal_consistent(
    emulator: Emulator, tmp_path: Path
) -> None:
    # The script's adapter: the journal keys requests by adapter (credentials hashed).
    openai_provider = OpenAIProvider(
        base_url=emulator.openai_base_url, api_key="sk-exit", max_retries=0
    )
    emulator.knobs.download_chunk_delay = 0.05
    emulator.knobs.download_chunk_bytes = 2048
    path = tmp_path / "journal.sqlite3"
    env = {
        **os.environ,
        "BATCH_LLM_JOURNAL": str(path),
        "BATCH_LLM_POLL_INTERVAL": "0.02",
        "BATCH_LLM_POLL_MAX": "0.1",
    }
    worker = Path(__file__).with_name("exit_worker.py")
    script = subprocess.run(
        [sys.executable, str(worker), emulator.openai_base_url, "200"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert script.returncode == 1
    assert "the script's own bug" in script.stderr
    assert "unexpected error" not in script.stderr
    assert "cannot schedule new futures" not in script.stderr
    assert "still running upstream" not in script.stderr
    assert "ended upstream" in script.stderr

    journal = SQLiteJournal(path)
    (intent,) = journal.intents()
    # Either stored whole and marked so, or not marked and still holding every request, so
    # that a re-run fetches them; never marked stored with bytes missing, never owned.
    assert intent.batch_id and intent.owner is None
    if intent.results_stored:
        journal.load_results(intent.intent_id)
    else:
        with Scheduler(journal="off") as probe:
            bodies = [chat(i, temperature=0) for i in range(200)]
            ids = [probe._prepare(openai_provider, CHAT, body).custom_id for body in bodies]
        assert len(journal.lookup(openai_provider.identity(), ids)) == 200
    journal.close()
    emulator.knobs.download_chunk_delay = 0
    results = fan_out(openai_provider, path, 200)
    assert [answer(r) for r in results] == [str(i + 1) for i in range(200)]
    assert emulator.stats.batches_created == 1


def test_closing_while_an_ended_batch_downloads_says_what_is_true(
    emulator: Emulator,
    openai_provider: OpenAIProvider,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.knobs.download_chunk_delay = 0.05
    emulator.knobs.download_chunk_bytes = 2048
    path = tmp_path / "journal.sqlite3"
    scheduler = Scheduler(journal=path, **FAST)
    futures = scheduler.submit_many(
        openai_provider, CHAT, [chat(i, temperature=0) for i in range(200)]
    )
    wait_for(lambda: scheduler.batches and scheduler.batches[0].state == "ended")
    batch_id = scheduler.batches[0].batch_id
    with caplog.at_level(logging.WARNING, logger="batch_llm"):
        report = scheduler.close()
    assert report == {"cancelled": [], "left_running": [], "left_unread": [batch_id]}
    assert "still running upstream" not in caplog.text
    assert f"reading the results of 1 batch(es) that ended upstream: {batch_id}" in caplog.text
    unanswered = [f.exception() for f in futures if f.exception() is not None]
    assert unanswered and all(isinstance(e, SchedulerClosedError) for e in unanswered)
    assert "has ended upstream, were being read" in str(unanswered[0])
    emulator.knobs.download_chunk_delay = 0
    results = fan_out(openai_provider, path, 200)
    assert [answer(r) for r in results] == [str(i + 1) for i in range(200)]
    assert emulator.stats.batches_created == 1


# -- writes nobody waits on -----------------------------------------------------------------------


def test_a_failed_write_nobody_waits_on_is_logged_once_per_cause(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Full(SQLiteJournal):
        def record_status(self, intent_id: str, status: str, *args: Any) -> None:
            raise _JournalError("the journal at here: database or disk is full")

    writer = JournalWriter(Full(tmp_path / "journal.sqlite3"))
    with caplog.at_level(logging.ERROR, logger="batch_llm"):
        for status in ("validating", "in_progress", "finalizing"):
            writer.soon(writer.journal.record_status, "intent", status)
        writer.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "record_status" in messages[0] and "database or disk is full" in messages[0]
    assert messages[1].startswith("3 journal write(s)")
    assert writer.failures == 3


class _SlowResults(SQLiteJournal):
    """A journal that stores result rows only once ``gate`` opens."""

    def __init__(self, path: Path, gate: threading.Event) -> None:
        super().__init__(path)
        self.gate = gate

    def append_results(self, *args: Any) -> None:
        self.gate.wait(10)
        super().append_results(*args)


def test_result_bytes_waiting_for_the_journal_hold_the_reader_back(tmp_path: Path) -> None:
    """The reader gets ahead of a slow journal by ``max_queued`` bytes at most."""
    gate = threading.Event()
    journal = _SlowResults(tmp_path / "journal.sqlite3", gate)
    journal.claim(Intent("i", "p", "d", CHAT, 0, owner="me"), ["a"], lease=30)
    writer = JournalWriter(journal, max_queued=ROW_BYTES * 5 // 2)

    async def read() -> tuple[int, bool]:
        store = writer.results("i", "me")
        await store.restart()
        put = 0
        for _ in range(10):
            # Chunks of a whole row each: each goes to the writer as it comes.
            step = asyncio.ensure_future(store.put("output", b"x" * ROW_BYTES))
            await asyncio.sleep(0.05)
            if not step.done():  # held back: the journal has not caught up
                gate.set()
                await step
                return put, await store.finish()
            put += 1
        return put, await store.finish()

    put, stored = asyncio.run(read())
    assert put == 2  # two rows queued; the third would pass two and a half
    assert stored
    assert len(journal.load_results("i")) == 3
    writer.close()


def test_the_bound_on_result_bytes_covers_every_batch_read_at_once(tmp_path: Path) -> None:
    """Batches whose results are read together share the writer's ``max_queued`` bytes: the
    second is held back by what the first queued."""
    gate = threading.Event()
    journal = _SlowResults(tmp_path / "journal.sqlite3", gate)
    for intent in ("a", "b"):
        journal.claim(Intent(intent, "p", "d", CHAT, 0, owner="me"), [intent], lease=30)
    writer = JournalWriter(journal, max_queued=ROW_BYTES * 3 // 2)

    async def read() -> tuple[bool, bool, list[bool]]:
        first, second = writer.results("a", "me"), writer.results("b", "me")
        await first.restart()
        await second.restart()
        await first.put("output", b"x" * ROW_BYTES)  # under the bound: not held back
        step = asyncio.ensure_future(second.put("output", b"y" * ROW_BYTES))
        await asyncio.sleep(0.05)
        held = not step.done()  # two rows queued between them
        gate.set()
        await step
        return (
            held,
            writer.queued <= ROW_BYTES * 3 // 2,
            [await first.finish(), await second.finish()],
        )

    held, within, stored = asyncio.run(read())
    assert held and within
    assert stored == [True, True]
    assert writer.queued == 0
    writer.close()


def test_result_chunks_are_gathered_into_rows_of_a_stream_each(tmp_path: Path) -> None:
    """Network-sized chunks go to the journal a row (one transaction) at a time, never
    mixing streams, and read back as they were put."""
    journal = SQLiteJournal(tmp_path / "journal.sqlite3")
    journal.claim(Intent("i", "p", "d", CHAT, 0, owner="me"), ["a"], lease=30)
    writer = JournalWriter(journal)
    chunk = b"o" * (ROW_BYTES // 4)

    async def read() -> bool:
        store = writer.results("i", "me")
        await store.restart()
        for _ in range(10):
            await store.put("output", chunk)
        await store.put("errors", b"e" * 10)
        await store.put("output", b"late")
        return await store.finish()

    assert asyncio.run(read())
    rows = journal.load_results("i")
    assert [(name, len(data)) for name, data in rows] == [
        ("output", ROW_BYTES),
        ("output", ROW_BYTES),
        ("output", ROW_BYTES // 2),
        ("errors", 10),
        ("output", 4),
    ]
    assert b"".join(data for name, data in rows if name == "output") == chunk * 10 + b"late"
    writer.close()
