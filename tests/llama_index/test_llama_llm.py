"""BatchLLM against the emulator: every call equals LlamaIndex's own realtime OpenAI call (the
request body sent, the response built from the answer), and concurrent calls share batches."""

from __future__ import annotations

import asyncio
import pickle
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from llama_helpers import Wire
from llama_index.core import Settings
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from llama_index.llms.batch_llm import BatchLLM
from llama_index.llms.openai import OpenAI
from pydantic import BaseModel, ValidationError

import batch_llm
from batch_llm import Scheduler
from batch_llm.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def llm(emu: Emulator, sched: Scheduler) -> BatchLLM:
    return BatchLLM(model="openai:gpt-4o-mini", temperature=0, scheduler=sched)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role=MessageRole.USER, content=text)]


def answer_body(response: Any) -> dict[str, Any]:
    """The SDK object as JSON, without the per-call id and timestamp."""
    body: dict[str, Any] = response.raw.model_dump()
    body.pop("id")
    body.pop("created")
    return body


# -- shape of the package ---------------------------------------------------------------------


def test_namespace_package_layout_and_public_names() -> None:
    base = ROOT / "integrations" / "llama_index"
    for folder in (base, base / "llms", base / "embeddings"):
        assert not (folder / "__init__.py").exists(), folder
    import llama_index.llms.batch_llm as package

    assert package.__all__ == [
        "BatchLLM",
        "ChatCodec",
        "StructuredCall",
        "arun_eval_sweep",
        "batch_eval_runner",
        "gather_in_batches",
        "run_eval_sweep",
    ]
    # The provider integrations installed beside it stay importable: one namespace.
    assert OpenAI.__module__.startswith("llama_index.llms.openai")


def test_metadata_class_name_and_serialization(emu: Emulator, sched: Scheduler) -> None:
    llm = BatchLLM(
        model="openai:gpt-4o-mini", temperature=0.5, max_tokens=64, api_key="sk-x", scheduler=sched
    )
    assert BatchLLM.class_name() == "BatchLLM"
    meta = llm.metadata
    assert (meta.context_window, meta.model_name) == (128_000, "gpt-4o-mini")
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.num_output == 64
    assert BatchLLM(model="openai:gpt-4o-mini", context_window=999).metadata.context_window == 999

    data = llm.to_dict()
    assert data["class_name"] == "BatchLLM"
    assert data["model"] == "openai:gpt-4o-mini"
    assert (data["temperature"], data["max_tokens"]) == (0.5, 64)
    assert "api_key" not in data and "scheduler" not in data
    with pytest.raises(ValidationError, match="frozen"):
        llm.temperature = 0.9  # the wrapped LLM's settings are fixed: build a new one
    rebuilt = BatchLLM.from_dict(data)
    assert rebuilt.wrapped_llm.model == "gpt-4o-mini" and rebuilt.temperature == 0.5

    clone = pickle.loads(pickle.dumps(llm))
    assert clone.model == llm.model and clone.max_tokens == 64
    assert clone.scheduler is None  # the copy uses the process-wide scheduler
    # Pickling leaves the original whole (BaseComponent alone would strip it).
    assert llm.scheduler is sched
    assert llm.complete("What is 2 + 2?").text == "4"


def test_unknown_models_still_batch_with_a_default_context_window(
    emu: Emulator, sched: Scheduler
) -> None:
    # LlamaIndex's OpenAI raises for models missing from its tables; batching needs no table.
    llm = BatchLLM(model="openai:my-fine-tune", scheduler=sched)
    assert llm.metadata.context_window == 3900
    assert llm.metadata.is_function_calling_model


# -- chat and complete ------------------------------------------------------------------------


