"""Gemini's realtime API through google-genai: generateContent, tools, schemas, embeddings,
errors, and the ``/v1`` paths it shares with OpenAI."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from google import genai
from google.genai import errors, types

from batch_llm.emulator import Emulator

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"

WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather for a city",
            parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        )
    ]
)


def raw(
    emu: Emulator, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    request = urllib.request.Request(
        emu.url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_generate_content_shape(genai_client: genai.Client, emu: Emulator) -> None:
    response = genai_client.models.generate_content(model=PRO, contents="what is 2+3?")
    assert response.text == "5"
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP
    assert candidate.content.role == "model"  # type: ignore[union-attr]
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (
        3,
        1,
        4,
    )
    assert response.model_version == PRO
    assert response.response_id
    assert emu.stats.realtime_calls == 1


def test_count_tokens_counts_what_generate_content_counts(genai_client: genai.Client) -> None:
    counted = genai_client.models.count_tokens(model=PRO, contents="what is 2+3?")
    generated = genai_client.models.generate_content(model=PRO, contents="what is 2+3?")
    assert generated.usage_metadata is not None
    assert counted.total_tokens == generated.usage_metadata.prompt_token_count == 3


def test_system_instruction_history_and_limits(genai_client: genai.Client) -> None:
    context = "Context: The Eiffel Tower is in Paris. The Colosseum is in Rome."
    answer = genai_client.models.generate_content(
        model=PRO,
        contents=[
            types.Content(role="user", parts=[types.Part(text="hello")]),
            types.Content(role="model", parts=[types.Part(text="hi")]),
            types.Content(
                role="user", parts=[types.Part(text="Question: where is the Colosseum?")]
            ),
        ],
        config=types.GenerateContentConfig(system_instruction=context),
    )
    assert answer.text == "The Colosseum is in Rome."
    cut = genai_client.models.generate_content(
        model=FLASH, contents="one two three four", config={"max_output_tokens": 2}
    )
    assert cut.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]
    assert cut.text == f"{FLASH} says:"
    several = genai_client.models.generate_content(
        model=FLASH, contents="hi", config={"candidate_count": 2, "stop_sequences": ["says"]}
    )
    assert [c.index for c in several.candidates or []] == [0, 1]
    assert several.text == f"{FLASH} "


def test_function_calling(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(tools=[WEATHER])
    response = genai_client.models.generate_content(
        model=FLASH, contents="What is the weather in Paris?", config=config
    )
    (call,) = response.function_calls or []
    assert (call.name, call.args) == ("get_weather", {"city": "Paris"})
    follow_up = genai_client.models.generate_content(
        model=FLASH,
        contents=[
            types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")]),
            types.Content(role="model", parts=[types.Part(function_call=call)]),
            types.Content(
                role="user",
                parts=[
                    types.Part.from_function_response(name="get_weather", response={"t": "sunny"})
                ],
            ),
        ],
        config=config,
    )
    assert follow_up.text == 'The tool returned: {"t": "sunny"}'
    forced = genai_client.models.generate_content(
        model=FLASH,
        contents="hello",
        config=types.GenerateContentConfig(
            tools=[WEATHER],
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=["get_weather"]
                )
            ),
        ),
    )
    assert [c.name for c in forced.function_calls or []] == ["get_weather"]
    declined = genai_client.models.generate_content(
        model=FLASH,
        contents="weather in Paris",
        config=types.GenerateContentConfig(
            tools=[WEATHER],
            tool_config=types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode="NONE")
            ),
        ),
    )
    assert declined.function_calls is None


def test_structured_output(genai_client: genai.Client) -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"}},
    }
    openapi = genai_client.models.generate_content(
        model=FLASH,
        contents="Extract: Ada is 36",
        config={"response_mime_type": "application/json", "response_schema": schema},
    )
    assert openapi.parsed == {"name": "Ada", "age": 36}
    json_schema = genai_client.models.generate_content(
        model=FLASH,
        contents="Extract: Ada is 36",
        config={
            "response_mime_type": "application/json",
            "response_json_schema": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            },
        },
    )
    assert json.loads(json_schema.text or "") == {"name": "Ada", "age": 36}
    free_json = genai_client.models.generate_content(
        model=FLASH, contents="hi", config={"response_mime_type": "application/json"}
    )
    assert json.loads(free_json.text or "") == {"answer": f"{FLASH} says: hi"}


@pytest.mark.parametrize(
    ("status", "error_class", "status_name"),
    [
        (400, errors.ClientError, "INVALID_ARGUMENT"),
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
    ],
)
def test_error_markers(
    genai_client: genai.Client, status: int, error_class: type[errors.APIError], status_name: str
) -> None:
    with pytest.raises(error_class) as caught:
        genai_client.models.generate_content(
            model=FLASH, contents=f"[[emulator:error {status} the reason]]"
        )
    assert (caught.value.code, caught.value.status, caught.value.message) == (
        status,
        status_name,
        "the reason",
    )


def test_request_errors(genai_client: genai.Client, emu: Emulator) -> None:
    with pytest.raises(errors.ClientError) as caught:
        genai_client.models.generate_content(model="unknown-model", contents="hi")
    assert caught.value.code == 404
    with pytest.raises(errors.ClientError, match="temperature"):
        genai_client.models.generate_content(model=FLASH, contents="hi", config={"temperature": 3})
    status, body = raw(emu, "POST", f"/v1beta/models/{FLASH}:generateContent", {"contents": []})
    assert (status, body["error"]["status"]) == (403, "PERMISSION_DENIED")  # no key
    status, body = raw(
        emu, "POST", f"/v1beta/models/{FLASH}:generateContent?key=k", {"contents": []}
    )
    assert status == 400 and "contents is not specified" in body["error"]["message"]


def test_embeddings(genai_client: genai.Client, emu: Emulator) -> None:
    model = "gemini-embedding-001"
    response = genai_client.models.embed_content(
        model=model, contents=["the cat sat", "the cats sat", "stock prices fell"]
    )
    vectors = [e.values or [] for e in response.embeddings or []]
    assert [len(v) for v in vectors] == [3072] * 3

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    small = genai_client.models.embed_content(
        model=model, contents="the cat sat", config={"output_dimensionality": 8}
    )
    assert len(small.embeddings[0].values or []) == 8  # type: ignore[index]
    status, single = raw(
        emu,
        "POST",
        f"/v1beta/models/{model}:embedContent",
        {"content": {"parts": [{"text": "the cat sat"}]}, "outputDimensionality": 8},
        {"x-goog-api-key": "k"},
    )
    assert status == 200
    assert single["embedding"]["values"] == small.embeddings[0].values  # type: ignore[index]
    with pytest.raises(errors.ClientError, match="bad text"):
        genai_client.models.embed_content(model=model, contents="[[emulator:error 400 bad text]]")


def test_streaming_and_async(genai_client: genai.Client) -> None:
    chunks = list(genai_client.models.generate_content_stream(model=PRO, contents="what is 1+1?"))
    assert "".join(c.text or "" for c in chunks) == "2"


# google-genai's own aiohttp session class trips aiohttp's subclassing warning.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_async_client(emu: Emulator) -> None:
    client = genai.Client(api_key="k", http_options={"base_url": emu.gemini_base_url})
    response = await client.aio.models.generate_content(model=PRO, contents="what is 7*6?")
    assert response.text == "42"
    await client.aio.aclose()


def test_v1_paths_are_shared_with_openai(emu: Emulator, client: openai.OpenAI) -> None:
    # google-genai 3.x calls /v1: the same paths as OpenAI's, told apart by the key header.
    v1 = genai.Client(
        api_key="k", http_options={"base_url": emu.gemini_base_url, "api_version": "v1"}
    )
    assert v1.models.generate_content(model=PRO, contents="what is 2+2?").text == "4"
    with pytest.raises(errors.ClientError) as caught:
        v1.batches.get(name="batches/nope")
    assert caught.value.code == 404
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")
    assert list(client.batches.list()) == []
    v1.close()


def test_env_fixture_configures_the_sdk(batch_llm_gemini_env: Emulator) -> None:
    assert os.environ["GOOGLE_GEMINI_BASE_URL"] == batch_llm_gemini_env.gemini_base_url
    client = genai.Client()  # configured by the environment alone
    assert client.models.generate_content(model=FLASH, contents="hi").text == f"{FLASH} says: hi"
    client.close()


def test_model_lookup_gives_token_limits(batch_llm_emulator: Any) -> None:
    from google import genai

    client = genai.Client(
        api_key="g-test", http_options={"base_url": batch_llm_emulator.gemini_base_url}
    )
    model = client.models.get(model="gemini-2.5-flash")
    assert model.name == "models/gemini-2.5-flash"
    assert model.input_token_limit == 1_048_576
    assert model.output_token_limit == 65_536
