"""BatchLLM and BatchEmbedding on Gemini against the emulator: every call equals LlamaIndex's
own realtime ``GoogleGenAI`` / ``GoogleGenAIEmbedding`` call (the REST body sent, the response
built), each model gets its own batch, a list of texts is one batch, and a failed line fails
only its caller, with google-genai's own exception."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import google.auth.credentials
import pytest
from google.genai import errors
from llama_helpers import Wire, corpus
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from llama_index.embeddings.batch_llm import BatchEmbedding
from llama_index.embeddings.google_genai import GoogleGenAIEmbedding
from llama_index.llms.batch_llm import BatchLLM
from llama_index.llms.google_genai import GoogleGenAI
from pydantic import BaseModel

import batch_llm
from batch_llm import Scheduler
from batch_llm.emulator import Emulator

MODEL = "gemini-2.5-flash"
# GoogleGenAI looks its model up (models.get, which the emulator does not serve) unless both
# max_tokens and context_window are given.
PARAMS: dict[str, Any] = {"temperature": 0.3, "max_tokens": 40, "context_window": 100_000}
EMBEDDING = "gemini-embedding-001"

CONVERSATION = [
    ChatMessage(role=MessageRole.SYSTEM, content="You answer briefly."),
    ChatMessage(role=MessageRole.USER, content="My name is Ada."),
    ChatMessage(role=MessageRole.ASSISTANT, content="Hello Ada."),
    ChatMessage(role=MessageRole.USER, content="What is 6 * 7?"),
]


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def get_weather(city: str) -> str:
    """Get the weather forecast for a city."""
    return f"sunny in {city}"


WEATHER = FunctionTool.from_defaults(fn=get_weather)


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str
    population: int


PROMPT = PromptTemplate("Describe the city of {city}.")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def emu(batch_llm_gemini_env: Emulator) -> Emulator:
    """The emulator, with GOOGLE_GEMINI_BASE_URL / GOOGLE_API_KEY pointing at it."""
    return batch_llm_gemini_env


@pytest.fixture
def make_realtime(emu: Emulator, wire: Wire) -> Callable[..., GoogleGenAI]:
    """Builds LlamaIndex's own GoogleGenAI against the emulator's realtime API, recording the
    REST bodies it sends (sync calls)."""

    def make(**overrides: Any) -> GoogleGenAI:
        params = {"model": MODEL, **PARAMS, **overrides}
        options = {"base_url": emu.gemini_base_url, "httpx_client": wire.client()}
        return GoogleGenAI(api_key="g-test", max_retries=0, http_options=options, **params)

    return make


@pytest.fixture
def realtime(make_realtime: Callable[..., GoogleGenAI]) -> GoogleGenAI:
    return make_realtime()


@pytest.fixture(params=["kwargs", "wrapped"])
def llm(request: pytest.FixtureRequest, emu: Emulator, fast: Scheduler) -> BatchLLM:
    if request.param == "kwargs":
        return BatchLLM(model=f"google_genai:{MODEL}", **PARAMS, scheduler=fast)
    return BatchLLM(GoogleGenAI(model=MODEL, api_key="g-test", **PARAMS), scheduler=fast)


def rest(llm: BatchLLM, body: dict[str, Any], endpoint: str = "generateContent") -> Any:
    """The REST request the Gemini adapter sends for a batch body."""
    return json.loads(llm._codec.provider.prepare(endpoint, body).data)


def comparable(response: Any) -> dict[str, Any]:
    """A response as data, without the batch id batch-llm adds."""
    data: dict[str, Any] = response.model_dump()
    data["additional_kwargs"].pop("batch_id", None)
    return data


# -- chat and complete --------------------------------------------------------------------------


def test_multi_turn_chat_equals_realtime_body_and_response(
    llm: BatchLLM, realtime: GoogleGenAI, wire: Wire, emu: Emulator
) -> None:
    batched = llm.chat(CONVERSATION)
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0
    expected = realtime.chat(CONVERSATION)
    request = llm._codec.chat_request(CONVERSATION, {})
    assert rest(llm, request.body) == wire.bodies[0]
    assert wire.bodies[0]["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 40}
    assert wire.bodies[0]["systemInstruction"]["parts"] == [{"text": "You answer briefly."}]
    assert [c["role"] for c in wire.bodies[0]["contents"]] == ["user", "model", "user"]
    assert batched.message == expected.message
    assert batched.raw == expected.raw  # the candidate and usage, as the SDK parsed them
    assert comparable(batched) == comparable(expected)
    counts = {k: batched.additional_kwargs[k] for k in ("prompt_tokens", "completion_tokens")}
    assert counts == {k: expected.additional_kwargs[k] for k in counts} and counts["prompt_tokens"]
    assert batched.additional_kwargs["batch_id"] == "batches/" + emu.stats.batches[0]["id"]


def test_async_requests_equal_what_the_async_realtime_path_sends(
    llm: BatchLLM, realtime: GoogleGenAI
) -> None:
    # GoogleGenAI._achat goes through client.aio.chats; the arguments are the same.
    request = asyncio.run(llm._codec.achat_request(CONVERSATION, {}))
    assert rest(llm, request.body) == rest(llm, llm._codec.chat_request(CONVERSATION, {}).body)
    batched = asyncio.run(llm.achat(CONVERSATION))
    expected = asyncio.run(realtime.achat(CONVERSATION))
    assert comparable(batched) == comparable(expected)


def test_complete_equals_realtime(llm: BatchLLM, realtime: GoogleGenAI) -> None:
    prompt = "What is 7 + 5?"
    expected = realtime.complete(prompt)
    assert comparable(llm.complete(prompt)) == comparable(expected)
    assert comparable(asyncio.run(llm.acomplete(prompt))) == comparable(expected)


def test_a_stream_is_one_chunk_with_the_whole_answer(
    llm: BatchLLM, realtime: GoogleGenAI, emu: Emulator
) -> None:
    chunks = list(realtime.stream_chat(user("stream me please")))
    (chunk,) = list(llm.stream_chat(user("stream me please")))
    assert chunk.delta == "".join(c.delta or "" for c in chunks) == chunk.message.content
    assert chunk.message.content == chunks[-1].message.content
    (text,) = list(llm.stream_complete("stream me too"))
    assert text.delta == text.text == f"{MODEL} says: stream me too"

    async def both() -> tuple[list[Any], list[Any]]:
        chats = [c async for c in await llm.astream_chat(user("a"))]
        texts = [c async for c in await llm.astream_complete("b")]
        return chats, texts

    chats, texts = asyncio.run(both())
    assert [c.delta for c in chats] == [f"{MODEL} says: a"]
    assert [t.delta for t in texts] == [f"{MODEL} says: b"]
    assert emu.stats.realtime_calls == 1  # the realtime stream only


def test_a_call_inside_a_running_loop_still_builds_its_request(llm: BatchLLM) -> None:
    # GoogleGenAI's sync chat runs asyncio.run, which a running loop (Jupyter) refuses.
    async def in_a_notebook_cell() -> Any:
        return llm._codec.chat_request(user("hello"), {})

    request = asyncio.run(in_a_notebook_cell())
    assert rest(llm, request.body) == rest(llm, llm._codec.chat_request(user("hello"), {}).body)


# -- tools and structured output ---------------------------------------------------------------


def test_chat_with_tools_and_a_tool_result_turn_equal_realtime(
    llm: BatchLLM, realtime: GoogleGenAI, wire: Wire
) -> None:
    question = "What is the weather forecast in Paris?"
    batched = llm.chat_with_tools([WEATHER], user_msg=question)
    expected = realtime.chat_with_tools([WEATHER], user_msg=question)
    kwargs = llm._prepare_chat_with_tools([WEATHER], user_msg=question)
    assert (
        rest(llm, llm._codec.chat_request(kwargs.pop("messages"), kwargs).body) == (wire.bodies[0])
    )
    assert wire.bodies[0]["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    calls = llm.get_tool_calls_from_response(batched)
    assert [c.model_dump() for c in calls] == [
        c.model_dump() for c in realtime.get_tool_calls_from_response(expected)
    ]
    assert calls[0].tool_name == "get_weather" and calls[0].tool_kwargs == {"city": "Paris"}
    assert comparable(batched) == comparable(expected)

    history = [
        *user(question),
        batched.message,
        ChatMessage(
            role=MessageRole.TOOL,
            content=get_weather("Paris"),
            additional_kwargs={"tool_call_id": calls[0].tool_id},
        ),
    ]
    follow_up = llm.chat_with_tools([WEATHER], chat_history=list(history))
    assert comparable(follow_up) == comparable(
        realtime.chat_with_tools([WEATHER], chat_history=list(history))
    )
    assert "functionResponse" in json.dumps(wire.bodies[-1]["contents"])


def test_predict_and_call_runs_the_tool(llm: BatchLLM) -> None:
    question = "What is the weather forecast in Paris?"
    assert llm.predict_and_call([WEATHER], user_msg=question).response == "sunny in Paris"
    result = asyncio.run(llm.apredict_and_call([WEATHER], user_msg=question))
    assert result.response == "sunny in Paris"


def test_structured_predict_uses_the_response_schema_like_realtime(
    llm: BatchLLM, realtime: GoogleGenAI, wire: Wire, emu: Emulator
) -> None:
    batched = llm.structured_predict(City, PROMPT, city="Paris")
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0
    expected = realtime.structured_predict(City, PROMPT, city="Paris")
    assert isinstance(batched, City) and batched == expected
    call = llm._codec.structured_call(
        City, PROMPT.format_messages(city="Paris"), {}, PydanticProgramMode.DEFAULT
    )
    assert call is not None and rest(llm, call.request.body) == wire.bodies[0]
    assert wire.bodies[0]["generationConfig"]["responseMimeType"] == "application/json"
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Paris")) == expected
    assert list(llm.stream_structured_predict(City, PROMPT, city="Paris")) == [expected]


def test_structured_predict_by_function_calling_like_realtime(
    emu: Emulator, fast: Scheduler, make_realtime: Callable[..., GoogleGenAI], wire: Wire
) -> None:
    mode = PydanticProgramMode.FUNCTION
    llm = BatchLLM(
        model=f"google_genai:{MODEL}", **PARAMS, scheduler=fast, pydantic_program_mode=mode
    )
    realtime = make_realtime()
    realtime.pydantic_program_mode = mode
    batched = llm.structured_predict(City, PROMPT, city="Lyon")
    assert batched == realtime.structured_predict(City, PROMPT, city="Lyon")
    assert "tools" in wire.bodies[0] and "responseSchema" not in json.dumps(wire.bodies[0])
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Lyon")) == batched


# -- fan-out and errors -------------------------------------------------------------------------


def test_two_models_in_one_fan_out_make_two_batches(
    emu: Emulator, make_realtime: Callable[..., GoogleGenAI]
) -> None:
    with Scheduler(window=1.0, poll_interval=0.02, poll_max=0.2, journal="off") as shared:
        flash = BatchLLM(model=f"google_genai:{MODEL}", **PARAMS, scheduler=shared)
        pro = BatchLLM(GoogleGenAI(model="gemini-2.5-pro", **PARAMS), scheduler=shared)

        async def fan_out() -> list[Any]:
            calls = [m.achat(user(f"q-{i}")) for i in range(10) for m in (flash, pro)]
            return list(await asyncio.gather(*calls))

        answers = asyncio.run(fan_out())
    batches = sorted(emu.stats.batches, key=lambda b: b["models"])
    assert [(b["models"], b["lines"]) for b in batches] == [
        (["gemini-2.5-flash"], 10),
        (["gemini-2.5-pro"], 10),
    ]
    assert comparable(answers[7]) == comparable(
        make_realtime(model="gemini-2.5-pro").chat(user("q-3"))
    )
    assert answers[6].message.content == f"{MODEL} says: q-3"


def test_a_failed_line_fails_only_its_caller_with_the_realtime_error(
    llm: BatchLLM, realtime: GoogleGenAI, emu: Emulator
) -> None:
    bad = "please fail [[emulator:error 400 no thanks]]"

    async def main() -> list[Any]:
        calls = [llm.achat(user(f"ok-{i}")) for i in range(5)] + [llm.achat(user(bad))]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    *good, failed = asyncio.run(main())
    assert [r.message.content for r in good] == [f"{MODEL} says: ok-{i}" for i in range(5)]
    assert type(failed) is errors.ClientError
    with pytest.raises(errors.ClientError) as expected:
        realtime.chat(user(bad))
    assert (failed.code, failed.status, failed.message) == (
        expected.value.code,
        expected.value.status,
        expected.value.message,
    )
    assert failed.code == 400 and "no thanks" in str(failed.message)
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 6


# -- building and wrapping ----------------------------------------------------------------------


def test_wrapping_reuses_the_llms_settings_credentials_and_server(
    emu: Emulator, fast: Scheduler
) -> None:
    inner = GoogleGenAI(
        model=MODEL,
        **PARAMS,
        api_key="g-wrapped",
        http_options={"base_url": emu.gemini_base_url},
        system_prompt="Be brief.",
    )
    llm = BatchLLM(inner, scheduler=fast)
    assert llm.wrapped_llm is inner
    assert (llm.model, llm.temperature, llm.max_tokens) == (f"google_genai:{MODEL}", 0.3, 40)
    assert (llm.api_base, llm.system_prompt) == (emu.gemini_base_url, "Be brief.")
    assert llm.metadata == inner.metadata
    assert llm._codec.provider == batch_llm.resolve_provider(
        "gemini", api_key="g-wrapped", base_url=emu.gemini_base_url, api_version="v1beta"
    )
    assert llm.chat(user("What is 3 + 3?")).message.content == "6"
    assert emu.stats.batches_created == 1


def test_building_from_a_model_name_takes_the_usual_parameters(
    emu: Emulator, fast: Scheduler, make_realtime: Callable[..., GoogleGenAI], wire: Wire
) -> None:
    llm = BatchLLM(
        model=f"gemini:{MODEL}",  # the short name works too
        **PARAMS,
        additional_kwargs={"top_k": 5, "stop_sequences": ["\n\n"]},
        api_key="g-x",
        base_url=emu.gemini_base_url,
        scheduler=fast,
    )
    assert llm.model == f"google_genai:{MODEL}"
    assert llm.additional_kwargs == {"top_k": 5, "stop_sequences": ["\n\n"]}
    assert llm.metadata.context_window == 100_000
    # Extra settings join the generation config GoogleGenAI builds from the others.
    from google.genai import types

    config = types.GenerateContentConfig(
        temperature=0.3, max_output_tokens=40, top_k=5, stop_sequences=["\n\n"]
    )
    realtime = make_realtime(generation_config=config)
    assert comparable(llm.chat(user("hi"))) == comparable(realtime.chat(user("hi")))
    assert rest(llm, llm._codec.chat_request(user("hi"), {}).body) == wire.bodies[0]
    assert wire.bodies[0]["generationConfig"]["topK"] == 5
    rebuilt = BatchLLM.from_dict(llm.to_dict())
    assert rest(rebuilt, rebuilt._codec.chat_request(user("x"), {}).body) == rest(
        llm, llm._codec.chat_request(user("x"), {}).body
    )


def test_vertex_ai_cannot_be_batched(emu: Emulator) -> None:
    vertex = {
        "credentials": google.auth.credentials.AnonymousCredentials(),  # type: ignore[no-untyped-call]
        "project": "project",
        "location": "us-central1",
    }
    with pytest.raises(ValueError, match="Vertex AI"):
        BatchLLM(GoogleGenAI(model=MODEL, **PARAMS, vertexai_config=vertex))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Vertex AI"):
        BatchEmbedding(GoogleGenAIEmbedding(model_name=EMBEDDING, vertexai_config=vertex))  # type: ignore[arg-type]


# -- embeddings ---------------------------------------------------------------------------------


@pytest.fixture
def realtime_embedding(emu: Emulator, wire: Wire) -> GoogleGenAIEmbedding:
    return GoogleGenAIEmbedding(
        model_name=EMBEDDING,
        api_key="g-test",
        embed_batch_size=100,
        retries=1,
        http_options={"base_url": emu.gemini_base_url, "httpx_client": wire.client()},
    )


def realtime_requests(wire: Wire) -> list[dict[str, Any]]:
    """The per-text requests of the batchEmbedContents calls a realtime client made, without
    the model (a batch line names it once, for the whole batch)."""
    return [
        {k: v for k, v in request.items() if k != "model"}
        for body in wire.bodies
        for request in body["requests"]
    ]


def test_a_list_of_texts_is_one_batch_with_exact_vectors_in_order(
    emu: Emulator, fast: Scheduler, realtime_embedding: GoogleGenAIEmbedding, wire: Wire
) -> None:
    embed = BatchEmbedding(model=f"google_genai:{EMBEDDING}", scheduler=fast)
    texts = corpus(300)
    vectors = embed.get_text_embedding_batch(texts)
    (batch,) = emu.stats.batches
    assert (batch["lines"], batch["models"], batch["endpoint"]) == (
        300,
        [EMBEDDING],
        "asyncBatchEmbedContent",
    )
    assert emu.stats.realtime_calls == 0
    expected = realtime_embedding.get_text_embedding_batch(texts)
    assert vectors == expected and len(vectors) == 300  # exact, in input order
    requests = embed._codec.requests(texts, query=False)
    assert [rest(embed, r.body, "embedContent") for r in requests] == realtime_requests(wire)
    assert realtime_requests(wire)[0]["taskType"] == "RETRIEVAL_DOCUMENT"
    asyncio.run(embed.aget_text_embedding_batch(texts[:50]))
    assert [b["lines"] for b in emu.stats.batches] == [300, 50]


def test_queries_are_embedded_as_queries_like_realtime(
    emu: Emulator, fast: Scheduler, realtime_embedding: GoogleGenAIEmbedding, wire: Wire
) -> None:
    embed = BatchEmbedding(model=f"gemini:{EMBEDDING}", realtime_queries=False, scheduler=fast)

    async def many() -> list[Any]:
        return list(await asyncio.gather(*(embed.aget_query_embedding(f"q {i}") for i in range(8))))

    vectors = asyncio.run(many())
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 8
    assert vectors[3] == realtime_embedding.get_query_embedding("q 3")
    assert realtime_requests(wire)[0]["taskType"] == "RETRIEVAL_QUERY"
    (request,) = embed._codec.requests(["q 3"], query=True)
    assert [rest(embed, request.body, "embedContent")] == realtime_requests(wire)
    assert embed.get_text_embedding("q 3") == realtime_embedding.get_text_embedding("q 3")


def test_wrapping_an_embedding_keeps_its_config_and_credentials(
    emu: Emulator, fast: Scheduler, wire: Wire
) -> None:
    realtime = GoogleGenAIEmbedding(
        model_name=EMBEDDING,
        api_key="g-wrapped",
        embedding_config={"output_dimensionality": 64},
        http_options={"base_url": emu.gemini_base_url, "httpx_client": wire.client()},
    )
    wrapped = BatchEmbedding(realtime, scheduler=fast)
    assert wrapped.wrapped_embedding is realtime
    assert (wrapped.model, wrapped.model_name, wrapped.dimensions) == (
        f"google_genai:{EMBEDDING}",
        EMBEDDING,
        64,
    )
    assert wrapped._codec.provider == batch_llm.resolve_provider(
        "gemini", api_key="g-wrapped", base_url=emu.gemini_base_url, api_version="v1beta"
    )
    built = BatchEmbedding(model=f"google_genai:{EMBEDDING}", dimensions=64, scheduler=fast)
    texts = corpus(20)
    expected = realtime.get_text_embedding_batch(texts)
    assert wrapped.get_text_embedding_batch(texts) == expected
    assert built.get_text_embedding_batch(texts) == expected
    assert len(expected[0]) == 64
    assert realtime_requests(wire)[0]["outputDimensionality"] == 64
    assert BatchEmbedding.from_dict(built.to_dict()).dimensions == 64


def test_a_failed_text_raises_the_realtime_error(
    emu: Emulator, fast: Scheduler, realtime_embedding: GoogleGenAIEmbedding
) -> None:
    embed = BatchEmbedding(model=f"google_genai:{EMBEDDING}", scheduler=fast)
    bad = "[[emulator:error 400 no vectors today]]"
    with pytest.raises(errors.ClientError, match="no vectors today") as batched:
        embed.get_text_embedding_batch(["fine", bad])
    with pytest.raises(errors.ClientError) as expected:
        realtime_embedding.get_text_embedding_batch([bad])
    assert (batched.value.code, batched.value.status) == (
        expected.value.code,
        expected.value.status,
    )
    assert emu.stats.batches_created == 1
