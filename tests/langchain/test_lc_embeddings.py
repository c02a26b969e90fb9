"""BatchEmbeddings: a corpus is one batch, vectors bit-identical to realtime and in order."""

from __future__ import annotations

import asyncio

import pytest
from langchain_openai import OpenAIEmbeddings

from batch_llm import Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchEmbeddings

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
        embeddings = BatchEmbeddings(
            model="openai:text-embedding-3-small", realtime_queries=False, scheduler=scheduler
        )

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


def test_gemini_embeddings_are_one_batch_and_match_realtime(
    batch_llm_emulator: Emulator, fast_scheduler: Scheduler
) -> None:
    from langchain_google_genai import GoogleGenerativeAIEmbeddings

    emulator = batch_llm_emulator
    realtime = GoogleGenerativeAIEmbeddings(
        model="gemini-embedding-001",
        google_api_key="g-test",
        base_url=emulator.gemini_base_url,
        output_dimensionality=32,
    )
    texts = TEXTS[:40]
    expected = realtime.embed_documents(texts)
    expected_query = realtime.embed_query("a red fox")
    emulator.reset()
    for embeddings in (
        BatchEmbeddings(realtime, scheduler=fast_scheduler),
        BatchEmbeddings(
            model="google_genai:gemini-embedding-001",
            api_key="g-test",
            base_url=emulator.gemini_base_url,
            dimensions=32,
            scheduler=fast_scheduler,
        ),
    ):
        assert embeddings.embed_documents(texts) == expected
        assert embeddings.embed_query("a red fox") == expected_query
    # One batch of 40 lines for the documents; the second model asks the very same requests
    # and takes the answers already fetched. Queries go realtime (the default), each time.
    assert [b["lines"] for b in emulator.stats.batches] == [40]
    assert emulator.stats.realtime_calls == 2
