"""Drop-in gaps real frameworks hit: what works on the realtime chat model works batched.

- token counts are the wrapped model's (map_reduce summarize chains size their splits with
  them; LangChain's own fallback is GPT-2 through ``transformers``);
- settings assigned after construction (ragas sets ``llm.temperature``) reach the batch, and
  read back as the wrapped model holds them;
- ``n`` is one line asking for ``n`` choices where the API takes ``n``, and refused where the
  realtime SDK refuses it;
- values the provider SDK encodes (``datetime``, pydantic models) are sent as it sends them.
"""

from __future__ import annotations

import copy
import datetime
import warnings
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import tiktoken
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_google_genai import ChatGoogleGenerativeAI
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from batch_llm import InvalidRequestError, Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel

QUESTION = "What is 17 + 25?"
# Reads back every body of every OpenAI batch so far (the ``batch_bodies`` fixture).
BatchBodies = Callable[[], list[dict[str, Any]]]


def _strip(message: Any) -> dict[str, Any]:
    """What a caller sees of a message, minus the batch id and per-run ids."""
    metadata = {k: v for k, v in message.response_metadata.items() if k != "batch_id"}
    return {
        "content": message.content,
        "tool_calls": message.tool_calls,
        "usage_metadata": message.usage_metadata,
        "response_metadata": metadata,
    }


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


# -- settings assigned after construction ---------------------------------------------------

ASSIGNED: dict[str, Any] = {
    "temperature": 0.3,
    "max_tokens": 7,
    "n": 2,
    "top_p": 0.5,
    "stop": ["\n\n"],
    "model_kwargs": {"seed": 7},
}


@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
def test_assigned_settings_reach_the_batch_as_chat_openai_sends_them(
    build: str,
    lc_env: Emulator,
    batch_bodies: BatchBodies,
    recording: httpx.Client,
    captured: list[dict[str, Any]],
    fast_scheduler: Scheduler,
) -> None:
    realtime = ChatOpenAI(model="gpt-4o-mini", temperature=0.9, http_client=recording)
    batched = _openai(build, fast_scheduler, temperature=0.9)
    for name, value in ASSIGNED.items():
        setattr(realtime, name, value)
        setattr(batched, name, value)
    realtime.invoke(QUESTION)
    batched.invoke(QUESTION)
    (body,) = batch_bodies()
    assert body == captured[0]
    assert (body["temperature"], body["n"], body["max_completion_tokens"]) == (0.3, 2, 7)
    for name, value in ASSIGNED.items():
        assert getattr(batched, name) == getattr(realtime, name) == value


@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
def test_settings_read_back_as_the_wrapped_model_holds_them(
    build: str, lc_env: Emulator, batch_bodies: BatchBodies, fast_scheduler: Scheduler
) -> None:
    """ragas saves ``llm.temperature``, sets its own, and puts the saved one back."""
    realtime = ChatOpenAI(model="gpt-4o-mini", temperature=0.5, max_tokens=64)
    batched = _openai(build, fast_scheduler, temperature=0.5, max_tokens=64)
    for name in ("temperature", "max_tokens", "n", "top_p", "stop", "model_name", "max_retries"):
        assert getattr(batched, name) == getattr(realtime, name), name
    saved = batched.temperature
    batched.temperature = 0.0
    batched.batch(["What is 1 + 1?", "What is 2 + 2?"])
    assert [body["temperature"] for body in batch_bodies()] == [0.0, 0.0]
    lc_env.reset()
    batched.temperature = saved
    batched.batch(["What is 3 + 3?", "What is 4 + 4?"])
    assert [body["temperature"] for body in batch_bodies()] == [0.5, 0.5]


