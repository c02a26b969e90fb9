"""The ``batch-llm`` command over a real journal and the emulator: listing the journal's
batches with their status and counts, listing the provider's, showing one, cancelling one
upstream, writing one's results as JSONL, and the journal's cost report."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from core_helpers import wait_for
from helpers import CHAT, chat, claude

import batch_llm
from batch_llm import (
    AnthropicProvider,
    BatchCancelledError,
    GeminiProvider,
    OpenAIProvider,
    Scheduler,
)
from batch_llm._journal import Intent, SQLiteJournal
from batch_llm.cli import main
from batch_llm.cli._output import Output
from batch_llm.emulator import Emulator

SECRET = "sk-cli-test-secret-0123456789"
ANTHROPIC_SECRET = "sk-ant-cli-secret-0123456789"
FAST = {"poll_interval": 0.02, "poll_max": 0.1, "progress": False}


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "cli-journal.sqlite3"


@pytest.fixture
def env(
    batch_llm_openai_env: Emulator, monkeypatch: pytest.MonkeyPatch, journal_path: Path
) -> Emulator:
    """The emulator, with keys in the environment (as a user's shell has them) that must never
    reach the output, and the test's journal as ``BATCH_LLM_JOURNAL``."""
    emulator = batch_llm_openai_env
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_SECRET)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.anthropic_base_url)
    monkeypatch.setenv("BATCH_LLM_JOURNAL", str(journal_path))
    return emulator


class Run:
    """One in-process ``batch-llm`` run: exit status, stdout, stderr."""

    def __init__(self, capsys: pytest.CaptureFixture[str], *argv: str) -> None:
        capsys.readouterr()
        self.status = main(list(argv))
        captured = capsys.readouterr()
        self.out, self.err = captured.out, captured.err
        assert SECRET not in self.out + self.err
        assert ANTHROPIC_SECRET not in self.out + self.err

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    return lambda *argv: Run(capsys, *argv)


@pytest.fixture
def fan_out(env: Emulator, journal_path: Path) -> Iterator[tuple[Scheduler, list[Any]]]:
    """Ten questions in one OpenAI batch, every fourth line failing, journaled."""
    env.knobs.line_error_every = 4
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        provider = OpenAIProvider()
        futures = scheduler.submit_many(
            provider, CHAT, [chat(i, "gpt-4o-mini", temperature=0) for i in range(10)]
        )
        results = batch_llm.wait(futures, return_exceptions=True, timeout=30)
        env.knobs.line_error_every = None
        yield scheduler, results


def test_batches_lists_the_journals_batches_with_status_and_counts(
    fan_out: tuple[Scheduler, list[Any]], journal_path: Path, cli: Any
) -> None:
    scheduler, _ = fan_out
    batch_id = scheduler.batches[0].batch_id
    assert batch_id is not None
    wait_for(lambda: SQLiteJournal(journal_path).intents()[0].results_stored)

    run = cli("batches", "--journal", str(journal_path))
    assert run.status == 0
    header, row = run.out.splitlines()[1:3]
    for column in ("batch", "provider", "endpoint", "requests", "status", "done", "failed"):
        assert column in header
    cells = row.split()
    assert cells[0] == batch_id
    assert cells[1].startswith("openai(127.0.0.1:")
    assert cells[2:9] == [CHAT, "gpt-4o-mini", "10", "completed", "10/10", "2", "completed"]
    assert cells[-1] == "stored"

    (entry,) = cli("batches", "--json").json()  # the journal from BATCH_LLM_JOURNAL
    assert entry["batch_id"] == batch_id
    assert (entry["total"], entry["succeeded"], entry["failed"]) == (10, 8, 2)
    assert entry["provider_name"] == "openai" and entry["base_url"].endswith("/v1")
    assert entry["results_stored"] is True
    assert "provider_id" not in entry  # a digest of the credentials: not for printing


