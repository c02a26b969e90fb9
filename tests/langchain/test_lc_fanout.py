"""One provider batch per fan-out, every answer to its own caller, LangChain semantics kept
(callbacks per input, cache, return_exceptions, streams, sync calls inside a running loop)."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableParallel
from langchain_openai import ChatOpenAI

from batch_llm import Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel

PROMPT = ChatPromptTemplate.from_messages([("human", "What is {a} + {b}?")])
INPUTS = [{"a": i, "b": i % 17} for i in range(300)]


@pytest.fixture
def llm(lc_env: Emulator, fast_scheduler: Scheduler) -> BatchChatModel:
    return BatchChatModel(model="openai:gpt-4o", temperature=0, scheduler=fast_scheduler)


@pytest.fixture
def expected(lc_env: Emulator) -> list[str]:
    """The realtime chain's answers (counted, then forgotten, by the emulator)."""
    chain = PROMPT | ChatOpenAI(model="gpt-4o", temperature=0) | StrOutputParser()
    answers = chain.batch(INPUTS)
    lc_env.reset()
    return answers


def test_chain_batch_is_one_provider_batch(
    llm: BatchChatModel, lc_env: Emulator, expected: list[str]
) -> None:
    answers = (PROMPT | llm | StrOutputParser()).batch(INPUTS, config={"max_concurrency": 2})
    assert answers == expected
    assert answers[:3] == ["0", "2", "4"]
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.realtime_calls == 0


def test_chain_abatch_is_one_provider_batch(
    llm: BatchChatModel, lc_env: Emulator, expected: list[str]
) -> None:
    answers = asyncio.run((PROMPT | llm | StrOutputParser()).abatch(INPUTS))
    assert answers == expected
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.realtime_calls == 0


def test_concurrent_ainvoke_calls_share_one_batch(lc_env: Emulator, expected: list[str]) -> None:
    with Scheduler(window=2.0, poll_interval=0.01, poll_max=0.1) as scheduler:
        llm = BatchChatModel(model="openai:gpt-4o", temperature=0, scheduler=scheduler)
        chain = PROMPT | llm | StrOutputParser()

        async def main() -> list[str]:
            return await asyncio.gather(*(chain.ainvoke(x) for x in INPUTS))

        answers = asyncio.run(main())
    assert answers == expected
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.realtime_calls == 0


def test_runnable_parallel_single_calls_share_a_batch(lc_env: Emulator) -> None:
    with Scheduler(window=1.0, poll_interval=0.01, poll_max=0.1) as scheduler:
        llm = BatchChatModel(model="openai:gpt-4o", scheduler=scheduler)
        parallel = RunnableParallel(
            sum=PROMPT | llm | StrOutputParser(),
            echo=ChatPromptTemplate.from_messages([("human", "repeat {a}")])
            | llm
            | StrOutputParser(),
        )
        out = parallel.invoke({"a": 20, "b": 22})
    assert out["sum"] == "42"
    assert "repeat 20" in out["echo"]
    assert lc_env.stats.batches_created == 1


def test_generate_and_agenerate_fan_out(llm: BatchChatModel, lc_env: Emulator) -> None:
    prompts = [PROMPT.invoke(x).to_messages() for x in INPUTS[:50]]
    result = llm.generate(prompts)
    assert [g[0].text for g in result.generations][:3] == ["0", "2", "4"]
    assert len(result.run or []) == 50
    again = asyncio.run(llm.agenerate(prompts))
    assert [g[0].text for g in again.generations] == [g[0].text for g in result.generations]
    # Same prompts at temperature 0: the answers already fetched are reused, not paid again.
    assert lc_env.stats.batches_created == 1


class Recorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.starts: list[UUID] = []
        self.ends: list[UUID] = []
        self.errors: list[UUID] = []

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, run_id: UUID, **kw: Any
    ) -> None:
        self.starts.append(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kw: Any) -> None:
        self.ends.append(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kw: Any) -> None:
        self.errors.append(run_id)