@pytest.mark.parametrize("build", ["kwargs", "wrapped"])
@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_assigned_settings_reach_anthropic_and_gemini_batches(
    provider: str, build: str, batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    """Their batch inputs cannot be read back, so what reached the emulator shows in what it
    did: at temperature 0 two identical questions share one line (sampled ones get a line
    each), and a 2-token limit cuts the answer as it cuts the realtime one."""
    emulator = batch_llm_emulator
    params: dict[str, Any] = {"temperature": 0.7, "max_tokens": 500}
    realtime = _realtime(provider, emulator, **params)
    batched = _batched(provider, build, emulator, fast_scheduler, **params)
    # The standard names work on the batch model for every provider; the realtime models take
    # only their own field names (ChatAnthropic's ``stop`` is ``stop_sequences``...).
    own = {
        "anthropic": ("max_tokens", "stop_sequences"),
        "gemini": ("max_output_tokens", "stop"),
    }[provider]
    realtime.temperature = 0
    setattr(realtime, own[0], 2)
    setattr(realtime, own[1], ["\n\n"])
    batched.temperature = 0
    batched.max_tokens = 2
    batched.stop = ["\n\n"]
    question = "Please describe the colour of the sky over the sea at noon"
    answers = batched.batch([question, question])
    assert emulator.stats.lines_submitted == 1
    expected = realtime.invoke(question)
    assert [_strip(a) for a in answers] == [_strip(expected)] * 2
    assert expected.usage_metadata["output_tokens"] == 2
    assert (batched.temperature, batched.max_tokens, batched.stop) == (0, 2, ["\n\n"])


def test_a_copy_is_tuned_alone(
    lc_env: Emulator, batch_bodies: BatchBodies, fast_scheduler: Scheduler
) -> None:
    original = BatchChatModel(
        ChatOpenAI(model="gpt-4o-mini", temperature=0.5), scheduler=fast_scheduler
    )
    tuned = copy.copy(original)
    tuned.temperature = 0.9
    tuned.model_copy().temperature = 0.1
    assert (original.temperature, original.wrapped.temperature) == (0.5, 0.5)
    assert (tuned.temperature, tuned.wrapped.temperature) == (0.9, 0.9)
    assert tuned.chat_model is tuned.wrapped
    original.batch(["What is 1 + 1?", "What is 2 + 2?"])
    assert [body["temperature"] for body in batch_bodies()] == [0.5, 0.5]


def test_a_setting_the_wrapped_model_lacks_is_refused_as_it_refuses_it(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    realtime = ChatAnthropic(model="claude-haiku-4-5", api_key="sk-ant-test")
    batched = BatchChatModel(realtime.model_copy(), scheduler=fast_scheduler)
    with pytest.raises(ValueError, match='no field "n"'):
        realtime.n = 3
    with pytest.raises(ValueError, match='no field "n"'):
        batched.n = 3
    assert not hasattr(batched, "n")


# -- n ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["constructed", "assigned", "called"])
def test_n_is_one_line_with_every_choice_like_realtime(
    how: str, lc_env: Emulator, batch_bodies: BatchBodies, fast_scheduler: Scheduler
) -> None:
    messages = [[HumanMessage("Name a colour")]]
    expected = ChatOpenAI(model="gpt-4o-mini", n=3).generate(messages)
    if how == "constructed":
        batched = BatchChatModel(ChatOpenAI(model="gpt-4o-mini", n=3), scheduler=fast_scheduler)
        result = batched.generate(messages)
    elif how == "assigned":
        batched = BatchChatModel(model="openai:gpt-4o-mini", scheduler=fast_scheduler)
        batched.n = 3
        result = batched.generate(messages)
    else:
        batched = BatchChatModel(model="openai:gpt-4o-mini", scheduler=fast_scheduler)
        result = batched.generate(messages, n=3)
    assert lc_env.stats.lines_submitted == 1
    assert [body["n"] for body in batch_bodies()] == [3]
    (choices,) = result.generations
    (expected_choices,) = expected.generations
    assert len(choices) == 3
    assert [_strip(c.message) for c in choices] == [_strip(c.message) for c in expected_choices]
    assert [c.generation_info for c in choices] == [c.generation_info for c in expected_choices]


def test_gemini_candidate_count_is_one_line_with_every_candidate(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    messages = [[HumanMessage("Name a colour")]]
    expected = _realtime("gemini", batch_llm_emulator, n=2)
    batched = _batched("gemini", "kwargs", batch_llm_emulator, fast_scheduler)
    batched.n = 2
    result = batched.generate(messages)
    assert batch_llm_emulator.stats.lines_submitted == 1
    (candidates,) = result.generations
    (expected_candidates,) = expected.generate(messages).generations
    assert len(candidates) == 2
    assert [_strip(c.message) for c in candidates] == [
        _strip(c.message) for c in expected_candidates
    ]


@pytest.mark.parametrize("how", ["constructed", "called"])
def test_anthropic_refuses_n_as_its_realtime_sdk_does(
    how: str, batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    """Anthropic's API has no ``n``: ChatAnthropic passes it on, and ``messages.create`` raises
    TypeError before anything is sent. A batch raises the same, rather than send a line that
    fails (or, on a lenient server, answers once where three answers were asked for)."""
    extra = {"n": 3} if how == "constructed" else {}
    call = {"n": 3} if how == "called" else {}
    with warnings.catch_warnings():  # "n is not default parameter", when constructed with it
        warnings.simplefilter("ignore", UserWarning)
        claude = _realtime("anthropic", batch_llm_emulator, **extra)
    messages = [[HumanMessage("Name a colour")]]
    with pytest.raises(TypeError) as realtime_error:
        claude.generate(messages, **call)
    batched = BatchChatModel(claude, scheduler=fast_scheduler)
    with pytest.raises(TypeError) as batched_error:
        batched.generate(messages, **call)
    assert str(batched_error.value) == str(realtime_error.value)
    assert "unexpected keyword argument 'n'" in str(batched_error.value)
    assert batch_llm_emulator.stats.lines_submitted == 0


def test_a_keyword_the_openai_sdk_lacks_is_refused_as_it_refuses_it(
    lc_env: Emulator, fast_scheduler: Scheduler
) -> None:
    params: dict[str, Any] = {"model": "gpt-4o-mini", "model_kwargs": {"colour": "blue"}}
    with pytest.raises(TypeError) as realtime_error:
        ChatOpenAI(**params).invoke(QUESTION)
    with pytest.raises(TypeError) as batched_error:
        BatchChatModel(ChatOpenAI(**params), scheduler=fast_scheduler).invoke(QUESTION)
    assert str(batched_error.value) == str(realtime_error.value)
    assert lc_env.stats.lines_submitted == 0


# -- values the SDK encodes -------------------------------------------------------------------


class Prediction(BaseModel):
    type: str
    content: str


def test_values_the_openai_sdk_encodes_are_sent_as_it_sends_them(
    lc_env: Emulator,
    batch_bodies: BatchBodies,
    recording: httpx.Client,
    captured: list[dict[str, Any]],
    fast_scheduler: Scheduler,
) -> None:
    params: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "model_kwargs": {
            "user": datetime.datetime(2025, 3, 1, 9, 30, tzinfo=datetime.UTC),
            "prediction": Prediction(type="content", content="42"),
        },
        "extra_body": {"metadata": {"asked": datetime.datetime(2025, 3, 1, 9, 30)}},
    }
    expected = ChatOpenAI(**params, http_client=recording).invoke(QUESTION)
    got = BatchChatModel(ChatOpenAI(**params), scheduler=fast_scheduler).invoke(QUESTION)
    assert _strip(got) == _strip(expected)
    (body,) = batch_bodies()
    assert body == captured[0]
    assert body["user"] == "2025-03-01T09:30:00+00:00"
    assert body["prediction"] == {"type": "content", "content": "42"}
    assert body["metadata"] == {"asked": "2025-03-01T09:30:00"}


def test_values_the_openai_sdk_refuses_are_refused(
    lc_env: Emulator, fast_scheduler: Scheduler
) -> None:
    """The openai SDK's encoder takes ``datetime`` but not ``date``: neither side sends one."""
    params: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "model_kwargs": {"user": datetime.date(2025, 3, 1)},
    }
    with pytest.raises(TypeError, match="date is not JSON serializable"):
        ChatOpenAI(**params).invoke(QUESTION)
    with pytest.raises(InvalidRequestError, match="date is not JSON serializable"):
        BatchChatModel(ChatOpenAI(**params), scheduler=fast_scheduler).invoke(QUESTION)
    assert lc_env.stats.lines_submitted == 0


class CacheControl(BaseModel):
    type: str


def test_values_the_anthropic_sdk_encodes_are_accepted(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    """The anthropic SDK takes pydantic models, ``date`` and ``datetime`` anywhere in a body
    (the bytes themselves are compared with the SDK's in tests/core/test_bad_input.py)."""
    claude: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "api_key": "sk-ant-test",
        "base_url": batch_llm_emulator.anthropic_base_url,
        "model_kwargs": {"cache_control": CacheControl(type="ephemeral")},
    }
    call = {"extra_body": {"metadata": {"user_id": datetime.date(2025, 3, 1)}}}
    expected = ChatAnthropic(**claude).invoke(QUESTION, **call)
    batched = BatchChatModel(ChatAnthropic(**claude), scheduler=fast_scheduler)
    got = batched.invoke(QUESTION, **call)
    assert isinstance(got, AIMessage)
    assert _strip(got) == _strip(expected)
    assert batch_llm_emulator.stats.lines_submitted == 1
