"""What a run cost: tokens from the usage the providers returned, priced from the table (which
the user can override), batch against realtime; replayed answers cost this run nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import (
    AnthropicProvider,
    GeminiProvider,
    OpenAIProvider,
    Scheduler,
    cost_report,
    get_prices,
    set_prices,
)
from batch_llm.emulator import Emulator
from batch_llm.providers import Usage

FAST: dict[str, Any] = {"poll_interval": 0.02, "poll_max": 0.05}


@pytest.fixture(autouse=True)
def _default_prices() -> Iterator[None]:
    set_prices(None)
    yield
    set_prices(None)


@pytest.fixture
def provider(emulator: Emulator) -> OpenAIProvider:
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


def run(scheduler: Scheduler, provider: Any, endpoint: str, bodies: list[Any]) -> list[Any]:
    return batch_llm.wait(scheduler.submit_many(provider, endpoint, bodies), timeout=60)


def test_report_is_built_from_the_usage_the_provider_returned(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    with Scheduler(journal="off", **FAST) as scheduler:
        results = run(scheduler, provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(50)])
        report = scheduler.cost()
    (row,) = report.rows
    assert (row.provider, row.model, row.kind, row.billed) == (
        "openai",
        "gpt-4o-mini",
        "batch",
        True,
    )
    assert row.priced_as == "gpt-4o-mini"
    assert row.requests == report.requests == 50
    assert row.input_tokens == sum(r["usage"]["prompt_tokens"] for r in results)
    assert row.output_tokens == sum(r["usage"]["completion_tokens"] for r in results)
    price = get_prices().lookup("openai", "gpt-4o-mini")
    assert price is not None
    realtime = (row.input_tokens * price.input + row.output_tokens * price.output) / 1e6
    assert report.realtime_cost == pytest.approx(realtime)
    assert report.cost == pytest.approx(report.realtime_cost * 0.5)
    assert report.saving == pytest.approx(report.realtime_cost - report.cost)
    assert report.complete
    text = str(report)
    assert "gpt-4o-mini" in text and "saved" in text and "prices as of" in text
    assert json.loads(json.dumps(report.to_dict()))["totals"]["requests"] == 50
    assert report.to_rows()[0]["input_tokens"] == row.input_tokens
    # The batch's record gets its share when its end is reported, just after the last answer.
    deadline = time.monotonic() + 10
    while scheduler.batches[0].cost is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert scheduler.batches[0].cost == {
        "cost": pytest.approx(report.cost),
        "realtime_cost": pytest.approx(report.realtime_cost),
        "saving": pytest.approx(report.saving),
    }


def test_embeddings_and_anthropic_and_gemini_usage_is_counted(emulator: Emulator) -> None:
    openai_provider = OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-t")
    anthropic = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-t")
    gemini = GeminiProvider(base_url=emulator.gemini_base_url, api_key="g-t", max_retries=0)
    with Scheduler(journal="off", **FAST) as scheduler:
        vectors = run(
            scheduler,
            openai_provider,
            "/v1/embeddings",
            [{"model": "text-embedding-3-small", "input": [f"text {i}", "more"]} for i in range(4)],
        )
        messages = run(
            scheduler,
            anthropic,
            "/v1/messages",
            [
                {"model": m, "max_tokens": 32, "messages": [{"role": "user", "content": f"hi {i}"}]}
                for i, m in enumerate(["claude-haiku-4-5", "claude-sonnet-4-5"] * 3)
            ],
        )
        answers = run(
            scheduler,
            gemini,
            "generateContent",
            [
                {
                    "model": "gemini-2.5-flash",
                    "contents": [{"role": "user", "parts": [{"text": t}]}],
                }
                for t in ("a", "b", "c")
            ],
        )
        rows = {(r.provider, r.model): r for r in scheduler.cost().rows}
    embedded = rows[("openai", "text-embedding-3-small")]
    assert embedded.input_tokens == sum(v["usage"]["prompt_tokens"] for v in vectors)
    assert embedded.output_tokens == 0 and embedded.cost is not None
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5"):
        mine = [m for m in messages if m["model"] == model]
        row = rows[("anthropic", model)]
        assert row.requests == 3
        assert row.input_tokens == sum(m["usage"]["input_tokens"] for m in mine)
        assert row.output_tokens == sum(m["usage"]["output_tokens"] for m in mine)
        assert row.cost == pytest.approx(row.realtime_cost / 2)  # type: ignore[operator]
    flash = rows[("gemini", "gemini-2.5-flash")]
    assert flash.input_tokens == sum(a["usageMetadata"]["promptTokenCount"] for a in answers)
    assert flash.cost is not None


def test_unknown_models_cost_unknown_never_zero(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    with Scheduler(journal="off", **FAST) as scheduler:
        run(scheduler, provider, CHAT, [chat(i, "house-model-7b") for i in range(3)])
        run(scheduler, provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(3)])
        report = scheduler.cost()
    unknown = next(r for r in report.rows if r.model == "house-model-7b")
    assert unknown.cost is None and unknown.realtime_cost is None and unknown.saving is None
    assert unknown.input_tokens > 0
    assert report.unpriced == [("openai", "house-model-7b")] and not report.complete
    assert report.cost > 0  # the priced model still counts
    assert "unknown" in str(report) and "house-model-7b" in str(report)


def test_prices_can_be_overridden_in_code_and_by_environment(
    emulator: Emulator,
    provider: OpenAIProvider,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Scheduler(journal="off", **FAST) as scheduler:
        run(scheduler, provider, CHAT, [chat(i, "house-model-7b") for i in range(4)])
        tokens = scheduler.cost().rows[0]
        set_prices({"openai": {"models": {"house-model-7b": {"input": 1.0, "output": 2.0}}}})
        row = scheduler.cost().rows[0]
        assert row.realtime_cost == pytest.approx(
            (tokens.input_tokens * 1.0 + tokens.output_tokens * 2.0) / 1e6
        )
        assert row.cost == pytest.approx(row.realtime_cost / 2)  # type: ignore[operator]
        set_prices(None)
        assert scheduler.cost().rows[0].cost is None
        path = tmp_path / "prices.json"
        path.write_text(
            json.dumps(
                {
                    "as_of": "2031-01-01",
                    "providers": {
                        "openai": {
                            "batch_discount": 0.75,
                            "models": {"house-model-7b": {"input": 4.0, "output": 4.0}},
                        }
                    },
                }
            )
        )
        monkeypatch.setenv("BATCH_LLM_PRICES", str(path))
        report = scheduler.cost()
    assert report.prices_as_of == "2031-01-01"
    assert report.rows[0].cost == pytest.approx(report.rows[0].realtime_cost * 0.25)  # type: ignore[operator]
    # The shipped models are still priced under an override of one.
    assert get_prices().lookup("openai", "gpt-4o") is not None
    assert set_prices(path).lookup("openai", "house-model-7b") is not None


def test_dated_snapshots_price_like_their_model() -> None:
    prices = get_prices()
    cases = {
        ("openai", "gpt-4o-mini-2024-07-18"): "gpt-4o-mini",
        ("openai", "gpt-4o-2024-08-06"): "gpt-4o",
        ("openai", "GPT-4.1-nano-2025-04-14"): "gpt-4.1-nano",
        ("anthropic", "claude-3-5-haiku-20241022"): "claude-3-5-haiku",
        ("anthropic", "claude-sonnet-4-5-20250929"): "claude-sonnet-4-5",
        ("anthropic", "claude-3-5-haiku-latest"): "claude-3-5-haiku",
        ("gemini", "models/gemini-2.0-flash-001"): "gemini-2.0-flash",
    }
    for (provider, model), family in cases.items():
        price = prices.lookup(provider, model)
        assert price is not None and price.model == family, model
    assert prices.lookup("openai", "gpt-4o-audio-preview") is None  # not a snapshot of gpt-4o
    assert prices.lookup("groq", "gpt-4o") is None  # prices are per provider


def test_cache_reads_writes_and_geminis_undiscounted_cache() -> None:
    prices = get_prices()
    sonnet = prices.lookup("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    # 1,000 prompt tokens of which 600 read from the cache and 300 written to it.
    realtime = sonnet.cost(1000, 100, 600, 300, batch=False)
    assert realtime == pytest.approx((100 * 3.0 + 600 * 0.3 + 300 * 3.75 + 100 * 15.0) / 1e6)
    assert sonnet.cost(1000, 100, 600, 300, batch=True) == pytest.approx(realtime / 2)
    flash = prices.lookup("gemini", "gemini-2.5-flash")
    assert flash is not None
    batch = flash.cost(1000, 0, 400, batch=True)
    assert batch == pytest.approx((600 * 0.3 / 2 + 400 * 0.03) / 1e6)


def test_adapters_read_usage_in_each_providers_shape() -> None:
    openai_provider = OpenAIProvider(api_key="sk-t")
    assert openai_provider.usage(
        CHAT,
        {
            "model": "gpt-4o",
            "usage": {
                "prompt_tokens": 100,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 64},
            },
        },
    ) == Usage("gpt-4o", 100, 7, 64)
    assert openai_provider.usage(
        "/v1/responses",
        {
            "model": "o4-mini",
            "usage": {
                "input_tokens": 50,
                "output_tokens": 30,
                "input_tokens_details": {"cached_tokens": 10},
            },
        },
    ) == Usage("o4-mini", 50, 30, 10)
    assert openai_provider.usage(
        "/v1/embeddings", {"model": "text-embedding-3-large", "usage": {"prompt_tokens": 9}}
    ) == Usage("text-embedding-3-large", 9, 0, 0)
    assert openai_provider.usage(CHAT, {"model": "gpt-4o"}) is None
    anthropic = AnthropicProvider(api_key="sk-ant-t")
    assert anthropic.usage(
        "/v1/messages",
        {
            "model": "claude-haiku-4-5",
            "usage": {
                "input_tokens": 20,
                "output_tokens": 5,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 30,
            },
        },
    ) == Usage("claude-haiku-4-5", 150, 5, 100, 30)
    gemini = GeminiProvider(api_key="g-t")
    assert gemini.usage(
        "generateContent",
        {
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 8,
                "thoughtsTokenCount": 12,
                "cachedContentTokenCount": 16,
            }
        },
        ("generateContent", "models/gemini-2.5-pro"),
    ) == Usage("gemini-2.5-pro", 40, 20, 16)
    assert gemini.usage("embedContent", {"embeddings": [{"values": [0.1]}]}) is None


def test_replayed_answers_are_reported_apart_and_cost_this_run_nothing(
    emulator: Emulator, provider: OpenAIProvider, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.sqlite3"
    bodies = [chat(i, "gpt-4o-mini") for i in range(10)]
    with Scheduler(journal=journal, **FAST) as first:
        run(first, provider, CHAT, bodies)
        paid = first.cost()
    with Scheduler(journal=journal, **FAST) as second:
        run(second, provider, CHAT, bodies)
        again = second.cost()
    (row,) = again.rows
    assert (row.kind, row.billed, row.requests) == ("replayed", False, 10)
    assert row.input_tokens == paid.input_tokens
    assert again.requests == 0 and again.cost == 0 and again.realtime_cost == 0
    assert "replayed" in str(again)


def test_escalated_requests_count_at_realtime_price(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    emulator.knobs.processing_delay = 60
    with Scheduler(journal="off", **FAST) as scheduler:
        futures = scheduler.submit_many(
            provider, CHAT, [chat(i, "gpt-4o-mini") for i in range(3)], deadline=0.2
        )
        batch_llm.wait(futures, timeout=30)
        report = scheduler.cost()
    (row,) = report.rows
    assert (row.kind, row.requests) == ("realtime", 3)
    assert row.cost == row.realtime_cost and row.saving == 0


def test_cost_report_reads_the_default_scheduler(
    emulator: Emulator, provider: OpenAIProvider
) -> None:
    scheduler = Scheduler(journal="off", **FAST)
    previous = batch_llm.set_scheduler(scheduler)
    try:
        run(batch_llm.get_scheduler(), provider, CHAT, [chat(1, "gpt-4o-mini")])
        assert cost_report().requests == 1
        batch_llm.set_scheduler(None)
        assert cost_report().rows == ()
        assert "no answers yet" in str(cost_report())
        assert cost_report(scheduler).requests == 1
    finally:
        batch_llm.set_scheduler(previous)
        scheduler.close()
