"""Codecs: how one provider's LlamaIndex embedding integration maps onto batch requests.

As for the LLM, ``BatchEmbedding`` knows nothing of any provider: a codec wraps the provider's
own LlamaIndex embedding class, builds the request bodies its realtime calls would send (split
to the provider's per-request limits) and reads vectors out of response bodies exactly as the
provider SDK does.

A codec is registered with the core's one registry, under the kind ``"llama_index.embedding"``::

    batch_llm.register_codec("llama_index.embedding", "openai",
                             "llama_index.embeddings.openai:OpenAIEmbedding",
                             OpenAIEmbeddingCodec, package="llama-index-embeddings-openai")

and ``BatchEmbedding`` finds it by the wrapped class or by the provider in
``"provider:model"``. This module holds the base class and that lookup; it imports no codec
(the built-in ones register in ``_builtin``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.llms.batch_llm.shared import require_codec

import batch_llm
from batch_llm import BatchRequest

__all__ = ["KIND", "EmbeddingCodec", "codec_for_embedding", "codec_for_model"]

#: The registry kind of LlamaIndex embedding codecs.
KIND = "llama_index.embedding"


class EmbeddingCodec(abc.ABC):
    """One provider's LlamaIndex embedding class, seen from ``BatchEmbedding``.

    ``embedding`` is an instance of the integration's class. Its network methods are used only
    for realtime query embeddings, when asked for; everything else goes through batches.

    Required, for every provider:

    - ``provider_name``: the name before the colon in ``"provider:model"``;
    - ``build``: the integration's class for a model name and ``BatchEmbedding``'s parameters;
    - ``fields``: ``BatchEmbedding``'s field values as the wrapped embedding has them;
    - ``provider``: the batch adapter for the wrapped embedding's credentials and server;
    - ``requests`` and ``vectors``: the two halves of a realtime embedding call.

    Optional hooks, with defaults:

    - ``wrap``: refuse variants of the class the codec cannot batch (default: accept);
    - ``inputs``: how many texts a request embeds (default: the length of its ``input``).
    """

    provider_name: ClassVar[str]

    def __init__(self, embedding: BaseEmbedding) -> None:
        self.embedding = embedding

    # -- required -------------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def build(
        cls, embedding_class: type[BaseEmbedding], model: str, params: dict[str, Any]
    ) -> EmbeddingCodec:
        """Build ``embedding_class`` (the registered class, imported) for ``model`` from
        ``BatchEmbedding``'s parameters (``dimensions``, ``additional_kwargs``, ``api_key``,
        ``api_base``; None where not given)."""

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

    # -- optional hooks -------------------------------------------------------------------------

    @classmethod
    def wrap(cls, embedding: BaseEmbedding) -> EmbeddingCodec:
        """Wrap an existing instance; refuse variants the codec cannot batch."""
        return cls(embedding)

    @staticmethod
    def inputs(request: BatchRequest) -> int:
        """How many texts ``request`` embeds."""
        value = request.body.get("input")
        return len(value) if isinstance(value, list) else 1


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> EmbeddingCodec:
    """The codec for ``provider:model``, building the provider's embedding class."""
    entry = require_codec(KIND, provider=provider, wrapper="BatchEmbedding")
    codec: EmbeddingCodec = entry.codec.build(entry.model_class(), model, params)
    return codec


def codec_for_embedding(embedding: object) -> EmbeddingCodec:
    """The codec for an instance of a registered LlamaIndex embedding class."""
    entry = require_codec(KIND, embedding, wrapper="BatchEmbedding")
    codec: EmbeddingCodec = entry.codec.wrap(embedding)
    return codec
