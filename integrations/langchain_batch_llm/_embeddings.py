"""``BatchEmbeddings``: LangChain embeddings computed through a provider's Batch API."""

from __future__ import annotations

import array
import base64
from collections.abc import Sequence
from typing import Any, Self

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

import batch_llm
from batch_llm import Provider, RequestFuture, Scheduler, resolve_provider
from batch_llm._gc import gc_paused
from batch_llm._waiting import raise_first_failure

from ._openai import openai_adapter_for
from ._registry import split_model_id

__all__ = ["BatchEmbeddings"]

# OpenAI takes at most 2,048 inputs and about 300,000 tokens in one embeddings request; the
# character budget keeps a request under the token cap for any realistic tokenizer ratio.
_MAX_INPUTS = 2048
_MAX_CHARS = 600_000


class _OpenAIEmbedder:
    """OpenAI: many texts per request, as ``OpenAIEmbeddings`` sends them."""

    endpoint = "/v1/embeddings"

    def __init__(
        self,
        adapter: Provider,
        model: str,
        dimensions: int | None,
        chunk_size: int,
        model_kwargs: dict[str, Any],
    ) -> None:
        self.adapter, self.model, self.dimensions = adapter, model, dimensions
        self.chunk_size, self.model_kwargs = chunk_size, model_kwargs

    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        return [self._body(chunk) for chunk in _chunks(texts, self.chunk_size)]

    def _body(self, inputs: list[str]) -> dict[str, Any]:
        # base64 is what the openai SDK asks for (and decodes) when the caller does not say,
        # so the vectors are bit-identical to a realtime call's.
        body: dict[str, Any] = {"input": inputs, "model": self.model, "encoding_format": "base64"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        body.update(self.model_kwargs)
        return body

    @staticmethod
    def vectors(body: dict[str, Any]) -> list[list[float]]:
        data = sorted(body["data"], key=lambda item: item["index"])
        return [_decode(item["embedding"]) for item in data]


class _GeminiEmbedder:
    """Gemini: one text per request (a batch line embeds one content), with the task type
    ``GoogleGenerativeAIEmbeddings`` uses: documents for retrieval, or a query."""

    endpoint = "embedContent"

    def __init__(
        self, adapter: Provider, model: str, dimensions: int | None, task_type: str | None
    ) -> None:
        self.adapter, self.model, self.dimensions, self.task_type = (
            adapter,
            model,
            dimensions,
            task_type,
        )

    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        task = (self.task_type or ("RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT")).upper()
        config: dict[str, Any] = {"task_type": task}
        if self.dimensions is not None:
            config["output_dimensionality"] = self.dimensions
        return [
            {"model": self.model, "contents": [{"parts": [{"text": text}]}], "config": config}
            for text in texts
        ]

    @staticmethod
    def vectors(body: dict[str, Any]) -> list[list[float]]:
        return [[float(x) for x in item["values"]] for item in body["embeddings"]]


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
    """An ``OpenAIEmbeddings`` or ``GoogleGenerativeAIEmbeddings`` to batch; or build from the
    fields below."""
    model: str | None = None
    """``"provider:model"`` (``"openai:text-embedding-3-small"``), or a name with ``provider``."""
    provider: str | None = None
    dimensions: int | None = None
    task_type: str | None = None
    realtime_queries: bool = True
    """Embed queries (``embed_query``) through the realtime API, at full price: a query vector
    costs next to nothing, and the retriever waiting on it would otherwise wait a whole batch
    turnaround (hours, on a real provider). False sends them in batches too."""
    """Gemini's task type; by default documents for retrieval, and queries as queries."""
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    chunk_size: int = _MAX_INPUTS
    """Inputs per request (at most the provider's limit: 2,048 for OpenAI)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    scheduler_: Scheduler | None = Field(default=None, alias="scheduler", exclude=True)
    batch_metadata: dict[str, str] | None = Field(default=None, exclude=True)
    """Key/values stamped on this model's batches (a run id, say), on top of the scheduler's
    ``metadata``, where the provider keeps batch metadata."""

    _embedder: _OpenAIEmbedder | _GeminiEmbedder = PrivateAttr()

    def __init__(self, embeddings: Any = None, /, **kwargs: Any) -> None:
        if embeddings is not None:
            kwargs["embeddings"] = embeddings
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _set_up(self) -> Self:
        inner = self.embeddings
        if inner is not None:
            self._embedder = self._wrap(inner)
            return self
        if not self.model:
            raise ValueError("BatchEmbeddings needs model='provider:model' or embeddings to wrap")
        provider, name = split_model_id(self.model, self.provider)
        self.model = name
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        if provider == "openai":
            self.provider = provider
            self.chunk_size = max(1, min(self.chunk_size, _MAX_INPUTS))
            adapter = openai_adapter_for(key, self.base_url, self.organization, None)
            self._embedder = _OpenAIEmbedder(
                adapter, name, self.dimensions, self.chunk_size, dict(self.model_kwargs)
            )
        elif provider in ("google_genai", "gemini"):
            self.provider = "google_genai"
            adapter = resolve_provider("gemini", api_key=key, base_url=self.base_url)
            self._embedder = _GeminiEmbedder(adapter, name, self.dimensions, self.task_type)
        else:
            raise ValueError(f"BatchEmbeddings does not support provider {provider!r}")
        return self

    def _wrap(self, inner: Any) -> _OpenAIEmbedder | _GeminiEmbedder:
        kind = type(inner).__name__
        if kind == "OpenAIEmbeddings":
            self.provider, self.model, self.dimensions = "openai", inner.model, inner.dimensions
            self.chunk_size = min(int(inner.chunk_size), _MAX_INPUTS)
            self.model_kwargs = dict(inner.model_kwargs or {})
            adapter = openai_adapter_for(
                inner.openai_api_key,
                inner.openai_api_base,
                inner.openai_organization,
                inner.default_headers,
            )
            return _OpenAIEmbedder(
                adapter, inner.model, inner.dimensions, self.chunk_size, self.model_kwargs
            )
        if kind == "GoogleGenerativeAIEmbeddings":
            self.provider, self.model = "google_genai", inner.model
            self.dimensions, self.task_type = inner.output_dimensionality, inner.task_type
            key = inner.google_api_key
            adapter = resolve_provider(
                "gemini",
                api_key=key.get_secret_value() if isinstance(key, SecretStr) else key,
                base_url=inner.base_url,
            )
            return _GeminiEmbedder(adapter, inner.model, self.dimensions, self.task_type)
        raise TypeError(
            f"BatchEmbeddings cannot batch {kind}; wrap OpenAIEmbeddings or "
            "GoogleGenerativeAIEmbeddings, or use model='provider:model'"
        )

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler requests go through."""
        return self.scheduler_ or batch_llm.get_scheduler()

    def _submit(
        self, texts: Sequence[str], *, flush: bool, query: bool = False
    ) -> tuple[list[RequestFuture], list[int]]:
        """The requests' futures, and how many of the texts each request embeds."""
        embedder = self._embedder
        with gc_paused():
            bodies = embedder.bodies(texts, query=query)
            sizes = [_size(body) for body in bodies]
        futures = self.scheduler.submit_many(
            embedder.adapter, embedder.endpoint, bodies, flush=flush, metadata=self.batch_metadata
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
                vectors.extend(self._embedder.vectors(body))
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
        embedder = self._embedder
        (body,) = embedder.bodies([text], query=True)
        return self.scheduler.realtime(embedder.adapter, embedder.endpoint, body)

    def embed_query(self, text: str) -> list[float]:
        """Embed one query: realtime by default (``realtime_queries``), else in a batch shared
        with concurrent queries through the window."""
        return self._vectors([self._query(text).result()])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one query: realtime by default (``realtime_queries``), else in a batch shared
        with concurrent queries through the window."""
        return self._vectors([await self._query(text)])[0]


def _size(body: dict[str, Any]) -> int:
    """How many texts one request embeds (OpenAI: its inputs; Gemini: one)."""
    value = body.get("input")
    return len(value) if isinstance(value, list) else 1


def _chunks(texts: Sequence[str], size: int) -> list[list[str]]:
    chunks: list[list[str]] = []
    current: list[str] = []
    chars = 0
    for text in texts:
        if current and (len(current) >= size or chars + len(text) > _MAX_CHARS):
            chunks.append(current)
            current, chars = [], 0
        current.append(text)
        chars += len(text)
    if current:
        chunks.append(current)
    return chunks


def _decode(embedding: Any) -> list[float]:
    if isinstance(embedding, str):
        values = array.array("f")
        values.frombytes(base64.b64decode(embedding))
        return values.tolist()
    return [float(x) for x in embedding]
