"""OpenAI through ``langchain-openai``: ``ChatOpenAI`` builds the request and reads the answer.

What ``ChatOpenAI._generate`` does around its SDK call is mirrored here step for step, so the
batch line carries the body the realtime call would have sent, and the answer goes through the
parser the realtime answer would have gone through:

- plain chat: ``client.chat.completions.create(**payload)`` -> ``_create_chat_result``;
- ``response_format`` (structured output): ``client.chat.completions.parse(**payload)``, whose
  SDK turns a pydantic ``response_format`` into a JSON schema on the way out and fills
  ``parsed`` on the way back;
- the Responses API: ``client.responses.create`` / ``.parse`` ->
  ``_construct_lc_result_from_responses_api``.

``OpenAIEmbeddings`` sends ``{"input": [...], "model": ...}`` bodies of many texts each; its
codec sends the same, as many texts to a request as OpenAI takes.
"""

from __future__ import annotations

import array
import base64
import dataclasses
import functools
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Self, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from batch_llm import BatchRequest, Provider, resolve_provider

from ._codec import ChatCodec, EmbeddingsCodec, EmbeddingsSettings, check_sdk_call

if TYPE_CHECKING:
    from langchain_openai.chat_models.base import BaseChatOpenAI

__all__ = ["OpenAIChatCodec", "OpenAIEmbeddingsCodec"]

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
# Keys ChatOpenAI may leave in a payload that the SDK treats as request options, not body.
_OPTION_KEYS = ("extra_headers", "extra_query", "timeout")
# OpenAI takes at most 2,048 inputs and about 300,000 tokens in one embeddings request; the
# character budget keeps a request under the token cap for any realistic tokenizer ratio.
_MAX_INPUTS = 2048
_MAX_CHARS = 600_000


def _secret(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "get_secret_value"):
        return str(value.get_secret_value())
    if isinstance(value, str):
        return value
    raise TypeError(
        "batch-llm needs a plain OpenAI API key; callable keys (Azure AD tokens) are not supported"
    )


def _adapter_for(
    api_key: Any, base_url: str | None, organization: str | None, headers: Any
) -> Provider:
    """The interned OpenAI adapter for these credentials (shared by chat and embeddings)."""
    return resolve_provider(
        "openai",
        api_key=_secret(api_key),
        base_url=base_url,
        organization=organization,
        default_headers=dict(headers) if headers else None,
    )


def _chat_completion(body: Any) -> Any:
    """The SDK object the realtime call parses this body into."""
    from openai.types.chat import ChatCompletion

    try:
        return ChatCompletion.model_validate(body)
    except ValueError:
        # The SDK itself builds response objects leniently; do the same for odd bodies.
        from openai._models import construct_type

        return construct_type(type_=ChatCompletion, value=body)


class _SDKMethods(NamedTuple):
    """The SDK methods of one API ChatOpenAI's realtime call may go through."""

    create: Callable[..., Any]
    parse: Callable[..., Any]


@functools.cache
def _chat_methods() -> _SDKMethods:
    from openai.resources.chat.completions import Completions

    return _SDKMethods(Completions.create, Completions.parse)


@functools.cache
def _responses_methods() -> _SDKMethods:
    # Imported only once a request takes this route: the module costs about 50 ms to import.
    from openai.resources.responses import Responses

    return _SDKMethods(Responses.create, Responses.parse)


#: A plain chat request's context: the same for every request, so shared, and read-only.
_CHAT_CONTEXT = cast(dict[str, Any], MappingProxyType({"kind": "chat"}))


def _chat_request(payload: dict[str, Any]) -> BatchRequest:
    """``chat.completions.create``: the payload is the body."""
    return BatchRequest(CHAT, payload, _CHAT_CONTEXT)


