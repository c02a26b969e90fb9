"""Real LlamaIndex flows over the wrappers: an index, a query engine, an ingestion pipeline and
evaluation sweeps, each counted in provider batches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.evaluation import FaithfulnessEvaluator, RelevancyEvaluator
from llama_index.core.extractors import QuestionsAnsweredExtractor
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import ChatMessage
from llama_index.core.node_parser import SentenceSplitter
from llama_index.embeddings.batch_llm import BatchEmbedding
from llama_index.llms.batch_llm import (
    BatchLLM,
    arun_eval_sweep,
    batch_eval_runner,
    gather_in_batches,
    run_eval_sweep,
)

from batch_llm import Scheduler
from batch_llm.emulator import Emulator

EMBEDDING = "openai:text-embedding-3-small"


def documents(count: int) -> list[Document]:
    return [
        Document(
            text=f"Fact {i}: the capital of country{i} is city{i}. "
            f"About {i * 1000} people live in city{i}.",
            doc_id=f"doc-{i}",
        )
        for i in range(count)
    ]


def questions(count: int) -> list[str]:
    return [f"What is the capital of country{i}?" for i in range(count)]


def llm_batches(emu: Emulator) -> int:
    return sum(b["endpoint"] == "/v1/chat/completions" for b in emu.stats.batches)


@pytest.fixture
def wide(emu: Emulator) -> Iterator[Scheduler]:
    """A one-second window, for flows that rely on it alone."""
    with Scheduler(window=1.0, poll_interval=0.02, poll_max=0.1) as scheduler:
        yield scheduler


def test_index_of_200_documents_is_one_embedding_batch_and_a_query_engine_answers(
    emu: Emulator, sched: Scheduler
) -> None:
    Settings.embed_model = BatchEmbedding(model=EMBEDDING, scheduler=sched)
    Settings.llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched)
    index = VectorStoreIndex.from_documents(documents(200))
    assert emu.stats.batches_created == 1
    assert emu.stats.batches[0]["endpoint"] == "/v1/embeddings"
    assert emu.stats.realtime_calls == 0

    answer = index.as_query_engine().query("What is the capital of country7?")
    assert "the capital of country7 is city7" in str(answer)
    assert answer.source_nodes[0].node.ref_doc_id == "doc-7"
    # The query's embedding goes realtime (the default: a retriever waits on it), the answer
    # is one batch.
    assert emu.stats.batches_created == 2 and emu.stats.realtime_calls == 1

    async_answer = asyncio.run(index.as_query_engine().aquery("What is the capital of country9?"))
    assert "the capital of country9 is city9" in str(async_answer)


def test_ingestion_pipeline_embeds_every_node_in_one_batch(emu: Emulator, sched: Scheduler) -> None:
    embed = BatchEmbedding(model=EMBEDDING, embed_batch_size=16, scheduler=sched)
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed]
    )
    nodes = pipeline.run(documents=documents(200))
    assert len(nodes) == 200 and all(node.embedding for node in nodes)
    assert emu.stats.batches_created == 1
    assert emu.stats.realtime_calls == 0

    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), embed]
    )
    nodes = asyncio.run(pipeline.arun(documents=documents(50)))
    assert len(nodes) == 50 and emu.stats.batches_created == 2


def test_extractors_need_enough_workers_to_be_one_batch(emu: Emulator, wide: Scheduler) -> None:
    llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=wide)
    embed = BatchEmbedding(model=EMBEDDING, scheduler=wide)
    docs = documents(40)

    # As the docs say: num_workers at least the number of nodes.
    extractor = QuestionsAnsweredExtractor(llm=llm, questions=1, num_workers=1000)
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), extractor, embed])
    nodes = pipeline.run(documents=docs)
    assert all("questions_this_excerpt_can_answer" in n.metadata for n in nodes)
    assert llm_batches(emu) == 1 and emu.stats.batches_created == 2

    # LlamaIndex's default of 4 workers: four requests a batch.
    before = llm_batches(emu)
    QuestionsAnsweredExtractor(llm=llm, questions=1)(SentenceSplitter()(docs[:8]))
    assert llm_batches(emu) - before == 2


def test_eval_sweep_of_200_questions_is_two_batches(emu: Emulator, sched: Scheduler) -> None:
    # As the docs say: realtime query embeddings, and the sweep helper.
    Settings.embed_model = BatchEmbedding(
        model=EMBEDDING, dimensions=64, realtime_queries=True, scheduler=sched
    )
    Settings.llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched)
    query_engine = VectorStoreIndex.from_documents(documents(200)).as_query_engine()
    before = emu.stats.batches_created

    results = run_eval_sweep(
        {"faithfulness": FaithfulnessEvaluator()}, query_engine, questions(200)
    )

    assert emu.stats.batches_created - before == 2  # the answers, then the evaluations
    assert [b["lines"] for b in emu.stats.batches[before:]] == [200, 200]
    assert emu.stats.realtime_calls == 200  # one small query embedding each
    # Each result belongs to its own question, in order.
    assert [r.query for r in results["faithfulness"]] == questions(200)
    result = results["faithfulness"][42]
    assert result.response and result.response in "\n".join(result.contexts or [])


def test_batched_query_embeddings_add_one_round(emu: Emulator, sched: Scheduler) -> None:
    Settings.embed_model = BatchEmbedding(
        model=EMBEDDING, dimensions=64, realtime_queries=False, scheduler=sched
    )
    Settings.llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched)
    query_engine = VectorStoreIndex.from_documents(documents(30)).as_query_engine()
    before = emu.stats.batches_created

    evaluators = {"faithfulness": FaithfulnessEvaluator(), "relevancy": RelevancyEvaluator()}
    runner = batch_eval_runner(evaluators)
    results = asyncio.run(runner.aevaluate_queries(query_engine, queries=questions(30)))

    assert {name: len(r) for name, r in results.items()} == {"faithfulness": 30, "relevancy": 30}
    batches = emu.stats.batches[before:]
    assert [(b["endpoint"], b["lines"]) for b in batches] == [
        ("/v1/embeddings", 30),  # the queries
        ("/v1/chat/completions", 30),  # the answers
        ("/v1/chat/completions", 60),  # both evaluators' verdicts
    ]
    assert emu.stats.realtime_calls == 0
    asyncio.run(arun_eval_sweep({"faithfulness": FaithfulnessEvaluator()}, query_engine, ["x"]))


def test_each_refine_round_of_a_fan_out_is_one_batch(emu: Emulator, sched: Scheduler) -> None:
    Settings.embed_model = BatchEmbedding(
        model=EMBEDDING, dimensions=64, realtime_queries=True, scheduler=sched
    )
    Settings.llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched)
    index = VectorStoreIndex.from_documents(documents(60))
    # "refine" makes one LLM call per retrieved node, one after the other.
    query_engine = index.as_query_engine(similarity_top_k=3, response_mode="refine")

    async def main() -> list[Any]:
        return await gather_in_batches(*(query_engine.aquery(q) for q in questions(60)))

    answers = asyncio.run(main())
    assert len(answers) == 60
    assert [b["lines"] for b in emu.stats.batches[1:]] == [60, 60, 60]


def test_a_stage_waits_out_uneven_work_but_never_hangs(emu: Emulator, sched: Scheduler) -> None:
    llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched)

    async def job(i: int) -> str:
        time.sleep(0.03)  # CPU work before the call: 30 jobs take three windows
        response = await llm.achat([ChatMessage(role="user", content=f"job-{i}")])
        return str(response.message.content)

    async def slow() -> str:
        await asyncio.sleep(1.5)  # waits on something else for five windows
        response = await llm.achat([ChatMessage(role="user", content="late")])
        return str(response.message.content)

    async def main() -> list[Any]:
        return await gather_in_batches(*(job(i) for i in range(30)), slow())

    *answers, late = asyncio.run(main())
    assert answers == [f"gpt-4o-mini says: job-{i}" for i in range(30)]
    assert late == "gpt-4o-mini says: late"
    # The 30 went together although they spread over 0.9 s (the window is 0.3 s); the one
    # that waited elsewhere did not hold them past a quiet window.
    assert [b["lines"] for b in emu.stats.batches] == [30, 1]


def test_tree_summarize_with_use_async_is_one_batch_per_level(
    emu: Emulator, sched: Scheduler
) -> None:
    """The documented call: ``use_async=True`` summarises each level's chunk groups at once,
    one batch per level; ``use_async=False`` asks for one summary after another, a batch each."""
    from llama_index.core.response_synthesizers import TreeSummarize

    llm = BatchLLM(model="openai:gpt-4o-mini", scheduler=sched, context_window=6000)
    chunks = [
        " ".join(f"Fact {i}.{k}: city{i} has {k} parks." for k in range(15)) for i in range(200)
    ]
    query = "How many parks does city7 have?"
    TreeSummarize(llm=llm, use_async=True).get_response(query, chunks)
    assert [b["lines"] for b in emu.stats.batches] == [8, 1]  # two levels, two batches
    emu.reset()
    TreeSummarize(llm=llm, use_async=False).get_response(query, chunks)
    assert [b["lines"] for b in emu.stats.batches] == [1] * 9
