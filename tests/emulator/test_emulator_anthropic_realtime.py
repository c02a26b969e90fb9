"""Anthropic's realtime Messages API through the official SDK: shapes, tools, errors, streaming."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import anthropic
import pytest

from batch_llm.emulator import Emulator

HAIKU = "claude-haiku-4-5"


def ask(client: anthropic.Anthropic, text: str, **params: Any) -> anthropic.types.Message:
    params.setdefault("max_tokens", 100)
    return client.messages.create(
        model=params.pop("model", HAIKU), messages=[{"role": "user", "content": text}], **params
    )


def raw(emu: Emulator, path: str, body: Any, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        emu.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, {**json.loads(response.read()), "_headers": response.headers}
    except urllib.error.HTTPError as exc:
        return exc.code, {**json.loads(exc.read()), "_headers": exc.headers}


WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
}


def test_message_shape(anthropic_client: anthropic.Anthropic, emu: Emulator) -> None:
    message = ask(anthropic_client, "what is 2+3?")
    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", HAIKU)
    assert [(b.type, b.text) for b in message.content] == [("text", "5")]  # type: ignore[union-attr]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (3, 1)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
    assert usage.cache_creation is not None
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert emu.stats.realtime_calls == 1
    # Same request, same answer: ids derive from the request.
    assert ask(anthropic_client, "what is 2+3?").id == message.id


def test_system_prompt_as_text_or_blocks(anthropic_client: anthropic.Anthropic) -> None:
    context = "Context: The Eiffel Tower is in Paris. The Colosseum is in Rome."
    as_text = ask(anthropic_client, "Question: where is the Colosseum?", system=context)
    as_blocks = ask(
        anthropic_client,
        "Question: where is the Colosseum?",
        system=[{"type": "text", "text": context}],
    )
    assert as_text.content[0].text == "The Colosseum is in Rome."  # type: ignore[union-attr]
    assert as_blocks.content == as_text.content


def test_max_tokens_and_stop_sequences(anthropic_client: anthropic.Anthropic) -> None:
    cut = ask(anthropic_client, "one two three four five", max_tokens=3)
    assert cut.stop_reason == "max_tokens"
    assert cut.content[0].text == f"{HAIKU} says: one"  # type: ignore[union-attr]
    stopped = ask(anthropic_client, "one two three", stop_sequences=["two", "says"])
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", "says")
    assert stopped.content[0].text == f"{HAIKU} "  # type: ignore[union-attr]


def test_tool_use_and_tool_result(anthropic_client: anthropic.Anthropic) -> None:
    message = ask(anthropic_client, "What is the weather in Paris?", tools=[WEATHER])
    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id.startswith("toolu_")
    assert (block.name, block.input) == ("get_weather", {"city": "Paris", "days": 1})

    follow_up = anthropic_client.messages.create(
        model=HAIKU,
        max_tokens=100,
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ],
    )
    assert follow_up.stop_reason == "end_turn"
    assert follow_up.content[0].text == "The tool returned: sunny"  # type: ignore[union-attr]


def test_tool_choice(anthropic_client: anthropic.Anthropic) -> None:
    other = {"name": "lookup", "description": "x", "input_schema": {"type": "object"}}
    forced = ask(
        anthropic_client,
        "hello",
        tools=[WEATHER, other],
        tool_choice={"type": "tool", "name": "lookup"},
    )
    assert [b.name for b in forced.content] == ["lookup"]  # type: ignore[union-attr]
    declined = ask(
        anthropic_client, "weather in Paris", tools=[WEATHER], tool_choice={"type": "none"}
    )
    assert declined.stop_reason == "end_turn"
    anything = ask(anthropic_client, "hello", tools=[WEATHER], tool_choice={"type": "any"})
    assert anything.stop_reason == "tool_use"


def test_structured_output(anthropic_client: anthropic.Anthropic) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    message = ask(
        anthropic_client,
        "Extract: Ada is 36",
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )
    assert json.loads(message.content[0].text) == {"name": "Ada", "age": 36}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_error_markers_answer_in_anthropic_shape(
    anthropic_client: anthropic.Anthropic,
    status: int,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error_class) as caught:
        ask(anthropic_client, f"[[emulator:error {status} the reason]]")
    assert caught.value.status_code == status
    assert caught.value.body == {
        "type": "error",
        "error": {"type": error_type, "message": "the reason"},
    }
    assert (caught.value.request_id or "").startswith("req_")


def test_request_validation(anthropic_client: anthropic.Anthropic) -> None:
    # The SDK insists on max_tokens itself, so the request goes up as the raw JSON it would be.
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Field required"):
        anthropic_client.post(
            "/v1/messages",
            body={"model": HAIKU, "messages": [{"role": "user", "content": "hi"}]},
            cast_to=anthropic.types.Message,
        )
    with pytest.raises(anthropic.BadRequestError, match="temperature"):
        ask(anthropic_client, "hi", extra_body={"temperature": 1.5})
    with pytest.raises(anthropic.BadRequestError, match="role"):
        anthropic_client.messages.create(
            model=HAIKU,
            max_tokens=5,
            messages=[{"role": "system", "content": "hi"}],  # type: ignore[typeddict-item]
        )
    with pytest.raises(anthropic.NotFoundError, match="unknown-model"):
        ask(anthropic_client, "hi", model="unknown-model")


def test_auth_accepts_x_api_key_or_bearer(emu: Emulator) -> None:
    body = {"model": HAIKU, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    version = {"anthropic-version": "2023-06-01"}
    status, answer = raw(emu, "/v1/messages", body, {"x-api-key": "old-sdk", **version})
    assert status == 200 and answer["type"] == "message"
    status, answer = raw(emu, "/v1/messages", body, {"Authorization": "Bearer k", **version})
    assert status == 200
    status, answer = raw(emu, "/v1/messages", body, version)
    assert status == 401
    assert answer["error"]["type"] == "authentication_error"
    assert answer["_headers"]["request-id"].startswith("req_")
    # A path nobody serves answers in the shape of the SDK that asked.
    status, answer = raw(emu, "/v1/nothing", body, {"x-api-key": "k", **version})
    assert (status, answer["type"]) == (404, "error")


def test_streaming_matches_the_plain_answer(anthropic_client: anthropic.Anthropic) -> None:
    plain = ask(anthropic_client, "hello stream please", tools=[WEATHER])
    with anthropic_client.messages.stream(
        model=HAIKU,
        max_tokens=100,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "hello stream please"}],
    ) as stream:
        texts = list(stream.text_stream)
        streamed = stream.get_final_message()
    assert "".join(texts) == plain.content[0].text  # type: ignore[union-attr]
    # The same message, id included (``stream`` does not change the answer).
    assert streamed.model_dump(exclude={"content"}) == plain.model_dump(exclude={"content"})
    assert [b.model_dump(exclude={"parsed_output"}) for b in streamed.content] == [
        b.model_dump() for b in plain.content
    ]

    tool_call = ask(anthropic_client, "weather in Oslo", tools=[WEATHER])
    with anthropic_client.messages.stream(
        model=HAIKU,
        max_tokens=100,
        tools=[WEATHER],
        messages=[{"role": "user", "content": "weather in Oslo"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == tool_call.content[0].input  # type: ignore[union-attr]


async def test_async_client_and_stream(anthropic_aclient: anthropic.AsyncAnthropic) -> None:
    # Not Haiku: small models get one arithmetic question in five wrong, 6*7 among them.
    sonnet = "claude-sonnet-4-6"
    message = await anthropic_aclient.messages.create(
        model=sonnet, max_tokens=50, messages=[{"role": "user", "content": "what is 6*7?"}]
    )
    assert message.content[0].text == "42"  # type: ignore[union-attr]
    async with anthropic_aclient.messages.stream(
        model=sonnet, max_tokens=50, messages=[{"role": "user", "content": "what is 6*7?"}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == "42"  # type: ignore[union-attr]


def test_count_tokens(anthropic_client: anthropic.Anthropic) -> None:
    counted = anthropic_client.messages.count_tokens(
        model=HAIKU, messages=[{"role": "user", "content": "three little words"}]
    )
    assert counted.input_tokens == 3
    assert ask(anthropic_client, "three little words").usage.input_tokens == 3


def test_env_fixture_configures_the_sdk(batch_llm_anthropic_env: Emulator) -> None:
    assert os.environ["ANTHROPIC_BASE_URL"] == batch_llm_anthropic_env.anthropic_base_url
    with anthropic.Anthropic(max_retries=0) as client:  # configured by the environment alone
        assert ask(client, "hi").content[0].text == f"{HAIKU} says: hi"  # type: ignore[union-attr]
    assert batch_llm_anthropic_env.stats.realtime_calls == 1
