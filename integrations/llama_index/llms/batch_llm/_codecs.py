"""Codecs: how one provider's LlamaIndex integration maps onto batch requests.

``BatchLLM`` knows nothing of any provider. A codec wraps the provider's own LlamaIndex LLM
class and asks it for everything provider-specific: the request body a call would send, the
``ChatResponse`` its realtime call would build from the response body, its tool and structured
output handling, its metadata, and the credentials that pick the batch adapter. Reusing the
integration's code rather than rewriting it is what keeps a batched call identical to the
realtime one, and a new provider is one small codec class plus a registry entry.
"""

from __future__ import annotations

import abc
import functools
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm

from ._shared import (
    BatchRequest,
    capture_openai_request,
    missing_integration,
    openai_batch_base_url,
    openai_inner_base_url,
)

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["ChatCodec", "OpenAIChatCodec", "codec_for_llm", "codec_for_model"]


class ChatCodec(abc.ABC):
    """One provider's LlamaIndex integration, seen from ``BatchLLM``.

    ``llm`` is an instance of the integration's own class; the codec never calls its network
    methods, only the helpers that build request bodies and parse response bodies.
    """

    provider_name: ClassVar[str]

    def __init__(self, llm: FunctionCallingLLM) -> None:
        self.llm = llm

    @classmethod
    @abc.abstractmethod
    def build(cls, model: str, params: dict[str, Any]) -> ChatCodec:
        """Build the integration's LLM for ``model`` from ``BatchLLM``'s parameters."""

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

    @abc.abstractmethod
    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        """The request the wrapped LLM's ``chat(messages, **kwargs)`` would send."""

    @abc.abstractmethod
    def chat_response(self, body: dict[str, Any]) -> ChatResponse:
        """The ``ChatResponse`` the wrapped LLM would build from this response body."""

    def completion_request(self, prompt: str, kwargs: dict[str, Any]) -> BatchRequest:
        """The request of a legacy completion call, for providers that have one."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    def completion_response(self, body: dict[str, Any]) -> CompletionResponse:
        """The ``CompletionResponse`` of a legacy completion call."""
        raise NotImplementedError(f"{self.provider_name} has no completion endpoint")

    def structured_plan(
        self,
        output_cls: type[BaseModel],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> tuple[bool, dict[str, Any]]:
        """How the wrapped LLM does ``structured_predict``: ``(True, chat kwargs)`` for native
        structured output through one chat call, ``(False, llm kwargs)`` for LlamaIndex's
        function-calling program."""
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


class OpenAIChatCodec(ChatCodec):
    """``llama_index.llms.openai.OpenAI``: chat completions (and legacy completions)."""

    provider_name = "openai"

    @classmethod
    def build(cls, model: str, params: dict[str, Any]) -> OpenAIChatCodec:
        try:
            from llama_index.llms.openai import OpenAI
        except ImportError:
            raise missing_integration(
                "llama-index-llms-openai", "llama_index.llms.openai"
            ) from None
        kwargs = {k: v for k, v in params.items() if v is not None}
        kwargs["api_base"] = openai_inner_base_url(params.get("api_base"))
        return cls(OpenAI(model=model, **kwargs))

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> OpenAIChatCodec:
        if "azure" in type(llm).__module__:
            raise ValueError(
                f"BatchLLM cannot batch {type(llm).__name__} yet: Azure OpenAI batches use "
                "deployments and a different endpoint; wrap llama_index.llms.openai.OpenAI"
            )
        return cls(llm)

    def fields(self) -> dict[str, Any]:
        llm: Any = self.llm
        return {
            "model": f"{self.provider_name}:{llm.model}",
            "temperature": llm.temperature,
            "max_tokens": llm.max_tokens,
            "additional_kwargs": dict(llm.additional_kwargs),
            "api_key": llm.api_key or None,
            "api_base": llm.api_base,
        }

    @functools.cached_property
    def provider(self) -> batch_llm.Provider:
        llm: Any = self.llm
        return batch_llm.resolve_provider(
            "openai",
            api_key=llm.api_key or None,
            base_url=openai_batch_base_url(llm.api_base),
            default_headers=llm.default_headers,
        )

    def metadata(self) -> LLMMetadata:
        try:
            return self.llm.metadata
        except ValueError:
            # The integration raises for models missing from its context-size table; batch
            # calls do not need the number, so answer with LlamaIndex's usual default.
            from llama_index.llms.openai.utils import is_chat_model, is_function_calling_model

            llm: Any = self.llm
            name = llm._get_model_name()
            return LLMMetadata(
                context_window=DEFAULT_CONTEXT_WINDOW,
                num_output=llm.max_tokens or -1,
                is_chat_model=is_chat_model(model=name),
                is_function_calling_model=is_function_calling_model(model=name),
                model_name=llm.model,
            )

    def uses_chat_endpoint(self, kwargs: dict[str, Any]) -> bool:
        # OpenAI._use_chat_completions, without reading the whole metadata.
        if "use_chat_completions" in kwargs:
            return bool(kwargs["use_chat_completions"])
        from llama_index.llms.openai.utils import is_chat_model

        llm: Any = self.llm
        return is_chat_model(model=llm._get_model_name())

    # The request and response halves of OpenAI._chat and OpenAI._complete.

    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        from llama_index.llms.openai.utils import to_openai_message_dicts

        llm: Any = self.llm
        message_dicts: Any = to_openai_message_dicts(messages, model=llm.model)
        model_kwargs = llm._get_model_kwargs(**kwargs)
        return capture_openai_request(
            lambda client: client.chat.completions.with_raw_response.create(
                messages=message_dicts, stream=False, **model_kwargs
            )
        )

    def chat_response(self, body: dict[str, Any]) -> ChatResponse:
        from llama_index.llms.openai.utils import from_openai_message, from_openai_token_logprobs
        from openai.types.chat import ChatCompletion

        llm: Any = self.llm
        # ``construct`` is how the SDK itself turns a response body into its objects.
        response = ChatCompletion.construct(**body)
        message = from_openai_message(
            response.choices[0].message, modalities=llm.modalities or ["text"]
        )
        token_logprobs = response.choices[0].logprobs
        logprobs = None
        if token_logprobs and token_logprobs.content:
            logprobs = from_openai_token_logprobs(token_logprobs.content)
        return ChatResponse(
            message=message,
            raw=response,
            logprobs=logprobs,
            additional_kwargs=llm._get_response_token_counts(response),
        )

    def completion_request(self, prompt: str, kwargs: dict[str, Any]) -> BatchRequest:
        llm: Any = self.llm
        all_kwargs = llm._get_model_kwargs(**kwargs)
        llm._update_max_tokens(all_kwargs, prompt)
        return capture_openai_request(
            lambda client: client.completions.with_raw_response.create(
                prompt=prompt, stream=False, **all_kwargs
            )
        )

    def completion_response(self, body: dict[str, Any]) -> CompletionResponse:
        from llama_index.llms.openai.utils import from_openai_completion_logprobs
        from openai.types import Completion

        llm: Any = self.llm
        response = Completion.construct(**body)
        choice = response.choices[0]
        logprobs = None
        if choice.logprobs:
            logprobs = from_openai_completion_logprobs(choice.logprobs)
        return CompletionResponse(
            text=choice.text,
            raw=response,
            logprobs=logprobs,
            additional_kwargs=llm._get_response_token_counts(response),
        )

    def structured_plan(
        self,
        output_cls: type[BaseModel],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> tuple[bool, dict[str, Any]]:
        # OpenAI.structured_predict: a JSON-schema response_format where the model supports
        # it, else function calling with a tool call required.
        from llama_index.llms.openai.utils import is_json_schema_supported

        llm: Any = self.llm
        if mode == PydanticProgramMode.DEFAULT and is_json_schema_supported(llm.model):
            return True, llm._prepare_schema(llm_kwargs, output_cls)
        llm_kwargs.setdefault("tool_choice", "required")
        return False, llm_kwargs


@dataclass(frozen=True, slots=True)
class _Integration:
    """A provider's LlamaIndex LLM class and the codec that batches it (None: not yet)."""

    provider: str
    module: str
    class_name: str
    package: str
    codec: Callable[[], type[ChatCodec]] | None

    def load(self) -> type[FunctionCallingLLM] | None:
        try:
            module = importlib.import_module(self.module)
        except ImportError:
            return None
        cls: type[FunctionCallingLLM] | None = getattr(module, self.class_name, None)
        return cls


