"""``BatchEmbeddings``: LangChain embeddings computed through a provider's Batch API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

import batch_llm
from batch_llm import RequestFuture, Scheduler
from batch_llm._gc import gc_paused
from batch_llm._waiting import raise_first_failure

from ._codec import EmbeddingsCodec, EmbeddingsSettings
from ._registry import build_embeddings_codec, embeddings_codec_for, split_model_id

__all__ = ["BatchEmbeddings"]


class BatchEmbeddings(BaseModel, Embeddings):
    """Embeddings through the provider's Batch API: a whole corpus becomes one batch.

        embeddings = BatchEmbeddings(model="openai:text-embedding-3-small")
        embeddings = BatchEmbeddings(OpenAIEmbeddings(model="text-embedding-3-small"))
        embeddings = BatchEmbeddings(model="google_genai:gemini-embedding-001")
        embeddings = BatchEmbeddings(GoogleGenerativeAIEmbeddings(model="gemini-embedding-001"))

    ``embed_documents`` splits the texts into requests of the provider's per-request size
    (OpenAI: up to ``chunk_size`` inputs; Gemini: one text), submits them all as one batch, and
    returns the vectors in input order, exactly as the realtime embeddings call returns them.
    ``embed_query`` goes realtime by default (``realtime_queries``): a query is tiny and a
    retriever is waiting on it.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    embeddings: Any = Field(default=None, exclude=True)
    """An ``OpenAIEmbeddings`` or ``GoogleGenerativeAIEmbeddings`` (or any embeddings model with
    a registered codec) to batch; or build from the fields below."""
    model: str | None = None
    """``"provider:model"`` (``"openai:text-embedding-3-small"``), or a name with ``provider``."""
    provider: str | None = None
    dimensions: int | None = None
    task_type: str | None = None
    """Gemini's task type; by default documents for retrieval, and queries as queries."""
    realtime_queries: bool = True
    """Embed queries (``embed_query``) through the realtime API, at full price: a query vector
    costs next to nothing, and the retriever waiting on it would otherwise wait a whole batch
    turnaround (hours, on a real provider). False sends them in batches too."""
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    chunk_size: int = 2048
    """Inputs per request (at most the provider's limit: 2,048 for OpenAI)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    scheduler_: Scheduler | None = Field(default=None, alias="scheduler", exclude=True)
    batch_metadata: dict[str, str] | None = Field(default=None, exclude=True)
    """Key/values stamped on this model's batches (a run id, say), on top of the scheduler's
    ``metadata``, where the provider keeps batch metadata."""

    _codec: EmbeddingsCodec = PrivateAttr()

    def __init__(self, embeddings: Any = None, /, **kwargs: Any) -> None:
        if embeddings is not None:
            kwargs["embeddings"] = embeddings
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _set_up(self) -> Self:
        if self.embeddings is not None:
            codec = embeddings_codec_for(self.embeddings, self._settings(self.model or ""))
        else:
            if not self.model:
                raise ValueError(
                    "BatchEmbeddings needs model='provider:model' or embeddings to wrap"
                )
            provider, name = split_model_id(self.model, self.provider, EmbeddingsCodec.kind)
            codec = build_embeddings_codec(provider, self._settings(name))
        # The fields say what the requests ask: the wrapped model's settings, the provider's
        # per-request limit.
        settings = codec.settings
        self.provider = codec.provider_name
        self.model, self.dimensions, self.task_type = (
            settings.model,
            settings.dimensions,
            settings.task_type,
        )
        self.chunk_size, self.model_kwargs = settings.chunk_size, settings.model_kwargs
        self._codec = codec
        return self

    def _settings(self, model: str) -> EmbeddingsSettings:
        return EmbeddingsSettings(
            model=model,
            dimensions=self.dimensions,
            task_type=self.task_type,
            chunk_size=self.chunk_size,
            model_kwargs=dict(self.model_kwargs),
            api_key=self.api_key.get_secret_value() if self.api_key is not None else None,
            base_url=self.base_url,
            organization=self.organization,
        )

    @property
    def codec(self) -> EmbeddingsCodec:
        """How requests are built and answers read for this model's provider."""
        return self._codec

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler requests go through."""
        return self.scheduler_ or batch_llm.get_scheduler()

    def _submit(
        self, texts: Sequence[str], *, flush: bool, query: bool = False
    ) -> tuple[list[RequestFuture], list[int]]:
        """The requests' futures, and how many of the texts each request embeds."""
        codec = self._codec
        with gc_paused():
            bodies = codec.bodies(texts, query=query)
            sizes = [codec.size(body) for body in bodies]
        futures = self.scheduler.submit_many(
            codec.adapter, codec.endpoint, bodies, flush=flush, metadata=self.batch_metadata
        )
        return futures, sizes

    def _vectors(self, bodies: list[Any], sizes: list[int] | None = None) -> list[list[float]]:
        """The vectors of every response, in request order and, within each, in input order.

        A request that failed raises its error, noting which texts it was for (``sizes``: the
        texts of each request): the provider checked every answer against its request, so
        the other requests' vectors were right, and only those texts need asking again.
        """
        if sizes is not None:
            raise_first_failure(bodies, sizes)
        vectors: list[list[float]] = []
        with gc_paused():
            for body in bodies:
                vectors.extend(self._codec.vectors(body))
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed every text in one provider batch; vectors in input order."""
        if not texts:
            return []
        futures, sizes = self._submit(texts, flush=True)
        return self._vectors(batch_llm.wait(futures, return_exceptions=True), sizes)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed every text in one provider batch; vectors in input order."""
        if not texts:
            return []
        futures, sizes = self._submit(texts, flush=True)
        return self._vectors(await batch_llm.gather(futures, return_exceptions=True), sizes)

    def _query(self, text: str) -> RequestFuture:
        if not self.realtime_queries:
            (future,), _ = self._submit([text], flush=False, query=True)
            return future
        codec = self._codec
        (body,) = codec.bodies([text], query=True)
        return self.scheduler.realtime(codec.adapter, codec.endpoint, body)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query: realtime by default (``realtime_queries``), else in a batch shared
        with concurrent queries through the window."""
        return self._vectors([self._query(text).result()])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query: realtime by default (``realtime_queries``), else in a batch shared
        with concurrent queries through the window."""
        return self._vectors([await self._query(text)])[0]
