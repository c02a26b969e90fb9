"""The provider contract (``batch_llm.testing.ProviderContract``), passed by every adapter the
library ships: the three SDK-backed ones against the emulator, and the in-memory fake."""

from __future__ import annotations

from typing import Any

import pytest

from batch_llm import AnthropicProvider, FakeProvider, GeminiProvider, OpenAIProvider
from batch_llm.emulator import Emulator
from batch_llm.testing import ProviderContract

FAIL = "[[emulator:error 400 this line is refused]]"


def openai_chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


class TestOpenAI(ProviderContract):
    @pytest.fixture
    def provider(self, emulator: Emulator) -> OpenAIProvider:
        return OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-contract")

    def body(self, i: int) -> dict[str, Any]:
        return openai_chat(f"What is {i} + 1?")

    def failing_body(self) -> dict[str, Any]:
        return openai_chat(FAIL)

    def factory_options(self, provider: Any) -> dict[str, Any]:
        return {"base_url": provider.base_url, "api_key": "sk-contract"}


class TestOpenAIEmbeddings(TestOpenAI):
    endpoint = "/v1/embeddings"

    def body(self, i: int) -> dict[str, Any]:
        return {"model": "text-embedding-3-small", "input": [f"text {i}", f"more {i}"]}

    def failing_body(self) -> None:
        return None


class TestAnthropic(ProviderContract):
    endpoint = "/v1/messages"

    @pytest.fixture
    def provider(self, emulator: Emulator) -> AnthropicProvider:
        return AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-contract")

    def body(self, i: int) -> dict[str, Any]:
        return {
            "model": "claude-haiku-4-5",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
        }

    def failing_body(self) -> dict[str, Any]:
        return {**self.body(0), "messages": [{"role": "user", "content": FAIL}]}

    def factory_options(self, provider: Any) -> dict[str, Any]:
        return {"base_url": provider.base_url, "api_key": "sk-ant-contract"}


class TestGemini(ProviderContract):
    endpoint = "generateContent"

    @pytest.fixture
    def provider(self, emulator: Emulator) -> GeminiProvider:
        return GeminiProvider(base_url=emulator.gemini_base_url, api_key="g-contract")

    def body(self, i: int) -> dict[str, Any]:
        return {
            "model": "gemini-2.5-flash",
            "contents": [{"role": "user", "parts": [{"text": f"What is {i} + 1?"}]}],
        }

    def failing_body(self) -> dict[str, Any]:
        return {**self.body(0), "contents": [{"role": "user", "parts": [{"text": FAIL}]}]}

    def factory_options(self, provider: Any) -> dict[str, Any]:
        return {"base_url": provider.base_url, "api_key": "g-contract"}


class TestFake(ProviderContract):
    @pytest.fixture
    def provider(self) -> FakeProvider:
        return FakeProvider()

    def body(self, i: int) -> dict[str, Any]:
        return openai_chat(f"What is {i} + 1?")

    def failing_body(self) -> dict[str, Any]:
        return openai_chat(FAIL)
