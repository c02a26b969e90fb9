"""LangChain tests run against the emulator with a fast scheduler of their own."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
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


@pytest.fixture
def captured() -> list[dict[str, Any]]:
    """Every JSON body sent through the ``recording`` client, in order."""
    return []


@pytest.fixture
def recording(captured: list[dict[str, Any]]) -> httpx.Client:
    """An HTTP client for a realtime model (``ChatOpenAI(http_client=...)``) that records
    every JSON body it sends in ``captured``: the bytes realtime puts on the wire."""

    def record(request: httpx.Request) -> None:
        captured.append(json.loads(request.content))

    return httpx.Client(event_hooks={"request": [record]})


@pytest.fixture
def batch_bodies(lc_env: Emulator) -> Callable[[], list[dict[str, Any]]]:
    """Every body of every OpenAI batch so far, read back from the emulator's input files."""
    client = openai.OpenAI(base_url=lc_env.openai_base_url, api_key="sk-test")

    def read() -> list[dict[str, Any]]:
        bodies = []
        for batch in client.batches.list():
            text = client.files.content(batch.input_file_id).text
            bodies += [json.loads(line)["body"] for line in text.splitlines() if line]
        return bodies

    return read
