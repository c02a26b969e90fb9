"""Fan-outs that LangChain runs itself, built the way its docs show, counted in batches.

Every flow runs against the emulator; batches and realtime calls come from its stats. The
scheduler's window is long (60 s) unless a test is about the window, so a flow that finished
quickly sent each round because every input was waiting, not because a window passed.
"""

from __future__ import annotations

import asyncio
import operator
import time
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnableParallel
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

import langchain_batch_llm
from batch_llm import BatchLLMWarning, Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel, ModelSlot

PROMPT = ChatPromptTemplate.from_messages([("user", "What is {n} + 1?")])


@pytest.fixture
def patient() -> Iterator[Scheduler]:
    """A minute-long window: anything sent sooner was sent by a round or a fan-out."""
    with Scheduler(journal="off", window=60, poll_interval=0.01, poll_max=0.1) as sched:
        yield sched


def batch_llm_model(
    scheduler: Scheduler, model: str = "openai:gpt-4o-mini", **params: Any
) -> BatchChatModel:
    return BatchChatModel(model=model, scheduler=scheduler, **params)


def inputs(count: int) -> list[dict[str, int]]:
    return [{"n": i} for i in range(count)]


# -- the design card's pattern: a chain whose model config swaps -------------------------------


@pytest.mark.parametrize("how", ["with_config(llm=...)", "configurable"])
def test_with_config_llm_runs_the_chain_as_one_batch_equal_to_realtime(
    lc_env: Emulator, patient: Scheduler, how: str
) -> None:
    chain = PROMPT | ModelSlot(ChatOpenAI(model="gpt-4o-mini", temperature=0)) | StrOutputParser()
    realtime = chain.batch(inputs(200))
    assert lc_env.stats.realtime_calls == 200
    lc_env.reset()
    llm = batch_llm_model(patient, temperature=0)
    swapped = (
        chain.with_config(llm=llm)
        if how == "with_config(llm=...)"
        else chain.with_config(configurable={"llm": llm})
    )
    assert swapped.batch(inputs(200)) == realtime
    assert (lc_env.stats.batches_created, lc_env.stats.realtime_calls) == (1, 0)
    lc_env.reset()
    assert asyncio.run(swapped.abatch(inputs(200))) == realtime
    assert (lc_env.stats.batches_created, lc_env.stats.realtime_calls) == (1, 0)


def test_a_slot_picks_an_alternative_by_key_and_binds_tools_on_it(
    lc_env: Emulator, patient: Scheduler
) -> None:
    @tool
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return f"sunny in {city}"

    slot = ModelSlot(
        ChatOpenAI(model="gpt-4o-mini"), alternatives={"batch": batch_llm_model(patient)}
    ).bind_tools([get_weather])
    questions = [f"What is the weather in City{i}?" for i in range(20)]
    answers = slot.with_config(configurable={"llm": "batch"}).batch(questions)
    assert all(isinstance(a, AIMessage) and a.tool_calls for a in answers)
    assert lc_env.stats.batches_created == 1 and lc_env.stats.realtime_calls == 0
    with pytest.raises(ValueError, match="names no model"):
        slot.invoke("hi", {"configurable": {"llm": "nope"}})


# -- configurable models ------------------------------------------------------------------------


def test_configurable_fields_set_by_config_are_one_batch_carrying_the_values(
    lc_env: Emulator, patient: Scheduler, batch_bodies: Any
) -> None:
    llm = batch_llm_model(patient).configurable_fields(
        temperature=ConfigurableField(id="temperature")
    )
    chain = PROMPT | llm
    answers = chain.with_config(configurable={"temperature": 0.3}).batch(inputs(200))
    assert len(answers) == 200
    assert lc_env.stats.batches_created == 1
    bodies = batch_bodies()
    assert len(bodies) == 200 and {b["temperature"] for b in bodies} == {0.3}


def test_configurable_fields_of_a_wrapped_model_reach_the_wrapped_model(
    lc_env: Emulator, patient: Scheduler, batch_bodies: Any
) -> None:
    llm = BatchChatModel(ChatOpenAI(model="gpt-4o-mini"), scheduler=patient)
    configurable = llm.configurable_fields(max_tokens=ConfigurableField(id="max_tokens"))
    configurable.with_config(configurable={"max_tokens": 7}).batch([f"q{i}" for i in range(20)])
    assert lc_env.stats.batches_created == 1
    assert {b["max_completion_tokens"] for b in batch_bodies()} == {7}


