"""BatchEmbedding never hands out vectors from an answer with the wrong number of them: the
error names the texts of that request, and the other requests' vectors are the right ones."""

from __future__ import annotations

import asyncio

import pytest
from llama_helpers import corpus
from llama_index.embeddings.batch_llm import BatchEmbedding

from batch_llm import MalformedResultError, Scheduler
from batch_llm.emulator import Emulator

MODEL = "openai:text-embedding-3-small"


def test_a_short_answer_fails_its_texts_and_names_them(emu: Emulator, fast: Scheduler) -> None:
    embed = BatchEmbedding(model=MODEL, dimensions=8, scheduler=fast)
    texts = corpus(5000)
    expected = embed.get_text_embedding_batch(texts)  # requests of 2,048, 2,048 and 904 texts
    emu.reset()
    emu.knobs.short_embeddings_every = 3  # the third request comes back one vector short
    with pytest.raises(MalformedResultError) as raised:
        embed.get_text_embedding_batch(texts)
    assert "903 embedding vectors for its 904 input(s)" in str(raised.value)
    assert "for texts 4096-4999 (0-based, of 5,000)" in raised.value.__notes__[0]

    emu.knobs.short_embeddings_every = 3
    with pytest.raises(MalformedResultError) as async_raised:
        asyncio.run(embed.aget_text_embedding_batch(texts))
    assert "1 of 3 request(s) failed, for texts 4096-4999" in async_raised.value.__notes__[0]

    emu.knobs.short_embeddings_every = None
    assert embed.get_text_embedding_batch(texts[4096:]) == expected[4096:]
