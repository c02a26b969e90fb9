"""BatchChatModel on Anthropic and Gemini: the same messages as realtime ChatAnthropic and
ChatGoogleGenerativeAI, built from kwargs or wrapping; Claude models share a batch, Gemini gets
one batch per model; per-line errors are the realtime errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_google_genai import ChatGoogleGenerativeAI

import batch_llm
from batch_llm import Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel

PARAMS = {"temperature": 0.3, "max_tokens": 40, "stop": ["\n\n"]}


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "plain": ("What is 17 + 25?", {}),
    "multi_turn": (
        [
            SystemMessage("You answer briefly."),
            HumanMessage("My name is Ada."),
            AIMessage("Hello Ada."),
            HumanMessage("What is 6 * 7?"),
        ],
        {},
    ),
    "tools": ("Please add 2 and 3", {"tools": [add]}),
    "tool_history": (
        [
            HumanMessage("Please add 2 and 3"),
            AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"}]),
            ToolMessage("5", tool_call_id="call_1"),
        ],
        {"tools": [add]},
    ),
}


def anthropic_model(emulator: Emulator, **extra: Any) -> BaseChatModel:
    params = {"model": "claude-haiku-4-5", **PARAMS, **extra}
    return ChatAnthropic(api_key="sk-ant-test", base_url=emulator.anthropic_base_url, **params)


def gemini_model(emulator: Emulator, **extra: Any) -> BaseChatModel:
    params = {"model": "gemini-2.5-flash", **PARAMS, **extra}
    return ChatGoogleGenerativeAI(api_key="g-test", base_url=emulator.gemini_base_url, **params)


PROVIDERS: dict[str, tuple[str, str, Callable[..., BaseChatModel], str]] = {
    # name: (provider:model id, base-url attribute, realtime builder, batch endpoint)
    "anthropic": (
        "anthropic:claude-haiku-4-5",
        "anthropic_base_url",
        anthropic_model,
        "/v1/messages",
    ),
    "gemini": (
        "google_genai:gemini-2.5-flash",
        "gemini_base_url",
        gemini_model,
        "batchGenerateContent",
    ),
}


def _strip(message: AIMessage) -> dict[str, Any]:
    metadata = {k: v for k, v in message.response_metadata.items() if k != "batch_id"}
    # Gemini returns no tool-call ids; langchain-google-genai makes up a random one each call.
    calls = [
        {
            k: v
            for k, v in call.items()
            if k != "id" or message.response_metadata.get("model_provider") != "google_genai"
        }
        for call in message.tool_calls
    ]
    return {
        "content": message.content,
        "tool_calls": calls,
        "usage_metadata": message.usage_metadata,
        "response_metadata": metadata,
    }


def _bind(model: Any, extra: dict[str, Any]) -> Any:
    return model.bind_tools(extra["tools"]) if "tools" in extra else model


@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_batched_call_matches_realtime(
    provider: str, case: str, build: str, batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    emulator = batch_llm_emulator
    model_id, base_attr, realtime_model, endpoint = PROVIDERS[provider]
    credentials = {
        "api_key": "sk-ant-test" if provider == "anthropic" else "g-test",
        "base_url": getattr(emulator, base_attr),
    }
    batched = (
        BatchChatModel(model=model_id, **PARAMS, **credentials, scheduler=fast_scheduler)
        if build == "kwargs"
        else BatchChatModel(realtime_model(emulator), scheduler=fast_scheduler)
    )
    value, extra = CASES[case]
    expected = _bind(realtime_model(emulator), extra).invoke(value)
    single = _bind(batched, extra).invoke(value)
    fan_out = _bind(batched, extra).batch([value, value])
    assert _strip(single) == _strip(expected)
    assert [_strip(m) for m in fan_out] == [_strip(expected)] * 2
    assert {b["endpoint"] for b in emulator.stats.batches} == {endpoint}
    assert emulator.stats.realtime_calls == 1


def test_two_claude_models_share_one_batch(batch_llm_emulator: Emulator) -> None:
    emulator = batch_llm_emulator
    with Scheduler(window=1.0, poll_interval=0.02, journal="off") as shared:
        haiku = BatchChatModel(anthropic_model(emulator), scheduler=shared)
        sonnet = BatchChatModel(
            anthropic_model(emulator, model="claude-sonnet-4-5"), scheduler=shared
        )

        async def fan_out() -> list[Any]:
            # A fan-out over both models: single calls from each, inside one window.
            return list(
                await asyncio.gather(
                    haiku.ainvoke("What is 1 + 1?"),
                    sonnet.ainvoke("What is 3 + 3?"),
                    haiku.ainvoke("What is 2 + 2?"),
                )
            )

        answers = asyncio.run(fan_out())
    assert [a.content for a in answers] == ["2", "6", "4"]
    assert emulator.stats.batches_created == 1
    assert sorted(emulator.stats.batches[0]["models"]) == ["claude-haiku-4-5", "claude-sonnet-4-5"]


def test_gemini_makes_one_batch_per_model(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    emulator = batch_llm_emulator
    flash = BatchChatModel(gemini_model(emulator), scheduler=fast_scheduler)
    pro = BatchChatModel(gemini_model(emulator, model="gemini-2.5-pro"), scheduler=fast_scheduler)
    assert [m.content for m in flash.batch(["What is 1 + 1?", "What is 2 + 2?"])] == ["2", "4"]
    assert pro.invoke("What is 3 + 3?").content == "6"
    assert sorted(b["models"][0] for b in emulator.stats.batches) == [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
    ]


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_per_line_error_is_the_realtime_error_in_its_own_slot(
    provider: str, batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    emulator = batch_llm_emulator
    realtime_model = PROVIDERS[provider][2]
    bad = "[[emulator:error 400 this prompt is refused]]"
    with pytest.raises(Exception) as realtime_error:
        realtime_model(emulator).invoke(bad)
    batched = BatchChatModel(realtime_model(emulator), scheduler=fast_scheduler)
    results = batched.batch(["What is 1 + 1?", bad, "What is 2 + 2?"], return_exceptions=True)
    assert type(results[1]) is type(realtime_error.value)
    assert "this prompt is refused" in str(results[1])
    assert [results[0].content, results[2].content] == ["2", "4"]


def test_anthropic_expired_and_canceled_lines_reach_only_their_callers(
    batch_llm_emulator: Emulator,
) -> None:
    emulator = batch_llm_emulator
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, journal="off", on_expiry="fail") as scheduler:
        batched = BatchChatModel(anthropic_model(emulator), scheduler=scheduler)
        results = batched.batch([f"What is {i} + 1?" for i in range(6)], return_exceptions=True)
    assert [isinstance(r, AIMessage) for r in results].count(True) == 3
    assert all(
        isinstance(r, batch_llm.BatchExpiredError) for r in results if not isinstance(r, AIMessage)
    )
    emulator.reset()
    emulator.knobs.cancel_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, journal="off") as scheduler:
        batched = BatchChatModel(anthropic_model(emulator), scheduler=scheduler)
        results = batched.batch([f"What is {i} + 2?" for i in range(6)], return_exceptions=True)
    assert [isinstance(r, AIMessage) for r in results].count(True) == 3
    assert all(
        isinstance(r, batch_llm.BatchCancelledError)
        for r in results
        if not isinstance(r, AIMessage)
    )


@pytest.mark.parametrize(
    ("spec", "module", "package"),
    [
        ("anthropic:claude-haiku-4-5", "langchain_anthropic", "langchain-anthropic"),
        ("google_genai:gemini-2.5-flash", "langchain_google_genai", "langchain-google-genai"),
    ],
)
def test_a_missing_provider_integration_is_named_with_its_package(
    spec: str, module: str, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=f"pip install {package}"):
        BatchChatModel(model=spec, api_key="k")
    # A model of another provider is still recognised and wrapped.
    assert BatchChatModel(model="openai:gpt-4o-mini", api_key="sk-test").codec is not None
