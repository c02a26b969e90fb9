"""Codecs: how one provider's LangChain integration builds requests and reads answers.

A batched call must be indistinguishable from a realtime one, so a chat codec never builds a
request body or a message itself when the provider's own LangChain integration can: it asks the
wrapped model (``ChatOpenAI``, ``ChatAnthropic``, ...) for the exact payload its realtime call
would send, applies what that call's SDK would do to it on the way out, and hands the batch's
answer to the same parser the realtime call uses. An embeddings codec writes the body itself:
the providers' embeddings classes build theirs only inside their network calls, and the body is
a model, a list of texts and a few documented options.

Codecs are registered with batch-llm's one registry, under the kind of model they serve::

    batch_llm.register_codec(ChatCodec.kind, "mine", "my_package:MyChat", MyChatCodec,
                             package="my-package")

after which ``BatchChatModel(MyChat(...))`` and ``BatchChatModel(model="mine:name")`` batch
through ``MyChatCodec``. This module is only the two shapes; the built-in codecs live in one
module per provider, and are registered in ``_registry``.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from batch_llm import BatchRequest, Provider

__all__ = [
    "ChatCodec",
    "EmbeddingsCodec",
    "EmbeddingsSettings",
    "check_sdk_call",
]


class ChatCodec(abc.ABC):
    """Builds batch requests and reads batch answers for one wrapped chat model.

    Register a subclass with ``batch_llm.register_codec(ChatCodec.kind, provider,
    "module:ChatClass", codec, package=...)``; ``BatchChatModel`` then builds it with the
    wrapped model for every instance of ``ChatClass`` (the most specific registered class wins).

    Args:
        inner: the provider's own LangChain chat model, configured as the user configured it.
    """

    #: The registry kind chat codecs are registered under.
    kind: ClassVar[str] = "langchain.chat"
    #: The ``ls_provider`` LangChain reports for this provider.
    provider_name: str = ""

    def __init__(self, inner: BaseChatModel) -> None:
        self.inner = inner

    @property
    @abc.abstractmethod
    def adapter(self) -> Provider:
        """The batch-llm provider adapter, with the wrapped model's credentials and endpoint."""

    @abc.abstractmethod
    def request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> BatchRequest:
        """The request the realtime call would send for these messages."""

    @abc.abstractmethod
    def result(self, body: Any, request: BatchRequest) -> ChatResult:
        """The ``ChatResult`` the realtime call would return for this answer body."""

    def error(self, exc: BaseException) -> BaseException:
        """The exception the realtime call raises where its SDK raised ``exc``."""
        return exc


@dataclass(slots=True)
class EmbeddingsSettings:
    """What an embeddings model is asked to do, as ``BatchEmbeddings``' fields say it: what a
    codec is built from, and (once it wraps a provider's model) what it reports back.

    Attributes:
        model: the model name, without its ``provider:`` prefix.
        dimensions: the vectors' size, where the model can shorten them.
        task_type: what the vectors are for (Gemini's ``task_type``).
        chunk_size: texts per request, at most (within the provider's own limit).
        model_kwargs: extra request-body parameters.
        api_key, base_url, organization: credentials and server, when not a wrapped model's.
    """

    model: str
    dimensions: int | None = None
    task_type: str | None = None
    chunk_size: int = 2048
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    api_key: str | None = None
    base_url: str | None = None
    organization: str | None = None


class EmbeddingsCodec(abc.ABC):
    """Builds the batch requests that embed texts, and reads vectors from their answers.

    Register a subclass with ``batch_llm.register_codec(EmbeddingsCodec.kind, provider,
    "module:EmbeddingsClass", codec, package=...)``: ``BatchEmbeddings(EmbeddingsClass(...))``
    then calls ``codec.wrap``, and ``BatchEmbeddings(model="provider:name")`` calls
    ``codec.build``.

    Args:
        settings: what the codec embeds with (its model, dimensions, per-request size...).
        adapter: the batch-llm provider adapter requests go through.
    """

    #: The registry kind embeddings codecs are registered under.
    kind: ClassVar[str] = "langchain.embeddings"
    #: The provider name ``BatchEmbeddings.provider`` reports.
    provider_name: ClassVar[str] = ""
    #: Where every request goes.
    endpoint: ClassVar[str] = ""

    def __init__(self, settings: EmbeddingsSettings, adapter: Provider) -> None:
        self.settings = settings
        self.adapter = adapter

    @classmethod
    @abc.abstractmethod
    def build(cls, settings: EmbeddingsSettings) -> Self:
        """The codec for ``BatchEmbeddings``' own settings; it needs no provider package."""

    @classmethod
    @abc.abstractmethod
    def wrap(cls, embeddings: Any, settings: EmbeddingsSettings) -> Self:
        """The codec for the provider's own embeddings model: its model, options and
        credentials, over ``settings`` (``BatchEmbeddings``' own) where it has none."""

    @abc.abstractmethod
    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        """The request bodies that embed ``texts``, in order, each within the provider's
        per-request limits; ``query`` when the texts are search queries, not documents."""

    @abc.abstractmethod
    def vectors(self, body: dict[str, Any]) -> list[list[float]]:
        """The vectors of one answer body, in input order, as the realtime call reads them."""

    def size(self, body: dict[str, Any]) -> int:
        """How many texts one request body embeds (one, unless the provider takes lists)."""
        return 1


def check_sdk_call(method: Callable[..., Any], payload: Mapping[str, Any]) -> None:
    """Raise the ``TypeError`` the realtime call ``method(**payload)`` raises when ``payload``
    holds a keyword the SDK method does not take (``n`` for Anthropic's ``messages.create``):
    a batch must refuse what realtime refuses, not send it to fail later or pass unnoticed."""
    accepted = _keywords(method)
    if accepted is None or payload.keys() <= accepted:
        return
    for key in payload:
        if key not in accepted:
            raise TypeError(f"{method.__qualname__}() got an unexpected keyword argument {key!r}")


@functools.cache
def _keywords(method: Callable[..., Any]) -> frozenset[str] | None:
    """The keywords ``method`` takes; None if it takes any."""
    parameters = inspect.signature(method).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return frozenset(p.name for p in parameters if p.kind in by_name)
