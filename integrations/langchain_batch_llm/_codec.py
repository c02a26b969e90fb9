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
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from batch_llm import BatchRequest, Provider

__all__ = [
    "ChatCodec",
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
