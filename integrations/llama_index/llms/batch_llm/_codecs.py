"""Codecs: how one provider's LlamaIndex integration maps onto batch requests.

``BatchLLM`` knows nothing of any provider. A codec wraps the provider's own LlamaIndex LLM
class and asks it for everything provider-specific: the request body a call would send, the
``ChatResponse`` its realtime call would build from the response body, its tool and structured
output handling, its metadata, and the credentials that pick the batch adapter. Reusing the
integration's code rather than rewriting it is what keeps a batched call identical to the
realtime one, and a new provider is one small codec module plus a registry entry.

The codecs themselves live in ``_openai``, ``_anthropic`` and ``_gemini``; this module holds
the seam and the registry.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from llama_index.core.base.llms.generic_utils import chat_response_to_completion_response
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm

from ._shared import BatchRequest

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["ChatCodec", "StructuredCall", "codec_for_llm", "codec_for_model"]


@dataclass(frozen=True, slots=True)
class StructuredCall:
    """A ``structured_predict`` the wrapped LLM answers with one request of its own (not a
    chat call): the request, and how its response body becomes the output object."""

    request: BatchRequest
    parse: Callable[[dict[str, Any]], BaseModel]


class ChatCodec(abc.ABC):
    """One provider's LlamaIndex integration, seen from ``BatchLLM``.

    ``llm`` is an instance of the integration's own class; the codec never calls its network
    methods, only the helpers that build request bodies and parse response bodies (an
    integration that uploads files while building a request still does so, and ``release``
    removes them again, as its realtime call would).
    """

    provider_name: ClassVar[str]

    def __init__(self, llm: FunctionCallingLLM) -> None:
        self.llm = llm

    @classmethod
    @abc.abstractmethod
    def build(cls, model: str, params: dict[str, Any]) -> ChatCodec:
        """Build the integration's LLM for ``model`` from ``BatchLLM``'s parameters
        (``temperature``, ``max_tokens``, ``additional_kwargs``, ``api_key``, ``api_base``,
        ``context_window``; None where not given)."""

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> ChatCodec:
        """Wrap an existing instance; refuse variants the codec cannot batch."""
        return cls(llm)

    @abc.abstractmethod
    def fields(self) -> dict[str, Any]:
        """``BatchLLM``'s field values (model spec, sampling parameters, credentials) as the
        wrapped LLM has them."""

    @property
    @abc.abstractmethod
    def provider(self) -> batch_llm.Provider:
        """The batch adapter for the wrapped LLM's credentials and server."""

    @abc.abstractmethod
    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's metadata; a sensible default for models it does not know."""

    def uses_chat_endpoint(self, kwargs: dict[str, Any]) -> bool:
        """Whether a call goes to the chat endpoint (else to the legacy completion endpoint)."""
        return True

    # -- chat -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        """The request the wrapped LLM's ``chat(messages, **kwargs)`` would send."""

    async def achat_request(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> BatchRequest:
        """``chat_request`` for async callers; integrations that build requests with
        coroutines override it."""
        return self.chat_request(messages, kwargs)

    @abc.abstractmethod
    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
        """The ``ChatResponse`` the wrapped LLM would build from this response body."""

    def completion_from_chat(self, response: ChatResponse) -> CompletionResponse:
        """What the wrapped LLM's ``complete`` makes of its chat answer (streamed or not)."""
        completion = chat_response_to_completion_response(response)
        completion.delta = response.delta
        return completion

    def stream_chunk(self, response: ChatResponse) -> ChatResponse:
        """A batch answers all at once: the one chunk of a stream, holding the whole answer."""
        response.delta = response.message.content or ""
        return response

    def release(self, request: BatchRequest) -> None:  # noqa: B027 (most codecs keep nothing)
        """Clean up after ``request`` was answered or failed (files uploaded for it)."""

    async def arelease(self, request: BatchRequest) -> None:
        """``release`` for async callers."""
        self.release(request)

    # -- legacy completions -------------------------------------------------------------------

    def completion_request(self, prompt: str, kwargs: dict[str, Any]) -> BatchRequest:
        """The request of a legacy completion call, for providers that have one."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    def completion_response(
        self, body: dict[str, Any], request: BatchRequest
    ) -> CompletionResponse:
        """The ``CompletionResponse`` of a legacy completion call."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    # -- structured output ----------------------------------------------------------------------

    def structured_call(
        self,
        output_cls: type[BaseModel],
        messages: list[ChatMessage],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> StructuredCall | None:
        """The request of a ``structured_predict`` the wrapped LLM sends outside its chat
        (``messages`` is the prompt formatted, nothing added); None where it goes through
        ``structured_plan``."""
        return None

    async def astructured_call(
        self,
        output_cls: type[BaseModel],
        messages: list[ChatMessage],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> StructuredCall | None:
        """``structured_call`` for async callers."""
        return self.structured_call(output_cls, messages, llm_kwargs, mode)

    def structured_plan(
        self,
        output_cls: type[BaseModel],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> tuple[bool, dict[str, Any]]:
        """How the wrapped LLM does ``structured_predict`` through its chat: ``(True, chat
        kwargs)`` for native structured output through one chat call, ``(False, llm kwargs)``
        for LlamaIndex's function-calling program."""
        return False, llm_kwargs

    # Tool calling is the wrapped LLM's own: these build chat kwargs or read a response and
    # never touch the network.

    def prepare_chat_with_tools(self, tools: Sequence[BaseTool], **kwargs: Any) -> dict[str, Any]:
        """The chat kwargs of ``chat_with_tools``."""
        return self.llm._prepare_chat_with_tools_compat(tools, **kwargs)

    def validate_chat_with_tools_response(
        self, response: ChatResponse, tools: Sequence[BaseTool], **kwargs: Any
    ) -> ChatResponse:
        """The wrapped LLM's check of a ``chat_with_tools`` response."""
        return self.llm._validate_chat_with_tools_response(response, tools, **kwargs)

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in a response, as the wrapped LLM reads them."""
        return self.llm.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )


# -- the registry -------------------------------------------------------------------------------


def _openai() -> type[ChatCodec]:
    from ._openai import OpenAIChatCodec

    return OpenAIChatCodec


def _anthropic() -> type[ChatCodec]:
    from ._anthropic import AnthropicChatCodec

    return AnthropicChatCodec


def _gemini() -> type[ChatCodec]:
    from ._gemini import GeminiChatCodec

    return GeminiChatCodec


@dataclass(frozen=True, slots=True)
class _Integration:
    """A provider's LlamaIndex LLM class and the codec that batches it."""

    provider: str
    module: str
    class_name: str
    codec: Callable[[], type[ChatCodec]]
    aliases: tuple[str, ...] = ()

    def load(self) -> type[FunctionCallingLLM] | None:
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls: type[FunctionCallingLLM] | None = getattr(module, self.class_name, None)
        return cls


_INTEGRATIONS = (
    _Integration("openai", "llama_index.llms.openai", "OpenAI", _openai),
    _Integration("anthropic", "llama_index.llms.anthropic", "Anthropic", _anthropic),
    _Integration(
        "google_genai", "llama_index.llms.google_genai", "GoogleGenAI", _gemini, ("gemini",)
    ),
)


def _supported() -> str:
    return ", ".join(
        i.provider + (f" (or {', '.join(i.aliases)})" if i.aliases else "") for i in _INTEGRATIONS
    )


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> ChatCodec:
    """The codec for ``provider:model``, building the provider's LLM from ``params``."""
    for integration in _INTEGRATIONS:
        if provider == integration.provider or provider in integration.aliases:
            return integration.codec().build(model, params)
    raise ValueError(f"unknown provider {provider!r} in BatchLLM model; supported: {_supported()}")


def codec_for_llm(llm: object) -> ChatCodec:
    """The codec for an instance of a provider's LlamaIndex LLM class."""
    for integration in _INTEGRATIONS:
        cls = integration.load()
        if cls is not None and isinstance(llm, cls):
            return integration.codec().wrap(llm)
    classes = ", ".join(f"{i.module}.{i.class_name}" for i in _INTEGRATIONS)
    raise TypeError(f"BatchLLM cannot wrap {type(llm).__name__}; it wraps {classes}")
