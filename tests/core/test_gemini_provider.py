"""The Gemini adapter through the scheduler: google-genai inside, the emulator behind it."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

import batch_llm
from batch_llm import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    GeminiProvider,
    InvalidRequestError,
    Scheduler,
    UnsupportedEndpointError,
    resolve_provider,
)
from batch_llm.emulator import Emulator
from batch_llm.providers import _gemini

FLASH = "gemini-2.5-flash"
PRO = "gemini-2.5-pro"
EMBEDDER = "gemini-embedding-001"


@pytest.fixture
def provider(emulator: Emulator) -> GeminiProvider:
    return GeminiProvider(base_url=emulator.gemini_base_url, api_key="g-test", max_retries=0)


@pytest.fixture
def genai_client(emulator: Emulator) -> Any:
    client = genai.Client(api_key="k", http_options={"base_url": emulator.gemini_base_url})
    yield client
    client.close()


def request(text: str, model: str = FLASH, **config: Any) -> dict[str, Any]:
    """What LangChain's ChatGoogleGenerativeAI._prepare_request hands generate_content."""
    return {
        "model": model,
        "contents": [types.Content(role="user", parts=[types.Part(text=text)])],
        "config": types.GenerateContentConfig(**config),
    }


def text_of(body: dict[str, Any]) -> str:
    return str(body["candidates"][0]["content"]["parts"][0]["text"])


def run(
    scheduler: Scheduler,
    provider: GeminiProvider,
    bodies: list[Any],
    endpoint: str = "generateContent",
) -> list[Any]:
    futures = scheduler.submit_many(provider, endpoint, bodies)
    return batch_llm.wait(futures, return_exceptions=True, timeout=30)


def test_one_batch_per_model(
    scheduler: Scheduler, provider: GeminiProvider, emulator: Emulator
) -> None:
    bodies = [request(f"tag-{i}", FLASH if i % 2 else PRO) for i in range(30)]
    results = run(scheduler, provider, bodies)
    assert [text_of(r) for r in results] == [
        f"{FLASH if i % 2 else PRO} says: tag-{i}" for i in range(30)
    ]
    assert emulator.stats.batches_created == 2
    assert sorted(b["models"][0] for b in emulator.stats.batches) == [FLASH, PRO]
    assert sorted(r.key for r in scheduler.batches) == [
        ("generateContent", f"models/{FLASH}"),
        ("generateContent", f"models/{PRO}"),
    ]
    assert all(r.outcome == "completed" for r in scheduler.batches)
    assert emulator.stats.files_uploaded == 0  # small batches go inline