def test_cancel_cancels_a_slow_batch_upstream_and_the_journal_records_it(
    env: Emulator, journal_path: Path, cli: Any
) -> None:
    env.knobs.processing_delay = 60
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            OpenAIProvider(), CHAT, [chat(i, "gpt-4o-mini", temperature=0) for i in range(20)]
        )
        wait_for(lambda: scheduler.batches and scheduler.batches[0].batch_id)
        batch_id = scheduler.batches[0].batch_id
        assert batch_id is not None

        run = cli("batches", "cancel", batch_id)
        assert run.status == 0
        assert f"batch {batch_id} is cancelling" in run.out
        upstream = next(b for b in env.stats.batches if b["id"] == batch_id)
        assert upstream["status"] in ("cancelling", "cancelled")
        recorded = SQLiteJournal(journal_path).find(batch_id)[0]
        assert recorded.status in ("cancelling", "cancelled")

        # The scheduler following it sees the cancellation: the lines done before it are
        # answered, the others' callers hear of it.
        results = batch_llm.wait(futures, return_exceptions=True, timeout=30)
        assert all(isinstance(r, dict | BatchCancelledError) for r in results)
        assert any(isinstance(r, BatchCancelledError) for r in results)
    wait_for(lambda: SQLiteJournal(journal_path).find(batch_id)[0].outcome == "cancelled")

    shown = cli("batches", "show", batch_id)
    assert "live status     cancelled (ended)" in shown.out
    assert "outcome         cancelled" in shown.out


def test_show_gives_the_journal_entry_and_the_live_status(
    fan_out: tuple[Scheduler, list[Any]], cli: Any
) -> None:
    scheduler, _ = fan_out
    record = scheduler.batches[0]
    assert record.batch_id is not None

    run = cli("batches", "show", record.batch_id)
    assert run.status == 0
    assert run.out.splitlines()[0] == f"batch {record.batch_id}"
    assert f"intent          {record.intent_id}" in run.out
    assert "requests        10" in run.out
    assert "live status     completed (ended); 8 succeeded, 2 failed of 10" in run.out
    assert "    created" in run.out and "    completed" in run.out

    by_intent = cli("batches", "show", record.intent_id[:10], "--json").json()
    assert by_intent["journal"]["batch_id"] == record.batch_id
    assert by_intent["live"]["status"] == "completed"
    assert set(by_intent["live"]["times"]) >= {"created", "completed", "expires"}

    offline = cli("batches", "show", record.batch_id, "--offline")
    assert "live status" not in offline.out and "results         stored" in offline.out


def test_results_are_jsonl_one_line_per_request(
    fan_out: tuple[Scheduler, list[Any]], journal_path: Path, tmp_path: Path, cli: Any
) -> None:
    scheduler, results = fan_out
    batch_id = scheduler.batches[0].batch_id
    assert batch_id is not None
    wait_for(lambda: SQLiteJournal(journal_path).intents()[0].results_stored)

    run = cli("batches", "results", batch_id)
    lines = [json.loads(line) for line in run.out.splitlines()]
    assert len(lines) == 10
    answers = [line for line in lines if "response" in line]
    errors = [line for line in lines if "error" in line]
    assert len(answers) == 8 and len(errors) == 2
    assert {a["response"]["choices"][0]["message"]["content"] for a in answers} == {
        r["choices"][0]["message"]["content"] for r in results if isinstance(r, dict)
    }
    assert errors[0]["error"]["type"] == "InternalServerError"
    assert errors[0]["error"]["status_code"] == 500

    target = tmp_path / "out.jsonl"
    written = cli("batches", "results", batch_id, "-o", str(target))
    assert "wrote 10 results (8 answers, 2 errors) from the journal" in written.out
    assert target.read_text().splitlines() == run.out.splitlines()


