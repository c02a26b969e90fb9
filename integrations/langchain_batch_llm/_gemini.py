"""Gemini through ``langchain-google-genai``: ``ChatGoogleGenerativeAI`` builds the request
(``_prepare_request``, the arguments of ``client.models.generate_content``) and reads the answer
(``_response_to_result``), with the SDK's own response conversion in between, as realtime.

``GoogleGenerativeAIEmbeddings`` embeds one text per request in a batch (a batch line embeds
one content), with the task type it uses: documents for retrieval, or a query."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import SecretStr

from batch_llm import BatchRequest, Provider, resolve_provider

from ._codec import ChatCodec, EmbeddingsCodec, EmbeddingsSettings

if TYPE_CHECKING:
    from langchain_google_genai import ChatGoogleGenerativeAI

__all__ = ["GeminiChatCodec", "GeminiEmbeddingsCodec"]

GENERATE = "generateContent"
# What generate_content keeps from the request to parse the answer with.
_PARSE_CONFIG = ("response_schema", "response_json_schema", "include_all_fields")


def _config_value(config: Any, name: str) -> Any:
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


class GeminiChatCodec(ChatCodec):
    """Codec for ``ChatGoogleGenerativeAI``."""

    provider_name = "google_genai"
    inner: ChatGoogleGenerativeAI

    @functools.cached_property
    def adapter(self) -> Provider:
        inner = self.inner
        key = inner.google_api_key
        base_url = inner.base_url
        if isinstance(base_url, dict):
            base_url = base_url.get("api_endpoint")
        return resolve_provider(
            "gemini",
            api_key=key.get_secret_value() if key is not None else None,
            base_url=base_url,
            api_version=getattr(inner, "api_version", None),
        )

    def request(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> BatchRequest:
        inner = self.inner
        # As _generate does: a per-call cached_content, else the model's own.
        kwargs["cached_content"] = kwargs.get("cached_content") or inner.cached_content
        request = inner._prepare_request(messages, stop=stop, **kwargs)
        config = request.get("config")
        context = {"config": {name: _config_value(config, name) for name in _PARSE_CONFIG}}
        return BatchRequest(GENERATE, request, context)

    def result(self, body: Any, request: BatchRequest) -> ChatResult:
        from google.genai import models, types
        from langchain_google_genai.chat_models import _response_to_result

        converted = models._GenerateContentResponse_from_mldev(body)
        config = request.context["config"]
        kwargs = {"config": config} if any(v is not None for v in config.values()) else {}
        response = types.GenerateContentResponse._from_response(response=converted, kwargs=kwargs)
        return _response_to_result(response)

    def error(self, exc: BaseException) -> BaseException:
        """ChatGoogleGenerativeAI turns SDK errors into its own types; do exactly the same."""
        from google.genai.errors import ClientError, ServerError
        from langchain_google_genai import chat_models

        try:
            try:
                raise exc
            except ClientError as client:
                chat_models._handle_client_error(client, {"model": self.inner.model})
            except ServerError as server:
                chat_models._handle_server_error(server)
        except BaseException as mapped:  # the handlers re-raise what realtime raises
            return mapped
        return exc


class GeminiEmbeddingsCodec(EmbeddingsCodec):
    """Codec for ``GoogleGenerativeAIEmbeddings``: one text per request."""

    provider_name = "google_genai"
    endpoint = "embedContent"

    @classmethod
    def build(cls, settings: EmbeddingsSettings) -> Self:
        adapter = resolve_provider("gemini", api_key=settings.api_key, base_url=settings.base_url)
        return cls(settings, adapter)

    @classmethod
    def wrap(cls, embeddings: Any, settings: EmbeddingsSettings) -> Self:
        settings = dataclasses.replace(
            settings,
            model=embeddings.model,
            dimensions=embeddings.output_dimensionality,
            task_type=embeddings.task_type,
        )
        key = embeddings.google_api_key
        adapter = resolve_provider(
            "gemini",
            api_key=key.get_secret_value() if isinstance(key, SecretStr) else key,
            base_url=embeddings.base_url,
        )
        return cls(settings, adapter)

    def bodies(self, texts: Sequence[str], *, query: bool) -> list[dict[str, Any]]:
        settings = self.settings
        task = (
            settings.task_type or ("RETRIEVAL_QUERY" if query else "RETRIEVAL_DOCUMENT")
        ).upper()
        config: dict[str, Any] = {"task_type": task}
        if settings.dimensions is not None:
            config["output_dimensionality"] = settings.dimensions
        return [
            {"model": settings.model, "contents": [{"parts": [{"text": text}]}], "config": config}
            for text in texts
        ]

    def vectors(self, body: dict[str, Any]) -> list[list[float]]:
        return [[float(x) for x in item["values"]] for item in body["embeddings"]]
