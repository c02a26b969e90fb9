"""Drop-in gaps real frameworks hit: what works on the realtime chat model works batched.

- token counts are the wrapped model's (map_reduce summarize chains size their splits with
  them; LangChain's own fallback is GPT-2 through ``transformers``).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import tiktoken
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI

from batch_llm import Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel

QUESTION = "What is 17 + 25?"


def _batch_bodies(emulator: Emulator) -> list[dict[str, Any]]:
    """Every body of every OpenAI batch, as the emulator stored its input file."""
    client = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test")
    bodies = []
    for batch in client.batches.list():
        text = client.files.content(batch.input_file_id).text
        bodies += [json.loads(line)["body"] for line in text.splitlines() if line]
    return bodies


def _strip(message: Any) -> dict[str, Any]:
    """What a caller sees of a message, minus the batch id and per-run ids."""
    metadata = {k: v for k, v in message.response_metadata.items() if k != "batch_id"}
    return {
        "content": message.content,
        "tool_calls": message.tool_calls,
        "usage_metadata": message.usage_metadata,
        "response_metadata": metadata,
    }


@pytest.fixture
def captured() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def recording(captured: list[dict[str, Any]]) -> httpx.Client:
    """An HTTP client that records every JSON body a realtime ChatOpenAI sends."""

    def record(request: httpx.Request) -> None:
        captured.append(json.loads(request.content))

    return httpx.Client(event_hooks={"request": [record]})


def _openai(build: str, scheduler: Scheduler, **params: Any) -> BatchChatModel:
    if build == "kwargs":
        return BatchChatModel(model="openai:gpt-4o-mini", scheduler=scheduler, **params)
    return BatchChatModel(ChatOpenAI(model="gpt-4o-mini", **params), scheduler=scheduler)


def _realtime(provider: str, emulator: Emulator, **params: Any) -> Any:
    if provider == "anthropic":
        return ChatAnthropic(
            model="claude-haiku-4-5",
            api_key="sk-ant-test",
            base_url=emulator.anthropic_base_url,
            **params,
        )
    return ChatGoogleGenerativeAI(
        model="gemini-2.5-flash", api_key="g-test", base_url=emulator.gemini_base_url, **params
    )


def _batched(
    provider: str, build: str, emulator: Emulator, scheduler: Scheduler, **params: Any
) -> Any:
    if build == "wrapped":
        return BatchChatModel(_realtime(provider, emulator, **params), scheduler=scheduler)
    if provider == "anthropic":
        model, credentials = "anthropic:claude-haiku-4-5", ("sk-ant-test", "anthropic_base_url")
    else:
        model, credentials = "google_genai:gemini-2.5-flash", ("g-test", "gemini_base_url")
    return BatchChatModel(
        model=model,
        api_key=credentials[0],
        base_url=getattr(emulator, credentials[1]),
        scheduler=scheduler,
        **params,
    )


# -- token counts --------------------------------------------------------------------------


@pytest.fixture
def offline_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """ChatOpenAI counts with tiktoken, which downloads its ``o200k_base`` ranks from
    openaipublic.blob.core.windows.net on first use (the venv holds no cached copy), and this
    suite is offline. So a byte-level encoding (a real ``tiktoken.Encoding``) stands in under
    that name: ChatOpenAI's own counting code runs, and both sides count with the same one."""
    encoding = tiktoken.Encoding(
        name="o200k_base",
        pat_str=r"\s+|\S+",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={},
    )
    monkeypatch.setitem(tiktoken.registry.ENCODINGS, "o200k_base", encoding)


@pytest.mark.usefixtures("lc_env", "offline_tiktoken")
@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
def test_token_counts_are_chat_openai_s(build: str, fast_scheduler: Scheduler) -> None:
    realtime = ChatOpenAI(model="gpt-4o-mini")
    batched = _openai(build, fast_scheduler)
    text = "Summarise: the quick brown fox jumps over the lazy dog. " * 3
    messages = [SystemMessage("Be brief."), HumanMessage(text)]
    # What a map_reduce summarize chain asks (LangChain's fallback needs transformers).
    assert batched.get_num_tokens(text) == realtime.get_num_tokens(text) == len(text.encode())
    assert batched.get_token_ids(text) == realtime.get_token_ids(text)
    assert batched.get_num_tokens_from_messages(messages) == realtime.get_num_tokens_from_messages(
        messages
    )


def test_token_counts_are_anthropic_s_and_gemini_s(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    """Both count through their provider's count-tokens API, as realtime does (a free call)."""
    emulator = batch_llm_emulator
    messages = [SystemMessage("Be brief."), HumanMessage("How many tokens is this, roughly?")]
    expected = _realtime("anthropic", emulator).get_num_tokens_from_messages(messages)
    batched = _batched("anthropic", "wrapped", emulator, fast_scheduler)
    assert batched.get_num_tokens_from_messages(messages) == expected > 0
    text = "How many tokens is this, roughly?"
    expected = _realtime("gemini", emulator).get_num_tokens(text)
    batched = _batched("gemini", "kwargs", emulator, fast_scheduler)
    assert batched.get_num_tokens(text) == expected > 0
    assert emulator.stats.batches_created == 0


def test_a_tokenizer_given_to_the_batch_model_counts(
    lc_env: Emulator, fast_scheduler: Scheduler
) -> None:
    batched = BatchChatModel(
        ChatOpenAI(model="gpt-4o-mini"),
        custom_get_token_ids=lambda text: [len(word) for word in text.split()],
        scheduler=fast_scheduler,
    )
    assert batched.get_token_ids("one three") == [3, 5]
    assert batched.get_num_tokens("one three five") == 3
