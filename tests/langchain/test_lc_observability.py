"""What a LangChain user sees of a fan-out: a progress bar, batches stamped with their run's
metadata, a cost report, and a dry run that sends nothing."""

from __future__ import annotations

import io
from typing import Any

import openai
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from tqdm import tqdm

import batch_llm
from batch_llm import DryRunError, Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel, BatchEmbeddings

PROMPT = ChatPromptTemplate.from_messages([("human", "What is {a} + {b}?")])


class Bars:
    """A tqdm factory that remembers each bar and the positions it was drawn at."""

    def __init__(self) -> None:
        self.bars: list[Any] = []
        self.positions: list[list[int]] = []

    def __call__(self, **kwargs: Any) -> Any:
        positions: list[int] = []
        self.positions.append(positions)

        class Bar(tqdm):  # type: ignore[type-arg]
            def update(self, n: float | None = 1) -> bool | None:
                result = super().update(n)
                positions.append(int(self.n))
                return result

        bar = Bar(file=io.StringIO(), mininterval=0, **kwargs)
        self.bars.append(bar)
        return bar


def test_batch_of_2000_prompts_shows_a_bar_from_0_to_2000(lc_env: Emulator) -> None:
    lc_env.knobs.processing_delay = 0.6
    lc_env.knobs.finalizing_delay = 0.2
    bars = Bars()
    with Scheduler(
        window=0.05, poll_interval=0.02, poll_max=0.05, journal="off", progress=bars
    ) as scheduler:
        llm = BatchChatModel(model="openai:gpt-4o-mini", temperature=0, scheduler=scheduler)
        inputs = [{"a": i, "b": 1} for i in range(2000)]
        answers = (PROMPT | llm | StrOutputParser()).batch(inputs)
        single = llm.invoke("What is 1 + 1?")  # the window's batch of it draws its own bar
    assert len(answers) == 2000 and all(answers) and single.content
    bar, window_bar = bars.bars
    assert bar.total == 2000 and bar.n == 2000
    assert window_bar.total == 1
    positions = bars.positions[0]
    assert positions == sorted(positions) and any(0 < n < 2000 for n in positions)
    assert lc_env.stats.batches_created == 2


def test_batch_metadata_is_stamped_on_the_wrappers_batches(lc_env: Emulator) -> None:
    with Scheduler(poll_interval=0.02, journal="off", metadata={"team": "evals"}) as scheduler:
        llm = BatchChatModel(
            model="openai:gpt-4o-mini",
            temperature=0,
            scheduler=scheduler,
            batch_metadata={"run_id": "lc-7"},
        )
        embeddings = BatchEmbeddings(
            model="openai:text-embedding-3-small",
            scheduler=scheduler,
            batch_metadata={"run_id": "emb-1"},
        )
        llm.batch(["a", "b"])
        embeddings.embed_documents(["x", "y", "z"])
        report = scheduler.cost()
    client = openai.OpenAI()
    stamped = [client.batches.retrieve(r.batch_id or "").metadata for r in scheduler.batches]
    assert [(m or {}).get("run_id") for m in stamped] == ["lc-7", "emb-1"]
    assert all((m or {}).get("team") == "evals" for m in stamped)
    assert {row.model for row in report.rows} == {"gpt-4o-mini", "text-embedding-3-small"}
    assert report.complete and report.cost > 0


def test_a_chain_under_dry_run_sends_nothing_and_reports_the_plan(lc_env: Emulator) -> None:
    llm = BatchChatModel(model="openai:gpt-4o", max_tokens=20)  # the default scheduler
    chain = PROMPT | llm | StrOutputParser()
    with batch_llm.dry_run() as plan:
        results = chain.batch([{"a": i, "b": 2} for i in range(50)], return_exceptions=True)
    assert all(isinstance(r, DryRunError) for r in results)
    (planned,) = plan.batches
    assert (planned.model, planned.requests, planned.output_tokens) == ("gpt-4o", 50, 1000)
    assert plan.cost > 0
    assert lc_env.stats.calls_by_route == {}
