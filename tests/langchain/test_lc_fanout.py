"""One provider batch per fan-out, every answer to its own caller, LangChain semantics kept
(callbacks per input, cache, return_exceptions, streams, sync calls inside a running loop)."""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterator
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

from batch_llm import RequestFuture, Scheduler
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


# -- finishing as the answers arrive ---------------------------------------------------------


class HandScheduler(Scheduler):
    """A scheduler whose fan-outs the test answers itself, line by line, in any order: what
    a fan-out does while the rest of its batch is still on its way."""

    def __init__(self) -> None:
        super().__init__(journal="off")
        self.submitted = threading.Event()
        self.futures: list[RequestFuture] = []
        self.bodies: list[dict[str, Any]] = []

    def submit_many(  # type: ignore[override]
        self, provider: Any, endpoint: str, bodies: Any, **kwargs: Any
    ) -> list[RequestFuture]:
        self.bodies = list(bodies)
        self.futures = RequestFuture.group(len(self.bodies), "openai", fan_out=True)
        self.submitted.set()
        return self.futures

    def answer(self, index: int) -> None:
        """Answer one line as the provider would: the prompt echoed back."""
        prompt = self.bodies[index]["messages"][-1]["content"]
        self.futures[index].set_result(
            {
                "id": f"chatcmpl-{index}",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"re: {prompt}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
            }
        )


class Ends(BaseCallbackHandler):
    """What each ended run answered, in the order the runs ended."""

    def __init__(self) -> None:
        self.answers: list[str] = []
        self.changed = threading.Condition()

    def on_llm_end(self, response: Any, **kw: Any) -> None:
        with self.changed:
            self.answers.append(response.generations[0][0].text)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[str]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.answers) >= count, timeout=30)
            return list(self.answers)


@pytest.fixture
def hand() -> Iterator[HandScheduler]:
    with HandScheduler() as scheduler:
        yield scheduler


def test_batch_finishes_each_input_as_its_answer_arrives(hand: HandScheduler) -> None:
    llm = BatchChatModel(model="openai:gpt-4o", api_key="sk-test", scheduler=hand)
    ends, out = Ends(), []
    caller = threading.Thread(
        target=lambda: out.extend(llm.batch(["a", "b", "c"], config={"callbacks": [ends]})),
        daemon=True,
    )
    caller.start()
    assert hand.submitted.wait(30)
    hand.answer(1)
    # The run of "b" ends while "a" and "c" are still waiting for their lines.
    assert ends.wait_for(1) == ["re: b"]
    hand.answer(2)
    assert ends.wait_for(2) == ["re: b", "re: c"]
    hand.answer(0)
    caller.join(30)
    assert [m.content for m in out] == ["re: a", "re: b", "re: c"]
    assert ends.answers == ["re: b", "re: c", "re: a"]


def test_abatch_finishes_off_the_loop_as_answers_arrive(hand: HandScheduler) -> None:
    llm = BatchChatModel(model="openai:gpt-4o", api_key="sk-test", scheduler=hand)
    prompts = [f"q{i}" for i in range(100)]  # big enough to be finished on a worker thread
    ends = Ends()

    async def run() -> list[Any]:
        task = asyncio.create_task(llm.abatch(prompts, config={"callbacks": [ends]}))
        assert await asyncio.to_thread(hand.submitted.wait, 30)
        for index in range(0, 100, 2):
            hand.answer(index)
        # Half the runs end, and the loop stays free, while the other half still wait.
        answered = sorted(f"re: {p}" for p in prompts[::2])
        assert sorted(await asyncio.to_thread(ends.wait_for, 50)) == answered
        assert not task.done()
        for index in range(1, 100, 2):
            hand.answer(index)
        return await task

    out = asyncio.run(run())
    assert [m.content for m in out] == [f"re: {p}" for p in prompts]


def test_a_finished_input_keeps_no_wrapper_while_the_rest_finish(
    llm: BatchChatModel,
) -> None:
    """Each input's ChatResult and ChatGeneration go once its run ends, as a realtime call's
    do when it returns; the fan-out keeps only the message its caller gets."""

    class Released(BaseCallbackHandler):
        def __init__(self) -> None:
            self.generations: list[weakref.ref[Any]] = []
            self.alive_at_end: list[int] = []

        def on_llm_end(self, response: Any, **kw: Any) -> None:
            self.alive_at_end.append(sum(ref() is not None for ref in self.generations))
            self.generations.append(weakref.ref(response.generations[0][0]))

    released = Released()
    out = llm.batch([f"What is {i} + 1?" for i in range(20)], config={"callbacks": [released]})
    assert [m.content for m in out] == [str(i + 1) for i in range(20)]
    # When each run ends, no earlier input's generation is still held by anyone.
    assert released.alive_at_end == [0] * 20


def test_cancelling_abatch_stops_its_finisher(hand: HandScheduler) -> None:
    llm = BatchChatModel(model="openai:gpt-4o", api_key="sk-test", scheduler=hand)
    ends = Ends()

    async def run() -> None:
        task = asyncio.create_task(
            llm.abatch([f"q{i}" for i in range(100)], config={"callbacks": [ends]})
        )
        assert await asyncio.to_thread(hand.submitted.wait, 30)
        hand.answer(0)
        await asyncio.to_thread(ends.wait_for, 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    outcome: list[BaseException | None] = []

    def main() -> None:
        try:
            asyncio.run(run())  # waits for the loop's worker threads before it returns
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    caller = threading.Thread(target=main, daemon=True)
    caller.start()
    caller.join(30)
    assert outcome == [None]  # it returned: the finisher did not stay blocked on the rest
    assert all(f.cancelled() for f in hand.futures[1:])
    assert ends.answers == ["re: q0"]
