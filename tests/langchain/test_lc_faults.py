"""Faults that touch one input fail that input alone: a prompt holding a lone surrogate."""

from __future__ import annotations

import pytest

from batch_llm import InvalidRequestError, Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel


@pytest.mark.parametrize("provider", ["openai:gpt-4o", "anthropic:claude-haiku-4-5"])
def test_lone_surrogate_fails_only_its_input(
    lc_env: Emulator,
    batch_llm_anthropic_env: Emulator,
    fast_scheduler: Scheduler,
    provider: str,
) -> None:
    llm = BatchChatModel(model=provider, temperature=0, scheduler=fast_scheduler)
    results = llm.batch(
        ["What is 1 + 1?", "broken \ud800 prompt", "What is 2 + 2?"], return_exceptions=True
    )
    assert isinstance(results[1], InvalidRequestError)
    assert "not valid Unicode" in str(results[1])
    assert [results[0].content, results[2].content] == ["2", "4"]  # type: ignore[union-attr]
    assert lc_env.stats.lines_submitted == 2

    with pytest.raises(InvalidRequestError):
        llm.batch(["What is 1 + 1?", "broken \ud800 prompt"])
