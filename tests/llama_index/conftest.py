"""Fixtures for the LlamaIndex wrappers: the emulator, a fast scheduler per test, realtime
twins of the wrapped classes (for fidelity checks), and LlamaIndex's global Settings restored
after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_helpers import Wire
from llama_index.core import Settings
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.openai import OpenAI

from batch_llm import Scheduler
from batch_llm.emulator import Emulator


@pytest.fixture
def emu(batch_llm_openai_env: Emulator) -> Emulator:
    """The emulator, with OPENAI_BASE_URL / OPENAI_API_KEY pointing at it."""
    return batch_llm_openai_env


@pytest.fixture
def sched() -> Iterator[Scheduler]:
    with Scheduler(window=0.3, poll_interval=0.02, poll_max=0.1) as scheduler:
        yield scheduler


@pytest.fixture
def fast() -> Iterator[Scheduler]:
    """A private scheduler that polls fast and keeps no journal (which would answer a repeated
    deterministic request from its record instead of a batch)."""
    with Scheduler(window=0.3, poll_interval=0.02, poll_max=0.2, journal="off") as scheduler:
        yield scheduler


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def realtime_llm(emu: Emulator, wire: Wire) -> OpenAI:
    """LlamaIndex's own OpenAI LLM against the emulator's realtime API, recording its bodies."""
    return OpenAI(
        model="gpt-4o-mini",
        temperature=0,
        api_base=emu.openai_base_url,
        api_key="sk-test",
        max_retries=0,
        http_client=wire.client(),
    )


@pytest.fixture
def realtime_embedding(emu: Emulator, wire: Wire) -> OpenAIEmbedding:
    return OpenAIEmbedding(
        model="text-embedding-3-small",
        api_base=emu.openai_base_url,
        api_key="sk-test",
        embed_batch_size=2048,
        max_retries=0,
        http_client=wire.client(),
    )


@pytest.fixture(autouse=True)
def _restore_settings() -> Iterator[None]:
    saved = dict(vars(Settings))
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(Settings, name, value)
