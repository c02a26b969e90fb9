"""BatchLLM on Anthropic against the emulator: every call equals LlamaIndex's own realtime
``Anthropic`` call (the request body it sends, the response it builds), Claude models share a
batch, and a failed line fails only its caller, with the SDK's own exception.

llama-index-llms-anthropic 0.12 cannot call the anthropic 2.x SDK installed here (it calls the
``MessageParam`` union and passes ``temperature``, which ``messages.create`` no longer names).
The ``realtime`` fixture makes its realtime path run with the two smallest patches that do it,
so the batched results can be compared with what that path sends and builds; BatchLLM bridges
the same gaps on its own, without patching anything.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

import anthropic
import pytest
from llama_helpers import Wire
from llama_index.core.llms import ChatMessage, MessageRole
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from llama_index.core.types import PydanticProgramMode
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.anthropic import utils as anthropic_utils
from llama_index.llms.batch_llm import BatchLLM
from pydantic import BaseModel

import batch_llm
from batch_llm import Scheduler
from batch_llm.emulator import Emulator

MODEL = "claude-haiku-4-5"
PARAMS: dict[str, Any] = {"temperature": 0.3, "max_tokens": 40}

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
def emu(batch_llm_anthropic_env: Emulator) -> Emulator:
    """The emulator, with ANTHROPIC_BASE_URL / ANTHROPIC_API_KEY pointing at it."""
    return batch_llm_anthropic_env


def _typed_dict(**fields: Any) -> dict[str, Any]:
    return dict(fields)


def _naming_what_it_knows(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` taking the parameters it does not name in ``extra_body``, as
    langchain-anthropic passes them."""
    named = set(inspect.signature(method).parameters)

    @functools.wraps(method)
    def call(**kwargs: Any) -> Any:
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in named}
        if extra:
            kwargs["extra_body"] = {**extra, **(kwargs.get("extra_body") or {})}
        return method(**kwargs)

    return call


@pytest.fixture
def make_realtime(
    emu: Emulator, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Anthropic]:
    """Builds LlamaIndex's own Anthropic LLM against the emulator's realtime API, recording the
    bodies it sends (see the module docstring for the two patches)."""
    monkeypatch.setattr(anthropic_utils, "MessageParam", _typed_dict)
    monkeypatch.setattr(anthropic_utils, "BetaMessageParam", _typed_dict)

    def make(**overrides: Any) -> Anthropic:
        params = {"model": MODEL, **PARAMS, **overrides}
        llm = Anthropic(api_key="sk-ant-test", base_url=emu.anthropic_base_url, **params)
        for client in (llm._client, llm._aclient):
            client.messages.create = _naming_what_it_knows(client.messages.create)  # type: ignore[method-assign]
        llm._client._client.event_hooks["request"].append(wire.record)
        return llm

    return make


@pytest.fixture
def realtime(make_realtime: Callable[..., Anthropic]) -> Anthropic:
    return make_realtime()


@pytest.fixture(params=["kwargs", "wrapped"])
def llm(request: pytest.FixtureRequest, emu: Emulator, fast: Scheduler) -> BatchLLM:
    """BatchLLM built from a model name, or wrapping an Anthropic LLM (which itself is never
    called: it is built before any patch)."""
    if request.param == "kwargs":
        return BatchLLM(model=f"anthropic:{MODEL}", **PARAMS, scheduler=fast)
    return BatchLLM(Anthropic(model=MODEL, api_key="sk-ant-test", **PARAMS), scheduler=fast)


def comparable(response: Any) -> dict[str, Any]:
    """A response as JSON-ish data, without the batch id batch-llm adds."""
    data: dict[str, Any] = response.model_dump()
    data["additional_kwargs"].pop("batch_id", None)
    data["raw"] = dict(response.raw)
    return data


# -- chat and complete --------------------------------------------------------------------------


