"""Credentials never leak, and what the library writes is its user's alone.

A credential in a base URL (``http://user:KEY@host``, ``?api_key=KEY``) or quoted by an error
reaches none of the journal, the events file, the logs (the library's, the SDKs' and
httpx's) or the command line's output; the journal and the events file are mode 0600 in
folders the library makes 0700.
"""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers import CHAT, MESSAGES, chat, claude

import batch_llm
from batch_llm import (
    AnthropicProvider,
    GeminiProvider,
    JsonlEvents,
    OpenAIProvider,
    Scheduler,
)
from batch_llm._journal import SQLiteJournal
from batch_llm._redact import public_url, redact
from batch_llm.cli import main
from batch_llm.emulator import Emulator
from batch_llm.providers import resolve_provider

SECRET = "SECRETKEY-0123456789"
FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.1, "progress": False}


def with_userinfo(url: str) -> str:
    return url.replace("http://", f"http://user:{SECRET}@", 1)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """One ``batch-llm`` run that must succeed; its stdout and stderr."""
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out + captured.err


def stored_bytes(journal: Path) -> bytes:
    """The journal's file with its write-ahead log and shared-memory index."""
    return b"".join(path.read_bytes() for path in journal.parent.glob(journal.name + "*"))


def test_a_base_url_with_user_info_leaks_nowhere(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Gemini authenticates with its own header, so the emulator answers a client whose URL
    # carries user info (sent as Basic auth); the OpenAI and Anthropic SDKs authenticate with
    # an Authorization header, which Basic auth replaces, and the emulator refuses them.
    base_url = with_userinfo(emulator.gemini_base_url)
    journal = tmp_path / "journal" / "journal.sqlite3"
    events = tmp_path / "events" / "events.jsonl"
    monkeypatch.setenv("BATCH_LLM_JOURNAL", str(journal))
    monkeypatch.setenv("BATCH_LLM_EVENTS", str(events))
    monkeypatch.setenv("GOOGLE_API_KEY", "g-any-key")  # what the CLI reaches the batch with
    caplog.set_level(logging.DEBUG)  # every logger: the library's, the SDK's, httpx's
    # A one-byte inline limit sends the lines as an uploaded file: every call the adapter makes.
    provider = GeminiProvider(base_url=base_url, api_key="g-any-key", inline_limit=1)
    bodies = [
        {"model": "gemini-2.5-flash", "contents": [{"role": "user", "parts": [{"text": q}]}]}
        for q in ("What is 1 + 1?", "What is 2 + 1?", "What is 3 + 1?")
    ]
    with Scheduler(**FAST) as scheduler:
        answers = batch_llm.wait(scheduler.submit_many(provider, "generateContent", bodies))
        batch_id = str(scheduler.batches[0].batch_id)
    assert all(a["candidates"][0]["content"]["parts"][0]["text"] for a in answers)
    assert emulator.stats.batches_created == 1

    output = run_cli(capsys, "batches", "--json")
    assert json.loads(output)[0]["base_url"] == emulator.gemini_base_url
    output += run_cli(capsys, "batches", "show", batch_id)
    output += run_cli(capsys, "cost")
    output += run_cli(capsys, "batches", "results", batch_id)
    output += run_cli(capsys, "batches", "--remote", "--provider", "gemini", "--base-url", base_url)
    assert "succeeded" in output and batch_id in output

    logs = caplog.text
    assert "batch_completed" in logs and "HTTP Request" in logs  # the logs were captured
    written = events.read_text()
    assert "batch_submitted" in written and f"gemini({emulator.gemini_base_url})" in written
    assert SECRET.encode() not in stored_bytes(journal)
    assert SECRET not in written
    assert SECRET not in logs
    assert SECRET not in output
    assert SECRET not in repr(provider) + provider.describe() + repr(scheduler.batches)


def test_a_reason_that_quotes_a_credential_is_redacted_in_events_and_logs(
    emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    quoted = f"http://user:{SECRET}@proxy.invalid/v1?api_key={SECRET}&api-version=1"
    emulator.knobs.fail_validation = f"rejected by {quoted}"
    provider = OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test")
    caplog.set_level(logging.DEBUG, logger="batch_llm")
    with (
        JsonlEvents(tmp_path / "events.jsonl") as listener,
        Scheduler(journal="off", listeners=[listener], **FAST) as scheduler,
    ):
        (failure,) = batch_llm.wait(
            scheduler.submit_many(provider, CHAT, [chat(1)]), return_exceptions=True
        )
    assert isinstance(failure, batch_llm.BatchFailedError)
    (ended,) = [
        json.loads(line)
        for line in (tmp_path / "events.jsonl").read_text().splitlines()
        if '"batch_failed"' in line
    ]
    assert ended["reason"].startswith(
        "rejected by http://proxy.invalid/v1?api_key=***&api-version=1"
    )
    assert ended["reason"] in caplog.text
    assert SECRET not in caplog.text


def test_a_logged_exception_that_quotes_a_credential_is_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("batch_llm")
    try:
        try:
            raise OSError(f"GET https://user:{SECRET}@host.invalid/v1/batches?key={SECRET}")
        except OSError as exc:
            raise RuntimeError(f"polling failed: {exc}") from exc
    except RuntimeError as exc:
        with caplog.at_level(logging.DEBUG, logger="batch_llm"):
            logger.warning("polling batch %s failed: %s", "b-1", exc)
            logger.exception("batch %s: unexpected error", "b-1")
    quoted = "polling batch b-1 failed: polling failed: GET https://host.invalid/v1/batches?key=***"
    assert quoted in caplog.text
    assert "RuntimeError" in caplog.text and "OSError" in caplog.text  # the traceback is there
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@host:8/v1", "http://host:8/v1"),
        ("see https://a:b@c@host/x and ftp://u@h/", "see https://host/x and ftp://h/"),
        ("/v1/x?key=abc&alt=media", "/v1/x?key=***&alt=media"),
        (
            "?api_key=1&apiKey=2&access_token=3&X-Amz-Signature=4",
            "?api_key=***&apiKey=***&access_token=***&X-Amz-Signature=***",
        ),
        (
            "?api-version=2024-10-21&upload_id=7&monkey=1",
            "?api-version=2024-10-21&upload_id=7&monkey=1",
        ),
        ("user@example.com wrote status=failed", "user@example.com wrote status=failed"),
    ],
)
def test_redact_masks_user_info_and_secret_parameters(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_masks_the_values_of_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_SERVICE_API_KEY", "ssk-0123456789")
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghij")
    monkeypatch.setenv("SHORT_TOKEN", "none")  # a word, not a key: left alone
    assert redact("key ssk-0123456789, token hf_abcdefghij, none") == "key ***, token ***, none"


def test_public_url_drops_user_info_query_and_fragment() -> None:
    assert public_url(f"https://u:{SECRET}@h.invalid/v1?key={SECRET}#x") == "https://h.invalid/v1"
    assert public_url(None) is None


@pytest.mark.parametrize("name", ["openai", "anthropic", "gemini", "groq"])
def test_adapters_describe_themselves_without_credentials(name: str) -> None:
    url = f"https://user:{SECRET}@proxy.invalid/v1?api_key={SECRET}"
    adapter = resolve_provider(name, base_url=url, api_key="k-1")
    assert adapter.describe() == f"{name}(https://proxy.invalid/v1)"
    assert adapter.base_url == "https://proxy.invalid/v1"
    assert SECRET not in repr(adapter) + adapter.identity()
    # The user info is a credential: adapters that differ in it do not share batches.
    assert adapter == resolve_provider(name, base_url=url, api_key="k-1")
    other = url.replace(SECRET, "OTHER-0123456789")
    assert adapter != resolve_provider(name, base_url=other, api_key="k-1")
    assert adapter.identity() != resolve_provider(name, base_url=other, api_key="k-1").identity()


@pytest.mark.parametrize("name", ["openai", "anthropic"])
def test_user_info_is_still_sent_as_basic_auth(name: str, emulator: Emulator) -> None:
    """The URL's user info goes as Basic auth, as httpx sent it when the URL carried it: it
    replaces these SDKs' bearer key, so the emulator refuses them, and says nothing secret."""
    if name == "openai":
        url, endpoint, body = emulator.openai_base_url, CHAT, chat(1)
        adapter: OpenAIProvider | AnthropicProvider = OpenAIProvider(
            base_url=with_userinfo(url), api_key="sk-test", max_retries=0
        )
    else:
        url, endpoint, body = emulator.anthropic_base_url, MESSAGES, claude(1)
        adapter = AnthropicProvider(base_url=with_userinfo(url), api_key="sk-ant", max_retries=0)
    with Scheduler(journal="off", **FAST) as scheduler:
        (failure,) = batch_llm.wait(
            scheduler.submit_many(adapter, endpoint, [body]), return_exceptions=True
        )
    assert getattr(failure, "status_code", None) == 401
    assert SECRET not in str(failure)


def test_the_journal_and_events_files_are_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    journal = tmp_path / "a" / "b" / "journal.sqlite3"
    SQLiteJournal(journal).close()
    events_path = tmp_path / "c" / "d" / "events.jsonl"
    with JsonlEvents(events_path) as events:
        events({"event": "batch_submitted"})
    for folder in (
        journal.parent,
        journal.parent.parent,
        events_path.parent,
        events_path.parent.parent,
    ):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in (journal, events_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # not the library's folder

    # A file made by someone else is made private when the library opens it.
    shared = tmp_path / "shared.jsonl"
    shared.write_text("")
    shared.chmod(0o644)
    JsonlEvents(shared).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
