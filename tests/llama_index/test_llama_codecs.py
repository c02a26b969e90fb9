"""The one way to teach the LlamaIndex wrappers a provider: ``batch_llm.register_codec`` under
the kinds ``"llama_index.llm"`` and ``"llama_index.embedding"``, with a subclass of the public
``ChatCodec`` or ``EmbeddingCodec``. Registered codecs are found by the wrapped object's class
(the most specific registration winning) or by the provider in ``"provider:model"``."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, MessageRole
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.embeddings.batch_llm import BatchEmbedding, EmbeddingCodec
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.llms.batch_llm import BatchLLM, ChatCodec
from llama_index.llms.openai import OpenAI

import batch_llm
from batch_llm import BatchRequest, Scheduler
from batch_llm.emulator import Emulator


@pytest.fixture(autouse=True)
def _registrations_end_with_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = importlib.import_module("batch_llm._codecs")
    monkeypatch.setattr(registry, "_entries", list(registry._entries))


class HouseLLM(OpenAI):
    """An application's own LlamaIndex LLM class (here an OpenAI subclass, so that the built-in
    OpenAI codec matches it too, and the more specific registration has to win)."""


class HouseCodec(ChatCodec):
    """A codec with only the required methods: chat completions, read by hand."""

    provider_name = "house"

    @classmethod
    def build(
        cls, llm_class: type[FunctionCallingLLM], model: str, params: dict[str, Any]
    ) -> HouseCodec:
        return cls(llm_class(model=model, api_key=params["api_key"], api_base=params["api_base"]))

    def fields(self) -> dict[str, Any]:
        llm: Any = self.llm
        return {"model": f"house:{llm.model}", "api_key": llm.api_key, "api_base": llm.api_base}

    @property
    def provider(self) -> batch_llm.Provider:
        llm: Any = self.llm
        return batch_llm.resolve_provider("openai", api_key=llm.api_key, base_url=llm.api_base)

    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        llm: Any = self.llm
        sent = [{"role": m.role.value, "content": m.content} for m in messages]
        return BatchRequest("/v1/chat/completions", {"model": llm.model, "messages": sent})

    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
        text = body["choices"][0]["message"]["content"]
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), raw=body)


class HouseEmbedding(OpenAIEmbedding):
    """An application's own LlamaIndex embedding class."""


class HouseEmbeddingCodec(EmbeddingCodec):
    provider_name = "house"

    @classmethod
    def build(
        cls, embedding_class: type[BaseEmbedding], model: str, params: dict[str, Any]
    ) -> HouseEmbeddingCodec:
        settings = {"model": model, "api_key": params["api_key"], "api_base": params["api_base"]}
        return cls(embedding_class(**settings))

    def fields(self) -> dict[str, Any]:
        embedding: Any = self.embedding
        return {
            "model": f"house:{embedding.model_name}",
            "api_key": embedding.api_key,
            "api_base": embedding.api_base,
        }

    @property
    def provider(self) -> batch_llm.Provider:
        embedding: Any = self.embedding
        return batch_llm.resolve_provider(
            "openai", api_key=embedding.api_key, base_url=embedding.api_base
        )

    def requests(self, texts: Sequence[str], *, query: bool) -> list[BatchRequest]:
        body = {"model": self.embedding.model_name, "input": list(texts)}
        return [BatchRequest("/v1/embeddings", body)]

    def vectors(self, body: dict[str, Any]) -> list[Embedding]:
        return [item["embedding"] for item in sorted(body["data"], key=lambda i: i["index"])]


def test_the_built_in_codecs_are_registered_by_class_path() -> None:
    assert [(e.provider, e.target, e.package) for e in batch_llm.codec_entries("llama_index.llm")][
        ::-1
    ] == [
        ("openai", "llama_index.llms.openai:OpenAI", "llama-index-llms-openai"),
        ("anthropic", "llama_index.llms.anthropic:Anthropic", "llama-index-llms-anthropic"),
        (
            "google_genai",
            "llama_index.llms.google_genai:GoogleGenAI",
            "llama-index-llms-google-genai",
        ),
    ]
    embeddings = batch_llm.codec_entries("llama_index.embedding")
    assert [(e.provider, e.target) for e in reversed(embeddings)] == [
        ("openai", "llama_index.embeddings.openai:OpenAIEmbedding"),
        ("google_genai", "llama_index.embeddings.google_genai:GoogleGenAIEmbedding"),
    ]
    assert all(
        batch_llm.find_codec(kind, provider="gemini").provider == "google_genai"  # type: ignore[union-attr]
        for kind in ("llama_index.llm", "llama_index.embedding")
    )


