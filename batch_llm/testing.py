"""pytest fixtures for code that uses batch-llm: an offline provider emulator per test session.

Installed as a pytest plugin (entry point ``batch_llm``), so the fixtures are available without
any import::

    def test_my_pipeline(batch_llm_openai_env):
        emu = batch_llm_openai_env          # OPENAI_BASE_URL and OPENAI_API_KEY point at it
        emu.knobs.line_error_every = 5      # make every fifth batch line fail
        ...
        assert emu.stats.batches_created == 1

``batch_llm_anthropic_env`` and ``batch_llm_gemini_env`` do the same for the Anthropic and
google-genai SDKs (``ANTHROPIC_*`` and ``GOOGLE_GEMINI_BASE_URL``/``GOOGLE_API_KEY``).

Sockets: with pytest-socket's ``--disable-socket``, tests that use these fixtures may still reach
127.0.0.1 (and nothing else).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from .emulator import Emulator

__all__ = [
    "batch_llm_anthropic_env",
    "batch_llm_emulator",
    "batch_llm_gemini_env",
    "batch_llm_openai_env",
]

_DUMMY_KEY = "sk-batch-llm-emulator"
_GEMINI_KEY_VARS = ("GOOGLE_API_KEY", "GEMINI_API_KEY")


def _allow_localhost(request: pytest.FixtureRequest) -> None:
    """Let this test reach the emulator when pytest-socket restricts the network."""
    # Whatever name the plugin was registered under, its module is loaded if it is active.
    pytest_socket = sys.modules.get("pytest_socket")
    if pytest_socket is None:
        return
    blocked = socket.socket is not pytest_socket._true_socket
    restricted = socket.socket.connect is not pytest_socket._true_connect
    if not (blocked or restricted):
        return
    hosts = ["127.0.0.1", "::1", "localhost"]
    configured = request.config.getoption("--allow-hosts", default=None)
    if isinstance(configured, str):
        hosts.extend(h for h in configured.split(",") if h)
    pytest_socket.enable_socket()
    pytest_socket.socket_allow_hosts(hosts)
    # pytest-socket's own teardown hook lifts these settings after the test.


@pytest.fixture(scope="session")
def _batch_llm_emulator_server() -> Iterator[Emulator]:
    emulator = Emulator(host="127.0.0.1", port=0).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def batch_llm_emulator(request: pytest.FixtureRequest) -> Emulator:
    """The session's emulator, reset (files, batches, stats, knobs) for this test."""
    _allow_localhost(request)
    emulator: Emulator = request.getfixturevalue("_batch_llm_emulator_server")
    emulator.reset()
    return emulator


@pytest.fixture
def batch_llm_openai_env(batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` set to use it."""
    monkeypatch.setenv("OPENAI_BASE_URL", batch_llm_emulator.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator


@pytest.fixture
def batch_llm_anthropic_env(
    batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """The emulator, with ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY`` set to use it."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", batch_llm_emulator.anthropic_base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator


@pytest.fixture
def batch_llm_gemini_env(batch_llm_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The emulator, with ``GOOGLE_GEMINI_BASE_URL`` and ``GOOGLE_API_KEY`` set to use it.

    google-genai reads both; ``GEMINI_API_KEY`` is cleared so the SDK does not warn about two.
    """
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", batch_llm_emulator.gemini_base_url)
    for name in _GEMINI_KEY_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", _DUMMY_KEY)
    return batch_llm_emulator