def test_configurable_alternatives_of_a_batch_model_are_one_batch_per_model(
    lc_env: Emulator, patient: Scheduler, batch_bodies: Any
) -> None:
    llm = batch_llm_model(patient).configurable_alternatives(
        ConfigurableField(id="llm"), big=batch_llm_model(patient, "openai:gpt-4.1-mini")
    )
    configs = [{"configurable": {"llm": "big" if i % 2 else "default"}} for i in range(200)]
    answers = (PROMPT | llm).batch(inputs(200), configs)
    assert len(answers) == 200
    stats = lc_env.stats
    assert stats.batches_created == 2  # one per model, sent together
    assert sorted(b["models"][0] for b in stats.batches) == ["gpt-4.1-mini", "gpt-4o-mini"]


def test_a_realtime_model_with_a_batch_alternative(lc_env: Emulator, patient: Scheduler) -> None:
    """``ChatOpenAI(...).configurable_alternatives(..., batch=BatchChatModel(...))``: LangChain's
    own dynamic runnable. ``abatch`` and the entry point are one batch; a plain sync ``batch``
    cannot be, and says so exactly once, naming the fix."""

    def chain(scheduler: Scheduler) -> Any:
        llm = ChatOpenAI(model="gpt-4o-mini").configurable_alternatives(
            ConfigurableField(id="llm"), batch=batch_llm_model(scheduler)
        )
        return (PROMPT | llm | StrOutputParser()).with_config(configurable={"llm": "batch"})

    # abatch: LangChain gathers an ainvoke per input; they arrive together, and the window
    # (quiet time) collects them.
    with Scheduler(journal="off", window=0.3, poll_interval=0.01) as windowed:
        assert len(asyncio.run(chain(windowed).abatch(inputs(200)))) == 200
    assert lc_env.stats.batches_created == 1
    lc_env.reset()
    assert len(langchain_batch_llm.batch(chain(patient), inputs(200))) == 200
    assert lc_env.stats.batches_created == 1 and lc_env.stats.realtime_calls == 0

    lc_env.reset()
    with Scheduler(journal="off", window=0.05, poll_interval=0.01) as quick:
        plain = ChatOpenAI(model="gpt-4o-mini").configurable_alternatives(
            ConfigurableField(id="llm"), batch=batch_llm_model(quick)
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answers = plain.with_config(configurable={"llm": "batch"}).batch(
                [f"q{i}" for i in range(40)], {"max_concurrency": 4}
            )
    assert len(answers) == 40
    said = [w for w in caught if issubclass(w.category, BatchLLMWarning)]
    assert len(said) == 1
    assert "langchain_batch_llm.batch(runnable, inputs)" in str(said[0].message)
    assert "4 at a time" in str(said[0].message)
    assert lc_env.stats.batches_created > 1  # what the warning was about


# -- fan-outs LangChain runs itself, through the entry point -----------------------------------


def test_runnable_parallel_of_three_branches_is_one_batch(
    lc_env: Emulator, patient: Scheduler
) -> None:
    llm = batch_llm_model(patient)
    parallel = RunnableParallel(
        plus=PROMPT | llm | StrOutputParser(),
        minus=ChatPromptTemplate.from_messages([("user", "What is {n} - 1?")]) | llm,
        times=ChatPromptTemplate.from_messages([("user", "What is {n} * 2?")]) | llm,
    )
    answers = langchain_batch_llm.batch(parallel, inputs(50))
    assert len(answers) == 50 and set(answers[0]) == {"plus", "minus", "times"}
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.lines_submitted == 150


class MapState(TypedDict):
    topics: list[str]
    answers: Annotated[list[str], operator.add]
    summary: str


def map_reduce_graph(llm: BatchChatModel, asynchronous: bool) -> Any:
    def fan_out(state: MapState) -> list[Send]:
        return [Send("answer", {"topic": t}) for t in state["topics"]]

    def reduce_step(state: MapState) -> dict[str, str]:
        joined = "; ".join(state["answers"])
        return {"summary": str(llm.invoke(f"Summarise: {joined}").content)}

    async def areduce_step(state: MapState) -> dict[str, str]:
        joined = "; ".join(state["answers"])
        return {"summary": str((await llm.ainvoke(f"Summarise: {joined}")).content)}

    def answer(state: dict[str, str]) -> dict[str, list[str]]:
        return {"answers": [str(llm.invoke(state["topic"]).content)]}

    async def aanswer(state: dict[str, str]) -> dict[str, list[str]]:
        return {"answers": [str((await llm.ainvoke(state["topic"])).content)]}

    graph = StateGraph(MapState)
    graph.add_node("answer", aanswer if asynchronous else answer)  # type: ignore[arg-type]
    graph.add_node("reduce", areduce_step if asynchronous else reduce_step)
    graph.add_conditional_edges(START, fan_out, ["answer"])
    graph.add_edge("answer", "reduce")
    graph.add_edge("reduce", END)
    return graph.compile()


@pytest.mark.parametrize("nodes", ["sync", "async"])
def test_langgraph_send_fan_out_then_reduce_is_two_batches_through_the_entry_point(
    lc_env: Emulator, patient: Scheduler, nodes: str
) -> None:
    graph = map_reduce_graph(batch_llm_model(patient), asynchronous=nodes == "async")
    topics = [f"What is {i} + 1?" for i in range(100)]
    (state,) = langchain_batch_llm.batch(graph, [{"topics": topics}])
    assert len(state["answers"]) == 100 and state["summary"]
    assert lc_env.stats.batches_created == 2
    assert lc_env.stats.lines_submitted == 101


def test_langgraph_send_fan_out_then_reduce_is_two_batches_with_ainvoke(lc_env: Emulator) -> None:
    with Scheduler(journal="off", window=0.5, poll_interval=0.01, poll_max=0.1) as sched:
        graph = map_reduce_graph(batch_llm_model(sched), asynchronous=True)
        topics = [f"What is {i} + 1?" for i in range(100)]
        state = asyncio.run(graph.ainvoke({"topics": topics}))
    assert len(state["answers"]) == 100
    assert lc_env.stats.batches_created == 2


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"It is always sunny in {city}."


def agent_inputs(count: int) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": f"What is the weather in City{i}?"}]}
        for i in range(count)
    ]