def test_a_registered_chat_codec_serves_its_class_and_its_provider_name(
    emu: Emulator, fast: Scheduler
) -> None:
    batch_llm.register_codec(
        "llama_index.llm", "house", f"{__name__}:HouseLLM", HouseCodec, package="house-llm"
    )
    house = HouseLLM(model="gpt-4o-mini", api_key="sk-test", api_base=emu.openai_base_url)
    llm = BatchLLM(house, scheduler=fast)
    assert isinstance(llm._codec, HouseCodec) and llm.wrapped_llm is house
    assert llm.model == "house:gpt-4o-mini"
    response = llm.chat([ChatMessage(role=MessageRole.USER, content="What is 2 + 2?")])
    assert response.message.content == "4" and isinstance(response.raw, dict)
    assert response.additional_kwargs["batch_id"]
    assert emu.stats.batches_created == 1 and emu.stats.realtime_calls == 0

    # The built-in codec still serves the class it was registered for.
    plain = BatchLLM(OpenAI(model="gpt-4o-mini", api_key="sk-test"), scheduler=fast)
    assert not isinstance(plain._codec, HouseCodec)

    # By name: the registered class is built, and the optional hooks' defaults do the rest.
    built = BatchLLM(
        model="house:gpt-4o-mini", api_key="sk-test", api_base=emu.openai_base_url, scheduler=fast
    )
    assert type(built.wrapped_llm) is HouseLLM
    assert built.complete("What is 2 + 2?").text == "4"
    assert built.metadata.model_name == "gpt-4o-mini"
    with pytest.raises(ValueError, match=r"supported: .*google_genai \(or gemini\), house$"):
        BatchLLM(model="mistral:large")


def test_a_registered_provider_whose_package_is_missing_names_it() -> None:
    batch_llm.register_codec(
        "llama_index.llm", "ghost", "no_such_module:GhostLLM", HouseCodec, package="ghost-llm"
    )
    with pytest.raises(ImportError, match="pip install ghost-llm"):
        BatchLLM(model="ghost:spectre")


def test_a_registered_embedding_codec_serves_its_class_and_its_provider_name(
    emu: Emulator, fast: Scheduler
) -> None:
    batch_llm.register_codec(
        "llama_index.embedding",
        "house",
        f"{__name__}:HouseEmbedding",
        HouseEmbeddingCodec,
        package="house-embeddings",
    )
    house = HouseEmbedding(
        model="text-embedding-3-small", api_key="sk-test", api_base=emu.openai_base_url
    )
    embed = BatchEmbedding(house, scheduler=fast)
    assert isinstance(embed._codec, HouseEmbeddingCodec)
    assert embed.model == "house:text-embedding-3-small"
    vectors = embed.get_text_embedding_batch(["alpha", "beta", "gamma"])
    assert len(vectors) == 3 and len(set(map(tuple, vectors))) == 3
    assert emu.stats.batches_created == 1 and emu.stats.lines_submitted == 1

    built = BatchEmbedding(
        model="house:text-embedding-3-small",
        api_key="sk-test",
        api_base=emu.openai_base_url,
        scheduler=fast,
    )
    assert type(built.wrapped_embedding) is HouseEmbedding
    plain = BatchEmbedding(OpenAIEmbedding(api_key="sk-test"), scheduler=fast)
    assert not isinstance(plain._codec, HouseEmbeddingCodec)


def test_importing_the_wrappers_imports_no_provider_package() -> None:
    # Registration names classes as "module:Class"; their packages load when a model is built.
    import llama_index.llms.batch_llm as llms

    paths = [
        str(Path(batch_llm.__file__).resolve().parent.parent),
        str(Path(next(iter(llms.__path__))).resolve().parents[2]),
        os.environ.get("PYTHONPATH", ""),
    ]
    code = (
        "import sys\n"
        "import llama_index.llms.batch_llm, llama_index.embeddings.batch_llm\n"
        "prefixes = ('openai', 'anthropic', 'google.genai', 'llama_index.llms.openai',\n"
        "            'llama_index.llms.anthropic', 'llama_index.llms.google_genai',\n"
        "            'llama_index.embeddings.openai', 'llama_index.embeddings.google_genai')\n"
        "print(sorted(m for m in sys.modules if m.startswith(prefixes)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