def test_multi_turn_chat_equals_realtime_body_and_response(
    llm: BatchLLM, realtime: Anthropic, wire: Wire, emu: Emulator
) -> None:
    batched = llm.chat(CONVERSATION)
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0
    expected = realtime.chat(CONVERSATION)
    assert llm._codec.chat_request(CONVERSATION, {}).body == wire.bodies[0]
    assert wire.bodies[0]["temperature"] == 0.3 and wire.bodies[0]["max_tokens"] == 40
    assert wire.bodies[0]["system"] == "You answer briefly."
    assert type(batched) is type(expected)
    assert batched.message == expected.message
    assert batched.raw == expected.raw  # the SDK's Message, field by field
    assert comparable(batched) == comparable(expected)
    assert batched.raw["usage"].output_tokens == expected.raw["usage"].output_tokens > 0
    assert batched.additional_kwargs["batch_id"] == emu.stats.batches[0]["id"]


def test_complete_and_async_variants_equal_realtime(llm: BatchLLM, realtime: Anthropic) -> None:
    prompt = "What is 7 + 5?"
    expected = realtime.complete(prompt)
    batched = llm.complete(prompt)
    assert type(batched) is type(expected)  # AnthropicCompletionResponse, with citations
    assert comparable(batched) == comparable(expected)
    assert comparable(asyncio.run(llm.acomplete(prompt))) == comparable(expected)
    chat = asyncio.run(llm.achat(user(prompt)))
    assert comparable(chat) == comparable(realtime.chat(user(prompt)))


def test_a_stream_is_one_chunk_ending_as_the_realtime_stream_ends(
    llm: BatchLLM, realtime: Anthropic, emu: Emulator
) -> None:
    chunks = list(realtime.stream_chat(user("stream me")))
    (chunk,) = list(llm.stream_chat(user("stream me")))
    assert chunk.delta == "".join(c.delta or "" for c in chunks) == chunk.message.content
    assert chunk.message.blocks == chunks[-1].message.blocks
    # Usage and stop reason where the realtime stream's last chunk has them.
    assert chunk.message.additional_kwargs == chunks[-1].message.additional_kwargs
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


# -- tools and structured output ---------------------------------------------------------------


def test_chat_with_tools_and_a_tool_result_turn_equal_realtime(
    llm: BatchLLM, realtime: Anthropic, wire: Wire
) -> None:
    question = "What is the weather forecast in Paris?"
    batched = llm.chat_with_tools([WEATHER], user_msg=question)
    expected = realtime.chat_with_tools([WEATHER], user_msg=question)
    kwargs = llm._prepare_chat_with_tools([WEATHER], user_msg=question)
    assert llm._codec.chat_request(kwargs.pop("messages"), kwargs).body == wire.bodies[0]
    assert wire.bodies[0]["tool_choice"] == {"disable_parallel_tool_use": True, "type": "auto"}
    calls = llm.get_tool_calls_from_response(batched)
    assert [c.model_dump() for c in calls] == [
        c.model_dump() for c in realtime.get_tool_calls_from_response(expected)
    ]
    assert calls[0].tool_name == "get_weather" and calls[0].tool_kwargs == {"city": "Paris"}
    assert comparable(batched) == comparable(expected)

    # The next turn: the tool's result goes back with the history.
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
    assert llm.get_tool_calls_from_response(follow_up, error_on_no_tool_call=False) == []


def test_predict_and_call_runs_the_tool(llm: BatchLLM) -> None:
    question = "What is the weather forecast in Paris?"
    assert llm.predict_and_call([WEATHER], user_msg=question).response == "sunny in Paris"
    result = asyncio.run(llm.apredict_and_call([WEATHER], user_msg=question))
    assert result.response == "sunny in Paris"