def test_chat_equals_realtime_body_and_response(
    llm: BatchLLM, realtime_llm: OpenAI, wire: Wire, emu: Emulator
) -> None:
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="You are terse."),
        ChatMessage(role=MessageRole.USER, content="What is 12 * 3?"),
        ChatMessage(role=MessageRole.ASSISTANT, content="36"),
        ChatMessage(role=MessageRole.USER, content="Tell me about the moon"),
    ]
    batched = llm.chat(messages)
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0
    realtime = realtime_llm.chat(messages)

    body = llm._codec.chat_request(messages, {}).body
    assert body == wire.bodies[0]
    assert batched.message == realtime.message
    assert answer_body(batched) == answer_body(realtime)
    assert type(batched.raw) is type(realtime.raw)
    batch_id = batched.additional_kwargs.pop("batch_id")
    assert batch_id == emu.stats.batches[0]["id"]
    assert batched.additional_kwargs == realtime.additional_kwargs
    assert set(realtime.additional_kwargs) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_complete_and_async_variants_equal_realtime(llm: BatchLLM, realtime_llm: OpenAI) -> None:
    prompt = "What is 7 + 5?"
    realtime = realtime_llm.complete(prompt)
    assert llm.complete(prompt).text == realtime.text
    assert asyncio.run(llm.acomplete(prompt)).text == realtime.text
    assert asyncio.run(llm.achat(user(prompt))).message.content == realtime.text


def test_streams_yield_one_chunk_with_the_whole_answer(
    llm: BatchLLM, emu: Emulator, sched: Scheduler
) -> None:
    stream = llm.stream_chat(user("stream me"))
    assert not sched.batches  # sent when first read, as the realtime stream is
    (chunk,) = list(stream)
    assert chunk.delta == chunk.message.content == "gpt-4o-mini says: stream me"
    assert chunk.additional_kwargs["batch_id"]
    (text,) = list(llm.stream_complete("stream me too"))
    assert text.delta == text.text == "gpt-4o-mini says: stream me too"

    async def both() -> tuple[list[Any], list[Any]]:
        chats = [c async for c in await llm.astream_chat(user("a"))]
        texts = [c async for c in await llm.astream_complete("b")]
        return chats, texts

    chats, texts = asyncio.run(both())
    assert [c.delta for c in chats] == ["gpt-4o-mini says: a"]
    assert [t.delta for t in texts] == ["gpt-4o-mini says: b"]
    assert emu.stats.realtime_calls == 0


def test_legacy_completion_models_use_the_completions_endpoint(
    emu: Emulator, sched: Scheduler, wire: Wire
) -> None:
    # max_tokens given: otherwise both would count the prompt with tiktoken, which downloads
    # its tables on first use (the suite is offline).
    llm = BatchLLM(
        model="openai:gpt-3.5-turbo-instruct", temperature=0, max_tokens=20, scheduler=sched
    )
    realtime = OpenAI(
        model="gpt-3.5-turbo-instruct",
        temperature=0,
        max_tokens=20,
        api_base=emu.openai_base_url,
        api_key="sk-test",
        http_client=wire.client(),
    )
    prompt = "What is 9 - 4?"
    assert llm.complete(prompt).text == realtime.complete(prompt).text
    assert llm._codec.completion_request(prompt, {}).body == wire.bodies[0]
    assert emu.stats.batches[0]["endpoint"] == "/v1/completions"
    assert llm.chat(user(prompt)).message.content == realtime.chat(user(prompt)).message.content


def test_settings_llm_and_default_scheduler(emu: Emulator, sched: Scheduler) -> None:
    old = batch_llm.set_scheduler(sched)
    try:
        Settings.llm = BatchLLM(model="openai:gpt-4o-mini")
        assert Settings.llm.complete("What is 1 + 1?").text == "2"
    finally:
        batch_llm.set_scheduler(old)
    assert sched.batches and emu.stats.batches_created == 1


def test_callbacks_see_one_llm_event_per_call(emu: Emulator, sched: Scheduler) -> None:
    debug = LlamaDebugHandler()
    llm = BatchLLM(
        model="openai:gpt-4o-mini", scheduler=sched, callback_manager=CallbackManager([debug])
    )
    llm.chat(user("hello"))
    asyncio.run(llm.acomplete("hello again"))
    assert len(debug.get_event_pairs(CBEventType.LLM)) == 2


# -- fan-out and errors -----------------------------------------------------------------------


@pytest.fixture
def wide_llm(emu: Emulator) -> Iterator[BatchLLM]:
    """A window of one second, a third of the default, for calls gathered without help."""
    with Scheduler(window=1.0, poll_interval=0.02, poll_max=0.1) as scheduler:
        yield BatchLLM(model="openai:gpt-4o-mini", temperature=0, scheduler=scheduler)


