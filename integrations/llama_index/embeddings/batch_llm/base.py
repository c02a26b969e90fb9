"""``BatchEmbedding``: a LlamaIndex embedding model whose calls run through a Batch API."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks.schema import CBEventType, EventPayload
from llama_index.core.instrumentation.events.embedding import (
    EmbeddingEndEvent,
    EmbeddingStartEvent,
)
from llama_index.core.schema import BaseComponent
from llama_index.llms.batch_llm.shared import pickle_state, resolve_settings
from llama_index_instrumentation import get_dispatcher

import batch_llm
from batch_llm import RequestFuture, Scheduler
from batch_llm._gc import gc_paused
from batch_llm._waiting import raise_first_failure

from . import _builtin  # noqa: F401  (registers the codecs BatchEmbedding finds by name or class)
from ._codecs import EmbeddingCodec, codec_for_embedding, codec_for_model

__all__ = ["BatchEmbedding"]

dispatcher = get_dispatcher(__name__)

# Parameters that configure the provider's model; a wrapped embedding brings its own.
_MODEL_PARAMS = ("dimensions", "additional_kwargs", "api_key", "api_base")
_INHERITED = ("callback_manager", "embed_batch_size", "embeddings_cache", "rate_limiter")


class BatchEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model that runs through the provider's Batch API, at batch price.

    Build it from a model name, or wrap the provider's LlamaIndex embedding class::

        from llama_index.core import Settings
        from llama_index.embeddings.batch_llm import BatchEmbedding

        Settings.embed_model = BatchEmbedding(model="openai:text-embedding-3-small")
        Settings.embed_model = BatchEmbedding(OpenAIEmbedding(model="text-embedding-3-small"))
        Settings.embed_model = BatchEmbedding(model="google_genai:gemini-embedding-001")
        Settings.embed_model = BatchEmbedding(GoogleGenAIEmbedding(model_name=...))

    ``get_text_embedding_batch`` and ``aget_text_embedding_batch`` (which indexing and
    ``IngestionPipeline`` use) send the whole list as one batch whatever ``embed_batch_size``
    and ``num_workers`` are, split only into requests of the provider's size (OpenAI: 2,048
    inputs; Gemini: one text), and return the vectors in input order, exactly the realtime
    call's.
    ``embed_batch_size`` only shapes the callback and instrumentation events, as it would
    realtime. Single texts and queries wait for company through the scheduler's window.

    Args:
        embedding: a provider embedding class to wrap: ``OpenAIEmbedding(...)``,
            ``GoogleGenAIEmbedding(...)``, or any class an ``EmbeddingCodec`` is registered
            for under ``"llama_index.embedding"`` (see ``batch_llm.register_codec``).
        model: ``"provider:model"``, such as ``"openai:text-embedding-3-small"`` or
            ``"google_genai:gemini-embedding-001"`` (``gemini:`` works too).
        dimensions, additional_kwargs, api_key, api_base: passed to the provider class built
            from ``model`` (``base_url=`` is taken for ``api_base``; for Gemini,
            ``dimensions`` is ``output_dimensionality`` and ``additional_kwargs`` are
            ``embedding_config`` fields).
        realtime_queries: embed queries with the provider's realtime API instead of a batch.
            A query vector costs next to nothing and a retriever waits for it, so interactive
            querying and evaluation sweeps are faster this way (a batch turnaround less).
        scheduler: the ``batch_llm.Scheduler`` to use; default ``batch_llm.get_scheduler()``.
    """

    # The request settings are the wrapped class's, fixed when it is built: frozen, so that
    # assigning one fails loudly instead of silently changing nothing.
    model: str = Field(description="The provider and model, as 'provider:model'.", frozen=True)
    dimensions: int | None = Field(
        default=None,
        description="The number of dimensions of the vectors, where supported.",
        frozen=True,
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Additional parameters for each request body.",
        frozen=True,
    )
    api_key: str | None = Field(
        default=None, description="The provider API key.", exclude=True, repr=False, frozen=True
    )
    api_base: str | None = Field(
        default=None, description="The provider API base URL.", frozen=True
    )
    realtime_queries: bool = Field(
        default=True,
        description="Embed queries with the realtime API instead of a batch.",
    )
    scheduler: Scheduler | None = Field(
        default=None,
        description="The batch_llm.Scheduler to use (default: the process-wide one).",
        exclude=True,
    )

    _codec: EmbeddingCodec = PrivateAttr()

    def __init__(
        self,
        embedding: BaseEmbedding | None = None,
        /,
        *,
        model: str | None = None,
        scheduler: Scheduler | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("model_name", None)  # derived from the model; present in to_dict() output
        spec = resolve_settings(
            "BatchEmbedding",
            embedding,
            model,
            kwargs,
            model_params=_MODEL_PARAMS,
            inherited=_INHERITED,
            what="a LlamaIndex embedding",
            example="openai:text-embedding-3-small",
        )
        codec = codec_for_embedding(embedding) if spec is None else codec_for_model(*spec)
        fields = codec.fields()
        if kwargs.get("embed_batch_size") is not None:
            fields.pop("embed_batch_size", None)
        kwargs["scheduler"] = scheduler
        super().__init__(**fields, **kwargs)
        self._codec = codec

    @classmethod
    def class_name(cls) -> str:
        return "BatchEmbedding"

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = pickle_state(super(BaseComponent, self).__getstate__())
        return state

    @property
    def wrapped_embedding(self) -> BaseEmbedding:
        """The provider's LlamaIndex embedding class whose requests this one batches."""
        return self._codec.embedding

    # -- batching -----------------------------------------------------------------------------

    def _scheduler(self) -> Scheduler:
        return self.scheduler or batch_llm.get_scheduler()

    def _submit_one(self, text: str, *, query: bool) -> RequestFuture:
        (request,) = self._codec.requests([text], query=query)
        # A single text waits for company: retrievers embed one query at a time.
        return self._scheduler().submit(self._codec.provider, request.endpoint, request.body)

    async def _aembed_one(self, text: str, *, query: bool) -> Embedding:
        body = await self._submit_one(text, query=query)
        return self._codec.vectors(body)[0]

    def _submit_all(self, texts: Sequence[str]) -> tuple[list[RequestFuture], list[int]]:
        requests = self._codec.requests(texts, query=False)
        futures = self._scheduler().submit_many(
            self._codec.provider, requests[0].endpoint, [r.body for r in requests], flush=True
        )
        return futures, [self._codec.inputs(r) for r in requests]

    def _vectors(
        self, bodies: Sequence[Any], sizes: Sequence[int] | None = None
    ) -> list[Embedding]:
        """The vectors of every response, in order. A request that failed raises its error,
        noting which texts it was for (``sizes``: the texts of each request); the other
        requests' answers were checked against their requests, so only those texts need
        asking again."""
        if sizes is not None:
            raise_first_failure(bodies, sizes)
        vectors: list[Embedding] = []
        with gc_paused():  # tens of thousands of float lists, none of them cyclic
            for body in bodies:
                vectors.extend(self._codec.vectors(body))
        return vectors

    def _embed_all(self, texts: list[str], show_progress: bool = False) -> list[Embedding]:
        if not texts:
            return []
        futures, sizes = self._submit_all(texts)
        with _progress(futures, sizes, show_progress):
            bodies = batch_llm.wait(futures, return_exceptions=True)
        return self._vectors(bodies, sizes)

    async def _aembed_all(self, texts: list[str], show_progress: bool = False) -> list[Embedding]:
        if not texts:
            return []
        futures, sizes = self._submit_all(texts)
        with _progress(futures, sizes, show_progress):
            # Every outcome, failures included: say which texts failed, not just the first.
            bodies = await batch_llm.gather(futures, return_exceptions=True)
        return self._vectors(bodies, sizes)

    # -- BaseEmbedding's hooks ----------------------------------------------------------------

    def _get_query_embedding(self, query: str) -> Embedding:
        if self.realtime_queries:
            return self._codec.embedding._get_query_embedding(query)
        return self._codec.vectors(self._submit_one(query, query=True).result())[0]

    async def _aget_query_embedding(self, query: str) -> Embedding:
        if self.realtime_queries:
            return await self._codec.embedding._aget_query_embedding(query)
        return await self._aembed_one(query, query=True)

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._codec.vectors(self._submit_one(text, query=False).result())[0]

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await self._aembed_one(text, query=False)

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self._embed_all(texts)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await self._aembed_all(texts)

    # -- one batch for the whole list ---------------------------------------------------------

    @dispatcher.span
    def get_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed ``texts`` as one batch, whatever ``embed_batch_size`` is; vectors in order."""
        texts = list(texts)
        if not texts:
            return []
        events = _Events(self, texts)
        try:
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            if self.embeddings_cache is not None:
                vectors = self._get_text_embeddings_cached(texts)
            else:
                vectors = self._embed_all(texts, show_progress)
        except Exception as exc:
            events.fail(exc)
            raise
        events.end(vectors)
        return vectors

    @dispatcher.span
    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        """Embed ``texts`` as one batch, whatever ``embed_batch_size`` and ``num_workers``
        are; vectors in order."""
        texts = list(texts)
        if not texts:
            return []
        events = _Events(self, texts)
        try:
            if self.rate_limiter is not None:
                await self.rate_limiter.async_acquire()
            if self.embeddings_cache is not None:
                vectors = await self._aget_text_embeddings_cached(texts)
            else:
                vectors = await self._aembed_all(texts, show_progress)
        except Exception as exc:
            events.fail(exc)
            raise
        events.end(vectors)
        return vectors


class _Events:
    """The callback and instrumentation events ``BaseEmbedding`` emits for a list of texts:
    one start/end pair per ``embed_batch_size`` chunk, so handlers (token counters, tracers)
    see what they would realtime. All start before the batch is sent, as in the async path."""

    def __init__(self, embedding: BaseEmbedding, texts: list[str]) -> None:
        self._manager = embedding.callback_manager
        size = embedding.embed_batch_size
        self._chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        model_dict = embedding.to_payload()
        self._ids = []
        for _chunk in self._chunks:
            dispatcher.event(EmbeddingStartEvent(model_dict=model_dict))
            self._ids.append(
                self._manager.on_event_start(
                    CBEventType.EMBEDDING, payload={EventPayload.SERIALIZED: model_dict}
                )
            )

    def end(self, vectors: list[Embedding]) -> None:
        start = 0
        for chunk, event_id in zip(self._chunks, self._ids, strict=True):
            chunk_vectors = vectors[start : start + len(chunk)]
            start += len(chunk)
            dispatcher.event(EmbeddingEndEvent(chunks=chunk, embeddings=chunk_vectors))
            self._manager.on_event_end(
                CBEventType.EMBEDDING,
                payload={EventPayload.CHUNKS: chunk, EventPayload.EMBEDDINGS: chunk_vectors},
                event_id=event_id,
            )

    def fail(self, exc: BaseException) -> None:
        for event_id in self._ids:
            self._manager.on_event_end(
                CBEventType.EMBEDDING, payload={EventPayload.EXCEPTION: exc}, event_id=event_id
            )


@contextmanager
def _progress(futures: list[RequestFuture], sizes: list[int], show: bool) -> Iterator[None]:
    """A progress bar over texts that advances as their requests are answered."""
    if not show:
        yield
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # LlamaIndex shows no bar without tqdm either
        yield
        return
    bar = tqdm(total=sum(sizes), desc="Generating embeddings")
    for future, size in zip(futures, sizes, strict=True):
        future.add_done_callback(functools.partial(_advance, bar, size))
    try:
        yield
    finally:
        bar.close()


def _advance(bar: Any, size: int, _future: RequestFuture) -> None:
    bar.update(size)
