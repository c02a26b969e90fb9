"""Shared fixtures. The emulator fixtures (``batch_llm_emulator``, ``batch_llm_openai_env``)
come from the library's own pytest plugin, ``batch_llm.testing``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batch_llm import OpenAIProvider, Scheduler
from batch_llm._retry import RetryPolicy
from batch_llm.emulator import Emulator


@pytest.fixture(autouse=True)
def _private_journal(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own journal, so no test resumes another's batches."""
    monkeypatch.setenv("BATCH_LLM_JOURNAL", str(tmp_path / "journal.sqlite3"))


@pytest.fixture
def emulator(batch_llm_emulator: Emulator) -> Emulator:
    return batch_llm_emulator


@pytest.fixture
def openai_provider(emulator: Emulator) -> OpenAIProvider:
    """An adapter on the emulator whose SDK does not retry, so injected faults show."""
    return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-test", max_retries=0)


FAST_RETRY = RetryPolicy(attempts=4, initial=0.01, cap=0.05)


@pytest.fixture
def scheduler() -> Iterator[Scheduler]:
    """A scheduler that polls fast, retries fast, and collects single calls for a short
    window."""
    with Scheduler(window=0.2, poll_interval=0.02, poll_max=0.2, retry=FAST_RETRY) as sched:
        yield sched
