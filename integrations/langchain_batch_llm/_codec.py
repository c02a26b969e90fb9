"""Codecs: how one provider's LangChain integration builds requests and reads answers.

A batched call must be indistinguishable from a realtime one, so a codec never builds a request
body or a message itself when the provider's own LangChain integration can: it asks the wrapped
model (``ChatOpenAI``, ``ChatAnthropic``, ...) for the exact payload its realtime call would
send, applies what that call's SDK would do to it on the way out, and hands the batch's answer
to the same parser the realtime call uses.
"""

from __future__ import annotations

import abc
import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from batch_llm import Provider

__all__ = [
    "ChatCodec",
    "ChatRequest",
    "build_inner_model",
    "check_sdk_call",
    "codec_for",
    "split_model_id",
]


@dataclass(slots=True)
class ChatRequest:
    """One request, built: where it goes, its body, and what reading its answer needs."""

    endpoint: str
    body: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


class ChatCodec(abc.ABC):
    """Builds batch requests and reads batch answers for one wrapped chat model.

    Args:
        inner: the provider's own LangChain chat model, configured as the user configured it.
    """

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
    ) -> ChatRequest:
        """The request the realtime call would send for these messages."""

    @abc.abstractmethod
    def result(self, body: Any, request: ChatRequest) -> ChatResult:
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


def split_model_id(model: str, provider: str | None) -> tuple[str, str]:
    """``"openai:gpt-4o"`` -> ``("openai", "gpt-4o")``; an explicit ``provider`` wins."""
    _load_builtin()
    if provider:
        return provider, model
    prefix, sep, name = model.partition(":")
    if sep and prefix in _BUILDERS:
        return prefix, name
    raise ValueError(
        f"cannot tell the provider of model {model!r}: write it as 'provider:model' "
        f"(providers: {', '.join(sorted(_BUILDERS))}) or pass provider=..."
    )


# provider name -> (builds the provider's LangChain model from standard params,
#                   the codec class for it)
_BUILDERS: dict[str, Callable[..., BaseChatModel]] = {}
_CODECS: list[tuple[Callable[[BaseChatModel], bool], type[ChatCodec]]] = []


def register(
    provider: str,
    build: Callable[..., BaseChatModel],
    accepts: Callable[[BaseChatModel], bool],
    codec: type[ChatCodec],
) -> None:
    """Teach the wrappers a provider: how to build its model, and which models its codec reads."""
    _BUILDERS[provider] = build
    _CODECS.append((accepts, codec))


def register_class(
    provider: str, label: str, module: str, class_name: str, package: str, codec: type[ChatCodec]
) -> None:
    """``register`` for a provider whose LangChain model is one class, ``module.class_name``
    from the ``package`` distribution, imported only when first needed."""

    def load() -> type[BaseChatModel] | None:
        try:
            cls: type[BaseChatModel] = getattr(importlib.import_module(module), class_name)
        except ImportError:
            return None
        return cls

    def build(**params: Any) -> BaseChatModel:
        cls = load()
        if cls is None:
            raise ImportError(
                f"batching {label} models through LangChain builds a {class_name}: "
                f"pip install {package}"
            )
        return cls(**params)

    def accepts(model: BaseChatModel) -> bool:
        cls = load()
        return cls is not None and isinstance(model, cls)

    register(provider, build, accepts, codec)


def build_inner_model(provider: str, **params: Any) -> BaseChatModel:
    """The provider's own LangChain chat model, built from standard params."""
    _load_builtin()
    try:
        build = _BUILDERS[provider]
    except KeyError:
        raise ValueError(
            f"unknown provider {provider!r}; batch-llm's LangChain wrapper supports "
            f"{', '.join(sorted(_BUILDERS))}"
        ) from None
    return build(**params)


def codec_for(inner: BaseChatModel) -> ChatCodec:
    """The codec that reads and writes for ``inner``'s provider."""
    _load_builtin()
    for accepts, codec in _CODECS:
        if accepts(inner):
            return codec(inner)
    raise TypeError(
        f"BatchChatModel cannot batch {type(inner).__name__}: wrap ChatOpenAI, ChatAnthropic "
        "or ChatGoogleGenerativeAI, or build one with model='provider:model'"
    )


def _load_builtin() -> None:
    # Each module registers itself; the provider packages they need are imported only when a
    # model of theirs is built or wrapped.
    from . import _anthropic, _gemini, _openai  # noqa: F401
