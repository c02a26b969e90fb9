"""BatchEmbedding against the emulator: a whole list is one batch whatever LlamaIndex's batch
size, and the vectors are bit-identical to LlamaIndex's own realtime OpenAIEmbedding."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import openai
import pytest
from llama_helpers import Wire, corpus
from llama_index.core.callbacks import CallbackManager, CBEventType, LlamaDebugHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.storage.kvstore import SimpleKVStore
from llama_index.embeddings.batch_llm import BatchEmbedding
from llama_index.embeddings.openai import OpenAIEmbedding
from pydantic import Field

from batch_llm import Scheduler
from batch_llm.emulator import Emulator

MODEL = "openai:text-embedding-3-small"


@pytest.fixture
def embed(emu: Emulator, sched: Scheduler) -> BatchEmbedding:
    return BatchEmbedding(model=MODEL, scheduler=sched)


def test_public_names_class_name_and_serialization(emu: Emulator, sched: Scheduler) -> None:
    import llama_index.embeddings.batch_llm as package

    assert package.__all__ == ["BatchEmbedding", "EmbeddingCodec"]
    embed = BatchEmbedding(model=MODEL, dimensions=256, api_key="sk-x", scheduler=sched)
    assert BatchEmbedding.class_name() == "BatchEmbedding"
    assert embed.model_name == "text-embedding-3-small"
    data = embed.to_dict()
    assert (data["model"], data["dimensions"], data["class_name"]) == (MODEL, 256, "BatchEmbedding")
    assert "api_key" not in data and "scheduler" not in data
    assert BatchEmbedding.from_dict(data).dimensions == 256
    clone = pickle.loads(pickle.dumps(embed))
    assert clone.dimensions == 256 and embed.scheduler is sched


def test_three_thousand_texts_are_one_batch_with_exact_vectors_in_order(
    embed: BatchEmbedding, realtime_embedding: OpenAIEmbedding, wire: Wire, emu: Emulator
) -> None:
    texts = corpus(3000)
    vectors = embed.get_text_embedding_batch(texts)
    assert emu.stats.batches_created == 1
    assert emu.stats.realtime_calls == 0
    # 3,000 inputs in requests of at most 2,048.
    assert emu.stats.lines_submitted == 2
    realtime = realtime_embedding.get_text_embedding_batch(texts)
    assert vectors == realtime  # bit for bit, in input order
    assert len(vectors) == 3000 and len(vectors[0]) == 1536
    # The request bodies are the ones the realtime SDK call sends (base64 encoding included).
    requests = embed._codec.requests(texts, query=False)
    assert [r.body for r in requests] == wire.bodies
    assert wire.bodies[0]["encoding_format"] == "base64"
    assert "\n" not in "".join(wire.bodies[0]["input"])


def test_async_batch_ignores_embed_batch_size_and_num_workers(
    emu: Emulator, sched: Scheduler, realtime_embedding: OpenAIEmbedding
) -> None:
    embed = BatchEmbedding(model=MODEL, embed_batch_size=10, num_workers=4, scheduler=sched)
    texts = corpus(500)
    vectors = asyncio.run(embed.aget_text_embedding_batch(texts, show_progress=True))
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 1
    assert vectors == realtime_embedding.get_text_embedding_batch(texts)
    assert embed.get_text_embedding_batch([]) == []


def test_requests_respect_the_per_request_token_budget(embed: BatchEmbedding) -> None:
    long_text = "word " * 60_000  # about 100,000 tokens by the cheap estimate
    requests = embed._codec.requests([long_text] * 7 + ["short"], query=False)
    assert [embed._codec.inputs(r) for r in requests] == [2, 2, 2, 2]
    assert [embed._codec.inputs(r) for r in embed._codec.requests(corpus(5000), query=False)] == [
        2048,
        2048,
        904,
    ]


def test_dimensions_and_wrapping_an_openai_embedding(
    emu: Emulator, sched: Scheduler, wire: Wire
) -> None:
    realtime = OpenAIEmbedding(
        model="text-embedding-3-small",
        dimensions=64,
        api_base=emu.openai_base_url,
        api_key="sk-wrapped",
        http_client=wire.client(),
    )
    wrapped = BatchEmbedding(realtime, scheduler=sched)
    assert wrapped.wrapped_embedding is realtime
    assert (wrapped.model, wrapped.dimensions) == (MODEL, 64)
    built = BatchEmbedding(model=MODEL, dimensions=64, scheduler=sched)
    texts = corpus(20)
    assert wrapped.get_text_embedding_batch(texts) == realtime.get_text_embedding_batch(texts)
    assert built.get_text_embedding_batch(texts) == realtime.get_text_embedding_batch(texts)
    assert len(built.get_text_embedding("x")) == 64
    assert wire.bodies[0]["dimensions"] == 64
    with pytest.raises(TypeError, match="configure dimensions on it"):
        BatchEmbedding(realtime, dimensions=8)


def test_queries_are_batched_or_realtime_and_equal_realtime(
    realtime_embedding: OpenAIEmbedding, emu: Emulator, sched: Scheduler
) -> None:
    embed = BatchEmbedding(model=MODEL, realtime_queries=False, scheduler=sched)

    async def many() -> list[Any]:
        return await asyncio.gather(*(embed.aget_query_embedding(f"q {i}") for i in range(50)))

    vectors = asyncio.run(many())
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 50
    assert embed.get_query_embedding("q 50") == realtime_embedding.get_query_embedding("q 50")
    assert emu.stats.batches_created == 2 and emu.stats.realtime_calls == 1
    assert vectors[7] == realtime_embedding.get_query_embedding("q 7")

    realtime_queries = BatchEmbedding(model=MODEL, scheduler=sched)  # realtime is the default
    calls = emu.stats.realtime_calls
    assert realtime_queries.get_query_embedding("q 3") == vectors[3]
    assert asyncio.run(realtime_queries.aget_query_embedding("q 4")) == vectors[4]
    assert emu.stats.realtime_calls == calls + 2 and emu.stats.batches_created == 2
    # Documents still go through batches.
    realtime_queries.get_text_embedding_batch(["a document"])
    assert emu.stats.batches_created == 3


class _Recorder(BaseEventHandler):
    events: list[Any] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Recorder"

    def handle(self, event: Any, **kwargs: Any) -> None:
        if isinstance(event, EmbeddingStartEvent | EmbeddingEndEvent):
            self.events.append(event)


def test_callback_and_instrumentation_events_match_realtime_chunks(
    emu: Emulator, sched: Scheduler
) -> None:
    debug = LlamaDebugHandler()
    recorder = _Recorder(events=[])
    root = get_dispatcher()
    root.add_event_handler(recorder)
    try:
        embed = BatchEmbedding(
            model=MODEL,
            embed_batch_size=40,
            scheduler=sched,
            callback_manager=CallbackManager([debug]),
        )
        texts = corpus(100)
        vectors = embed.get_text_embedding_batch(texts)
    finally:
        root.event_handlers.remove(recorder)
    pairs = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert len(pairs) == 3  # chunks of 40, 40 and 20, as BaseEmbedding reports them
    assert [len(end.payload["chunks"]) for _start, end in pairs] == [40, 40, 20]
    assert pairs[2][1].payload["embeddings"] == vectors[80:]
    kinds = [type(e).__name__ for e in recorder.events]
    assert kinds == ["EmbeddingStartEvent"] * 3 + ["EmbeddingEndEvent"] * 3
    assert emu.stats.batches_created == 1


def test_a_failed_request_raises_the_sdk_error_and_closes_the_events(
    emu: Emulator, sched: Scheduler
) -> None:
    debug = LlamaDebugHandler()
    embed = BatchEmbedding(model=MODEL, scheduler=sched, callback_manager=CallbackManager([debug]))
    with pytest.raises(openai.BadRequestError, match="no vectors today"):
        embed.get_text_embedding_batch(["fine", "[[emulator:error 400 no vectors today]]"])
    (pair,) = debug.get_event_pairs(CBEventType.EMBEDDING)
    assert isinstance(pair[1].payload["exception"], openai.BadRequestError)


def test_the_embeddings_cache_is_honoured(emu: Emulator, sched: Scheduler) -> None:
    embed = BatchEmbedding(model=MODEL, scheduler=sched, embeddings_cache=SimpleKVStore())
    first = embed.get_text_embedding_batch(["alpha", "beta"])
    assert embed.get_text_embedding_batch(["beta", "alpha", "gamma"]) == [
        first[1],
        first[0],
        embed.get_text_embedding("gamma"),
    ]
    # Only "gamma" was new the second time; the last call was served from the cache.
    assert emu.stats.lines_submitted == 2 and emu.stats.batches_created == 2


def test_unsupported_providers_say_which_are(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="supported: openai, google_genai"):
        BatchEmbedding(model="cohere:embed-v4")
    with pytest.raises(TypeError, match="model="):
        BatchEmbedding()
