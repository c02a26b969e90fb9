"""Codecs: how one provider's LlamaIndex embedding integration maps onto batch requests.

As for the LLM, ``BatchEmbedding`` knows nothing of any provider: a codec wraps the provider's
own LlamaIndex embedding class, builds the request bodies its realtime calls would send (split
to the provider's per-request limits) and reads vectors out of response bodies exactly as the
provider SDK does.
"""

from __future__ import annotations

import abc
import base64
import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.llms.batch_llm._shared import (
    BatchRequest,
    capture_openai_request,
    missing_integration,
    openai_batch_base_url,
    openai_inner_base_url,
)

import batch_llm

__all__ = ["EmbeddingCodec", "OpenAIEmbeddingCodec", "codec_for_embedding", "codec_for_model"]


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


class OpenAIEmbeddingCodec(EmbeddingCodec):
    """``llama_index.embeddings.openai.OpenAIEmbedding``."""

    provider_name = "openai"
    # OpenAI's limits for one embeddings request: inputs, and tokens summed over them.
    max_inputs = 2048
    max_tokens = 300_000

    @classmethod
    def build(cls, model: str, params: dict[str, Any]) -> OpenAIEmbeddingCodec:
        try:
            from llama_index.embeddings.openai import OpenAIEmbedding, OpenAIEmbeddingModelType
        except ImportError:
            raise missing_integration(
                "llama-index-embeddings-openai", "llama_index.embeddings.openai"
            ) from None
        kwargs = {k: v for k, v in params.items() if v is not None}
        kwargs["api_base"] = openai_inner_base_url(params.get("api_base"))
        try:
            OpenAIEmbeddingModelType(model)
        except ValueError:
            # The class only knows its enum's models by ``model``; any other name goes
            # through ``model_name``, which it sends as is.
            kwargs["model_name"] = model
        else:
            kwargs["model"] = model
        return cls(OpenAIEmbedding(**kwargs))

    @classmethod
    def wrap(cls, embedding: BaseEmbedding) -> OpenAIEmbeddingCodec:
        if "azure" in type(embedding).__module__:
            raise ValueError(
                f"BatchEmbedding cannot batch {type(embedding).__name__} yet: Azure OpenAI "
                "batches use deployments; wrap llama_index.embeddings.openai.OpenAIEmbedding"
            )
        return cls(embedding)

    def fields(self) -> dict[str, Any]:
        embedding: Any = self.embedding
        return {
            "model": f"{self.provider_name}:{embedding._text_engine}",
            "model_name": embedding.model_name,
            "dimensions": embedding.dimensions,
            "additional_kwargs": {
                k: v for k, v in embedding.additional_kwargs.items() if k != "dimensions"
            },
            "api_key": embedding.api_key or None,
            "api_base": embedding.api_base,
            "embed_batch_size": embedding.embed_batch_size,
        }

    @functools.cached_property
    def provider(self) -> batch_llm.Provider:
        embedding: Any = self.embedding
        return batch_llm.resolve_provider(
            "openai",
            api_key=embedding.api_key or None,
            base_url=openai_batch_base_url(embedding.api_base),
            default_headers=embedding.default_headers,
        )

    def requests(self, texts: Sequence[str], *, query: bool) -> list[BatchRequest]:
        embedding: Any = self.embedding
        engine = embedding._query_engine if query else embedding._text_engine
        kwargs = embedding.additional_kwargs
        requests = []
        for chunk in self._chunks(texts):
            # What llama_index.embeddings.openai's get_embeddings sends for the chunk.
            inputs = [text.replace("\n", " ") for text in chunk]
            call = functools.partial(_create_embeddings, input=inputs, model=engine, **kwargs)
            requests.append(capture_openai_request(call))
        return requests

    def _chunks(self, texts: Sequence[str]) -> list[Sequence[str]]:
        chunks: list[Sequence[str]] = []
        start = tokens = 0
        for index, text in enumerate(texts):
            # About three characters a token at worst (English averages four): cheap, and it
            # errs towards smaller requests.
            cost = len(text) // 3 + 1
            if index > start and (
                index - start >= self.max_inputs or tokens + cost > self.max_tokens
            ):
                chunks.append(texts[start:index])
                start, tokens = index, 0
            tokens += cost
        if start < len(texts):
            chunks.append(texts[start:])
        return chunks

    def vectors(self, body: dict[str, Any]) -> list[Embedding]:
        # The openai SDK's own reading of an embeddings response: it asks for base64 unless
        # told otherwise and decodes it with numpy, so the floats are bit-identical.
        import numpy as np

        data = body.get("data")
        if not data:
            raise ValueError("No embedding data received")
        decode = "encoding_format" not in self.embedding.additional_kwargs  # type: ignore[attr-defined]
        vectors: list[Embedding] = []
        for item in sorted(data, key=lambda item: item.get("index", 0)):
            value = item["embedding"]
            if decode and isinstance(value, str):
                value = np.frombuffer(base64.b64decode(value), dtype="float32").tolist()
            vectors.append(value)
        return vectors


def _create_embeddings(client: Any, **params: Any) -> Any:
    return client.embeddings.with_raw_response.create(**params)


@dataclass(frozen=True, slots=True)
class _Integration:
    """A provider's LlamaIndex embedding class and the codec that batches it."""

    provider: str
    module: str
    class_name: str
    codec: Callable[[], type[EmbeddingCodec]] | None

    def load(self) -> type[BaseEmbedding] | None:
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls: type[BaseEmbedding] | None = getattr(module, self.class_name, None)
        return cls


_INTEGRATIONS = (
    _Integration(
        "openai", "llama_index.embeddings.openai", "OpenAIEmbedding", lambda: OpenAIEmbeddingCodec
    ),
    # Gemini's batch adapter is being written; its codec follows it.
    _Integration("gemini", "llama_index.embeddings.google_genai", "GoogleGenAIEmbedding", None),
)


def _supported() -> str:
    return ", ".join(i.provider for i in _INTEGRATIONS if i.codec is not None)


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> EmbeddingCodec:
    """The codec for ``provider:model``, building the provider's embedding class."""
    for integration in _INTEGRATIONS:
        if integration.provider == provider:
            if integration.codec is None:
                raise NotImplementedError(
                    f"BatchEmbedding does not batch {provider} models yet; it supports: "
                    f"{_supported()}"
                )
            return integration.codec().build(model, params)
    raise ValueError(
        f"unknown provider {provider!r} in BatchEmbedding model; supported: {_supported()}"
    )


def codec_for_embedding(embedding: object) -> EmbeddingCodec:
    """The codec for an instance of a provider's LlamaIndex embedding class."""
    for integration in _INTEGRATIONS:
        cls = integration.load()
        if cls is None or not isinstance(embedding, cls):
            continue
        if integration.codec is None:
            raise NotImplementedError(
                f"BatchEmbedding does not batch {integration.provider} embeddings yet; it "
                f"supports: {_supported()}"
            )
        return integration.codec().wrap(embedding)
    classes = ", ".join(f"{i.module}.{i.class_name}" for i in _INTEGRATIONS if i.codec is not None)
    raise TypeError(f"BatchEmbedding cannot wrap {type(embedding).__name__}; it wraps {classes}")
