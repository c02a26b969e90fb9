"""``BatchEmbeddings``: LangChain embeddings computed through a provider's Batch API."""

from __future__ import annotations

import array
import base64
from collections.abc import Sequence
from typing import Any, Self

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

import batch_llm
from batch_llm import Provider, RequestFuture, Scheduler
from batch_llm._gc import gc_paused

from ._codec import split_model_id
from ._openai import openai_adapter_for

__all__ = ["BatchEmbeddings"]

EMBEDDINGS = "/v1/embeddings"
# OpenAI takes at most 2,048 inputs and about 300,000 tokens in one embeddings request; the
# character budget keeps a request under the token cap for any realistic tokenizer ratio.
_MAX_INPUTS = 2048
_MAX_CHARS = 600_000


class BatchEmbeddings(BaseModel, Embeddings):
    """Embeddings through the provider's Batch API: a whole corpus becomes one batch.

        embeddings = BatchEmbeddings(model="openai:text-embedding-3-small")
        embeddings = BatchEmbeddings(OpenAIEmbeddings(model="text-embedding-3-small"))

    ``embed_documents`` splits the texts into requests of at most ``chunk_size`` inputs (the
    provider's per-request limit), submits them all as one batch, and returns the vectors in
    input order, exactly as the realtime embeddings call returns them. ``embed_query`` waits for
    a short window so concurrent queries share a batch.
    """

    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    embeddings: Any = Field(default=None, exclude=True)
    """An ``OpenAIEmbeddings`` to batch; or build from the fields below."""
    model: str | None = None
    """``"provider:model"`` (``"openai:text-embedding-3-small"``), or a name with ``provider``."""
    provider: str | None = None
    dimensions: int | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    chunk_size: int = _MAX_INPUTS
    """Inputs per request (at most the provider's limit: 2,048 for OpenAI)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    scheduler_: Scheduler | None = Field(default=None, alias="scheduler", exclude=True)

    _adapter: Provider = PrivateAttr()

    def __init__(self, embeddings: Any = None, /, **kwargs: Any) -> None:
        if embeddings is not None:
            kwargs["embeddings"] = embeddings
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _set_up(self) -> Self:
        inner = self.embeddings
        if inner is not None:
            if type(inner).__name__ != "OpenAIEmbeddings":
                raise TypeError(
                    f"BatchEmbeddings cannot batch {type(inner).__name__}; wrap an "
                    "OpenAIEmbeddings or use model='openai:...'"
                )
            self.provider = "openai"
            self.model = inner.model
            self.dimensions = inner.dimensions
            self.chunk_size = min(int(inner.chunk_size), _MAX_INPUTS)
            self.model_kwargs = dict(inner.model_kwargs or {})
            self._adapter = openai_adapter_for(
                inner.openai_api_key,
                inner.openai_api_base,
                inner.openai_organization,
                inner.default_headers,
            )
            return self
        if not self.model:
            raise ValueError("BatchEmbeddings needs model='provider:model' or embeddings to wrap")
        provider, name = split_model_id(self.model, self.provider)
        if provider != "openai":
            raise ValueError(f"BatchEmbeddings does not support provider {provider!r} yet")
        self.provider, self.model = provider, name
        self.chunk_size = max(1, min(self.chunk_size, _MAX_INPUTS))
        self._adapter = openai_adapter_for(self.api_key, self.base_url, self.organization, None)
        return self

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler requests go through."""
        return self.scheduler_ or batch_llm.get_scheduler()

    def _body(self, inputs: list[str]) -> dict[str, Any]:
        # base64 is what the openai SDK asks for (and decodes) when the caller does not say,
        # so the vectors are bit-identical to a realtime call's.
        body: dict[str, Any] = {"input": inputs, "model": self.model, "encoding_format": "base64"}
        if self.dimensions is not None:
            body["dimensions"] = self.dimensions
        body.update(self.model_kwargs)
        return body

    def _chunks(self, texts: Sequence[str]) -> list[list[str]]:
        chunks: list[list[str]] = []
        current: list[str] = []
        chars = 0
        for text in texts:
            if current and (len(current) >= self.chunk_size or chars + len(text) > _MAX_CHARS):
                chunks.append(current)
                current, chars = [], 0
            current.append(text)
            chars += len(text)
        if current:
            chunks.append(current)
        return chunks

    def _submit(self, texts: Sequence[str], *, flush: bool) -> list[RequestFuture]:
        with gc_paused():
            bodies = [self._body(chunk) for chunk in self._chunks(texts)]
        return self.scheduler.submit_many(self._adapter, EMBEDDINGS, bodies, flush=flush)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed every text in one provider batch; vectors in input order."""
        if not texts:
            return []
        return _vectors(batch_llm.wait(self._submit(texts, flush=True)))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed every text in one provider batch; vectors in input order."""
        if not texts:
            return []
        return _vectors(await batch_llm.gather(self._submit(texts, flush=True)))

    def embed_query(self, text: str) -> list[float]:
        """Embed one text; concurrent queries share a batch through the window."""
        (future,) = self._submit([text], flush=False)
        return _vectors([future.result()])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """Embed one text; concurrent queries share a batch through the window."""
        (future,) = self._submit([text], flush=False)
        return _vectors([await future])[0]


def _decode(embedding: Any) -> list[float]:
    if isinstance(embedding, str):
        values = array.array("f")
        values.frombytes(base64.b64decode(embedding))
        return values.tolist()
    return [float(x) for x in embedding]


def _vectors(bodies: list[dict[str, Any]]) -> list[list[float]]:
    """The vectors of every response, in request order and, within each, in input order."""
    vectors: list[list[float]] = []
    with gc_paused():
        for body in bodies:
            data = sorted(body["data"], key=lambda item: item["index"])
            vectors.extend(_decode(item["embedding"]) for item in data)
    return vectors
