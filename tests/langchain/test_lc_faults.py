"""Faults that touch one input fail that input alone: a prompt holding a lone surrogate, an
embeddings request whose answer came back with the wrong number of vectors."""

from __future__ import annotations

import pytest

from batch_llm import InvalidRequestError, MalformedResultError, Scheduler
from batch_llm.emulator import Emulator
from langchain_batch_llm import BatchChatModel, BatchEmbeddings

TEXTS = [f"passage {i} about {('cats', 'dogs', 'stocks')[i % 3]}" for i in range(5000)]


@pytest.mark.parametrize("provider", ["openai:gpt-4o", "anthropic:claude-haiku-4-5"])
def test_lone_surrogate_fails_only_its_input(
    lc_env: Emulator,
    batch_llm_anthropic_env: Emulator,
    fast_scheduler: Scheduler,
    provider: str,
) -> None:
    llm = BatchChatModel(model=provider, temperature=0, scheduler=fast_scheduler)
    results = llm.batch(
        ["What is 1 + 1?", "broken \ud800 prompt", "What is 2 + 2?"], return_exceptions=True
    )
    assert isinstance(results[1], InvalidRequestError)
    assert "not valid Unicode" in str(results[1])
    assert [results[0].content, results[2].content] == ["2", "4"]  # type: ignore[union-attr]
    assert lc_env.stats.lines_submitted == 2

    with pytest.raises(InvalidRequestError):
        llm.batch(["What is 1 + 1?", "broken \ud800 prompt"])


def test_embeddings_a_vector_short_fail_their_texts_only(lc_env: Emulator) -> None:
    # No journal: it would answer the repeated requests from the first run's record.
    with Scheduler(poll_interval=0.01, poll_max=0.1, journal="off") as scheduler:
        embeddings = BatchEmbeddings(
            model="openai:text-embedding-3-small", dimensions=8, scheduler=scheduler
        )
        expected = embeddings.embed_documents(TEXTS)  # requests of 2,048, 2,048 and 904 texts
        lc_env.reset()
        lc_env.knobs.short_embeddings_every = 2  # the second request is one vector short
        with pytest.raises(MalformedResultError) as raised:
            embeddings.embed_documents(TEXTS)
        assert "2047 embedding vectors for its 2048 input(s)" in str(raised.value)
        (note,) = raised.value.__notes__
        assert "1 of 3 request(s) failed, for texts 2048-4095 (0-based, of 5,000)" in note

        # Only the texts the note names need asking again.
        lc_env.knobs.short_embeddings_every = None
        assert embeddings.embed_documents(TEXTS[2048:4096]) == expected[2048:4096]


async def test_async_embeddings_and_realtime_queries_with_the_wrong_count(
    lc_env: Emulator, fast_scheduler: Scheduler
) -> None:
    embeddings = BatchEmbeddings(
        model="openai:text-embedding-3-small", chunk_size=3, scheduler=fast_scheduler
    )
    lc_env.knobs.short_embeddings_every = 2
    with pytest.raises(MalformedResultError) as raised:
        await embeddings.aembed_documents([f"t{i}" for i in range(12)])
    assert "2 of 4 request(s) failed, for texts 3-5, 9-11" in raised.value.__notes__[0]

    # Realtime embeddings calls are counted apart: the first is whole, the second is short.
    assert len(await embeddings.aembed_query("first")) == 1536
    with pytest.raises(MalformedResultError, match="the realtime answer"):
        embeddings.embed_query("second")
