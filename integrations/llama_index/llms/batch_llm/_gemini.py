"""Gemini through ``llama-index-llms-google-genai``: ``GoogleGenAI`` builds the request and
reads the answer, as in its realtime ``_chat``::

    prepare_chat_params -> client.chats.create(...).send_message(next message)
    -> chat_from_gemini_response

A chat session's ``send_message`` calls ``generate_content(model=..., contents=history +
[message], config=...)``: those keyword arguments are the batch body (the Gemini adapter turns
them into the REST request with the SDK's own converter). They are recorded by running the
SDK's own ``Chat.send_message`` over a stand-in for ``client.models`` that keeps the arguments
instead of sending them, so the curated history and the config are exactly the realtime call's.
The answer becomes a ``GenerateContentResponse`` the way the SDK builds one, and LlamaIndex's
``chat_from_gemini_response`` reads it. Native ``structured_predict`` (``generate_content``
with a response schema) is batched the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm
from batch_llm import BatchRequest

from ._codecs import ChatCodec, StructuredCall
from .shared import gemini_base_url, gemini_provider, refuse_vertex_ai, run_sync

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["GeminiChatCodec", "sdk_response"]

GENERATE = "generateContent"
# What generate_content keeps from the request to parse the answer with.
_PARSE_CONFIG = ("response_schema", "response_json_schema", "include_all_fields")


def _context(config: Any, files: Sequence[str]) -> dict[str, Any]:
    """What a Gemini request keeps for its answer: the config to parse it with, and the files
    uploaded for it (deleted once it is answered, as the realtime call does)."""
    return {"config": config, "files": tuple(files)}


class _Recorder:
    """Stands in for ``client.models`` under a chat session: keeps the arguments of each
    ``generate_content`` call and answers with an empty response, which ends the turn."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def generate_content(self, *, model: str, contents: Any, config: Any = None) -> Any:
        from google.genai import types

        self.calls.append({"model": model, "contents": contents, "config": config})
        return types.GenerateContentResponse()


def _config_value(config: Any, name: str) -> Any:
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


def sdk_response(body: dict[str, Any], config: Any) -> types.GenerateContentResponse:
    """The ``GenerateContentResponse`` ``generate_content`` returns for this REST answer to a
    request with ``config``: the SDK's own conversion (which parses response schemas)."""
    from google.genai import models, types

    converted = models._GenerateContentResponse_from_mldev(body)
    kwargs: dict[str, object] = {}
    if config is not None:
        kwargs = {"config": {name: _config_value(config, name) for name in _PARSE_CONFIG}}
    return types.GenerateContentResponse._from_response(response=converted, kwargs=kwargs)


