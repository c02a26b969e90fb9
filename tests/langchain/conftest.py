"""LangChain tests run against the emulator with a fast scheduler of their own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batch_llm import Scheduler
from batch_llm.emulator import Emulator


@pytest.fixture
def fast_scheduler() -> Iterator[Scheduler]:
    """Short window and fast polls, so single calls do not wait seconds for company."""
    with Scheduler(window=0.1, poll_interval=0.01, poll_max=0.1) as scheduler:
        yield scheduler


@pytest.fixture
def lc_env(batch_llm_openai_env: Emulator) -> Emulator:
    """OPENAI_BASE_URL / OPENAI_API_KEY point at the emulator (ChatOpenAI reads them)."""
    return batch_llm_openai_env