def test_an_agent_is_one_batch_per_round_through_the_entry_point(
    lc_env: Emulator, patient: Scheduler
) -> None:
    from langchain.agents import create_agent

    agent = create_agent(batch_llm_model(patient), tools=[get_weather])
    results = langchain_batch_llm.batch(agent, agent_inputs(50))
    assert all("sunny" in r["messages"][-1].content for r in results)
    # Round one asks for the tool, round two answers with its result.
    assert lc_env.stats.batches_created == 2
    assert lc_env.stats.lines_submitted == 100


def test_an_agents_abatch_is_one_batch_per_round(lc_env: Emulator) -> None:
    from langchain.agents import create_agent

    with Scheduler(journal="off", window=0.5, poll_interval=0.01, poll_max=0.1) as sched:
        agent = create_agent(batch_llm_model(sched), tools=[get_weather])
        results = asyncio.run(agent.abatch(agent_inputs(50)))
    assert all("sunny" in r["messages"][-1].content for r in results)
    assert lc_env.stats.batches_created == 2


def test_concurrent_agenerate_calls_of_three_prompts_each_are_one_batch(
    lc_env: Emulator, patient: Scheduler
) -> None:
    """ragas's call shape: each sample asks for three generations at once, all samples
    concurrently."""
    llm = batch_llm_model(patient, temperature=1)

    async def sample(i: int) -> Any:
        prompt = [ChatPromptTemplate.from_messages([("user", f"Grade answer {i}")]).format_prompt()]
        return await llm.agenerate_prompt(prompt * 3)

    async def main() -> list[Any]:
        return await asyncio.gather(*(sample(i) for i in range(30)))

    results = asyncio.run(main())
    assert all(len(r.generations) == 3 for r in results)
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.lines_submitted == 90


def test_a_sweep_inside_a_running_loop_waits_one_turnaround(lc_env: Emulator) -> None:
    """2 models x 2 prompts, run from sync code inside a running event loop (as a Jupyter
    cell is): every batch is submitted before any is waited on."""
    lc_env.knobs.processing_delay = 1.0
    events: list[str] = []
    with Scheduler(
        journal="off",
        window=60,
        poll_interval=0.02,
        poll_max=0.1,
        listeners=[lambda e: events.append(e["event"])],
    ) as sched:
        models = {
            "mini": BatchChatModel(
                model="openai:gpt-4o-mini", scheduler=sched, batch_metadata={"m": "mini"}
            ),
            "big": BatchChatModel(
                model="openai:gpt-4.1-mini", scheduler=sched, batch_metadata={"m": "big"}
            ),
        }
        prompts = {
            "terse": PROMPT,
            "steps": ChatPromptTemplate.from_messages([("user", "Think step by step: {n} + 1?")]),
        }
        runnables = {
            f"{m}/{p}": prompt | model.with_config(run_name=f"{m}/{p}") | StrOutputParser()
            for m, model in models.items()
            for p, prompt in prompts.items()
        }

        async def cell() -> tuple[dict[str, list[Any]], float]:
            started = time.monotonic()
            results = langchain_batch_llm.sweep(runnables, inputs(40))  # sync, in a running loop
            return results, time.monotonic() - started

        results, took = asyncio.run(cell())
    assert sorted(results) == ["big/steps", "big/terse", "mini/steps", "mini/terse"]
    assert all(len(r) == 40 for r in results.values())
    assert lc_env.stats.batches_created == 4  # one per cell of the sweep, all at once
    milestones = [e for e in events if e in ("batch_submitted", "batch_completed")]
    assert milestones[:4] == ["batch_submitted"] * 4  # all four before any ended
    assert took < 2.0  # one 1 s turnaround, not one per model or per prompt