class GeminiChatCodec(ChatCodec):
    """``llama_index.llms.google_genai.GoogleGenAI`` on the Gemini Developer API."""

    provider_name = "google_genai"

    @classmethod
    def build(
        cls, llm_class: type[FunctionCallingLLM], model: str, params: dict[str, Any]
    ) -> GeminiChatCodec:
        kwargs: dict[str, Any] = {
            k: params[k]
            for k in ("temperature", "max_tokens", "api_key", "context_window")
            if params.get(k) is not None
        }
        if params.get("api_base"):
            kwargs["http_options"] = {"base_url": params["api_base"]}
        extra = params.get("additional_kwargs")
        if extra:
            # GoogleGenAI takes further generation settings only as a whole config, which then
            # replaces the one it would build from temperature and max_tokens: build that one
            # here, with the extra settings on top.
            kwargs["generation_config"] = _generation_config(model, params, extra)
        return cls(llm_class(model=model, **kwargs))

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> GeminiChatCodec:
        client = llm._client  # type: ignore[attr-defined]
        refuse_vertex_ai(client, wrapper="BatchLLM", wrapped="GoogleGenAI")
        return cls(llm)

    @property
    def _client(self) -> Any:
        return self.llm._client  # type: ignore[attr-defined]

    def fields(self) -> dict[str, Any]:
        llm: Any = self.llm
        # What is sent: the generation config (which a config passed to GoogleGenAI fills,
        # whatever its temperature and max_tokens arguments say).
        config = dict(llm._generation_config or {})
        temperature = config.pop("temperature", None)
        return {
            "model": f"{self.provider_name}:{llm.model}",
            "temperature": temperature if temperature is not None else llm.temperature,
            "max_tokens": config.pop("max_output_tokens", None),
            "additional_kwargs": {k: v for k, v in config.items() if v is not None},
            "api_key": self._client._api_client.api_key or None,
            "api_base": gemini_base_url(self._client),
        }

    @functools.cached_property
    def provider(self) -> batch_llm.Provider:
        return gemini_provider(self._client)

    # -- GoogleGenAI._chat, its request half and its response half ------------------------------

    def chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> BatchRequest:
        # GoogleGenAI._chat runs this coroutine with asyncio.run; so do we, from any thread.
        return run_sync(lambda: self.achat_request(messages, kwargs))

    async def achat_request(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> BatchRequest:
        from google.genai import chats, types
        from llama_index.llms.google_genai.utils import prepare_chat_params

        llm: Any = self.llm
        kwargs = dict(kwargs)
        generation_config = {
            **(llm._generation_config or {}),
            **kwargs.pop("generation_config", {}),
        }
        params = {**kwargs, "generation_config": generation_config}
        next_msg, chat_kwargs, file_api_names = await prepare_chat_params(
            llm.model, messages, llm.file_mode, self._client, **params
        )
        recorder = _Recorder()
        chat = chats.Chat(modules=recorder, **chat_kwargs)  # type: ignore[arg-type]
        message: Any = next_msg.parts if isinstance(next_msg, types.Content) else next_msg
        chat.send_message(message)
        body = recorder.calls[0]  # the first is the one realtime sends
        return BatchRequest(GENERATE, body, _context(body["config"], file_api_names))

    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
        from llama_index.llms.google_genai.utils import chat_from_gemini_response

        response = sdk_response(body, request.context["config"])
        return chat_from_gemini_response(response, [])

    def release(self, request: BatchRequest) -> None:
        files = request.context["files"]
        if files and self.llm.file_mode in ("fileapi", "hybrid"):  # type: ignore[attr-defined]
            from llama_index.llms.google_genai.utils import delete_uploaded_files

            delete_uploaded_files(list(files), self._client)

    async def arelease(self, request: BatchRequest) -> None:
        files = request.context["files"]
        if files and self.llm.file_mode in ("fileapi", "hybrid"):  # type: ignore[attr-defined]
            from llama_index.llms.google_genai.utils import adelete_uploaded_files

            await adelete_uploaded_files(list(files), self._client)

    # -- GoogleGenAI.structured_predict: generate_content with the output class as schema ------

    def structured_call(
        self,
        output_cls: type[BaseModel],
        messages: list[ChatMessage],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> StructuredCall | None:
        if mode != PydanticProgramMode.DEFAULT:
            return None  # the function-calling program, as realtime
        return run_sync(lambda: self.astructured_call(output_cls, messages, llm_kwargs, mode))

    async def astructured_call(
        self,
        output_cls: type[BaseModel],
        messages: list[ChatMessage],
        llm_kwargs: dict[str, Any],
        mode: PydanticProgramMode,
    ) -> StructuredCall | None:
        from llama_index.llms.google_genai.utils import chat_message_to_gemini

        if mode != PydanticProgramMode.DEFAULT:
            return None
        llm: Any = self.llm
        generation_config = {
            **(llm._generation_config or {}),
            **llm_kwargs.pop("generation_config", {}),
        }
        generation_config["response_mime_type"] = "application/json"
        generation_config["response_schema"] = output_cls
        converted = await asyncio.gather(
            *(chat_message_to_gemini(m, llm.file_mode, self._client) for m in messages)
        )
        body = {
            "model": llm.model,
            "contents": [content for content, _names in converted],
            "config": generation_config,
        }
        files = tuple(name for _content, names in converted for name in names)
        request = BatchRequest(GENERATE, body, _context(generation_config, files))
        return StructuredCall(request, functools.partial(_structured_output, output_cls, request))


def _structured_output(
    output_cls: type[BaseModel], request: BatchRequest, body: dict[str, Any]
) -> BaseModel:
    # GoogleGenAI.structured_predict: the SDK's parsed object, else the text as JSON.
    response = sdk_response(body, request.context["config"])
    if isinstance(response.parsed, BaseModel):
        return response.parsed
    return output_cls.model_validate_json(response.text)  # type: ignore[arg-type]


def _generation_config(model: str, params: dict[str, Any], extra: dict[str, Any]) -> Any:
    """The config GoogleGenAI builds from temperature and max_tokens, plus ``extra``."""
    from google.genai import types
    from llama_index.core.constants import DEFAULT_TEMPERATURE
    from llama_index.llms.google_genai import base

    temperature = params.get("temperature")
    is_gemini_3: Any = getattr(base, "_is_gemini_3_or_newer", None)
    if temperature is None and not (is_gemini_3 is not None and is_gemini_3(model)):
        temperature = DEFAULT_TEMPERATURE  # GoogleGenAI's default below Gemini 3
    settings = {"temperature": temperature, "max_output_tokens": params.get("max_tokens")}
    return types.GenerateContentConfig(**{**settings, **extra})
