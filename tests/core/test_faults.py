"""Faults fail only the requests they touch, over real sockets.

- A body that cannot be encoded (a lone surrogate) is refused for that request alone.
"""

from __future__ import annotations

from typing import Any

import pytest

import batch_llm
from batch_llm import (
    AnthropicProvider,
    GeminiProvider,
    InvalidRequestError,
    OpenAIProvider,
    Scheduler,
)
from batch_llm.emulator import Emulator

CHAT = "/v1/chat/completions"
FLASH = "gemini-2.5-flash"


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def failed_at(results: list[Any]) -> list[int]:
    return [i for i, r in enumerate(results) if isinstance(r, BaseException)]


# --------------------------------------------------------------------------- unencodable input


def test_lone_surrogate_fails_only_its_request(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    bodies = [chat("fine"), chat("broken \ud800 text"), chat("also fine")]
    futures = scheduler.submit_many(openai_provider, CHAT, bodies, return_exceptions=True)
    results = batch_llm.wait(futures, return_exceptions=True, timeout=60)
    assert failed_at(results) == [1]
    assert isinstance(results[1], InvalidRequestError)
    assert "\\ud800" in str(results[1]) and "not valid Unicode" in str(results[1])
    assert emulator.stats.lines_submitted == 2

    with pytest.raises(InvalidRequestError, match=r"request 1: .*not valid Unicode"):
        scheduler.submit_many(openai_provider, CHAT, bodies)


@pytest.mark.parametrize("provider_name", ["anthropic", "gemini"])
def test_lone_surrogate_is_refused_by_every_adapter(emulator: Emulator, provider_name: str) -> None:
    provider: Any
    if provider_name == "anthropic":
        provider = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="a")
        endpoint, body = (
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "\udfff"}],
            },
        )
    else:
        provider = GeminiProvider(base_url=emulator.gemini_base_url, api_key="g")
        endpoint, body = "generateContent", {"model": FLASH, "contents": "x \ud83d y"}
    with pytest.raises(InvalidRequestError, match="not valid Unicode"):
        provider.prepare(endpoint, body)
