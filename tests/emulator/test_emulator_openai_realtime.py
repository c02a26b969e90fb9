"""Realtime chat completions, embeddings, responses and completions through the official SDK."""

from __future__ import annotations

import array
import base64
import http.client
import json
import math
import urllib.error
import urllib.request
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
import pytest
from emulator_helpers import run_batch
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion
from openai.types.responses import Response as ResponsesResponse
from pydantic import BaseModel

from batch_llm.emulator import Emulator

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "unit"],
        },
    },
}
STOCK_TOOL = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "description": "Look up a share price",
        "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}},
    },
}


def ask(
    client: openai.OpenAI, content: Any, model: str = "gpt-4o", **kwargs: Any
) -> ChatCompletion:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **kwargs
    )


# --------------------------------------------------------------------------- chat: answers


def test_echo_answer_and_usage(client: openai.OpenAI, emu: Emulator) -> None:
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Tell me a story"},
        ],
    )
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o"
    choice = completion.choices[0]
    assert choice.message.content == "gpt-4o says: Tell me a story"
    assert choice.finish_reason == "stop"
    assert choice.message.tool_calls is None
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 6  # "Be brief." + "Tell me a story"
    assert completion.usage.completion_tokens == 6
    assert completion.usage.total_tokens == 12
    assert completion.system_fingerprint == "fp_emulator"
    assert emu.stats.realtime_calls == 1


def test_same_request_same_answer(client: openai.OpenAI) -> None:
    first = ask(client, "Hello")
    again = ask(client, "Hello")
    other = ask(client, "Hello!")
    assert first.model_dump() == again.model_dump()
    assert first.id != other.id


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is 17 + 25?", "42"),
        ("what is 6*7", "42"),
        ("Calculate (2 + 3) * 4.", "20"),
        ("7 / 2", "3.5"),
        ("What is 10 - 15?", "-5"),
        ("What is 1 / 0?", "undefined"),
    ],
)
def test_arithmetic(client: openai.OpenAI, question: str, answer: str) -> None:
    assert ask(client, question).choices[0].message.content == answer


def test_small_models_get_some_arithmetic_wrong(client: openai.OpenAI) -> None:
    questions = [f"What is {a} + {a * 3}?" for a in range(1, 41)]
    right = [str(a + a * 3) for a in range(1, 41)]
    big = [ask(client, q, "gpt-4o").choices[0].message.content for q in questions]
    small = [ask(client, q, "gpt-4o-mini").choices[0].message.content for q in questions]
    assert big == right
    wrong = sum(s != r for s, r in zip(small, right, strict=True))
    assert 2 <= wrong <= 18, wrong


def test_rag_answers_with_the_best_context_sentence(client: openai.OpenAI) -> None:
    context = (
        "Context information is below.\n---------------------\n"
        "The Eiffel Tower is in Paris. Mount Fuji is the tallest mountain in Japan. "
        "The Nile flows through Egypt.\n---------------------\n"
        "Given the context information and not prior knowledge, answer the query.\n"
        "Query: Which is the tallest mountain in Japan?\nAnswer: "
    )
    answer = ask(client, context).choices[0].message.content
    assert answer == "Mount Fuji is the tallest mountain in Japan."

    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {
                "role": "system",
                "content": "Answer using this context: Bananas are yellow. Grass is green.",
            },
            {"role": "user", "content": "What colour is grass?"},
        ],
    )
    assert completion.choices[0].message.content == "Grass is green."


def test_images_are_accepted(client: openai.OpenAI) -> None:
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    assert ask(client, content).choices[0].message.content == "gpt-4o says: Describe\n[image]"


def test_max_tokens_stop_and_n(client: openai.OpenAI) -> None:
    cut = ask(client, "one two three four five", max_tokens=3)
    assert cut.choices[0].message.content == "gpt-4o says: one"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage.completion_tokens == 3  # type: ignore[union-attr]
    fits = ask(client, "hi", max_completion_tokens=10)
    assert fits.choices[0].finish_reason == "stop"

    stopped = ask(client, "alpha beta gamma", stop=[" gamma", "zzz"])
    assert stopped.choices[0].message.content == "gpt-4o says: alpha beta"
    assert stopped.choices[0].finish_reason == "stop"

    many = ask(client, "hi", n=3)
    assert [c.index for c in many.choices] == [0, 1, 2]
    assert len({c.message.content for c in many.choices}) == 1
    assert many.usage.completion_tokens == 9  # type: ignore[union-attr]


