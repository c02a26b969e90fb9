"""OpenAI through ``llama-index-embeddings-openai``: the requests ``OpenAIEmbedding`` sends
(through the openai SDK, to a transport that records them), split to OpenAI's per-request
limits, and its vectors read exactly as the SDK reads them."""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.llms.batch_llm.shared import (
    capture_openai_request,
    openai_inner_base_url,
    openai_provider,
    refuse_azure_openai,
)

import batch_llm
from batch_llm import BatchRequest

from ._codecs import EmbeddingCodec

__all__ = ["OpenAIEmbeddingCodec"]


class OpenAIEmbeddingCodec(EmbeddingCodec):
    """``llama_index.embeddings.openai.OpenAIEmbedding``."""

    provider_name = "openai"
    # OpenAI's limits for one embeddings request: inputs, and tokens summed over them.
    max_inputs = 2048
    max_tokens = 300_000

    @classmethod
    def build(
        cls, embedding_class: type[BaseEmbedding], model: str, params: dict[str, Any]
    ) -> OpenAIEmbeddingCodec:
        # Imported already: it is where the registered class lives.
        from llama_index.embeddings.openai import OpenAIEmbeddingModelType

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
        return cls(embedding_class(**kwargs))

    @classmethod
    def wrap(cls, embedding: BaseEmbedding) -> OpenAIEmbeddingCodec:
        instead = "llama_index.embeddings.openai.OpenAIEmbedding"
        refuse_azure_openai(embedding, wrapper="BatchEmbedding", instead=instead)
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
        return openai_provider(self.embedding)

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