def test_batched_response_equals_the_realtime_one(
    scheduler: Scheduler, provider: GeminiProvider, genai_client: genai.Client
) -> None:
    weather = types.Tool(
        function_declarations=[
            types.FunctionDeclaration(
                name="get_weather",
                description="weather",
                parameters={"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
            )
        ]
    )
    bodies = [
        request("Tell me about Paris", temperature=0.2, system_instruction="Be brief."),
        request("weather in Paris", tools=[weather]),
        request(
            "Extract: Ada is 36",
            response_mime_type="application/json",
            response_schema={"type": "OBJECT", "properties": {"age": {"type": "INTEGER"}}},
        ),
        request("one two three four", max_output_tokens=2, http_options={"timeout": 5000}),
    ]
    batched = run(scheduler, provider, bodies)
    for body, result in zip(bodies, batched, strict=True):
        config = body["config"].model_copy(update={"should_return_http_response": True})
        realtime = genai_client.models.generate_content(
            model=body["model"], contents=body["contents"], config=config
        )
        assert result == json.loads(realtime.sdk_http_response.body)  # type: ignore[union-attr, arg-type]
    # A wrapper turns the JSON into the SDK's response object as the SDK does for realtime.
    parsed = types.GenerateContentResponse._from_response(
        response=_gemini_models()._GenerateContentResponse_from_mldev(batched[1]), kwargs={}
    )
    assert [(c.name, c.args) for c in parsed.function_calls or []] == [
        ("get_weather", {"city": "Paris"})
    ]
    assert batched[3]["candidates"][0]["finishReason"] == "MAX_TOKENS"


def _gemini_models() -> Any:
    from google.genai import models

    return models


def test_line_errors_reach_only_their_caller(
    scheduler: Scheduler, provider: GeminiProvider, genai_client: genai.Client
) -> None:
    bodies = [request(f"ok-{i}") for i in range(5)]
    bodies[1] = request("[[emulator:error 400 not allowed here]]")
    bodies[3] = request("[[emulator:error 503 come back later]]")
    bodies[4] = request("[[emulator:error 429 quota]]")
    results = run(scheduler, provider, bodies)
    assert [type(r) for r in results] == [
        dict,
        errors.ClientError,
        dict,
        errors.ServerError,
        errors.ClientError,
    ]
    assert [(r.code, r.status, r.message) for r in results if isinstance(r, errors.APIError)] == [
        (400, "INVALID_ARGUMENT", "not allowed here"),
        (503, "UNAVAILABLE", "come back later"),
        (429, "RESOURCE_EXHAUSTED", "quota"),
    ]
    with pytest.raises(errors.ClientError) as realtime:
        genai_client.models.generate_content(
            model=FLASH, contents=bodies[1]["contents"], config=bodies[1]["config"]
        )
    assert str(realtime.value) == str(results[1])


def test_inline_and_file_submissions(scheduler: Scheduler, emulator: Emulator) -> None:
    inline = GeminiProvider(base_url=emulator.gemini_base_url, api_key="g", max_retries=0)
    filed = GeminiProvider(
        base_url=emulator.gemini_base_url, api_key="g", max_retries=0, inline_limit=1_000
    )
    bodies = [request(f"n-{i}") for i in range(20)]
    by_inline = run(scheduler, inline, bodies)
    assert emulator.stats.files_uploaded == 0
    by_file = run(scheduler, filed, bodies)
    assert emulator.stats.files_uploaded == 1
    assert by_file == by_inline
    assert [text_of(r) for r in by_file] == [f"{FLASH} says: n-{i}" for i in range(20)]


def test_results_come_in_input_order(provider: GeminiProvider, emulator: Emulator) -> None:
    emulator.knobs.reverse_output = True  # ignored by Gemini: results keep input order

    async def scenario(limit: int) -> list[str]:
        provider.inline_limit = limit
        lines = [provider.prepare("generateContent", request(f"o-{i}")) for i in range(12)]
        for i, line in enumerate(lines):
            line.custom_id = f"{(i * 7919) % 1000:032x}"  # ids in no particular order
        status = await provider.submit(lines[0].key, lines, {})
        while not status.ended:
            await asyncio.sleep(0.01)
            status = await provider.poll(status)
        ids = [cid for chunk in [c async for c in provider.results(status)] for cid, _ in chunk]
        await provider.aclose()
        assert ids == [line.custom_id for line in lines]
        return ids

    assert asyncio.run(scenario(20_000_000)) == asyncio.run(scenario(10))


def test_embeddings_go_through_the_batch_embeddings_api(
    scheduler: Scheduler, provider: GeminiProvider, emulator: Emulator, genai_client: genai.Client
) -> None:
    texts = ["the cat sat", "the dog ran", "stock prices fell"]
    config = types.EmbedContentConfig(output_dimensionality=16, task_type="RETRIEVAL_DOCUMENT")
    bodies = [{"model": EMBEDDER, "contents": text, "config": config} for text in texts]
    results = run(scheduler, provider, bodies, endpoint="embed_content")
    realtime = genai_client.models.embed_content(model=EMBEDDER, contents=texts, config=config)
    assert [r["embeddings"][0]["values"] for r in results] == [
        e.values for e in realtime.embeddings or []
    ]
    assert emulator.stats.batches[0]["endpoint"] == "asyncBatchEmbedContent"
    assert emulator.stats.realtime_calls == 1  # the comparison above, nothing else
    # The same shape the realtime call parses into EmbedContentResponse.
    parsed = types.EmbedContentResponse._from_response(
        response=_gemini_models()._EmbedContentResponse_from_mldev(results[0]), kwargs={}
    )
    assert parsed.embeddings[0].values == realtime.embeddings[0].values  # type: ignore[index]

    filed = GeminiProvider(
        base_url=emulator.gemini_base_url, api_key="g", max_retries=0, inline_limit=10
    )
    assert run(scheduler, filed, bodies, endpoint="embedContent") == results


def test_expired_cancelled_and_failed_batches(
    scheduler: Scheduler, provider: GeminiProvider, emulator: Emulator
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, poll_max=0.2, on_expiry="fail") as failing:
        results = run(failing, provider, [request(f"e-{i}") for i in range(6)])
    # An expired Gemini batch returns no results at all: every caller learns it expired.
    assert all(isinstance(r, BatchExpiredError) for r in results)
    assert failing.batches[-1].outcome == "expired"
    with Scheduler(poll_interval=0.02, poll_max=0.2, on_expiry="realtime") as escalating:
        results = run(escalating, provider, [request(f"r-{i}") for i in range(3)])
    assert [text_of(r) for r in results] == [f"{FLASH} says: r-{i}" for i in range(3)]
    assert emulator.stats.realtime_calls == 3  # through GeminiProvider.realtime

    emulator.knobs.reset()
    emulator.knobs.cancel_after_fraction = 0.5
    results = run(scheduler, provider, [request(f"c-{i}") for i in range(6)])
    assert [type(r) for r in results] == [dict] * 3 + [BatchCancelledError] * 3

    emulator.knobs.reset()
    emulator.knobs.fail_validation = "model quota exhausted"
    results = run(scheduler, provider, [request("f-1")])
    assert isinstance(results[0], BatchFailedError)
    assert "model quota exhausted" in str(results[0])


def test_cancel(provider: GeminiProvider, emulator: Emulator) -> None:
    emulator.knobs.processing_delay = 5

    async def scenario() -> Any:
        lines = [provider.prepare("generateContent", request(f"x-{i}")) for i in range(10)]
        for i, line in enumerate(lines):
            line.custom_id = f"id-{i}"
        status = await provider.submit(lines[0].key, lines, {"run": "cancel"})
        status = await provider.cancel(status)
        while not status.ended:
            status = await provider.poll(status)
        outcomes = [o for chunk in [c async for c in provider.results(status)] for o in chunk]
        await provider.aclose()
        return status, outcomes

    status, outcomes = asyncio.run(scenario())
    assert (status.outcome, status.raw_status) == ("cancelled", "BATCH_STATE_CANCELLED")
    assert len(outcomes) < 10
    assert emulator.stats.batches[0]["status"] == "cancelled"


# --------------------------------------------------------------------------- prepare


def test_request_bodies(provider: GeminiProvider) -> None:
    sdk_objects = provider.prepare(
        "generateContent", request("hi", temperature=0.5, system_instruction="Be brief.")
    )
    as_dicts = provider.prepare(
        "models/gemini-2.5-flash:generateContent",
        {
            "model": f"models/{FLASH}",
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "config": {"temperature": 0.5, "system_instruction": "Be brief."},
        },
    )
    assert sdk_objects.data == as_dicts.data
    assert sdk_objects.key == as_dicts.key == ("generateContent", f"models/{FLASH}")
    assert json.loads(sdk_objects.data) == {
        "systemInstruction": {"parts": [{"text": "Be brief."}], "role": "user"},
        "generationConfig": {"temperature": 0.5},
        "contents": [{"parts": [{"text": "hi"}], "role": "user"}],
    }
    # Client-only settings (timeouts, retries) have no place in a batch request.
    with_options = provider.prepare(
        "generate_content", request("hi", http_options={"timeout": 1}, temperature=0.5)
    )
    assert json.loads(with_options.data)["generationConfig"] == {"temperature": 0.5}
    rest = {
        "model": FLASH,
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"topK": 3},
    }
    assert json.loads(provider.prepare("generateContent", rest).data) == {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"topK": 3},
    }
    embedding = provider.prepare(
        "embedContent",
        {"model": EMBEDDER, "contents": "hi", "config": {"output_dimensionality": 8}},
    )
    assert json.loads(embedding.data) == {
        "content": {"parts": [{"text": "hi"}], "role": "user"},
        "outputDimensionality": 8,
    }
    assert embedding.key == ("embedContent", f"models/{EMBEDDER}")


