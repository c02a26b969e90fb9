"""Gemini through ``llama-index-embeddings-google-genai``: the ``embed_content`` call
``GoogleGenAIEmbedding`` makes, one text per request (a Gemini batch line embeds one content),
with the task type it uses (``RETRIEVAL_DOCUMENT`` for texts, ``RETRIEVAL_QUERY`` for queries,
over its ``embedding_config``), and the vectors read the way the SDK reads them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.llms.batch_llm.shared import gemini_base_url, gemini_provider, refuse_vertex_ai

import batch_llm
from batch_llm import BatchRequest

from ._codecs import EmbeddingCodec

__all__ = ["GeminiEmbeddingCodec"]

EMBED = "embedContent"
_DIMENSIONS = "output_dimensionality"


class GeminiEmbeddingCodec(EmbeddingCodec):
    """``llama_index.embeddings.google_genai.GoogleGenAIEmbedding`` on the Gemini Developer
    API."""

    provider_name = "google_genai"

    @classmethod
    def build(
        cls, embedding_class: type[BaseEmbedding], model: str, params: dict[str, Any]
    ) -> GeminiEmbeddingCodec:
        config = dict(params.get("additional_kwargs") or {})
        if params.get("dimensions") is not None:
            config[_DIMENSIONS] = params["dimensions"]
        kwargs: dict[str, Any] = {"model_name": model, "embedding_config": config or None}
        if params.get("api_key"):
            kwargs["api_key"] = params["api_key"]
        if params.get("api_base"):
            kwargs["http_options"] = {"base_url": params["api_base"]}
        return cls(embedding_class(**kwargs))

    @classmethod
    def wrap(cls, embedding: BaseEmbedding) -> GeminiEmbeddingCodec:
        client = embedding._client  # type: ignore[attr-defined]
        refuse_vertex_ai(client, wrapper="BatchEmbedding", wrapped="GoogleGenAIEmbedding")
        return cls(embedding)

    @property
    def _client(self) -> Any:
        return self.embedding._client  # type: ignore[attr-defined]

    def _config(self) -> dict[str, Any]:
        config: Any = self.embedding.embedding_config  # type: ignore[attr-defined]
        if config is None:
            return {}
        values = config if isinstance(config, dict) else config.model_dump()
        return {k: v for k, v in values.items() if v is not None}

    def fields(self) -> dict[str, Any]:
        embedding: Any = self.embedding
        config = self._config()
        return {
            "model": f"{self.provider_name}:{embedding.model_name}",
            "model_name": embedding.model_name,
            "dimensions": config.pop(_DIMENSIONS, None),
            "additional_kwargs": config,
            "api_key": self._client._api_client.api_key or None,
            "api_base": gemini_base_url(self._client),
            "embed_batch_size": embedding.embed_batch_size,
        }

    @functools.cached_property
    def provider(self) -> batch_llm.Provider:
        return gemini_provider(self._client)

    def requests(self, texts: Sequence[str], *, query: bool) -> list[BatchRequest]:
        embedding: Any = self.embedding
        config = self._task_config("RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT")
        # What GoogleGenAIEmbedding._embed_texts passes to embed_content, for one text:
        # contents=[[text]] is one content of one part.
        return [
            BatchRequest(
                EMBED, {"model": embedding.model_name, "contents": [[text]], "config": config}
            )
            for text in texts
        ]

    def _task_config(self, task_type: str) -> Any:
        """GoogleGenAIEmbedding._embed_texts' config: its own, with the call's task type."""
        from google.genai import types

        own: Any = self.embedding.embedding_config  # type: ignore[attr-defined]
        if not own:
            return types.EmbedContentConfig(task_type=task_type)
        config = dict(own)
        config["task_type"] = task_type
        return config

    def vectors(self, body: dict[str, Any]) -> list[Embedding]:
        # The SDK's reading of an embed_content answer; the values are the JSON's floats.
        from google.genai import models, types

        converted = models._EmbedContentResponse_from_mldev(body)
        response = types.EmbedContentResponse._from_response(response=converted, kwargs={})
        if not response.embeddings:
            raise ValueError("No embedding data received")
        return [list(item.values or []) for item in response.embeddings]