class OpenAIChatCodec(ChatCodec):
    """Codec for ``ChatOpenAI`` (and OpenAI-compatible ``BaseChatOpenAI`` subclasses)."""

    provider_name = "openai"
    inner: BaseChatOpenAI

    def __init__(self, inner: BaseChatModel) -> None:
        from langchain_openai import AzureChatOpenAI

        if isinstance(inner, AzureChatOpenAI):
            raise TypeError(
                "BatchChatModel cannot batch AzureChatOpenAI: Azure OpenAI's batch API "
                "(deployments, api-version) is not supported yet"
            )
        super().__init__(inner)

    @functools.cached_property
    def adapter(self) -> Provider:
        inner = self.inner
        return _adapter_for(
            inner.openai_api_key,
            inner.openai_api_base,
            inner.openai_organization,
            inner.default_headers,
        )

    def request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> BatchRequest:
        inner = self.inner
        payload = inner._get_request_payload(messages, stop=stop, **kwargs)
        build: Callable[[dict[str, Any]], BatchRequest]
        if "response_format" in payload:
            payload.pop("stream", None)  # as ChatOpenAI does before parse(), which takes none
            method, build = _chat_methods().parse, self._parse_request
        elif inner._use_responses_api(payload):
            from langchain_openai.chat_models.base import _is_pydantic_class

            schema = kwargs.get("response_format")
            # ChatOpenAI calls parse() for a pydantic schema, create() otherwise.
            sdk = _responses_methods()
            method = sdk.parse if _is_pydantic_class(schema) else sdk.create
            build = functools.partial(self._responses_request, schema=schema)
        else:
            method, build = _chat_methods().create, _chat_request
        # The SDK refuses a keyword its method does not take (an unknown model_kwargs key).
        check_sdk_call(method, payload)
        for key in _OPTION_KEYS:
            payload.pop(key, None)
        extra_body = payload.pop("extra_body", None)
        request = build(payload)
        if extra_body:
            request.body.update(extra_body)
        return request

    @staticmethod
    def _parse_request(payload: dict[str, Any]) -> BatchRequest:
        """``chat.completions.parse``: the SDK converts the schema and always sends
        ``stream: false``."""
        from openai import NOT_GIVEN
        from openai.lib._parsing._completions import (
            type_to_response_format_param,
            validate_input_tools,
        )

        response_format = payload["response_format"]
        # As parse(**payload) would: tools absent means "not given", not None.
        input_tools = validate_input_tools(payload["tools"]) if "tools" in payload else NOT_GIVEN
        payload["response_format"] = type_to_response_format_param(response_format)
        payload["stream"] = False
        context = {"kind": "parse", "response_format": response_format, "tools": input_tools}
        return BatchRequest(CHAT, payload, context)

    @staticmethod
    def _responses_request(payload: dict[str, Any], schema: Any) -> BatchRequest:
        """``responses.create`` / ``responses.parse`` (the latter for a pydantic schema)."""
        text_format = payload.pop("text_format", None)
        if text_format is not None:
            from openai.lib._parsing._responses import type_to_text_format_param

            text = dict(payload.get("text") or {})
            text["format"] = type_to_text_format_param(text_format)
            payload["text"] = text
        context = {
            "kind": "responses",
            "schema": schema,
            "text_format": text_format,
            "tools": payload.get("tools"),
        }
        return BatchRequest(RESPONSES, payload, context)

    def result(self, body: Any, request: BatchRequest) -> ChatResult:
        inner = self.inner
        context = request.context
        kind = context["kind"]
        if kind == "chat":
            return inner._create_chat_result(_chat_completion(body), {})
        if kind == "parse":
            from openai.lib._parsing._completions import parse_chat_completion

            parsed = parse_chat_completion(
                response_format=context["response_format"],
                chat_completion=_chat_completion(body),
                input_tools=context["tools"],
            )
            return inner._create_chat_result(parsed, {})
        from langchain_openai.chat_models.base import _construct_lc_result_from_responses_api
        from openai.types.responses import Response

        response: Any = Response.model_validate(body)
        if context["text_format"] is not None:
            from openai.lib._parsing._responses import parse_response

            response = parse_response(
                input_tools=context["tools"],
                text_format=context["text_format"],
                response=response,
            )
        return _construct_lc_result_from_responses_api(
            response, schema=context["schema"], metadata={}, output_version=inner.output_version
        )

    def error(self, exc: BaseException) -> BaseException:
        """ChatOpenAI turns some SDK errors into its own subclasses; do exactly the same."""
        import openai
        from langchain_openai.chat_models import base

        try:
            try:
                raise exc
            except openai.BadRequestError as bad:
                base._handle_openai_bad_request(bad)
            except openai.APIError as api:
                base._handle_openai_api_error(api)
        except BaseException as mapped:  # the handlers re-raise what realtime raises
            return mapped
        return exc


class OpenAIEmbeddingsCodec(EmbeddingsCodec):
    """Codec for ``OpenAIEmbeddings``: many texts per request, as it sends them."""

    provider_name = "openai"
    endpoint = "/v1/embeddings"

    @classmethod
    def build(cls, settings: EmbeddingsSettings) -> Self:
        settings = dataclasses.replace(
            settings, chunk_size=max(1, min(settings.chunk_size, _MAX_INPUTS))
        )
        adapter = _adapter_for(settings.api_key, settings.base_url, settings.organization, None)
        return cls(settings, adapter)

    @classmethod
    def wrap(cls, embeddings: Any, settings: EmbeddingsSettings) -> Self:
        from langchain_openai import AzureOpenAIEmbeddings

        if isinstance(embeddings, AzureOpenAIEmbeddings):
            raise TypeError(
                "BatchEmbeddings cannot batch AzureOpenAIEmbeddings: Azure OpenAI's batch API "
                "(deployments, api-version) is not supported yet"
            )
        settings = dataclasses.replace(
            settings,
            model=embeddings.model,
            dimensions=embeddings.dimensions,
            chunk_size=min(int(embeddings.chunk_size), _MAX_INPUTS),
            model_kwargs=dict(embeddings.model_kwargs or {}),
        )
        adapter = _adapter_for(
            embeddings.openai_api_key,
            embeddings.openai_api_base,
            embeddings.openai_organization,
            embeddings.default_headers,
        )
        return cls(settings, adapter)

    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        return [self._body(chunk) for chunk in _chunks(texts, self.settings.chunk_size)]

    def _body(self, inputs: list[str]) -> dict[str, Any]:
        # base64 is what the openai SDK asks for (and decodes) when the caller does not say,
        # so the vectors are bit-identical to a realtime call's.
        settings = self.settings
        body: dict[str, Any] = {
            "input": inputs,
            "model": settings.model,
            "encoding_format": "base64",
        }
        if settings.dimensions is not None:
            body["dimensions"] = settings.dimensions
        body.update(settings.model_kwargs)
        return body

    def vectors(self, body: dict[str, Any]) -> list[list[float]]:
        data = sorted(body["data"], key=lambda item: item["index"])
        return [_decode(item["embedding"]) for item in data]

    def size(self, body: dict[str, Any]) -> int:
        return len(body["input"])


def _chunks(texts: Sequence[str], size: int) -> list[list[str]]:
    """``texts`` in requests of at most ``size`` texts and OpenAI's token budget."""
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
