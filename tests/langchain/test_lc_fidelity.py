"""A batched call is indistinguishable from a realtime ChatOpenAI call: same request body on
the wire, same message back (content, tool calls, usage, metadata), same errors."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from batch_llm import Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel

PARAMS = {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 40, "stop": ["\n\n"]}


class Weather(BaseModel):
    """Current weather in a city."""

    city: str = Field(description="the city")
    celsius: int


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
    )
).decode()

CASES: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "plain": (["What is 17 + 25?"], {}),
    "multi_turn": (
        [
            [
                SystemMessage("You answer briefly."),
                HumanMessage("My name is Ada."),
                AIMessage("Hello Ada."),
                HumanMessage("What is 6 * 7?"),
            ]
        ],
        {},
    ),
    "tools": (["Please add 2 and 3"], {"tools": [add], "tool_choice": "add"}),
    "tool_history": (
        [
            [
                HumanMessage("Please add 2 and 3"),
                AIMessage(
                    "", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call_1"}]
                ),
                ToolMessage("5", tool_call_id="call_1"),
            ]
        ],
        {"tools": [add]},
    ),
    "image": (
        [
            [
                HumanMessage(
                    content=[
                        {"type": "text", "text": "Describe this picture"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
                        },
                    ]
                )
            ]
        ],
        {},
    ),
}


def _strip(message: AIMessage) -> dict[str, Any]:
    """Everything a caller sees, except ids that differ run to run by design."""
    metadata = {k: v for k, v in message.response_metadata.items() if k != "batch_id"}
    return {
        "content": message.content,
        "tool_calls": message.tool_calls,
        "invalid_tool_calls": message.invalid_tool_calls,
        "usage_metadata": message.usage_metadata,
        "additional_kwargs": message.additional_kwargs,
        "response_metadata": metadata,
    }


@pytest.fixture
def realtime(lc_env: Emulator, recording: httpx.Client) -> ChatOpenAI:
    """ChatOpenAI against the emulator, recording every request body it sends."""
    return ChatOpenAI(**PARAMS, http_client=recording)


def _bind(model: Any, extra: dict[str, Any]) -> Any:
    if "tools" in extra:
        return model.bind_tools(extra["tools"], tool_choice=extra.get("tool_choice"))
    return model


@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_call_matches_realtime_chat_openai(
    case: str,
    build: str,
    lc_env: Emulator,
    realtime: ChatOpenAI,
    captured: list[dict[str, Any]],
    batch_bodies: Callable[[], list[dict[str, Any]]],
    fast_scheduler: Scheduler,
) -> None:
    inputs, extra = CASES[case]
    batched_model = (
        BatchChatModel(
            model="openai:gpt-4o-mini",
            **{k: v for k, v in PARAMS.items() if k != "model"},
            scheduler=fast_scheduler,
        )
        if build == "kwargs"
        else BatchChatModel(ChatOpenAI(**PARAMS), scheduler=fast_scheduler)
    )
    expected = _bind(realtime, extra).invoke(inputs[0])
    got_single = _bind(batched_model, extra).invoke(inputs[0])
    got_batch = _bind(batched_model, extra).batch([inputs[0], inputs[0]])
    assert _strip(got_single) == _strip(expected)
    assert [_strip(m) for m in got_batch] == [_strip(expected)] * 2
    assert got_single.response_metadata["batch_id"].startswith("batch_")
    # The bytes on the wire: every batched body equals the realtime body.
    assert captured and all(body == captured[0] for body in batch_bodies())
    assert lc_env.stats.realtime_calls == 1


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output_matches_realtime(
    method: str,
    lc_env: Emulator,
    realtime: ChatOpenAI,
    captured: list[dict[str, Any]],
    batch_bodies: Callable[[], list[dict[str, Any]]],
    fast_scheduler: Scheduler,
) -> None:
    question = "What is the weather in Paris, 21 degrees?"
    expected = realtime.with_structured_output(Weather, method=method, include_raw=True).invoke(
        question
    )
    batched = BatchChatModel(ChatOpenAI(**PARAMS), scheduler=fast_scheduler)
    got = batched.with_structured_output(Weather, method=method, include_raw=True).batch(
        [question] * 3
    )
    for item in got:
        assert item["parsed"] == expected["parsed"]
        assert isinstance(item["parsed"], Weather)
        assert _strip(item["raw"]) == _strip(expected["raw"])
    assert all(body == captured[0] for body in batch_bodies())


def test_responses_api_matches_realtime(lc_env: Emulator, fast_scheduler: Scheduler) -> None:
    realtime = ChatOpenAI(model="gpt-4o-mini", use_responses_api=True)
    batched = BatchChatModel(
        ChatOpenAI(model="gpt-4o-mini", use_responses_api=True), scheduler=fast_scheduler
    )
    expected = realtime.invoke("What is 3 + 4?")
    got = batched.invoke("What is 3 + 4?")
    assert got.content == expected.content
    assert got.usage_metadata == expected.usage_metadata
    assert lc_env.stats.batches[0]["endpoint"] == "/v1/responses"


def test_errors_are_the_realtime_errors_and_stay_in_their_slot(
    lc_env: Emulator, realtime: ChatOpenAI, fast_scheduler: Scheduler
) -> None:
    bad = "[[emulator:error 400 this prompt is refused]]"
    with pytest.raises(openai.BadRequestError) as realtime_error:
        realtime.invoke(bad)
    batched = BatchChatModel(ChatOpenAI(**PARAMS), scheduler=fast_scheduler)
    results = batched.batch(["What is 1 + 1?", bad, "What is 2 + 2?"], return_exceptions=True)
    assert type(results[1]) is type(realtime_error.value)
    assert str(results[1]) == str(realtime_error.value)
    assert [results[0].content, results[2].content] == ["2", "4"]
    with pytest.raises(type(realtime_error.value), match="this prompt is refused"):
        batched.batch(["What is 1 + 1?", bad])
    with pytest.raises(type(realtime_error.value)):
        batched.invoke(bad)
