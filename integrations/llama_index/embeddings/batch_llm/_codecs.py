"""Codecs: how one provider's LlamaIndex embedding integration maps onto batch requests.

As for the LLM, ``BatchEmbedding`` knows nothing of any provider: a codec wraps the provider's
own LlamaIndex embedding class, builds the request bodies its realtime calls would send (split
to the provider's per-request limits) and reads vectors out of response bodies exactly as the
provider SDK does.

The codecs themselves live in ``_openai`` and ``_gemini``; this module holds the seam and the
registry.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.llms.batch_llm._shared import BatchRequest

import batch_llm

__all__ = ["EmbeddingCodec", "codec_for_embedding", "codec_for_model"]


class EmbeddingCodec(abc.ABC):
    """One provider's LlamaIndex embedding class, seen from ``BatchEmbedding``.

    ``embedding`` is an instance of the integration's class. Its network methods are used only
    for realtime query embeddings, when asked for; everything else goes through batches.
    """

    provider_name: ClassVar[str]

    def __init__(self, embedding: BaseEmbedding) -> None:
        self.embedding = embedding

    @classmethod
    @abc.abstractmethod
    def build(cls, model: str, params: dict[str, Any]) -> EmbeddingCodec:
        """Build the integration's embedding class for ``model`` from our parameters."""

    @classmethod
    def wrap(cls, embedding: BaseEmbedding) -> EmbeddingCodec:
        """Wrap an existing instance; refuse variants the codec cannot batch."""
        return cls(embedding)

    @abc.abstractmethod
    def fields(self) -> dict[str, Any]:
        """``BatchEmbedding``'s field values as the wrapped embedding has them."""

    @property
    @abc.abstractmethod
    def provider(self) -> batch_llm.Provider:
        """The batch adapter for the wrapped embedding's credentials and server."""

    @abc.abstractmethod
    def requests(self, texts: Sequence[str], *, query: bool) -> list[BatchRequest]:
        """The requests that embed ``texts`` in order, each within the provider's per-request
        limits."""

    @abc.abstractmethod
    def vectors(self, body: dict[str, Any]) -> list[Embedding]:
        """The vectors of one response body, in input order, as the provider SDK reads them."""

    @staticmethod
    def inputs(request: BatchRequest) -> int:
        """How many texts ``request`` embeds."""
        value = request.body.get("input")
        return len(value) if isinstance(value, list) else 1


def _openai() -> type[EmbeddingCodec]:
    from ._openai import OpenAIEmbeddingCodec

    return OpenAIEmbeddingCodec


def _gemini() -> type[EmbeddingCodec]:
    from ._gemini import GeminiEmbeddingCodec

    return GeminiEmbeddingCodec


@dataclass(frozen=True, slots=True)
class _Integration:
    """A provider's LlamaIndex embedding class and the codec that batches it."""

    provider: str
    module: str
    class_name: str
    codec: Callable[[], type[EmbeddingCodec]]
    aliases: tuple[str, ...] = ()

    def load(self) -> type[BaseEmbedding] | None:
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls: type[BaseEmbedding] | None = getattr(module, self.class_name, None)
        return cls


_INTEGRATIONS = (
    _Integration("openai", "llama_index.embeddings.openai", "OpenAIEmbedding", _openai),
    _Integration(
        "google_genai",
        "llama_index.embeddings.google_genai",
        "GoogleGenAIEmbedding",
        _gemini,
        ("gemini",),
    ),
)


def _supported() -> str:
    return ", ".join(
        i.provider + (f" (or {', '.join(i.aliases)})" if i.aliases else "") for i in _INTEGRATIONS
    )


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> EmbeddingCodec:
    """The codec for ``provider:model``, building the provider's embedding class."""
    for integration in _INTEGRATIONS:
        if provider == integration.provider or provider in integration.aliases:
            return integration.codec().build(model, params)
    raise ValueError(
        f"unknown provider {provider!r} in BatchEmbedding model; supported: {_supported()}"
    )


def codec_for_embedding(embedding: object) -> EmbeddingCodec:
    """The codec for an instance of a provider's LlamaIndex embedding class."""
    for integration in _INTEGRATIONS:
        cls = integration.load()
        if cls is not None and isinstance(embedding, cls):
            return integration.codec().wrap(embedding)
    classes = ", ".join(f"{i.module}.{i.class_name}" for i in _INTEGRATIONS)
    raise TypeError(f"BatchEmbedding cannot wrap {type(embedding).__name__}; it wraps {classes}")
