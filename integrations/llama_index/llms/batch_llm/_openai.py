"""OpenAI through ``llama-index-llms-openai``: ``OpenAI`` builds the request (its message
conversion and ``_get_model_kwargs``, sent through the openai SDK to a transport that records
it) and reads the answer (``from_openai_message``, token counts), as in its realtime ``_chat``
and ``_complete``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel

import batch_llm
from batch_llm import BatchRequest

from ._codecs import ChatCodec
from .shared import (
    capture_openai_request,
    openai_inner_base_url,
    openai_provider,
    refuse_azure_openai,
)

__all__ = ["OpenAIChatCodec"]

# BatchLLM's parameters that llama_index.llms.openai.OpenAI takes under the same name.
_PARAMS = ("temperature", "max_tokens", "additional_kwargs", "api_key")


class OpenAIChatCodec(ChatCodec):
    """``llama_index.llms.openai.OpenAI``: chat completions (and legacy completions)."""

    provider_name = "openai"

    @classmethod
    def build(
        cls, llm_class: type[FunctionCallingLLM], model: str, params: dict[str, Any]
    ) -> OpenAIChatCodec:
        kwargs = {k: params[k] for k in _PARAMS if params.get(k) is not None}
        kwargs["api_base"] = openai_inner_base_url(params.get("api_base"))
        return cls(llm_class(model=model, **kwargs))

    @classmethod
    def wrap(cls, llm: FunctionCallingLLM) -> OpenAIChatCodec:
        refuse_azure_openai(llm, wrapper="BatchLLM", instead="llama_index.llms.openai.OpenAI")
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
        return openai_provider(self.llm)

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

    def chat_response(self, body: dict[str, Any], request: BatchRequest) -> ChatResponse:
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

    def completion_response(
        self, body: dict[str, Any], request: BatchRequest
    ) -> CompletionResponse:
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
