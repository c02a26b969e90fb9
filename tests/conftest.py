"""Shared fixtures. The emulator fixtures (``batch_llm_emulator``, ``batch_llm_openai_env``)
come from the library's own pytest plugin, ``batch_llm.testing``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch_llm import OpenAIProvider, Scheduler
from batch_llm.emulator import Emulator


@pytest.fixture
def emulator(batch_llm_emulator: Emulator) -> Emulator:
    return batch_llm_emulator


@pytest.fixture
def openai_provider(emulator: Emulator) -> OpenAIProvider:
    """An adapter on the emulator whose SDK does not retry, so injected faults show."""
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    """A scheduler that polls fast and collects single calls for a short window."""
    with Scheduler(window=0.2, poll_interval=0.02, poll_max=0.2) as sched:
        yield sched