def test_structured_predict_is_the_native_structured_output_like_realtime(
    llm: BatchLLM, realtime: Anthropic, wire: Wire, emu: Emulator
) -> None:
    batched = llm.structured_predict(City, PROMPT, city="Paris")
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0
    expected = realtime.structured_predict(City, PROMPT, city="Paris")
    assert isinstance(batched, City) and batched == expected
    # The body realtime's beta.messages.parse sends (output_config with the JSON schema).
    call = llm._codec.structured_call(
        City, PROMPT.format_messages(city="Paris"), {}, PydanticProgramMode.DEFAULT
    )
    assert call is not None and call.request.body == wire.bodies[0]
    assert wire.bodies[0]["output_config"]["format"]["type"] == "json_schema"
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Paris")) == expected
    assert list(llm.stream_structured_predict(City, PROMPT, city="Paris")) == [expected]


def test_models_without_native_structured_output_use_function_calling_like_realtime(
    emu: Emulator, fast: Scheduler, make_realtime: Callable[..., Anthropic], wire: Wire
) -> None:
    model = "claude-3-haiku-20240307"
    llm = BatchLLM(model=f"anthropic:{model}", **PARAMS, scheduler=fast)
    realtime = make_realtime(model=model)
    batched = llm.structured_predict(City, PROMPT, city="Lyon")
    assert batched == realtime.structured_predict(City, PROMPT, city="Lyon")
    assert [tool["name"] for tool in wire.bodies[0]["tools"]] == ["City"]  # function calling
    assert asyncio.run(llm.astructured_predict(City, PROMPT, city="Lyon")) == batched


# -- fan-out and errors -------------------------------------------------------------------------


def test_two_claude_models_in_one_fan_out_share_one_batch(
    emu: Emulator, make_realtime: Callable[..., Anthropic]
) -> None:
    with Scheduler(window=1.0, poll_interval=0.02, poll_max=0.2, journal="off") as shared:
        haiku = BatchLLM(model=f"anthropic:{MODEL}", **PARAMS, scheduler=shared)
        # Same credentials and server (from the environment): one queue for both.
        sonnet = BatchLLM(Anthropic(model="claude-sonnet-4-6", **PARAMS), scheduler=shared)

        async def fan_out() -> list[Any]:
            calls = [m.achat(user(f"q-{i}")) for i in range(10) for m in (haiku, sonnet)]
            return list(await asyncio.gather(*calls))

        answers = asyncio.run(fan_out())
    (batch,) = emu.stats.batches
    assert batch["lines"] == 20 and sorted(batch["models"]) == [
        "claude-haiku-4-5",
        "claude-sonnet-4-6",
    ]
    assert len({a.additional_kwargs["batch_id"] for a in answers}) == 1
    expected_sonnet = make_realtime(model="claude-sonnet-4-6").chat(user("q-3"))
    assert comparable(answers[7]) == comparable(expected_sonnet)
    assert answers[6].message.content == f"{MODEL} says: q-3"


def test_concurrent_sync_calls_from_threads_share_a_batch(emu: Emulator) -> None:
    with Scheduler(window=1.0, poll_interval=0.02, poll_max=0.2, journal="off") as shared:
        llm = BatchLLM(model=f"anthropic:{MODEL}", **PARAMS, scheduler=shared)
        results: dict[int, str] = {}

        def ask(i: int) -> None:
            results[i] = str(llm.chat(user(f"thread-{i}")).message.content)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert results == {i: f"{MODEL} says: thread-{i}" for i in range(12)}
    assert emu.stats.batches_created == 1


def test_a_failed_line_fails_only_its_caller_with_the_realtime_error(
    llm: BatchLLM, realtime: Anthropic, emu: Emulator
) -> None:
    bad = "please fail [[emulator:error 400 no thanks]]"

    async def main() -> list[Any]:
        calls = [llm.achat(user(f"ok-{i}")) for i in range(5)] + [llm.achat(user(bad))]
        return list(await asyncio.gather(*calls, return_exceptions=True))

    *good, failed = asyncio.run(main())
    assert [r.message.content for r in good] == [f"{MODEL} says: ok-{i}" for i in range(5)]
    assert type(failed) is anthropic.BadRequestError
    realtime.max_retries = 0
    with pytest.raises(anthropic.BadRequestError) as expected:
        realtime.chat(user(bad))
    assert failed.status_code == expected.value.status_code == 400
    assert failed.body == expected.value.body
    assert "no thanks" in str(failed)
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 6


