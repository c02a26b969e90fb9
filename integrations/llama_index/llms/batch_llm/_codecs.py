"""Codecs: how one provider's LlamaIndex integration maps onto batch requests.

``BatchLLM`` knows nothing of any provider. A codec wraps the provider's own LlamaIndex LLM
class and asks it for everything provider-specific: the request body a call would send, the
``ChatResponse`` its realtime call would build from the response body, its structured output
handling, its metadata, and the credentials that pick the batch adapter. Reusing the
integration's code rather than rewriting it is what keeps a batched call identical to the
realtime one.

A codec is registered with the core's one registry, under the kind ``"llama_index.llm"``::

    batch_llm.register_codec("llama_index.llm", "openai", "llama_index.llms.openai:OpenAI",
                             OpenAIChatCodec, package="llama-index-llms-openai")

and ``BatchLLM`` finds it by the wrapped LLM's class or by the provider in
``"provider:model"``. This module holds the base class and that lookup; it imports no codec
(the built-in ones register in ``_builtin``).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llama_index.core.base.llms.generic_utils import chat_response_to_completion_response
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm
from batch_llm import BatchRequest

from .shared import require_codec

__all__ = ["KIND", "ChatCodec", "StructuredCall", "codec_for_llm", "codec_for_model"]

#: The registry kind of LlamaIndex LLM codecs.
KIND = "llama_index.llm"


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
    removes them again, as its realtime call would). Tool calling needs no codec: ``BatchLLM``
    asks the wrapped LLM itself, which only builds chat arguments and reads responses.

    Required, for every provider:

    - ``provider_name``: the name before the colon in ``"provider:model"``;
    - ``build``: the integration's LLM for a model name and ``BatchLLM``'s parameters;
    - ``fields``: ``BatchLLM``'s field values as the wrapped LLM has them;
    - ``provider``: the batch adapter for the wrapped LLM's credentials and server;
    - ``chat_request`` and ``chat_response``: the two halves of a realtime chat call.

    Optional hooks, each with the default that suits most providers:

    - ``wrap``: refuse variants of the class the codec cannot batch (default: accept);
    - ``metadata``: the wrapped LLM's own;
    - ``achat_request``: ``chat_request`` (override where requests are built by coroutines);
    - ``release``/``arelease``: nothing to clean up;
    - ``completion_from_chat``, ``stream_chunk``: LlamaIndex's generic conversions;
    - ``uses_chat_endpoint``, ``completion_request``, ``completion_response``: every call is a
      chat call (providers with a legacy completion endpoint override all three);
    - ``structured_call``/``astructured_call``, ``structured_plan``: ``structured_predict``
      through LlamaIndex's function-calling program (override for a provider's native
      structured output, as one request of its own or as one chat call with a schema).
    """

    provider_name: ClassVar[str]

    def __init__(self, llm: FunctionCallingLLM) -> None:
        self.llm = llm

    # -- required -------------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def build(
        cls, llm_class: type[FunctionCallingLLM], model: str, params: dict[str, Any]
    ) -> ChatCodec:
        """Build ``llm_class`` (the registered class, imported) for ``model`` from
        ``BatchLLM``'s parameters (``temperature``, ``max_tokens``, ``additional_kwargs``,
        ``api_key``, ``api_base``, ``context_window``; None where not given)."""

    @abc.abstractmethod
    def fields(self) -> dict[str, Any]:
        """``BatchLLM``'s field values (model spec, sampling parameters, credentials) as the
        wrapped LLM has them."""

    @property
    @abc.abstractmethod
    def provider(self) -> batch_llm.Provider:
        """The batch adapter for the wrapped LLM's credentials and server."""

    @abc.abstractmethod
    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        """The request the wrapped LLM's ``chat(messages, **kwargs)`` would send."""

    @abc.abstractmethod
    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
        """The ``ChatResponse`` the wrapped LLM would build from this response body."""

    # -- optional hooks: the instance, the request's life, the answer's shape -----------------

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> ChatCodec:
        """Wrap an existing instance; refuse variants the codec cannot batch."""
        return cls(llm)

    def metadata(self) -> LLMMetadata:
        """The wrapped LLM's metadata; override to give a default for models it does not
        know."""
        return self.llm.metadata

    async def achat_request(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> BatchRequest:
        """``chat_request`` for async callers; integrations that build requests with
        coroutines override it."""
        return self.chat_request(messages, kwargs)

    def release(self, request: BatchRequest) -> None:  # noqa: B027 (most codecs keep nothing)
        """Clean up after ``request`` was answered or failed (files uploaded for it)."""

    async def arelease(self, request: BatchRequest) -> None:
        """``release`` for async callers."""
        self.release(request)

    def completion_from_chat(self, response: ChatResponse) -> CompletionResponse:
        """What the wrapped LLM's ``complete`` makes of its chat answer (streamed or not)."""
        completion = chat_response_to_completion_response(response)
        completion.delta = response.delta
        return completion

    def stream_chunk(self, response: ChatResponse) -> ChatResponse:
        """A batch answers all at once: the one chunk of a stream, holding the whole answer."""
        response.delta = response.message.content or ""
        return response

    # -- optional hooks: legacy completions -----------------------------------------------------

    def uses_chat_endpoint(self, kwargs: dict[str, Any]) -> bool:
        """Whether a call goes to the chat endpoint (else to the legacy completion endpoint)."""
        return True

    def completion_request(self, prompt: str, kwargs: dict[str, Any]) -> BatchRequest:
        """The request of a legacy completion call, for providers that have one."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    def completion_response(
        self, body: dict[str, Any], request: BatchRequest
    ) -> CompletionResponse:
        """The ``CompletionResponse`` of a legacy completion call."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    # -- optional hooks: native structured output -----------------------------------------------

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


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> ChatCodec:
    """The codec for ``provider:model``, building the provider's LLM from ``params``."""
    entry = require_codec(KIND, provider=provider, wrapper="BatchLLM")
    codec: ChatCodec = entry.codec.build(entry.model_class(), model, params)
    return codec


def codec_for_llm(llm: object) -> ChatCodec:
    """The codec for an instance of a registered LlamaIndex LLM class."""
    entry = require_codec(KIND, llm, wrapper="BatchLLM")
    codec: ChatCodec = entry.codec.wrap(llm)
    return codec
