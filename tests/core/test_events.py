"""Lifecycle events: emitted at the right moments, written as JSON lines, logged under
``batch_llm``, free of secrets; batch metadata stamped where the provider keeps it."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import JsonlEvents, OpenAIProvider, Scheduler
from batch_llm.emulator import Emulator

SECRET = "sk-do-not-leak-7f3a"
FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.05}
COMMON = {
    "event",
    "time",
    "batch_id",
    "intent_id",
    "provider",
    "requests",
    "status",
    "state",
    "total",
    "succeeded",
    "failed",
}


@pytest.fixture
def provider(emulator: Emulator) -> OpenAIProvider:
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key=SECRET, max_retries=0)


def run(scheduler: Scheduler, provider: OpenAIProvider, n: int, **options: Any) -> list[Any]:
    futures = scheduler.submit_many(
        provider, CHAT, [chat(i, "gpt-4o-mini", temperature=0) for i in range(n)], **options
    )
    return batch_llm.wait(futures, return_exceptions=True, timeout=60)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def test_a_batch_reports_submission_progress_and_completion_as_json_lines(
    emulator: Emulator,
    provider: OpenAIProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator.knobs.processing_delay = 0.3
    path = tmp_path / "logs" / "events.jsonl"
    monkeypatch.setenv("BATCH_LLM_EVENTS", str(path))
    stream = io.StringIO()
    started = time.time()
    with (
        caplog.at_level(logging.DEBUG, logger="batch_llm"),
        Scheduler(journal="off", listeners=[JsonlEvents(stream)], **FAST) as scheduler,
    ):
        results = run(scheduler, provider, 40)
    assert all(isinstance(r, dict) for r in results)
    from_env = [json.loads(line) for line in path.read_text().splitlines()]
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert from_env == events
    kinds = names(events)
    assert kinds[0] == "batch_submitted" and kinds[-1] == "batch_completed"
    assert "batch_progress" in kinds
    for event in events:
        assert set(event) >= COMMON, event
        assert event["batch_id"] == scheduler.batches[0].batch_id
        assert event["requests"] == 40
        assert started <= event["time"] <= time.time()
    progress = [e for e in events if e["event"] == "batch_progress"]
    done = [e["succeeded"] + e["failed"] for e in progress]
    assert done == sorted(done) and progress[-1]["state"] == "ended"
    completed = events[-1]
    assert completed["outcome"] == "completed"
    assert completed["usage"]["answers"] == 40
    assert completed["usage"]["input_tokens"] == sum(r["usage"]["prompt_tokens"] for r in results)
    assert completed["cost"]["cost"] == pytest.approx(completed["cost"]["realtime_cost"] / 2)
    # The same events on the logger: milestones at INFO, progress at DEBUG.
    logged = [r for r in caplog.records if r.name == "batch_llm"]
    submitted = [r for r in logged if r.getMessage().startswith("batch_submitted")]
    assert submitted and submitted[0].levelno == logging.INFO
    assert any(r.getMessage().startswith("batch_completed") for r in logged)
    assert all(
        r.levelno == logging.DEBUG for r in logged if r.getMessage().startswith("batch_progress")
    )
    everything = path.read_text() + caplog.text + repr(scheduler.batches)
    assert SECRET not in everything


def test_failed_expired_and_cancelled_batches_each_say_so(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    events: list[dict[str, Any]] = []
    with Scheduler(journal="off", on_expiry="fail", listeners=[events.append], **FAST) as sched:
        emulator.knobs.fail_validation = "no batch for you"
        run(sched, provider, 4)
        emulator.knobs.reset()
        emulator.knobs.expire_after_fraction = 0.5
        run(sched, provider, 4)
        emulator.knobs.reset()
        emulator.knobs.cancel_after_fraction = 0.5
        run(sched, provider, 4)
    ends = [e for e in events if e["event"] in ("batch_failed", "batch_expired", "batch_cancelled")]
    assert names(ends) == ["batch_failed", "batch_expired", "batch_cancelled"]
    failed, expired, cancelled = ends
    assert "no batch for you" in failed["reason"]
    assert expired["outcome"] == "expired" and expired["succeeded"] == 2
    assert cancelled["outcome"] == "cancelled"
    assert expired["usage"]["answers"] == 2  # the finished half was billed, and counted
    assert all(set(e) >= COMMON for e in events)


def test_a_rerun_reports_the_batch_it_resumed(
    emulator: Emulator, provider: OpenAIProvider, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    with Scheduler(journal=journal, **FAST) as first:
        run(first, provider, 6)
    events: list[dict[str, Any]] = []
    with Scheduler(journal=journal, listeners=[events.append], **FAST) as second:
        run(second, provider, 6)
    assert names(events) == ["batch_resumed", "batch_completed"]
    resumed, completed = events
    assert resumed["resumed"] and resumed["batch_id"] == first.batches[0].batch_id
    assert completed["replayed"] is True
    assert emulator.stats.batches_created == 1


def test_a_deadline_reports_each_escalated_request_and_the_cancelled_batch(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    emulator.knobs.processing_delay = 60
    events: list[dict[str, Any]] = []
    with Scheduler(journal="off", listeners=[events.append], **FAST) as scheduler:
        results = run(scheduler, provider, 3, deadline=0.2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
            "batch_cancelled" not in names(events) or names(events).count("request_escalated") < 3
        ):
            time.sleep(0.01)
    assert all(isinstance(r, dict) for r in results)
    escalated = [e for e in events if e["event"] == "request_escalated"]
    assert len(escalated) == 3 and all(e["reason"] == "deadline" for e in escalated)
    assert len({e["custom_id"] for e in escalated}) == 3
    (cancelled,) = [e for e in events if e["event"] == "batch_cancelled"]
    assert "sent realtime" in cancelled["reason"]


def test_a_listener_that_raises_does_not_break_the_batch(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    with Scheduler(journal="off", listeners=[broken], **FAST) as scheduler:
        assert all(isinstance(r, dict) for r in run(scheduler, provider, 3))


def test_jsonl_events_is_thread_safe_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event":"earlier"}\n')
    with JsonlEvents(path) as sink:
        threads = [
            threading.Thread(target=lambda t=t: [sink({"event": "x", "n": t}) for _ in range(200)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"event": "earlier"} and len(lines) == 801


# -- metadata -------------------------------------------------------------------------------


def test_run_id_is_stamped_on_the_openai_batch(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    with Scheduler(journal="off", metadata={"run_id": "r1"}, **FAST) as scheduler:
        run(scheduler, provider, 3)
        run(scheduler, provider, 2, metadata={"stage": "eval"})
        ids = [record.batch_id for record in scheduler.batches]
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test")
    first, second = (client.batches.retrieve(batch_id) for batch_id in ids)
    assert first.metadata is not None and first.metadata["run_id"] == "r1"
    assert "stage" not in first.metadata
    assert second.metadata is not None
    assert (second.metadata["run_id"], second.metadata["stage"]) == ("r1", "eval")
    assert scheduler.batches[1].metadata == {"run_id": "r1", "stage": "eval"}


def test_differently_stamped_requests_never_share_a_batch(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    with Scheduler(journal="off", window=0.1, **FAST) as scheduler:
        a = scheduler.submit(
            provider, CHAT, chat(1, "gpt-4o-mini", temperature=0), metadata={"run_id": "a"}
        )
        b = scheduler.submit(
            provider, CHAT, chat(2, "gpt-4o-mini", temperature=0), metadata={"run_id": "b"}
        )
        c = scheduler.submit(
            provider, CHAT, chat(3, "gpt-4o-mini", temperature=0), metadata={"run_id": "a"}
        )
        batch_llm.wait([a, b, c], timeout=30)
    assert a.batch_id == c.batch_id != b.batch_id
    assert emulator.stats.batches_created == 2


def test_openai_metadata_is_clipped_but_keeps_the_intent(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    stamped = {f"key{i:02d}": "v" * 600 for i in range(20)}
    with Scheduler(journal="off", metadata=stamped, **FAST) as scheduler:
        run(scheduler, provider, 1)
        (record,) = scheduler.batches
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test")
    metadata = client.batches.retrieve(record.batch_id or "").metadata or {}
    assert len(metadata) == 16
    assert metadata["batch_llm_intent"] == record.intent_id
    assert all(len(v) <= 512 for v in metadata.values())