@pytest.mark.parametrize(
    ("endpoint", "body", "error", "match"),
    [
        ("countTokens", request("x"), UnsupportedEndpointError, "generateContent"),
        ("generateContent", "text", InvalidRequestError, "mapping"),
        ("generateContent", {"contents": "x"}, InvalidRequestError, "model"),
        ("generateContent", {"model": FLASH}, InvalidRequestError, "contents"),
        ("generateContent", {**request("x"), "stream": True}, InvalidRequestError, "stream"),
        ("generateContent", {**request("x"), "tools": []}, InvalidRequestError, "mixes"),
        (
            "generateContent",
            {"model": FLASH, "contents": "x", "config": {"temperature": "hot"}},
            InvalidRequestError,
            "temperature",
        ),
        ("embedContent", {"model": EMBEDDER, "contents": ["a", "b"]}, InvalidRequestError, "one"),
    ],
)
def test_prepare_rejects_bad_input(
    provider: GeminiProvider, endpoint: str, body: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        provider.prepare(endpoint, body)


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "google.genai", None)
    with pytest.raises(ImportError, match=r'pip install "batch-llm\[gemini\]"'):
        _gemini._genai()


def test_settings_environment_and_alias(
    scheduler: Scheduler, batch_llm_gemini_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = resolve_provider("google_genai", max_retries=0)
    assert isinstance(provider, GeminiProvider)
    assert resolve_provider("gemini", max_retries=0) is provider
    (result,) = run(scheduler, provider, [request("env")])
    assert text_of(result) == f"{FLASH} says: env"
    assert scheduler.batches[0].provider == provider.describe()
    secret = GeminiProvider(api_key="AIza-secret", base_url="http://x")
    for text in (repr(secret), secret.describe(), str(secret._identity)):
        assert "AIza-secret" not in text
    assert secret != GeminiProvider(api_key="other", base_url="http://x")
    monkeypatch.delenv("GOOGLE_API_KEY")
    monkeypatch.setenv("GEMINI_API_KEY", "from-gemini-var")
    assert GeminiProvider(base_url="http://x") == GeminiProvider(
        base_url="http://x", api_key="from-gemini-var"
    )


@pytest.mark.parametrize("inline_limit", [20_000_000, 10])
def test_realtime_replay_find_batch(
    emulator: Emulator, genai_client: genai.Client, inline_limit: int
) -> None:
    provider = GeminiProvider(
        base_url=emulator.gemini_base_url, api_key="g", max_retries=0, inline_limit=inline_limit
    )
    bodies = [request("journal me"), request("[[emulator:error 400 refused]]")]

    async def scenario() -> tuple[list[Any], list[Any], Any, Any]:
        lines = [provider.prepare("generateContent", body) for body in bodies]
        for i, line in enumerate(lines):
            line.custom_id = f"r-{i}"
        status = await provider.submit(lines[0].key, lines, {"batch_llm_intent": "intent-42"})
        while not status.ended:
            await asyncio.sleep(0.01)
            status = await provider.poll(status)
        kept: list[tuple[str, bytes]] = []

        def keep(name: str, chunk: bytes) -> None:
            kept.append((name, chunk))

        live = [o for c in [c async for c in provider.results(status, sink=keep)] for o in c]
        probe = type(status)(status.batch_id, "ended", "", endpoint=status.endpoint)
        replayed = [o for c in [c async for c in provider.replay(probe, kept)] for o in c]
        found = await provider.find_batch("intent-42", created_after=0)
        missing = await provider.find_batch("intent-nope", created_after=0)
        assert found is not None and found.batch_id == status.batch_id
        assert missing is None
        realtime = await provider.realtime(lines[0])
        try:
            await provider.poll(type(status)("batches/unknown", "in_progress", ""))
        except errors.ClientError as exc:
            not_found = provider.is_not_found(exc)
        await provider.aclose()
        return live, replayed, realtime, not_found

    live, replayed, realtime, not_found = asyncio.run(scenario())
    assert [cid for cid, _ in replayed] == [cid for cid, _ in live] == ["r-0", "r-1"]
    assert live[0][1] == replayed[0][1] == realtime
    assert str(live[1][1]) == str(replayed[1][1])
    assert not_found is True


def test_embedding_realtime_matches_batch(provider: GeminiProvider) -> None:
    body = {"model": EMBEDDER, "contents": "the cat", "config": {"output_dimensionality": 4}}

    async def scenario() -> tuple[Any, Any]:
        line = provider.prepare("embedContent", body)
        line.custom_id = "e"
        status = await provider.submit(line.key, [line], {})
        while not status.ended:
            await asyncio.sleep(0.01)
            status = await provider.poll(status)
        batched = [o for c in [c async for c in provider.results(status)] for o in c]
        realtime = await provider.realtime(line)
        await provider.aclose()
        return batched[0][1], realtime

    batched, realtime = asyncio.run(scenario())
    assert batched == realtime
    assert len(batched["embeddings"][0]["values"]) == 4


def test_langchain_request_arguments_are_a_body(
    scheduler: Scheduler, provider: GeminiProvider, emulator: Emulator, genai_client: genai.Client
) -> None:
    """What ChatGoogleGenerativeAI builds for generate_content is a body as it stands."""
    chat_models = pytest.importorskip("langchain_google_genai")
    from langchain_core.messages import HumanMessage, SystemMessage

    model = chat_models.ChatGoogleGenerativeAI(
        model=FLASH, google_api_key="k", base_url=emulator.gemini_base_url, temperature=0
    )
    arguments = model._prepare_request(
        [SystemMessage("Be brief."), HumanMessage("what is the capital of France?")], stop=["!"]
    )
    (batched,) = run(scheduler, provider, [arguments])
    config = arguments["config"].model_copy(update={"should_return_http_response": True})
    realtime = genai_client.models.generate_content(
        model=arguments["model"], contents=arguments["contents"], config=config
    )
    assert batched == json.loads(realtime.sdk_http_response.body)  # type: ignore[union-attr, arg-type]
    assert provider.prepare("generateContent", arguments).deterministic  # temperature 0