# --------------------------------------------------------------------------- chat: tools, JSON


def test_tool_call_with_schema_valid_arguments(client: openai.OpenAI) -> None:
    completion = ask(
        client, "What's the weather in Paris for 3 days?", tools=[STOCK_TOOL, WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius", "days": 3}


@pytest.mark.parametrize(
    ("tool_choice", "expected"),
    [
        ("auto", None),
        ("none", None),
        ("required", "get_stock_price"),
        ({"type": "function", "function": {"name": "get_weather"}}, "get_weather"),
    ],
)
def test_tool_choice(client: openai.OpenAI, tool_choice: Any, expected: str | None) -> None:
    completion = ask(
        client, "Say something nice", tools=[STOCK_TOOL, WEATHER_TOOL], tool_choice=tool_choice
    )
    calls = completion.choices[0].message.tool_calls
    assert (calls[0].function.name if calls else None) == expected


def test_tool_result_is_reported(client: openai.OpenAI) -> None:
    first = ask(client, "Weather in Oslo?", tools=[WEATHER_TOOL])
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    completion = client.chat.completions.create(
        model="gpt-4o",
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        ],
    )
    assert completion.choices[0].message.content == "The tool returned: 18C and sunny"
    assert completion.choices[0].finish_reason == "stop"


def test_tool_message_without_a_call_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_x", "content": "orphan"},
            ],
        )


class Address(BaseModel):
    city: str
    zip_code: str


class Person(BaseModel):
    name: str
    age: int
    role: Literal["admin", "user"]
    tags: list[str]
    address: Address
    nickname: str | None = None


def test_json_schema_structured_output(client: openai.OpenAI) -> None:
    parsed = client.chat.completions.parse(
        model="gpt-4o",
        messages=[{"role": "user", "content": "Extract: Alice Smith is 31 and lives in Berlin"}],
        response_format=Person,
    )
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person)
    assert person.age == 31
    assert person.role == "admin"
    assert len(person.tags) == 1
    assert person.name in ("Alice", "Smith", "Berlin")


def test_json_object_mode(client: openai.OpenAI) -> None:
    completion = ask(client, "What is 2 + 2?", response_format={"type": "json_object"})
    assert json.loads(completion.choices[0].message.content or "") == {"answer": "4"}


# --------------------------------------------------------------------------- chat: errors


@pytest.mark.parametrize(
    ("marker", "error", "message"),
    [
        ("[[emulator:error 400]]", openai.BadRequestError, "Emulated error 400."),
        ("[[emulator:error 429 slow down]]", openai.RateLimitError, "slow down"),
        ("[[emulator:error 500 boom]]", openai.InternalServerError, "boom"),
        ("[[emulator:error 403 nope]]", openai.PermissionDeniedError, "nope"),
    ],
)
def test_error_markers(
    client: openai.OpenAI, marker: str, error: type[openai.APIStatusError], message: str
) -> None:
    with pytest.raises(error) as caught:
        ask(client, f"Please fail {marker} now")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["message"] == message
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    if error is openai.RateLimitError:
        assert caught.value.response.headers["retry-after"] == "0"
        assert caught.value.response.headers["retry-after-ms"] == "1"
        assert body["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("kwargs", "error", "param", "message"),
    [
        (
            {"messages": [{"role": "user", "content": "x"}]},
            openai.BadRequestError,
            None,
            "you must provide a model parameter",
        ),
        (
            {"model": "gpt-4o"},
            openai.BadRequestError,
            "messages",
            "Missing required parameter: 'messages'.",
        ),
        ({"model": "gpt-4o", "messages": []}, openai.BadRequestError, "messages", "empty array"),
        (
            {"model": "unknown-model", "messages": [{"role": "user", "content": "x"}]},
            openai.NotFoundError,
            None,
            "does not exist",
        ),
        (
            {"model": "gpt-4o", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]},
            openai.BadRequestError,
            "max_tokens",
            "Expected a value >= 1",
        ),
        (
            {"model": "gpt-4o", "temperature": 3, "messages": [{"role": "user", "content": "x"}]},
            openai.BadRequestError,
            "temperature",
            "<= 2",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]},
            openai.BadRequestError,
            "messages[0].role",
            "Invalid value: 'robot'",
        ),
    ],
)
def test_validation_errors(
    emu: Emulator,
    kwargs: dict[str, Any],
    error: type[openai.APIStatusError],
    param: str | None,
    message: str,
) -> None:
    # A bare post sends bodies the typed create() would not allow.
    with (
        openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as raw,
        pytest.raises(error) as caught,
    ):
        raw.post("/chat/completions", body=kwargs, cast_to=ChatCompletion)
    assert caught.value.param == param
    assert message in caught.value.message
    if error is openai.NotFoundError:
        assert caught.value.code == "model_not_found"


