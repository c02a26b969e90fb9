"""Fixtures for the emulator's own tests: SDK clients pointed at the session's emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import openai
import pytest
from google import genai

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


# --------------------------------------------------------------------------- Anthropic, Gemini


@pytest.fixture(scope="session")
def _session_anthropic(_batch_llm_emulator_server: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=_batch_llm_emulator_server.anthropic_base_url,
        api_key="test-key",
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture
def anthropic_client(emu: Emulator, _session_anthropic: anthropic.Anthropic) -> anthropic.Anthropic:
    """A strict, non-retrying Anthropic client on the (reset) emulator."""
    return _session_anthropic


@pytest.fixture
async def anthropic_aclient(emu: Emulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=emu.anthropic_base_url,
        api_key="test-key",
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture(scope="session")
def _session_genai(_batch_llm_emulator_server: Emulator) -> Iterator[genai.Client]:
    # google-genai does not retry unless asked to, so injected faults reach the test as is.
    client = genai.Client(
        api_key="test-key", http_options={"base_url": _batch_llm_emulator_server.gemini_base_url}
    )
    yield client
    client.close()


@pytest.fixture
def genai_client(emu: Emulator, _session_genai: genai.Client) -> genai.Client:
    """A google-genai client (Developer API, ``/v1beta``) on the (reset) emulator."""
    return _session_genai