def test_results_mask_a_credential_that_an_error_quotes(
    env: Emulator, journal_path: Path, cli: Any
) -> None:
    quoted = "http://user:sk-quoted-0123456789@docs.invalid/v1?token=sk-quoted-0123456789"
    bodies = [chat(1), chat(f"[[emulator:error 400 see {quoted}]]")]
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        batch_llm.wait(
            scheduler.submit_many(OpenAIProvider(), CHAT, bodies), return_exceptions=True
        )
        batch_id = str(scheduler.batches[0].batch_id)
    wait_for(lambda: SQLiteJournal(journal_path).intents()[0].results_stored)

    run = cli("batches", "results", batch_id)
    answer, error = (json.loads(line) for line in run.out.splitlines())
    assert "response" in answer
    assert "see http://docs.invalid/v1?token=***" in error["error"]["message"]
    assert "sk-quoted" not in run.out


def test_results_of_a_batch_the_journal_does_not_hold_come_from_the_provider(
    env: Emulator, cli: Any
) -> None:
    with Scheduler(journal="off", **FAST) as scheduler:
        bodies = [chat(i, "gpt-4o", temperature=0) for i in range(4)]
        batch_llm.wait(scheduler.submit_many(OpenAIProvider(), CHAT, bodies))
        batch_id = scheduler.batches[0].batch_id
    assert batch_id is not None
    run = cli("batches", "results", batch_id, "--provider", "openai")
    assert run.status == 0
    assert sorted(
        json.loads(line)["response"]["choices"][0]["message"]["content"]
        for line in run.out.splitlines()
    ) == ["1", "2", "3", "4"]


def test_results_of_a_running_batch_say_it_is_still_running(
    env: Emulator, journal_path: Path, cli: Any
) -> None:
    env.knobs.processing_delay = 60
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        scheduler.submit_many(OpenAIProvider(), CHAT, [chat(1, "gpt-4o-mini", temperature=0)])
        wait_for(lambda: scheduler.batches and scheduler.batches[0].batch_id)
        run = cli("batches", "results", str(scheduler.batches[0].batch_id))
        assert run.status == 1
        assert "is still in_progress" in run.err and "once it ends" in run.err
        scheduler.close(cancel=True)


def test_an_anthropic_batch_lists_every_model_it_mixes(
    env: Emulator, journal_path: Path, cli: Any
) -> None:
    haiku = claude(1, "claude-haiku-4-5")
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            AnthropicProvider(),
            "/v1/messages",
            [claude(0, "claude-sonnet-4-5"), haiku],
        )
        batch_llm.wait(futures, timeout=30)
    (entry,) = cli("batches", "--json").json()
    assert entry["model"] == "claude-haiku-4-5, claude-sonnet-4-5"
    assert "claude-haiku-4-5, claude-sonnet-4-5" in cli("batches").out