def test_missing_api_key_is_401(emu: Emulator) -> None:
    request = urllib.request.Request(emu.openai_base_url + "/models")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 401
    assert caught.value.headers["x-request-id"].startswith("req_")
    body = json.loads(caught.value.read())
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_unknown_route_is_404_in_openai_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/nothing/here", cast_to=object)
    assert caught.value.type == "invalid_request_error"


# --------------------------------------------------------------------------- chat: streaming


def test_streaming_matches_the_non_streamed_answer(client: openai.OpenAI) -> None:
    whole = ask(client, "stream these five words please")
    chunks = list(
        ask(
            client,
            "stream these five words please",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens  # type: ignore[union-attr]
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_tool_calls(client: openai.OpenAI) -> None:
    chunks = list(ask(client, "weather in Rome", tools=[WEATHER_TOOL], stream=True))
    name = "".join(
        tc.function.name or ""
        for c in chunks
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    arguments = "".join(
        tc.function.arguments or ""
        for c in chunks
        for tc in c.choices[0].delta.tool_calls or []
        if tc.function
    )
    assert name == "get_weather"
    assert json.loads(arguments)["city"] == "Rome"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks)


def test_streaming_errors_are_plain_http_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        ask(client, "[[emulator:error 429]]", stream=True)


async def test_async_chat_and_stream(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "What is 3 * 3?"}]
    )
    assert completion.choices[0].message.content == "9"
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == "gpt-4o says: a b c"


# --------------------------------------------------------------------------- embeddings


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


def test_embeddings_base64_equals_float(client: openai.OpenAI, loose_client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat.", "Quarterly revenue grew."]
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = loose_client.embeddings.create(model="text-embedding-3-small", input=texts)
    as_float = client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    as_base64 = loose_client.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="base64"
    )
    assert [d.embedding for d in default.data] == [d.embedding for d in as_float.data]
    # Asked for explicitly, base64 comes back undecoded: little-endian float32.
    decoded = [
        array.array("f", base64.b64decode(d.embedding)).tolist()  # type: ignore[arg-type]
        for d in as_base64.data
    ]
    assert decoded == [d.embedding for d in as_float.data]
    assert [d.index for d in as_float.data] == [0, 1]
    assert len(as_float.data[0].embedding) == 1536
    assert math.isclose(sum(x * x for x in as_float.data[0].embedding), 1.0, rel_tol=1e-5)
    assert as_float.usage.prompt_tokens == 9
    assert as_float.usage.total_tokens == 9


def test_embeddings_are_meaningful(client: openai.OpenAI) -> None:
    texts = ["The cat sat on the mat", "A cat was sitting on the mat", "Stock markets fell sharply"]
    vectors = [
        d.embedding
        for d in client.embeddings.create(
            model="text-embedding-3-small", input=texts, encoding_format="float"
        ).data
    ]
    assert cosine(vectors[0], vectors[1]) > 0.4
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3


def test_embedding_dimensions_and_inputs(loose_client: openai.OpenAI) -> None:
    client = loose_client
    large = client.embeddings.create(model="text-embedding-3-large", input="x")
    assert len(large.data[0].embedding) == 3072
    short = client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=256)
    assert len(short.data[0].embedding) == 256
    tokens = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3], [4]])
    assert len(tokens.data) == 2
    assert tokens.usage.prompt_tokens == 4
    single = client.embeddings.create(model="text-embedding-3-small", input=[5, 6, 7])
    assert len(single.data) == 1
    with pytest.raises(openai.BadRequestError, match="is invalid"):
        client.embeddings.create(model="text-embedding-3-small", input="")
    with pytest.raises(openai.BadRequestError, match="is invalid"):
        client.embeddings.create(model="text-embedding-3-small", input=["ok", ""])
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=5000)
    assert caught.value.param == "dimensions"
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="[[emulator:error 429]]")


async def test_async_embeddings(aclient: openai.AsyncOpenAI) -> None:
    result = await aclient.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert isinstance(result, CreateEmbeddingResponse)
    assert len(result.data) == 2


# --------------------------------------------------------------------------- responses


