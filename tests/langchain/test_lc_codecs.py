"""A provider of one's own: codecs registered with ``batch_llm.register_codec`` for the
LangChain kinds are found by the model's class, as the built-in ones are."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any, Self

import pytest
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

import batch_llm
import batch_llm._codecs
import langchain_batch_llm
from batch_llm import BatchRequest, FakeProvider, Provider, Scheduler
from langchain_batch_llm import (
    BatchChatModel,
    BatchEmbeddings,
    ChatCodec,
    EmbeddingsCodec,
    EmbeddingsSettings,
)

# One in-memory Batch API for this module's codecs (it answers OpenAI-shaped requests).
FAKE = FakeProvider()


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a test registers is forgotten after it (the registry is process-wide)."""
    monkeypatch.setattr(batch_llm._codecs, "_entries", list(batch_llm._codecs._entries))
    FAKE.batches_created = 0
    yield


def test_public_names_are_pinned() -> None:
    assert langchain_batch_llm.__all__ == [
        "BatchChatModel",
        "BatchEmbeddings",
        "ChatCodec",
        "EmbeddingsCodec",
        "EmbeddingsSettings",
        "ModelSlot",
        "abatch",
        "asweep",
        "batch",
        "sweep",
    ]
    assert ChatCodec.kind == "langchain.chat"
    assert EmbeddingsCodec.kind == "langchain.embeddings"


# -- a chat model of one's own -------------------------------------------------------------


class EchoChat(BaseChatModel):
    """A chat model no built-in codec knows."""

    model: str = "echo-1"

    @property
    def _llm_type(self) -> str:
        return "echo"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise AssertionError("a batched call must not run the realtime one")


class EchoChatCodec(ChatCodec):
    provider_name = "echo"
    inner: EchoChat

    @property
    def adapter(self) -> Provider:
        return FAKE

    def request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> BatchRequest:
        body = {
            "model": self.inner.model,
            "messages": [{"role": "user", "content": m.text} for m in messages],
        }
        return BatchRequest("/v1/chat/completions", body)

    def result(self, body: Any, request: BatchRequest) -> ChatResult:
        message = AIMessage(content=body["choices"][0]["message"]["content"])
        return ChatResult(generations=[ChatGeneration(message=message)])


def register_echo_chat() -> None:
    batch_llm.register_codec(
        ChatCodec.kind, "echo", f"{__name__}:EchoChat", EchoChatCodec, package="echo-chat"
    )


def test_a_registered_chat_codec_batches_its_model(fast_scheduler: Scheduler) -> None:
    register_echo_chat()
    llm = BatchChatModel(EchoChat(model="echo-2"), scheduler=fast_scheduler)
    assert isinstance(llm.codec, EchoChatCodec)
    assert llm.provider == "echo"
    answers = llm.batch(["one", "two", "three"])
    assert [a.content for a in answers] == [
        "echo-2 says: one",
        "echo-2 says: two",
        "echo-2 says: three",
    ]
    assert FAKE.batches_created == 1


def test_a_registered_provider_name_builds_its_model() -> None:
    register_echo_chat()
    llm = BatchChatModel(model="echo:echo-3")
    assert type(llm.wrapped) is EchoChat
    assert llm.model_name == "echo-3"
    assert isinstance(llm.codec, EchoChatCodec)


def test_the_most_specific_registered_class_wins() -> None:
    class LoudChatCodec(EchoChatCodec):
        pass

    register_echo_chat()
    batch_llm.register_codec(
        ChatCodec.kind, "loud", f"{__name__}:LoudChat", LoudChatCodec, package="echo-chat"
    )
    assert type(BatchChatModel(LoudChat()).codec) is LoudChatCodec
    assert type(BatchChatModel(EchoChat()).codec) is EchoChatCodec


class LoudChat(EchoChat):
    """A subclass with a codec of its own."""


def test_an_unregistered_model_or_a_codec_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="cannot batch EchoChat"):
        BatchChatModel(EchoChat())
    batch_llm.register_codec(
        ChatCodec.kind, "echo", f"{__name__}:EchoChat", HashEmbeddingsCodec, package="echo-chat"
    )
    with pytest.raises(TypeError, match="is no ChatCodec"):
        BatchChatModel(EchoChat())


# -- embeddings of one's own ---------------------------------------------------------------


class HashEmbeddings(Embeddings):
    """An embeddings model no built-in codec knows."""

    def __init__(self, model: str = "hash-1") -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("a batched call must not run the realtime one")

    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("a batched call must not run the realtime one")


class HashEmbeddingsCodec(EmbeddingsCodec):
    """Two texts per request, to show requests split by the codec's own limit."""

    provider_name = "hash"
    endpoint = "/v1/embeddings"

    @classmethod
    def build(cls, settings: EmbeddingsSettings) -> Self:
        return cls(settings, FAKE)

    @classmethod
    def wrap(cls, embeddings: Any, settings: EmbeddingsSettings) -> Self:
        return cls(EmbeddingsSettings(model=embeddings.model, chunk_size=2), FAKE)

    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        size = self.settings.chunk_size
        chunks = [list(texts[i : i + size]) for i in range(0, len(texts), size)]
        return [{"model": self.settings.model, "input": chunk} for chunk in chunks]

    def vectors(self, body: dict[str, Any]) -> list[list[float]]:
        return [item["embedding"] for item in body["data"]]

    def size(self, body: dict[str, Any]) -> int:
        return len(body["input"])


def register_hash_embeddings() -> None:
    batch_llm.register_codec(
        EmbeddingsCodec.kind,
        "hash",
        f"{__name__}:HashEmbeddings",
        HashEmbeddingsCodec,
        package="hash-embeddings",
    )


TEXTS = ["the red fox", "the green fox", "the blue fox", "the red fox", "a grey wolf"]


def test_a_registered_embeddings_codec_batches_its_model(fast_scheduler: Scheduler) -> None:
    register_hash_embeddings()
    embeddings = BatchEmbeddings(HashEmbeddings("hash-2"), scheduler=fast_scheduler)
    assert isinstance(embeddings.codec, HashEmbeddingsCodec)
    assert (embeddings.provider, embeddings.model, embeddings.chunk_size) == ("hash", "hash-2", 2)
    vectors = embeddings.embed_documents(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert vectors[0] == vectors[3] != vectors[1]
    assert FAKE.batches_created == 1


def test_a_registered_embeddings_provider_name_builds_its_codec() -> None:
    register_hash_embeddings()
    embeddings = BatchEmbeddings(model="hash:hash-3", chunk_size=7)
    assert isinstance(embeddings.codec, HashEmbeddingsCodec)
    assert (embeddings.provider, embeddings.model, embeddings.chunk_size) == ("hash", "hash-3", 7)


def test_unregistered_embeddings_are_refused() -> None:
    with pytest.raises(TypeError, match="cannot batch HashEmbeddings"):
        BatchEmbeddings(HashEmbeddings())


# -- provider packages are imported only for their own models --------------------------------


def test_provider_packages_are_imported_only_for_their_models() -> None:
    code = """
import sys
from langchain_batch_llm import BatchChatModel, BatchEmbeddings
loaded = lambda: sorted(m for m in ("langchain_openai", "langchain_anthropic",
                                    "langchain_google_genai") if m in sys.modules)
assert loaded() == [], loaded()
BatchEmbeddings(model="openai:text-embedding-3-small", api_key="k")
assert loaded() == [], loaded()
BatchChatModel(model="anthropic:claude-haiku-4-5", api_key="k")
assert loaded() == ["langchain_anthropic"], loaded()
"""
    # A fresh interpreter: this one imported every provider package long ago.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
