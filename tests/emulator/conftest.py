"""Fixtures for the emulator's own tests: SDK clients pointed at the session's emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from batch_llm.emulator import Emulator


def pytest_configure(config: pytest.Config) -> None:
    # Installed, batch-llm registers its plugin through the pytest11 entry point; from a source
    # checkout it is not installed, so register it here (once).
    manager = config.pluginmanager
    if not (manager.has_plugin("batch_llm") or manager.has_plugin("batch_llm.testing")):
        manager.import_plugin("batch_llm.testing")
    # pytest-socket's marker, declared here too so the suite also runs without that plugin.
    config.addinivalue_line("markers", "enable_socket: let this test open any socket")


@pytest.fixture
def emu(batch_llm_emulator: Emulator) -> Emulator:
    return batch_llm_emulator


@pytest.fixture(scope="session")
def _session_client(_batch_llm_emulator_server: Emulator) -> Iterator[openai.OpenAI]:
    # Strict validation makes the SDK check every field against its own types; no retries, so
    # injected faults reach the test. One client for the session: building one costs ~30 ms.
    with openai.OpenAI(
        base_url=_batch_llm_emulator_server.openai_base_url,
        api_key="test-key",
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture
async def aclient(emu: Emulator) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=emu.openai_base_url,
        api_key="test-key",
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture
def client(emu: Emulator, _session_client: openai.OpenAI) -> openai.OpenAI:
    # Through ``emu``, so the emulator is reset for every test that uses a client.
    return _session_client


@pytest.fixture(scope="session")
def _session_loose_client(_batch_llm_emulator_server: Emulator) -> Iterator[openai.OpenAI]:
    # The SDK validates base64 embeddings against its float-list type before decoding them, so
    # strict validation rejects real OpenAI answers too; base64 tests use the default client.
    with openai.OpenAI(
        base_url=_batch_llm_emulator_server.openai_base_url, api_key="test-key", max_retries=0
    ) as c:
        yield c


@pytest.fixture
def loose_client(emu: Emulator, _session_loose_client: openai.OpenAI) -> openai.OpenAI:
    return _session_loose_client