def test_hundred_concurrent_achat_calls_make_one_batch(wide_llm: BatchLLM, emu: Emulator) -> None:
    llm = wide_llm

    async def main() -> list[Any]:
        return await asyncio.gather(*(llm.achat(user(f"tag-{i}")) for i in range(100)))

    responses = asyncio.run(main())
    assert [r.message.content for r in responses] == [
        f"gpt-4o-mini says: tag-{i}" for i in range(100)
    ]
    assert emu.stats.batches_created == 1
    assert emu.stats.lines_submitted == 100
    assert emu.stats.realtime_calls == 0
    assert len({r.additional_kwargs["batch_id"] for r in responses}) == 1


def test_concurrent_sync_calls_from_threads_share_a_batch(
    wide_llm: BatchLLM, emu: Emulator
) -> None:
    llm = wide_llm
    results: dict[int, str] = {}

    def ask(i: int) -> None:
        results[i] = str(llm.chat(user(f"thread-{i}")).message.content)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == {i: f"gpt-4o-mini says: thread-{i}" for i in range(20)}
    assert emu.stats.batches_created == 1


def test_a_failed_request_reaches_only_its_caller_with_the_sdk_error(
    llm: BatchLLM, realtime_llm: OpenAI, emu: Emulator
) -> None:
    bad = "please fail [[emulator:error 400 no thanks]]"

    async def main() -> list[Any]:
        calls = [llm.achat(user(f"ok-{i}")) for i in range(9)] + [llm.achat(user(bad))]
        return await asyncio.gather(*calls, return_exceptions=True)

    *good, failed = asyncio.run(main())
    assert [r.message.content for r in good] == [f"gpt-4o-mini says: ok-{i}" for i in range(9)]
    assert isinstance(failed, openai.BadRequestError)
    with pytest.raises(openai.BadRequestError) as realtime_error:
        realtime_llm.chat(user(bad))
    assert failed.status_code == realtime_error.value.status_code == 400
    assert failed.body == realtime_error.value.body
    # Not retried: a retry would be another batch turnaround.
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 10


# -- tools and structured output ---------------------------------------------------------------


def get_weather(city: str) -> str:
    """Get the weather forecast for a city."""
    return f"sunny in {city}"


WEATHER = FunctionTool.from_defaults(fn=get_weather)


def test_chat_with_tools_equals_realtime(llm: BatchLLM, realtime_llm: OpenAI, wire: Wire) -> None:
    question = "What is the weather forecast in Paris?"
    batched = llm.chat_with_tools([WEATHER], user_msg=question)
    realtime = realtime_llm.chat_with_tools([WEATHER], user_msg=question)
    kwargs = llm._prepare_chat_with_tools([WEATHER], user_msg=question)
    assert llm._codec.chat_request(kwargs.pop("messages"), kwargs).body == wire.bodies[0]
    batched_calls = llm.get_tool_calls_from_response(batched)
    realtime_calls = realtime_llm.get_tool_calls_from_response(realtime)
    assert [c.model_dump() for c in batched_calls] == [c.model_dump() for c in realtime_calls]
    assert batched_calls[0].tool_name == "get_weather"
    assert answer_body(batched) == answer_body(realtime)


def test_predict_and_call_runs_the_tool(llm: BatchLLM) -> None:
    question = "What is the weather forecast in Paris?"
    result = llm.predict_and_call([WEATHER], user_msg=question)
    assert result.response.startswith("sunny in ")
    result = asyncio.run(llm.apredict_and_call([WEATHER], user_msg=question))
    assert result.response.startswith("sunny in ")


class City(BaseModel):
    """A city and its country."""

    name: str
    country: str
    population: int


PROMPT = PromptTemplate("Describe the city of {city}.")


def test_structured_predict_uses_the_json_schema_like_realtime(
    llm: BatchLLM, realtime_llm: OpenAI, wire: Wire
) -> None:
    batched = llm.structured_predict(City, PROMPT, city="Paris")
    realtime = realtime_llm.structured_predict(City, PROMPT, city="Paris")
    assert isinstance(batched, City) and batched == realtime
    assert wire.bodies[0]["response_format"]["type"] == "json_schema"
    native, kwargs = llm._codec.structured_plan(City, {}, PydanticProgramMode.DEFAULT)
    assert native
    messages = PROMPT.format_messages(city="Paris")
    assert llm._codec.chat_request(messages, kwargs).body == wire.bodies[0]
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Paris")) == realtime
    (streamed, *_) = reversed(list(llm.stream_structured_predict(City, PROMPT, city="Paris")))
    assert streamed == realtime