def test_the_entry_point_draws_inputs_done_and_rounds_sent(
    lc_env: Emulator, patient: Scheduler
) -> None:
    import io

    from tqdm import tqdm

    bars: list[Any] = []

    def factory(**kwargs: Any) -> Any:
        bars.append(tqdm(file=io.StringIO(), mininterval=0, **kwargs))
        return bars[-1]

    chain = PROMPT | batch_llm_model(patient) | StrOutputParser()
    langchain_batch_llm.batch(chain, inputs(30), progress=factory)
    (bar,) = bars
    assert (bar.total, bar.n) == (30, 30)
    assert "1 round(s) sent" in str(bar.postfix)


def test_a_branch_still_retrieving_keeps_the_round_open(
    lc_env: Emulator, patient: Scheduler
) -> None:
    """One branch asks the model at once; the other first retrieves (slowly, not through the
    model). LangChain's callback runs show the second branch still working, so the round
    waits for it: one batch, not one per branch."""
    from langchain_core.runnables import RunnableLambda

    async def retrieve(values: dict[str, int]) -> dict[str, Any]:
        await asyncio.sleep(0.3)
        return {**values, "context": f"Notes on {values['n']}."}

    llm = batch_llm_model(patient)
    parallel = RunnableParallel(
        quick=PROMPT | llm,
        slow=RunnableLambda(retrieve)
        | ChatPromptTemplate.from_messages([("user", "{context} What is {n} * 2?")])
        | llm,
    )
    answers = langchain_batch_llm.batch(parallel, inputs(10))
    assert len(answers) == 10
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.lines_submitted == 20


def test_a_plain_sync_batch_of_a_parallel_chain_warns_once(lc_env: Emulator) -> None:
    """``RunnableParallel.batch`` runs ``invoke`` per input in LangChain's thread pool, each
    branch in a pool of its own: nothing can make that one batch, but it is said once."""
    with Scheduler(journal="off", window=0.05, poll_interval=0.01) as quick:
        llm = batch_llm_model(quick)
        parallel = RunnableParallel(a=PROMPT | llm, b=PROMPT | llm)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answers = parallel.batch(inputs(24), {"max_concurrency": 4})
    assert len(answers) == 24
    said = [w for w in caught if issubclass(w.category, BatchLLMWarning)]
    assert len(said) == 1
    assert "langchain_batch_llm.batch(runnable, inputs)" in str(said[0].message)


def test_the_entry_point_keeps_callbacks_per_input_and_failures_in_place(
    lc_env: Emulator, patient: Scheduler
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    class Runs(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tags: list[list[str]] = []

        def on_chain_start(self, serialized: Any, inputs: Any, **kwargs: Any) -> None:
            if kwargs.get("parent_run_id") is None:
                self.tags.append(list(kwargs.get("tags") or []))

    runs = Runs()
    chain = PROMPT | batch_llm_model(patient) | StrOutputParser()
    values: list[dict[str, Any]] = [{"n": i} for i in range(6)]
    values[3] = {"n": "[[emulator:error 400 this one is refused]]"}
    configs: list[Any] = [{"callbacks": [runs], "tags": [f"input-{i}"]} for i in range(6)]
    answers = langchain_batch_llm.batch(chain, values, configs, return_exceptions=True)
    assert isinstance(answers[3], Exception) and "refused" in str(answers[3])
    assert all(isinstance(a, str) for i, a in enumerate(answers) if i != 3)
    assert sorted(t for tags in runs.tags for t in tags) == [f"input-{i}" for i in range(6)]
    assert lc_env.stats.batches_created == 1
    with pytest.raises(Exception, match="refused"):
        langchain_batch_llm.batch(chain, values)
