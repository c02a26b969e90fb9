"""OpenAI-compatible presets: resolved by name, configured from their own environment variables,
driven by the OpenAI adapter, and reported under their own name."""

from __future__ import annotations

import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import (
    InvalidRequestError,
    OpenAIProvider,
    Scheduler,
    UnknownProviderError,
    resolve_provider,
)
from batch_llm.emulator import Emulator
from batch_llm.providers import PRESETS, OpenAICompatibleProvider


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GROQ_API_KEY", "DOUBLEWORD_API_KEY", "AZURE_OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)


@pytest.mark.parametrize(
    ("name", "env", "base_url"),
    [
        ("groq", "GROQ_API_KEY", "https://api.groq.com/openai/v1"),
        ("doubleword", "DOUBLEWORD_API_KEY", "https://api.doubleword.ai/v1"),
    ],
)
def test_presets_resolve_from_their_own_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, env: str, base_url: str
) -> None:
    monkeypatch.setenv(env, f"{name}-secret-key")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://not-used")
    provider = resolve_provider(name)
    assert isinstance(provider, OpenAICompatibleProvider)
    assert isinstance(provider, OpenAIProvider)
    assert provider.name == name
    assert provider.describe() == f"{name}({base_url})"
    assert f"{name}-secret-key" not in repr(provider) + provider.describe()
    assert resolve_provider(name) is provider  # interned like any adapter
    plain = OpenAIProvider(api_key=f"{name}-secret-key", base_url=base_url)
    assert provider != plain  # never shares queues with the plain OpenAI adapter


def test_an_openai_key_is_never_sent_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    with pytest.raises(InvalidRequestError, match="GROQ_API_KEY"):
        resolve_provider("groq")


def test_azure_builds_its_base_url_from_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az")
    with pytest.raises(InvalidRequestError, match="AZURE_OPENAI_ENDPOINT"):
        resolve_provider("azure")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    assert resolve_provider("azure").describe() == "azure(https://res.openai.azure.com/openai/v1)"


def test_together_is_not_a_preset() -> None:
    # Its batch API answers {"job": {...}} with upper-case statuses: not OpenAI's wire format.
    assert "together" not in PRESETS
    with pytest.raises(UnknownProviderError):
        resolve_provider("together")


def test_a_preset_runs_batches_and_reports_its_name(
    scheduler: Scheduler, emulator: Emulator
) -> None:
    provider = resolve_provider(
        "doubleword",
        api_key="dw-key",
        base_url=emulator.openai_base_url,
        completion_window="1h",  # Doubleword's shorter window
        max_retries=0,
    )
    futures = scheduler.submit_many(
        provider, CHAT, [chat(f"p-{i}", "llama-3.1-8b-instant") for i in range(5)]
    )
    results = batch_llm.wait(futures, timeout=30)
    assert [r["choices"][0]["message"]["content"] for r in results] == [
        f"llama-3.1-8b-instant says: p-{i}" for i in range(5)
    ]
    assert {f.provider for f in futures} == {"doubleword"}
    assert scheduler.batches[0].provider == f"doubleword({emulator.openai_base_url})"
    (batch,) = [b for b in emulator.stats.batches if b["provider"] == "openai"]
    assert batch["lines"] == 5


def test_preset_options_pass_through(emulator: Emulator) -> None:
    provider = resolve_provider("groq", api_key="g", base_url=emulator.openai_base_url)
    assert isinstance(provider, OpenAICompatibleProvider)
    assert (provider.completion_window, provider.file_purpose) == ("24h", "batch")
    custom = resolve_provider(
        "groq", api_key="g", base_url=emulator.openai_base_url, completion_window="7d"
    )
    assert isinstance(custom, OpenAICompatibleProvider)
    assert custom.completion_window == "7d"
    assert custom != provider