def test_structured_predict_by_function_calling_like_realtime(
    emu: Emulator, sched: Scheduler, realtime_llm: OpenAI, wire: Wire
) -> None:
    mode = PydanticProgramMode.FUNCTION
    llm = BatchLLM(
        model="openai:gpt-4o-mini", temperature=0, scheduler=sched, pydantic_program_mode=mode
    )
    realtime_llm.pydantic_program_mode = mode
    batched = llm.structured_predict(City, PROMPT, city="Lyon")
    assert batched == realtime_llm.structured_predict(City, PROMPT, city="Lyon")
    assert wire.bodies[0]["tool_choice"] == "required"
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Lyon")) == batched


# -- wrapping and building ----------------------------------------------------------------------


def test_wrapping_an_openai_llm_reuses_its_settings_and_request_shape(
    emu: Emulator, sched: Scheduler, wire: Wire
) -> None:
    inner = OpenAI(
        model="gpt-4o-mini",
        temperature=0.2,
        max_tokens=50,
        additional_kwargs={"seed": 7, "user": "tester"},
        api_base=emu.openai_base_url,
        api_key="sk-wrapped",
        system_prompt="Be brief.",
        http_client=wire.client(),
    )
    llm = BatchLLM(inner, scheduler=sched)
    assert llm.wrapped_llm is inner
    assert (llm.model, llm.temperature, llm.max_tokens) == ("openai:gpt-4o-mini", 0.2, 50)
    assert llm.system_prompt == "Be brief."
    assert llm.metadata == inner.metadata
    batched = llm.chat(user("What is 3 + 3?"))
    realtime = inner.chat(user("What is 3 + 3?"))
    assert llm._codec.chat_request(user("What is 3 + 3?"), {}).body == wire.bodies[0]
    assert wire.bodies[0]["seed"] == 7 and wire.bodies[0]["max_tokens"] == 50
    assert batched.message == realtime.message
    # The wrapped LLM's credentials and server pick the batch adapter.
    assert llm._codec.provider == batch_llm.resolve_provider(
        "openai", api_key="sk-wrapped", base_url=emu.openai_base_url
    )
    assert emu.stats.batches_created == 1


def test_bad_constructions_say_what_to_do(emu: Emulator) -> None:
    with pytest.raises(TypeError, match="model="):
        BatchLLM()
    with pytest.raises(ValueError, match="provider:model"):
        BatchLLM(model="gpt-4o-mini")
    with pytest.raises(ValueError, match="supported: openai, anthropic, google_genai"):
        BatchLLM(model="mistral:large")
    with pytest.raises(TypeError, match="configure temperature on it"):
        BatchLLM(OpenAI(model="gpt-4o-mini"), temperature=0)
    with pytest.raises(TypeError, match="cannot wrap"):
        BatchLLM(object())  # type: ignore[arg-type]


def test_missing_provider_integration_names_the_pip_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.llms.openai", None)
    with pytest.raises(ImportError, match="pip install llama-index-llms-openai"):
        BatchLLM(model="openai:gpt-4o-mini")


def test_constructor_mistakes_are_named_before_anything_is_sent() -> None:
    from llama_index.embeddings.batch_llm import BatchEmbedding
    from llama_index.embeddings.openai import OpenAIEmbedding

    with pytest.raises(TypeError, match=r"BatchLLM needs model='provider:model'.*LlamaIndex LLM"):
        BatchLLM()
    with pytest.raises(TypeError, match=r"BatchEmbedding needs model=.*LlamaIndex embedding"):
        BatchEmbedding()
    wrapped = OpenAI(model="gpt-4o-mini", api_key="sk-test")
    with pytest.raises(
        TypeError, match="wraps OpenAI with its own settings; configure temperature"
    ):
        BatchLLM(wrapped, temperature=0.5)
    embedding = OpenAIEmbedding(model="text-embedding-3-small", api_key="sk-test")
    with pytest.raises(
        TypeError, match="wraps OpenAIEmbedding with its own settings; configure model"
    ):
        BatchEmbedding(embedding, model="openai:text-embedding-3-large")
    with pytest.raises(TypeError, match="BatchEmbedding got both api_base and base_url"):
        BatchEmbedding(
            model="openai:text-embedding-3-small", api_base="http://a", base_url="http://b"
        )
    # The spellings that agree are accepted, and a wrapped model's settings are its own.
    assert BatchLLM(wrapped).model == "openai:gpt-4o-mini"
