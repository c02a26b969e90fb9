"""Dry runs: requests are checked, queued and cut into batches by the providers' limits, then
planned instead of sent; nothing reaches the provider or the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import (
    AnthropicProvider,
    BatchLLMError,
    DryRunError,
    InvalidRequestError,
    OpenAIProvider,
    Scheduler,
)
from batch_llm._dry_run import DEFAULT_OUTPUT_TOKENS, estimate
from batch_llm.emulator import Emulator


@pytest.fixture
def provider(emulator: Emulator) -> OpenAIProvider:
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def test_a_large_fan_out_is_planned_as_the_provider_would_cut_it(
    emulator: Emulator, provider: OpenAIProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "never.sqlite3"
    monkeypatch.setenv("BATCH_LLM_JOURNAL", str(journal))
    with Scheduler(dry_run=True) as scheduler:
        futures = scheduler.submit_many(
            provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(120_000)]
        )
        results = batch_llm.wait(futures, return_exceptions=True, timeout=120)
        plan = scheduler.plan
    assert emulator.stats.calls_by_route == {}  # not one HTTP call
    assert not journal.exists()
    assert all(isinstance(r, DryRunError) for r in results)
    assert isinstance(results[0], BatchLLMError)
    assert [r.batch for r in results[:1] + results[-1:]] == [1, 3]
    assert [b.lines for b in plan.batches] == [50_000, 50_000, 20_000]
    assert plan.requests == plan.lines == 120_000
    assert plan.batches[0].model == "gpt-4o-mini"
    assert plan.output_tokens == 120_000 * DEFAULT_OUTPUT_TOKENS
    assert plan.input_tokens >= 120_000
    assert plan.cost == pytest.approx(plan.realtime_cost / 2) and plan.cost > 0
    assert "3 batch(es)" in str(plan) and "nothing submitted" in str(plan)
    totals = json.loads(json.dumps(plan.to_dict()))["totals"]
    assert (totals["batches"], totals["requests"]) == (3, 120_000)


def test_models_split_openai_batches_but_share_anthropic_ones(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    anthropic = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-t")
    with Scheduler(dry_run=True) as scheduler:
        openai_side = [chat(i, "gpt-4o-mini") for i in range(3)] + [
            chat(i, "gpt-4o") for i in range(2)
        ]
        claude_side = [
            {"model": m, "max_tokens": 100, "messages": [{"role": "user", "content": "hello"}]}
            for m in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-haiku-4-5")
        ]
        batch_llm.wait(
            scheduler.submit_many(provider, CHAT, openai_side)
            + scheduler.submit_many(anthropic, "/v1/messages", claude_side),
            return_exceptions=True,
        )
        batches = scheduler.plan.batches
    assert [(b.provider, b.model, b.lines) for b in batches] == [
        ("openai", "gpt-4o-mini", 3),
        ("openai", "gpt-4o", 2),
        ("anthropic", "mixed", 3),
    ]
    assert batches[2].models == {"claude-haiku-4-5": 2, "claude-sonnet-4-5": 1}
    assert batches[2].output_tokens == 300  # max_tokens, the upper bound
    assert emulator.stats.batches_created == 0


def test_identical_requests_share_a_planned_line(provider: OpenAIProvider) -> None:
    with Scheduler(dry_run=True) as scheduler:
        same = [chat(1, "gpt-4o-mini", temperature=0)] * 4 + [chat(2, "gpt-4o-mini", temperature=0)]
        results = batch_llm.wait(
            scheduler.submit_many(provider, CHAT, same), return_exceptions=True
        )
        (planned,) = scheduler.plan.batches
    assert (planned.requests, planned.lines) == (5, 2)
    assert all(isinstance(r, DryRunError) for r in results)


def test_dry_run_installs_and_restores_the_default_scheduler(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    before = Scheduler(journal="off")
    previous = batch_llm.set_scheduler(before)
    try:
        check_dry_run(emulator, provider, before)
    finally:
        batch_llm.set_scheduler(previous)
        before.close()


def check_dry_run(emulator: Emulator, provider: OpenAIProvider, before: Scheduler) -> None:
    with batch_llm.dry_run(window=30) as plan:
        planner = batch_llm.get_scheduler()
        assert planner is not before and planner.dry_run
        fanned = planner.submit_many(provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(3)])
        single = planner.submit(provider, CHAT, chat(9, "gpt-4.1"))  # waits for its window
    assert batch_llm.get_scheduler() is before
    # On exit the window is not waited for: the single call is planned too.
    assert [b.model for b in plan.batches] == ["gpt-4o-mini", "gpt-4.1"]
    assert all(isinstance(f.exception(), DryRunError) for f in [*fanned, single])
    assert emulator.stats.calls_by_route == {}


def test_environment_turns_it_on_and_bad_values_are_refused(
    provider: OpenAIProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCH_LLM_DRY_RUN", "1")
    with Scheduler() as scheduler:
        assert scheduler.dry_run
        (result,) = batch_llm.wait(
            scheduler.submit_many(provider, CHAT, [chat(1, "gpt-4o-mini")]), return_exceptions=True
        )
        assert isinstance(result, DryRunError)
    assert not Scheduler(dry_run=False, journal="off").dry_run
    monkeypatch.setenv("BATCH_LLM_DRY_RUN", "maybe")
    with pytest.raises(ValueError, match="BATCH_LLM_DRY_RUN"):
        Scheduler()
    with pytest.raises(RuntimeError, match="not a dry run"):
        _ = Scheduler(dry_run=False, journal="off").plan


def test_bad_input_is_still_refused_up_front(provider: OpenAIProvider) -> None:
    with Scheduler(dry_run=True) as scheduler, pytest.raises(InvalidRequestError):
        scheduler.submit_many(provider, CHAT, [{"messages": []}])


def test_estimates_follow_the_request() -> None:
    provider = OpenAIProvider(api_key="sk-t")
    text = "x" * 400
    capped = provider.prepare(
        CHAT,
        chat(0, "gpt-4o-mini", max_completion_tokens=50, n=2)
        | {"messages": [{"role": "user", "content": text}]},
    )
    assert estimate(capped, capped.key) == ("gpt-4o-mini", 100, 100)
    embedded = provider.prepare(
        "/v1/embeddings", {"model": "text-embedding-3-small", "input": [text, text]}
    )
    assert estimate(embedded, embedded.key) == ("text-embedding-3-small", 200, 0)
    with Scheduler(dry_run=True) as scheduler:
        batch_llm.wait(
            scheduler.submit_many(provider, CHAT, [chat(1, "house-model")]), return_exceptions=True
        )
        (planned,) = scheduler.plan.batches
    assert planned.cost is None and planned.realtime_cost is None
    assert scheduler.plan.unpriced == [1] and "unknown" in str(scheduler.plan)
