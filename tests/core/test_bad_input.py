"""Bad input fails at submit time, names the problem, and costs nobody else their answer."""

from __future__ import annotations

import datetime
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest
from helpers import CHAT, chat
from pydantic import BaseModel, Field

import batch_llm
from batch_llm import (
    AnthropicProvider,
    InvalidRequestError,
    OpenAIProvider,
    RequestTooLargeError,
    Scheduler,
    UnknownProviderError,
    UnsupportedEndpointError,
)
from batch_llm.emulator import Emulator


@pytest.fixture
def queued_neighbour(scheduler: Scheduler, openai_provider: OpenAIProvider) -> Any:
    """Another caller's request, waiting in the same queue when the bad input arrives."""
    return scheduler.submit(openai_provider, CHAT, chat("neighbour"))


def _assert_neighbour_unharmed(scheduler: Scheduler, neighbour: Any, emulator: Emulator) -> None:
    scheduler.flush()
    assert "neighbour" in neighbour.result(30)["choices"][0]["message"]["content"]
    assert emulator.stats.lines_submitted == 1


def test_body_that_is_not_json_serializable(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator, queued_neighbour: Any
) -> None:
    with pytest.raises(InvalidRequestError, match="not JSON-serializable"):
        scheduler.submit_many(openai_provider, CHAT, [chat("fine"), chat("bad", user=object())])
    assert emulator.stats.files_uploaded == 0
    _assert_neighbour_unharmed(scheduler, queued_neighbour, emulator)


def test_single_request_over_the_byte_limit(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator, queued_neighbour: Any
) -> None:
    huge = chat("huge", metadata={"pad": "x" * 200_000_000})
    with pytest.raises(RequestTooLargeError, match="at most 200,000,000"):
        scheduler.submit(openai_provider, CHAT, huge)
    del huge
    _assert_neighbour_unharmed(scheduler, queued_neighbour, emulator)


def test_unknown_provider(scheduler: Scheduler, emulator: Emulator, queued_neighbour: Any) -> None:
    with pytest.raises(UnknownProviderError, match=r"unknown provider 'openia'.*openai"):
        scheduler.submit("openia", CHAT, chat("typo"))
    _assert_neighbour_unharmed(scheduler, queued_neighbour, emulator)


def test_endpoint_the_provider_cannot_batch(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator, queued_neighbour: Any
) -> None:
    with pytest.raises(UnsupportedEndpointError, match="cannot batch '/v1/images/generations'"):
        scheduler.submit(
            openai_provider, "/v1/images/generations", {"model": "dall-e-3", "prompt": "x"}
        )
    _assert_neighbour_unharmed(scheduler, queued_neighbour, emulator)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "needs a 'model'"),
        (chat("s", stream=True), "stream=True cannot run in a batch"),
        (["not", "a", "mapping"], "must be a mapping"),
        (chat("nan", temperature=float("nan")), "not JSON-serializable"),
    ],
)
def test_other_bad_bodies_name_the_problem(
    scheduler: Scheduler,
    openai_provider: OpenAIProvider,
    emulator: Emulator,
    body: Any,
    message: str,
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        scheduler.submit(openai_provider, CHAT, body)
    assert emulator.stats.files_uploaded == 0


def test_return_exceptions_fails_only_the_bad_slot(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    futures = scheduler.submit_many(
        openai_provider,
        CHAT,
        [chat("a"), chat("b", user=object()), chat("c")],
        return_exceptions=True,
    )
    results = batch_llm.wait(futures, return_exceptions=True)
    assert isinstance(results[1], InvalidRequestError)
    assert "a" in results[0]["choices"][0]["message"]["content"]
    assert "c" in results[2]["choices"][0]["message"]["content"]
    assert emulator.stats.lines_submitted == 2


def test_error_names_which_request_of_a_fan_out_was_bad(
    scheduler: Scheduler, openai_provider: OpenAIProvider
) -> None:
    with pytest.raises(InvalidRequestError, match="request 2: "):
        scheduler.submit_many(openai_provider, CHAT, [chat("a"), chat("b"), {"messages": []}])


class Tag(BaseModel):
    name: str = Field(alias="tagName")
    when: datetime.date


def _wire(sent: list[bytes], client: Any = httpx.Client) -> Any:
    """An HTTP client (of the SDK's own HTTP library) that keeps every request body sent."""
    return client(event_hooks={"request": [lambda request: sent.append(request.read())]})


def test_values_the_openai_sdk_encodes_are_encoded_as_it_encodes_them(
    emulator: Emulator, openai_provider: OpenAIProvider
) -> None:
    """``datetime`` and pydantic models are not JSON, but the openai SDK's realtime call takes
    them: typed places go through its params transform (a model dumped by field name), the
    rest through its encoder (a model dumped by alias). A batch line holds what it sends."""
    when = datetime.datetime(2025, 3, 1, 9, 30, tzinfo=datetime.UTC)
    tag = Tag(tagName="blue", when=datetime.date(2025, 3, 1))
    sent: list[bytes] = []
    client = openai.OpenAI(
        base_url=emulator.openai_base_url, api_key="sk-test", http_client=_wire(sent)
    )
    typed = {"user": when, "prediction": tag}
    untyped = {"asked": {"when": when, "tag": tag}}
    client.chat.completions.create(**chat("hello"), **typed, extra_body=untyped)
    prepared = openai_provider.prepare(CHAT, {**chat("hello"), **typed, **untyped})
    assert json.loads(prepared.data) == json.loads(sent[0])
    assert json.loads(prepared.data)["asked"]["tag"] == {"tagName": "blue", "when": "2025-03-01"}
    assert json.loads(prepared.data)["prediction"] == {"name": "blue", "when": "2025-03-01"}
    with pytest.raises(TypeError):  # its encoder takes datetime, not date: neither do we
        client.chat.completions.create(**chat("hello"), user=datetime.date(2025, 3, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="date is not JSON serializable"):
        openai_provider.prepare(CHAT, chat("hello", user=datetime.date(2025, 3, 1)))


def test_values_the_anthropic_sdk_encodes_are_encoded_as_it_encodes_them(
    emulator: Emulator,
) -> None:
    """The anthropic SDK prepares any body: models by alias, dates, sets and tuples as lists."""
    provider = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-test")
    sent: list[bytes] = []
    client = anthropic.Anthropic(
        base_url=emulator.anthropic_base_url,
        api_key="sk-ant-test",
        http_client=_wire(sent, anthropic.DefaultHttpxClient),
    )
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hello"}],
        "metadata": {"user_id": datetime.date(2025, 3, 1)},
    }
    extra = {"tag": Tag(tagName="blue", when=datetime.date(2025, 3, 1)), "seen": ("a", "b")}
    client.messages.create(**body, extra_body=extra)
    prepared = provider.prepare("/v1/messages", {**body, **extra})
    assert json.loads(prepared.data) == json.loads(sent[0])
    assert json.loads(prepared.data)["metadata"] == {"user_id": "2025-03-01"}