def test_responses_text(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4.1", input="What is 5 * 5?", instructions="Answer with a number."
    )
    assert isinstance(response, ResponsesResponse)
    assert response.id.startswith("resp_")
    assert response.status == "completed"
    assert response.output_text == "25"
    assert response.output[0].type == "message"
    assert response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + 1
    assert response.instructions == "Answer with a number."


def test_responses_message_list_and_truncation(client: openai.OpenAI) -> None:
    response = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "developer", "content": "be nice"},
            {"role": "user", "content": [{"type": "input_text", "text": " ".join(["w"] * 40)}]},
        ],
        max_output_tokens=16,
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert len(response.output_text.split()) == 16
    with pytest.raises(openai.BadRequestError, match=">= 16"):
        client.responses.create(model="gpt-4.1", input="hi", max_output_tokens=5)


def test_responses_tools_round_trip(client: openai.OpenAI) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    }
    first = client.responses.create(model="gpt-4.1", input="Weather in Lima?", tools=[tool])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Lima"}
    assert first.output_text == ""
    second = client.responses.create(
        model="gpt-4.1",
        tools=[tool],
        input=[  # type: ignore[list-item]
            {"role": "user", "content": "Weather in Lima?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "21C"},
        ],
    )
    assert second.output_text == "The tool returned: 21C"


def test_responses_structured_output(client: openai.OpenAI) -> None:
    parsed = client.responses.parse(
        model="gpt-4.1", input="Bob is 40 and lives in Oslo", text_format=Person
    )
    assert isinstance(parsed.output_parsed, Person)
    assert parsed.output_parsed.age == 40


def test_legacy_completions(client: openai.OpenAI) -> None:
    completion = client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["What is 1 + 1?", "hi"]
    )
    assert [c.text for c in completion.choices] == ["2", "gpt-3.5-turbo-instruct says: hi"]
    assert [c.index for c in completion.choices] == [0, 1]


# --------------------------------------------------------------------------- realtime == batch

BODIES: list[tuple[str, dict[str, Any]]] = [
    (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What is 12 * 12?"}]},
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "tools": [WEATHER_TOOL],
            "messages": [{"role": "user", "content": "weather in Cairo"}],
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "max_tokens": 2,
            "n": 2,
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": "a b c d"},
            ],
        },
    ),
    (
        "/v1/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "[[emulator:error 422 bad input]]"}],
        },
    ),
    (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "max_tokens": -1, "messages": [{"role": "user", "content": "x"}]},
    ),
    (
        "/v1/chat/completions",
        {"model": "unknown-thing", "messages": [{"role": "user", "content": "x"}]},
    ),
    (
        "/v1/embeddings",
        {
            "model": "text-embedding-3-small",
            "input": ["x y", "z"],
            "encoding_format": "base64",
            "dimensions": 64,
        },
    ),
    (
        "/v1/embeddings",
        {
            "model": "text-embedding-3-small",
            "input": "x y",
            "encoding_format": "float",
            "dimensions": 16,
        },
    ),
    ("/v1/embeddings", {"model": "text-embedding-3-small", "input": ""}),
    ("/v1/responses", {"model": "gpt-4.1", "input": "hello there", "instructions": "hi"}),
]


@pytest.mark.parametrize(("endpoint", "body"), BODIES)
def test_realtime_and_batch_bodies_are_byte_identical(
    client: openai.OpenAI, emu: Emulator, endpoint: str, body: dict[str, Any]
) -> None:
    # Raw HTTP, so the test sees the exact bytes (and the request is pretty-printed on purpose).
    url = urlsplit(emu.url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.request(
        "POST",
        endpoint,
        body=json.dumps(body, indent=2),
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    status, raw = response.status, response.read()
    conn.close()

    # Key order and spacing of the JSONL line differ from the realtime request on purpose.
    line = {
        "custom_id": "only",
        "method": "POST",
        "url": endpoint,
        "body": dict(reversed(list(body.items()))),
    }
    batch, output, errors = run_batch(client, [line], endpoint)
    assert batch.status == "completed"
    (row,) = output + errors
    assert row["response"]["status_code"] == status
    assert row["response"]["body"] == json.loads(raw)
    file_id = batch.output_file_id if status == 200 else batch.error_file_id
    assert b'"body":' + raw + b"}" in client.files.content(file_id).content
    if endpoint == "/v1/chat/completions" and status == 200:
        ChatCompletion.model_validate_json(raw, strict=False)
    if endpoint == "/v1/responses":
        assert ResponsesResponse.model_validate_json(raw).output_text == "gpt-4.1 says: hello there"