_INTEGRATIONS = (
    _Integration(
        "openai",
        "llama_index.llms.openai",
        "OpenAI",
        "llama-index-llms-openai",
        lambda: OpenAIChatCodec,
    ),
    # Their batch adapters are being written; the codecs follow them.
    _Integration(
        "anthropic", "llama_index.llms.anthropic", "Anthropic", "llama-index-llms-anthropic", None
    ),
    _Integration(
        "gemini",
        "llama_index.llms.google_genai",
        "GoogleGenAI",
        "llama-index-llms-google-genai",
        None,
    ),
)


def _supported() -> str:
    return ", ".join(i.provider for i in _INTEGRATIONS if i.codec is not None)


def _not_yet(integration: _Integration) -> NotImplementedError:
    return NotImplementedError(
        f"BatchLLM does not batch {integration.provider} models yet; it supports: {_supported()}"
    )


def codec_for_model(provider: str, model: str, params: dict[str, Any]) -> ChatCodec:
    """The codec for ``provider:model``, building the provider's LLM from ``params``."""
    for integration in _INTEGRATIONS:
        if integration.provider == provider:
            if integration.codec is None:
                raise _not_yet(integration)
            return integration.codec().build(model, params)
    raise ValueError(f"unknown provider {provider!r} in BatchLLM model; supported: {_supported()}")


def codec_for_llm(llm: object) -> ChatCodec:
    """The codec for an instance of a provider's LlamaIndex LLM class."""
    for integration in _INTEGRATIONS:
        cls = integration.load()
        if cls is None or not isinstance(llm, cls):
            continue
        if integration.codec is None:
            raise _not_yet(integration)
        return integration.codec().wrap(llm)
    classes = ", ".join(f"{i.module}.{i.class_name}" for i in _INTEGRATIONS if i.codec is not None)
    raise TypeError(f"BatchLLM cannot wrap {type(llm).__name__}; it wraps {classes}")
