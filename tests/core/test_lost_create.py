"""A create whose reply is lost is paid once: the SDK does not retry it blindly, and every retry
of ours first looks for the batch through the provider's list API.

The adapters are built with the SDKs' default retries (openai and anthropic retry twice on a
dropped connection), which is what paid twice before.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import CHAT, MESSAGES, chat, claude

import batch_llm
from batch_llm import AnthropicProvider, GeminiProvider, OpenAIProvider, Provider, Scheduler
from batch_llm._retry import RetryPolicy
from batch_llm.emulator import Emulator


def gemini_request(i: int) -> dict[str, Any]:
    return {
        "model": "gemini-2.5-flash",
        "contents": [{"role": "user", "parts": [{"text": f"What is {i} + 1?"}]}],
    }


CASES = {
    "openai": (lambda emu: OpenAIProvider(base_url=emu.openai_base_url, api_key="k"), CHAT, chat),
    "anthropic": (
        lambda emu: AnthropicProvider(base_url=emu.anthropic_base_url, api_key="k"),
        MESSAGES,
        claude,
    ),
    "gemini": (
        lambda emu: GeminiProvider(base_url=emu.gemini_base_url, api_key="k"),
        "generateContent",
        gemini_request,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_lost_create_reply_makes_one_batch(emulator: Emulator, name: str) -> None:
    make, endpoint, body = CASES[name]
    provider: Provider = make(emulator)
    emulator.knobs.lose_create_reply = 1
    retry = RetryPolicy(attempts=4, initial=0.01, cap=0.05)
    with Scheduler(journal="off", poll_interval=0.02, poll_max=0.1, retry=retry) as sched:
        answers = batch_llm.wait(
            sched.submit_many(provider, endpoint, [body(i) for i in range(20)]), timeout=60
        )
    assert len(answers) == 20
    stats = emulator.stats
    assert stats.create_replies_lost == 1  # the fault happened...
    assert stats.batches_created == 1  # ...and was paid once
    assert stats.lines_submitted == 20
