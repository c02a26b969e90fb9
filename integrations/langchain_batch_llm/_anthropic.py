"""Anthropic through ``langchain-anthropic``: ``ChatAnthropic`` builds the request and reads the
answer, as in its realtime ``_generate`` (``messages.create(**payload)`` -> ``_format_output``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult

from batch_llm import BatchRequest, InvalidRequestError, Provider, resolve_provider

from ._codec import ChatCodec, check_sdk_call

if TYPE_CHECKING:
    from langchain_anthropic import ChatAnthropic

__all__ = ["AnthropicChatCodec"]

MESSAGES = "/v1/messages"
# Keys ChatAnthropic may leave in a payload that the SDK treats as request options, not body.
_OPTION_KEYS = ("extra_headers", "extra_query", "timeout")


@functools.cache
def _messages_create() -> Callable[..., Any]:
    """What ChatAnthropic's realtime call goes through: ``client.messages.create``."""
    from anthropic.resources.messages import Messages

    return Messages.create


class AnthropicChatCodec(ChatCodec):
    """Codec for ``ChatAnthropic``."""

    provider_name = "anthropic"
    inner: ChatAnthropic

    @functools.cached_property
    def adapter(self) -> Provider:
        inner = self.inner
        return resolve_provider(
            "anthropic",
            api_key=inner.anthropic_api_key.get_secret_value() or None,
            base_url=inner.anthropic_api_url,
            default_headers=dict(inner.default_headers) if inner.default_headers else None,
        )

    def request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> BatchRequest:
        payload = self.inner._get_request_payload(messages, stop=stop, **kwargs)
        check_sdk_call(_messages_create(), payload)
        if "betas" in payload:
            # Beta features go in a header of the whole batch, which one batch cannot mix.
            raise InvalidRequestError(
                f"Anthropic beta features ({', '.join(payload['betas'])}) cannot be batched yet"
            )
        for key in _OPTION_KEYS:
            payload.pop(key, None)
        extra_body = payload.pop("extra_body", None)
        if extra_body:
            payload.update(extra_body)
        return BatchRequest(MESSAGES, payload)

    def result(self, body: Any, request: BatchRequest) -> ChatResult:
        from anthropic.types import Message

        message: Any
        try:
            message = Message.model_validate(body)
        except ValueError:  # the SDK builds responses leniently; so must we
            from anthropic._models import construct_type

            message = construct_type(type_=Message, value=body)
        return self.inner._format_output(message, generation_info={})

    def error(self, exc: BaseException) -> BaseException:
        """ChatAnthropic turns SDK errors into its own subclasses; do exactly the same."""
        import anthropic
        from langchain_anthropic import chat_models

        try:
            try:
                raise exc
            except anthropic.BadRequestError as bad:
                chat_models._handle_anthropic_bad_request(bad)
            except anthropic.APIError as api:
                chat_models._handle_anthropic_api_error(api)
        except BaseException as mapped:  # the handlers re-raise what realtime raises
            return mapped
        return exc
