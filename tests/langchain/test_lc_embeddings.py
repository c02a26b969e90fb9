"""BatchEmbeddings: a corpus is one batch, vectors bit-identical to realtime and in order."""

from __future__ import annotations

import asyncio

import pytest
from langchain_batch_llm import BatchEmbeddings
from langchain_openai import OpenAIEmbeddings

from batch_llm import Scheduler
from batch_llm.emulator import Emulator

TEXTS = [f"note {i}: the {('red', 'green', 'blue')[i % 3]} fox number {i}" for i in range(3000)]


@pytest.fixture
def realtime(lc_env: Emulator) -> OpenAIEmbeddings:
    # The tiktoken-based length check downloads its encoding; offline, send plain text.
    return OpenAIEmbeddings(model="text-embedding-3-small", check_embedding_ctx_length=False)


def test_3000_texts_are_one_batch_exact_and_in_order(
    lc_env: Emulator, realtime: OpenAIEmbeddings, fast_scheduler: Scheduler
) -> None:
    expected = realtime.embed_documents(TEXTS)
    lc_env.reset()
    embeddings = BatchEmbeddings(model="openai:text-embedding-3-small", scheduler=fast_scheduler)
    vectors = embeddings.embed_documents(TEXTS)
    assert vectors == expected
    assert lc_env.stats.batches_created == 1
    assert lc_env.stats.lines_submitted == 2  # 2,048 inputs per request at most
    assert lc_env.stats.realtime_calls == 0


def test_wrapping_keeps_model_dimensions_and_chunk_size(
    lc_env: Emulator, fast_scheduler: Scheduler
) -> None:
    inner = OpenAIEmbeddings(
        model="text-embedding-3-large",
        dimensions=64,
        chunk_size=100,
        check_embedding_ctx_length=False,
    )
    expected = inner.embed_documents(TEXTS[:250])
    lc_env.reset()
    vectors = BatchEmbeddings(inner, scheduler=fast_scheduler).embed_documents(TEXTS[:250])
    assert vectors == expected
    assert len(vectors[0]) == 64
    assert lc_env.stats.lines_submitted == 3


def test_async_documents_and_concurrent_queries(
    lc_env: Emulator, realtime: OpenAIEmbeddings
) -> None:
    with Scheduler(window=0.5, poll_interval=0.01, poll_max=0.1) as scheduler:
        embeddings = BatchEmbeddings(model="openai:text-embedding-3-small", scheduler=scheduler)

        async def main() -> tuple[list[list[float]], list[list[float]]]:
            documents = await embeddings.aembed_documents(TEXTS[:10])
            queries = await asyncio.gather(*(embeddings.aembed_query(t) for t in TEXTS[:20]))
            return documents, list(queries)

        documents, queries = asyncio.run(main())
        single = embeddings.embed_query("just one")
    assert documents == realtime.embed_documents(TEXTS[:10])
    assert queries == realtime.embed_documents(TEXTS[:20])
    assert single == realtime.embed_query("just one")
    assert lc_env.stats.batches_created == 3


def test_empty_list_makes_no_batch(lc_env: Emulator, fast_scheduler: Scheduler) -> None:
    embeddings = BatchEmbeddings(model="openai:text-embedding-3-small", scheduler=fast_scheduler)
    assert embeddings.embed_documents([]) == []
    assert lc_env.stats.batches_created == 0