def test_cost_over_the_journal_matches_the_runs_cost(
    env: Emulator, journal_path: Path, cli: Any
) -> None:
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        openai_answers = scheduler.submit_many(
            OpenAIProvider(), CHAT, [chat(i, "gpt-4o-mini", temperature=0) for i in range(12)]
        )
        claude_answers = scheduler.submit_many(
            AnthropicProvider(),
            "/v1/messages",
            [claude(i, "claude-sonnet-4-5") for i in range(5)],
        )
        batch_llm.wait([*openai_answers, *claude_answers], timeout=30)
        expected = scheduler.cost()
    report = cli("cost", "--journal", str(journal_path), "--json").json()
    totals = report["totals"]
    assert totals["requests"] == expected.requests == 17
    assert totals["input_tokens"] == expected.input_tokens
    assert totals["output_tokens"] == expected.output_tokens
    assert totals["cost"] == pytest.approx(expected.cost)
    assert totals["realtime_cost"] == pytest.approx(expected.realtime_cost)
    assert {(r["provider"], r["model"]) for r in report["rows"]} == {
        ("openai", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-5"),
    }
    assert len(report["batches"]) == 2

    text = cli("cost", "--journal", str(journal_path), "--by-batch").out
    assert "2 batch(es) with stored results" in text
    assert "gpt-4o-mini" in text and "claude-sonnet-4-5" in text
    assert "saved" in text and "(50%) against realtime" in text


def test_remote_listing_shows_the_providers_batches_and_marks_the_journaled_ones(
    fan_out: tuple[Scheduler, list[Any]], env: Emulator, cli: Any
) -> None:
    scheduler, _ = fan_out
    with Scheduler(journal="off", **FAST) as elsewhere:
        batch_llm.wait(
            elsewhere.submit_many(OpenAIProvider(), CHAT, [chat(99, "gpt-4o-mini", temperature=0)])
        )
    mine, other = scheduler.batches[0].batch_id, elsewhere.batches[0].batch_id

    run = cli("batches", "--remote", "--provider", "openai", "--base-url", env.openai_base_url)
    assert run.status == 0
    rows = {line.split()[0]: line for line in run.out.splitlines()[2:]}
    assert set(rows) == {mine, other}
    assert rows[str(mine)].rstrip().endswith("yes")
    assert not rows[str(other)].rstrip().endswith("yes")

    listed = cli("batches", "list", "--remote", "--provider", "openai", "--json").json()
    assert [b["batch_id"] for b in listed] == [other, mine]  # newest first
    assert (
        cli("batches", "--remote", "--provider", "openai", "--limit", "1").out.count("batch_") == 1
    )


@pytest.mark.parametrize("name", ["anthropic", "gemini"])
async def test_every_adapter_lists_its_batches(
    name: str, batch_llm_emulator: Emulator, tmp_path: Path
) -> None:
    emulator = batch_llm_emulator
    with Scheduler(journal="off", **FAST) as scheduler:
        if name == "anthropic":
            adapter: batch_llm.Provider = AnthropicProvider(
                base_url=emulator.anthropic_base_url, api_key="sk-ant-test"
            )
            futures = scheduler.submit_many(
                adapter, "/v1/messages", [claude(1, "claude-sonnet-4-5")]
            )
        else:
            adapter = GeminiProvider(base_url=emulator.gemini_base_url, api_key="g-test")
            body = {"model": "gemini-2.5-flash", "contents": "What is 2 + 2?"}
            futures = scheduler.submit_many(adapter, "generateContent", [body])
        await batch_llm.gather(futures)
        await batch_llm.gather(scheduler.submit_many(adapter, *_second(name)))
        made = [b.batch_id for b in scheduler.batches]
    listed = await adapter.list_batches(10)
    assert [s.batch_id for s in listed] == made[::-1]
    assert all(s.ended and s.outcome == "completed" and s.total == 1 for s in listed)
    assert all("created" in s.times for s in listed)
    assert [s.batch_id for s in await adapter.list_batches(1)] == made[-1:]
    await adapter.aclose()


def _second(name: str) -> tuple[str, list[dict[str, Any]]]:
    if name == "anthropic":
        return "/v1/messages", [claude(2, "claude-sonnet-4-5")]
    return "generateContent", [{"model": "gemini-2.5-flash", "contents": "What is 3 + 3?"}]


def test_clear_errors(env: Emulator, journal_path: Path, tmp_path: Path, cli: Any) -> None:
    missing = cli("batches", "--journal", str(tmp_path / "nowhere.sqlite3"))
    assert missing.status == 2
    assert "no journal at" in missing.err and "nowhere.sqlite3" in missing.err
    assert not (tmp_path / "nowhere.sqlite3").exists()  # reading never creates one

    SQLiteJournal(journal_path).close()
    unknown = cli("batches", "show", "batch_nope")
    assert unknown.status == 2 and "no batch or intent 'batch_nope'" in unknown.err
    assert cli("batches", "cancel", "batch_nope").status == 2
    assert cli("batches", "results", "batch_nope").status == 2
    assert "no batches in the journal" in cli("batches").out

    remote = cli("batches", "--remote")
    assert remote.status == 2 and "--provider" in remote.err
    assert cli("batches", "--remote", "--provider", "nope").status == 2

    not_upstream = SQLiteJournal(journal_path)
    not_upstream.claim(
        Intent("deadbeef" * 4, "openai(api.openai.com)", "x", CHAT, 3, provider_name="openai"),
        ["a", "b", "c"],
        lease=30,
    )
    not_upstream.close()
    never = cli("batches", "cancel", "deadbeef")
    assert never.status == 1 and "never became a batch" in never.err

    gone = cli("batches", "show", "batch_unknown", "--provider", "openai")
    assert gone.status == 0 and "unavailable (asking the provider failed: NotFoundError" in gone.out


def test_the_journal_off_is_an_error_not_a_new_file(
    monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    monkeypatch.setenv("BATCH_LLM_JOURNAL", "off")
    run = cli("cost")
    assert run.status == 2 and "turned off" in run.err


def test_a_journal_from_before_counts_is_upgraded_in_place(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE intents (
            intent_id TEXT PRIMARY KEY, provider TEXT NOT NULL, provider_id TEXT NOT NULL,
            endpoint TEXT NOT NULL, requests INTEGER NOT NULL, created_at REAL NOT NULL,
            batch_id TEXT, status TEXT NOT NULL, outcome TEXT,
            results_stored INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL
        );
        INSERT INTO intents VALUES ('i1', 'openai(http://127.0.0.1:9/v1)', 'p', '/v1/embeddings',
                                    3, 1700000000, 'batch_old', 'in_progress', NULL, 0, 1700000000);
        """
    )
    db.close()
    run = cli("batches", "--journal", str(path), "--json")
    (entry,) = run.json()
    assert entry["batch_id"] == "batch_old" and entry["total"] is None
    journal = SQLiteJournal(path)
    journal.record_status("i1", "completed", "completed", {"total": 3, "succeeded": 3, "failed": 0})
    (intent,) = journal.intents()
    assert (intent.status, intent.total, intent.succeeded) == ("completed", 3, 3)
    journal.close()
    SQLiteJournal(path).close()  # opening it again finds every column in place


def test_the_command_runs_as_a_program(
    fan_out: tuple[Scheduler, list[Any]], journal_path: Path
) -> None:
    scheduler, _ = fan_out
    done = subprocess.run(
        [sys.executable, "-m", "batch_llm", "batches", "--journal", str(journal_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert str(scheduler.batches[0].batch_id) in done.stdout
    assert "10/10" in done.stdout and SECRET not in done.stdout + done.stderr


def test_tables_are_drawn_with_rich_on_request_and_plain_without_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = io.StringIO()
    Output(drawn, rich=True).table(["batch", "n"], [["batch_abc123", "7"]], title="t")
    assert "batch_abc123" in drawn.getvalue() and "─" in drawn.getvalue()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert Output(Terminal()).rich
    monkeypatch.setitem(sys.modules, "rich.console", None)  # rich not installed
    plain = Terminal()
    out = Output(plain)
    assert not out.rich
    out.table(["batch", "n"], [["batch_abc123", "7"]])
    assert plain.getvalue() == "batch         n\nbatch_abc123  7\n"
    assert not Output(io.StringIO()).rich  # not a terminal: plain text


def test_results_piped_into_a_reader_that_stops_early_end_quietly(
    env: Emulator, journal_path: Path
) -> None:
    """``batch-llm batches results ID | head -1``: no traceback, no "failed" line."""
    with Scheduler(journal=journal_path, **FAST) as scheduler:
        futures = scheduler.submit_many(
            OpenAIProvider(), CHAT, [chat(i, "gpt-4o-mini", temperature=0) for i in range(400)]
        )
        batch_llm.wait(futures, timeout=30)
        batch_id = str(scheduler.batches[0].batch_id)
    wait_for(lambda: SQLiteJournal(journal_path).intents()[0].results_stored)
    command = [sys.executable, "-m", "batch_llm", "batches", "results", batch_id]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as reader:
        assert reader.stdout is not None and reader.stderr is not None
        first = json.loads(reader.stdout.readline())
        reader.stdout.close()  # 400 results are far more than a pipe holds: the writer blocks
        errors = reader.stderr.read().decode()
        status = reader.wait(timeout=60)
    assert "response" in first
    assert errors == ""
    assert status == 141  # as a shell reports a writer stopped by SIGPIPE
