"""Anthropic through ``llama-index-llms-anthropic``: ``Anthropic`` builds the request and reads
the answer, as in its realtime ``chat``::

    messages_to_anthropic_messages -> _get_all_kwargs -> client.messages.create(...)
    -> _get_blocks_and_tool_calls_and_thinking -> AnthropicChatResponse

The ``messages.create`` call goes through the anthropic SDK to a transport that records the
request instead of sending it, so the batched body is byte for byte what the realtime call
sends. Its ``structured_predict`` (``client.beta.messages.parse`` with ``output_format``) is
batched the same way and parsed with the SDK's own parser.

Two incompatibilities between llama-index-llms-anthropic (0.12) and the anthropic SDK (2.x) are
bridged here, without touching either package: the integration calls ``MessageParam(...)``,
which the SDK turned from a TypedDict into a union that cannot be called; and it passes
sampling parameters (``temperature``, ``top_p``, ``top_k``) the SDK's ``create`` no longer
names. A TypedDict call builds a plain dict, so that is what the converters get; parameters the
SDK does not name travel in ``extra_body``, which the SDK merges into the body unchanged (as
langchain-anthropic does). With releases that agree, neither bridge changes anything.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm
from batch_llm import BatchRequest

from ._codecs import ChatCodec, StructuredCall

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicChatCodec"]

MESSAGES = "/v1/messages"
# What Anthropic.structured_predict asks for. Structured outputs are generally available now
# under the ``output_config`` the SDK sends, so the body needs no beta header in a batch.
_STRUCTURED_BETA = "structured-outputs-2025-11-13"
# Anthropic.structured_predict's max_tokens when the call gives none.
_STRUCTURED_MAX_TOKENS = 8192
# Anthropic.__init__'s own header; the batch adapter sends the SDK's.
_USER_AGENT = "user-agent"


class AnthropicChatCodec(ChatCodec):
    """``llama_index.llms.anthropic.Anthropic`` on the Anthropic API (not Vertex or Bedrock)."""

    provider_name = "anthropic"

    @classmethod
    def build(
        cls, llm_class: type[FunctionCallingLLM], model: str, params: dict[str, Any]
    ) -> AnthropicChatCodec:
        names = {
            "temperature": "temperature",
            "max_tokens": "max_tokens",
            "additional_kwargs": "additional_kwargs",
            "api_key": "api_key",
            "api_base": "base_url",
        }
        kwargs = {ours: params[k] for k, ours in names.items() if params.get(k) is not None}
        return cls(llm_class(model=model, **kwargs))

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> AnthropicChatCodec:
        import anthropic

        client = getattr(llm, "_client", None)
        if not isinstance(client, anthropic.Anthropic):
            raise ValueError(
                f"BatchLLM cannot batch Anthropic on {type(client).__name__}: Vertex AI and "
                "Bedrock have batch APIs of their own; use the Anthropic API (api_key)"
            )
        return cls(llm)

    @property
    def _client(self) -> anthropic.Anthropic:
        client: anthropic.Anthropic = self.llm._client  # type: ignore[attr-defined]
        return client

    def fields(self) -> dict[str, Any]:
        llm: Any = self.llm
        return {
            "model": f"{self.provider_name}:{llm.model}",
            "temperature": llm.temperature,
            "max_tokens": llm.max_tokens,
            "additional_kwargs": dict(llm.additional_kwargs),
            "api_key": self._client.api_key or None,
            "api_base": llm.base_url,
        }

    @functools.cached_property
    def provider(self) -> batch_llm.Provider:
        llm: Any = self.llm
        headers = {
            name: value
            for name, value in self._client._custom_headers.items()
            if name.lower() != _USER_AGENT and isinstance(value, str)
        }
        # The base URL as given: none means ANTHROPIC_BASE_URL or Anthropic's, for the adapter
        # as for the SDK.
        return batch_llm.resolve_provider(
            "anthropic",
            api_key=self._client.api_key or None,
            base_url=llm.base_url,
            default_headers=headers or None,
        )

    def metadata(self) -> LLMMetadata:
        try:
            return self.llm.metadata
        except ValueError:
            # The integration raises for models missing from its context-size table; batch
            # calls do not need the number, so answer with LlamaIndex's usual default.
            from llama_index.llms.anthropic.utils import is_function_calling_model

            llm: Any = self.llm
            return LLMMetadata(
                context_window=DEFAULT_CONTEXT_WINDOW,
                num_output=llm.max_tokens,
                is_chat_model=True,
                is_function_calling_model=is_function_calling_model(llm.model),
                model_name=llm.model,
            )

    # -- Anthropic.chat, its request half and its response half --------------------------------

    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        llm: Any = self.llm
        convert = _converter("messages_to_anthropic_messages")
        anthropic_messages, system_prompt = convert(messages, llm.cache_idx, llm.model)
        all_kwargs = llm._get_all_kwargs(**kwargs)
        params = dict(messages=anthropic_messages, stream=False, system=system_prompt, **all_kwargs)
        return _capture("messages", "create", params)

    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
        from anthropic.types import Message
        from llama_index.llms.anthropic.base import AnthropicChatResponse

        llm: Any = self.llm
        response = self._parse_body(body, Message)
        blocks, citations = llm._get_blocks_and_tool_calls_and_thinking(response)
        return AnthropicChatResponse(
            message=ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks),
            citations=citations,
            raw=dict(response),
        )

    def completion_from_chat(self, response: ChatResponse) -> CompletionResponse:
        completion: CompletionResponse = self.llm._completion_response_from_chat_response(  # type: ignore[attr-defined]
            response
        )
        return completion

    def stream_chunk(self, response: ChatResponse) -> ChatResponse:
        # The last chunk of the realtime stream carries the usage and the stop reason in the
        # message's additional_kwargs; stream consumers read them there.
        raw = response.raw or {}
        usage = raw.get("usage")
        response.message.additional_kwargs = {
            "usage": (
                {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}
                if usage is not None
                else None
            ),
            "stop_reason": raw.get("stop_reason"),
            "thinking_delta": "",
        }
        return super().stream_chunk(response)

    def _parse_body(self, body: dict[str, Any], cast_to: type[Any]) -> Any:
        """The SDK object the realtime call returns for this body (the SDK's own parsing)."""
        from anthropic._models import construct_type, validate_type

        if self._client._strict_response_validation:
            return validate_type(type_=cast_to, value=body)
        return construct_type(type_=cast_to, value=body)

    # -- Anthropic.structured_predict: beta.messages.parse with the output class ---------------

    def structured_call(
        self,
        output_cls: type[BaseModel],
        messages: list[ChatMessage],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> StructuredCall | None:
        from llama_index.llms.anthropic.utils import is_anthropic_structured_output_supported

        llm: Any = self.llm
        if not is_anthropic_structured_output_supported(llm.model):
            return None  # the function-calling program, as realtime
        convert = _converter("messages_to_anthropic_beta_messages")
        ant_messages, system = convert(messages)
        params = dict(
            messages=ant_messages,
            model=llm.model,
            max_tokens=llm_kwargs.get("max_tokens", _STRUCTURED_MAX_TOKENS),
            output_format=output_cls,
            system=system,
            betas=[_STRUCTURED_BETA],
            **llm_kwargs,
        )
        params["betas"] = [beta for beta in params["betas"] if beta != _STRUCTURED_BETA]
        if not params["betas"]:
            del params["betas"]
        request = _capture("beta.messages", "parse", params)
        return StructuredCall(request, functools.partial(self._structured_output, output_cls))

    def _structured_output(self, output_cls: type[BaseModel], body: dict[str, Any]) -> BaseModel:
        from anthropic.lib._parse._response import parse_beta_response
        from anthropic.types.beta import BetaMessage

        response: Any = parse_beta_response(
            output_format=output_cls, response=self._parse_body(body, BetaMessage)
        )
        parsed = response.parsed_output
        stop_reason = response.stop_reason
        if parsed is not None:
            output: BaseModel = parsed
            return output
        # Anthropic.structured_predict's own error.
        raise ValueError(
            "It was not possible to produce a structured response"
            f"{' because of ' + stop_reason if stop_reason is not None else ''}"
        )


# -- recording the SDK's request ----------------------------------------------------------------


def _http_module() -> Any:
    """The HTTP library the anthropic SDK is built on (``httpx2`` in 2.x, ``httpx`` before)."""
    import anthropic

    for cls in anthropic.DefaultHttpxClient.__mro__[1:]:
        root = cls.__module__.partition(".")[0]
        if root.startswith("httpx"):
            return sys.modules[root]
    raise RuntimeError("cannot tell which HTTP library the anthropic SDK uses")


@functools.cache
def _capture_client() -> anthropic.Anthropic:
    """An anthropic SDK client whose transport records each request instead of sending it."""
    import anthropic

    http = _http_module()

    def answer(request: Any) -> Any:
        return http.Response(200, json={})

    return anthropic.Anthropic(
        api_key="batch-llm-capture",
        base_url="http://batch-llm.invalid",
        max_retries=0,
        # Given explicitly: with its default the SDK refuses a non-streaming request whose
        # max_tokens could take it over ten minutes realtime, a limit a batch does not have.
        timeout=600.0,
        # No environment: proxies would make the client build real transports.
        http_client=anthropic.DefaultHttpxClient(
            transport=http.MockTransport(answer), trust_env=False
        ),
    )


def _resource(path: str) -> Any:
    """``client.messages`` or ``client.beta.messages`` of the recording client."""
    target: Any = _capture_client()
    for part in path.split("."):
        target = getattr(target, part)
    return target


@functools.cache
def _named_parameters(resource: str, method: str) -> frozenset[str]:
    """The keyword arguments an SDK method names."""
    return frozenset(inspect.signature(getattr(_resource(resource), method)).parameters)


def _capture(resource: str, method: str, params: dict[str, Any]) -> BatchRequest:
    """The JSON body the SDK sends for ``client.<resource>.<method>(**params)``.

    Parameters the SDK method does not name go in ``extra_body`` (see the module docstring).
    Beta features cannot be batched yet: a batch carries no per-request header.
    """
    betas = params.get("betas")
    if betas:
        raise batch_llm.InvalidRequestError(
            f"Anthropic beta features ({', '.join(map(str, betas))}) cannot be batched yet: "
            "a batch request carries no anthropic-beta header"
        )
    named = _named_parameters(resource, method)
    unnamed = {key: params.pop(key) for key in list(params) if key not in named}
    if unnamed:
        params["extra_body"] = {**unnamed, **(params.get("extra_body") or {})}
    raw = getattr(_resource(resource).with_raw_response, method)(**params)
    request = raw.http_request
    beta_header = request.headers.get("anthropic-beta")
    if beta_header:
        raise batch_llm.InvalidRequestError(
            f"Anthropic beta features ({beta_header}) cannot be batched yet: a batch request "
            "carries no anthropic-beta header"
        )
    return BatchRequest(MESSAGES, json.loads(request.content))


# -- the integration's message converters, runnable on this SDK --------------------------------

_PARAM_TYPES = ("MessageParam", "BetaMessageParam")


def _typed_dict(**fields: Any) -> dict[str, Any]:
    """What calling a TypedDict does: a plain dict of the fields."""
    return dict(fields)


def _callable_type(value: Any) -> bool:
    origin = typing.get_origin(value)
    return origin is not typing.Union and origin is not types.UnionType


def _converter(name: str) -> Callable[..., Any]:
    """``llama_index.llms.anthropic.utils.<name>``, run with a dict builder in place of the
    message TypedDicts the SDK no longer lets it call (see the module docstring)."""
    from llama_index.llms.anthropic import utils

    function: Any = getattr(utils, name)
    names = function.__code__.co_names
    # Looked at on every call: the module is whatever it is now (patched or fixed or not).
    if all(_callable_type(getattr(utils, p, None)) for p in _PARAM_TYPES if p in names):
        return typing.cast("Callable[..., Any]", function)
    return _bridged(name)


@functools.cache
def _bridged(name: str) -> Callable[..., Any]:
    from llama_index.llms.anthropic import utils

    function: Any = getattr(utils, name)
    bridged = types.FunctionType(
        function.__code__,
        {**function.__globals__, **dict.fromkeys(_PARAM_TYPES, _typed_dict)},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    bridged.__kwdefaults__ = function.__kwdefaults__
    return bridged