# -- building and wrapping ----------------------------------------------------------------------


def test_wrapping_reuses_the_llms_settings_credentials_and_server(
    emu: Emulator, fast: Scheduler
) -> None:
    inner = Anthropic(
        model=MODEL,
        temperature=0.2,
        max_tokens=64,
        additional_kwargs={"top_k": 5, "metadata": {"user_id": "u-1"}},
        api_key="sk-ant-wrapped",
        base_url=emu.anthropic_base_url,
        system_prompt="Be brief.",
    )
    llm = BatchLLM(inner, scheduler=fast)
    assert llm.wrapped_llm is inner
    assert (llm.model, llm.temperature, llm.max_tokens) == (f"anthropic:{MODEL}", 0.2, 64)
    assert llm.additional_kwargs == {"top_k": 5, "metadata": {"user_id": "u-1"}}
    assert llm.system_prompt == "Be brief."
    assert llm.metadata == inner.metadata
    assert llm.metadata.context_window == 200_000 and llm.metadata.is_function_calling_model
    body = llm._codec.chat_request(user("hi"), {}).body
    assert (body["top_k"], body["metadata"], body["max_tokens"]) == (5, {"user_id": "u-1"}, 64)
    assert llm._codec.provider == batch_llm.resolve_provider(
        "anthropic", api_key="sk-ant-wrapped", base_url=emu.anthropic_base_url
    )
    assert llm.chat(user("What is 3 + 3?")).message.content == "6"
    assert emu.stats.batches_created == 1


def test_building_from_a_model_name_takes_the_usual_parameters(
    emu: Emulator, fast: Scheduler
) -> None:
    llm = BatchLLM(
        model=f"anthropic:{MODEL}",
        temperature=0,
        max_tokens=30,
        additional_kwargs={"stop_sequences": ["\n\n"]},
        api_key="sk-ant-x",
        base_url=emu.anthropic_base_url,  # Anthropic's name for api_base
        scheduler=fast,
    )
    inner: Any = llm.wrapped_llm
    assert isinstance(inner, Anthropic)
    assert (inner.model, inner.temperature, inner.max_tokens, inner.base_url) == (
        MODEL,
        0,
        30,
        emu.anthropic_base_url,
    )
    assert llm.api_base == emu.anthropic_base_url
    data = llm.to_dict()
    assert data["model"] == f"anthropic:{MODEL}" and "api_key" not in data
    rebuilt = BatchLLM.from_dict(data)
    assert (
        rebuilt._codec.chat_request(user("x"), {}).body
        == llm._codec.chat_request(user("x"), {}).body
    )
    # Defaults are Anthropic's own: max_tokens 512, temperature 0.1.
    default = BatchLLM(model=f"anthropic:{MODEL}")
    assert (default.max_tokens, default.temperature) == (512, 0.1)
    # Unknown models still batch, with LlamaIndex's default context window.
    assert BatchLLM(model="anthropic:claude-next").metadata.context_window == 3900


def test_what_cannot_be_batched_says_so(emu: Emulator, fast: Scheduler) -> None:
    llm = BatchLLM(model=f"anthropic:{MODEL}", scheduler=fast)
    with pytest.raises(batch_llm.InvalidRequestError, match="beta features"):
        llm.chat(user("hi"), extra_headers={"anthropic-beta": "context-1m-2025-08-07"})
    with pytest.raises(TypeError, match="both api_base and base_url"):
        BatchLLM(model=f"anthropic:{MODEL}", api_base="http://a", base_url="http://b")
    vertex = Anthropic(model=MODEL, region="us-east5", project_id="project")
    with pytest.raises(ValueError, match="Vertex AI and Bedrock"):
        BatchLLM(vertex)
    assert emu.stats.batches_created == 0