def test_callbacks_see_one_run_per_input(llm: BatchChatModel) -> None:
    recorder = Recorder()
    inputs = ["What is 1 + 1?", "[[emulator:error 400 no]]", "What is 2 + 2?"]
    out = llm.batch(inputs, config={"callbacks": [recorder]}, return_exceptions=True)
    assert isinstance(out[1], Exception)
    assert len(set(recorder.starts)) == 3
    assert sorted(recorder.ends + recorder.errors) == sorted(recorder.starts)
    assert len(recorder.errors) == 1


def test_per_input_configs_keep_their_own_callbacks(llm: BatchChatModel) -> None:
    first, second = Recorder(), Recorder()
    llm.batch(["a", "b"], config=[{"callbacks": [first]}, {"callbacks": [second]}])
    assert len(first.starts) == len(second.starts) == 1
    assert first.starts != second.starts


def test_langchain_cache_answers_repeats_without_a_new_batch(
    llm: BatchChatModel, lc_env: Emulator
) -> None:
    set_llm_cache(InMemoryCache())
    try:
        first = llm.batch(["What is 5 + 5?", "What is 6 + 6?"])
        again = llm.batch(["What is 5 + 5?", "What is 6 + 6?", "What is 7 + 7?"])
    finally:
        set_llm_cache(None)
    assert [m.content for m in again] == ["10", "12", "14"]
    assert [m.content for m in first] == ["10", "12"]
    assert lc_env.stats.batches_created == 2
    assert lc_env.stats.lines_submitted == 3


def test_return_exceptions_false_raises_after_every_input_is_done(llm: BatchChatModel) -> None:
    recorder = Recorder()
    with pytest.raises(Exception, match="refused"):
        llm.batch(["x", "[[emulator:error 400 refused]]", "y"], config={"callbacks": [recorder]})
    assert len(recorder.ends) == 2 and len(recorder.errors) == 1


def test_as_completed_yields_every_index(llm: BatchChatModel) -> None:
    got = dict(llm.batch_as_completed(["What is 1 + 1?", "What is 2 + 2?"]))
    assert {i: m.content for i, m in got.items()} == {0: "2", 1: "4"}

    async def collect() -> dict[int, Any]:
        return {i: m async for i, m in llm.abatch_as_completed(["What is 3 + 3?"])}

    assert asyncio.run(collect())[0].content == "6"


def test_stream_yields_the_whole_message_as_one_chunk(llm: BatchChatModel) -> None:
    chunks = list(llm.stream("What is 20 + 22?"))
    assert [c.content for c in chunks if c.content] == ["42"]
    assert chunks[0].usage_metadata is not None

    async def collect() -> list[Any]:
        return [c async for c in llm.astream("What is 1 + 2?")]

    assert [c.content for c in asyncio.run(collect()) if c.content] == ["3"]


def test_sync_invoke_inside_a_running_event_loop(llm: BatchChatModel) -> None:
    """What a sync call in a Jupyter cell does: block inside the kernel's running loop."""

    async def cell() -> str:
        return str(llm.invoke("What is 9 + 9?").content)

    assert asyncio.run(cell()) == "18"


def test_empty_batch_makes_no_batch(llm: BatchChatModel, lc_env: Emulator) -> None:
    assert llm.batch([]) == []
    assert lc_env.stats.batches_created == 0


def test_bad_construction_is_a_clear_error(lc_env: Emulator) -> None:
    with pytest.raises(ValueError, match="provider:model"):
        BatchChatModel(model="gpt-4o")
    with pytest.raises(ValueError, match="not both"):
        BatchChatModel(ChatOpenAI(model="gpt-4o"), temperature=0.5)
    with pytest.raises(ValueError, match=r"unknown provider|cannot tell"):
        BatchChatModel(model="openia:gpt-4o")
