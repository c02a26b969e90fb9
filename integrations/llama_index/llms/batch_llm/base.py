"""``BatchLLM``: a LlamaIndex LLM whose calls run through the provider's Batch API."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from llama_index.core.base.llms.generic_utils import (
    acompletion_to_chat_decorator,
    astream_completion_to_chat_decorator,
    completion_to_chat_decorator,
    prompt_to_messages,
    stream_completion_to_chat_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import LLM, ToolSelection
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import BaseComponent
from llama_index.core.types import Model
from llama_index_instrumentation import get_dispatcher
from pydantic import BaseModel

import batch_llm
from batch_llm import BatchRequest, RequestFuture, Scheduler

from . import _builtin  # noqa: F401  (registers the codecs BatchLLM finds by name or class)
from ._codecs import ChatCodec, StructuredCall, codec_for_llm, codec_for_model
from .shared import pickle_state, resolve_settings

if TYPE_CHECKING:
    from llama_index.core.program.utils import FlexibleModel
    from llama_index.core.tools.types import BaseTool

__all__ = ["BatchLLM"]

dispatcher = get_dispatcher(__name__)

# Parameters that configure the provider's model; a wrapped LLM brings its own.
_MODEL_PARAMS = ("temperature", "max_tokens", "additional_kwargs", "api_key", "api_base")
# Settings of BatchLLM's own that a provider LLM built from a model name also takes.
_SHARED_PARAMS = ("context_window",)
# LlamaIndex-level settings a wrapped LLM passes on unless given here.
_INHERITED = (
    "callback_manager",
    "system_prompt",
    "messages_to_prompt",
    "completion_to_prompt",
    "output_parser",
    "pydantic_program_mode",
)


class BatchLLM(FunctionCallingLLM):
    """A LlamaIndex LLM that sends its calls through the provider's Batch API, at batch price.

    Build it from a model name, or wrap the provider's LlamaIndex LLM to reuse its settings::

        from llama_index.core import Settings
        from llama_index.llms.batch_llm import BatchLLM

        Settings.llm = BatchLLM(model="openai:gpt-4o-mini", temperature=0)
        Settings.llm = BatchLLM(model="anthropic:claude-haiku-4-5", max_tokens=512)
        Settings.llm = BatchLLM(model="google_genai:gemini-2.5-flash")
        Settings.llm = BatchLLM(OpenAI(model="gpt-4o-mini", temperature=0))
        Settings.llm = BatchLLM(Anthropic(model="claude-haiku-4-5"))
        Settings.llm = BatchLLM(GoogleGenAI(model="gemini-2.5-flash"))

    Every call returns what the wrapped provider LLM's realtime call would (message, tool
    calls, ``raw`` SDK object, token counts), or raises the same SDK error. Calls that arrive
    close together (worker pools, ``asyncio.gather``) share one batch through the scheduler's
    window (``BATCH_LLM_WINDOW``, 3 s by default). ``additional_kwargs["batch_id"]`` of each
    response names the provider batch that answered it. Failed requests are not retried: a
    retry would cost another batch turnaround.

    Streaming methods yield a single chunk holding the whole answer.

    Args:
        llm: a provider LLM to wrap: ``llama_index.llms.openai.OpenAI``,
            ``llama_index.llms.anthropic.Anthropic``,
            ``llama_index.llms.google_genai.GoogleGenAI``, or any class a ``ChatCodec`` is
            registered for under ``"llama_index.llm"`` (see ``batch_llm.register_codec``).
        model: ``"provider:model"`` instead of ``llm``; provider ``openai``, ``anthropic`` or
            ``google_genai`` (or ``gemini``), or a registered one.
        temperature, max_tokens, additional_kwargs, api_key, api_base: passed to the provider
            LLM built from ``model`` (``base_url=`` is taken for ``api_base``; for Gemini,
            ``additional_kwargs`` are generation config fields).
        context_window: overrides the context window the provider LLM reports (and is passed
            to ``GoogleGenAI``, which then needs no model lookup when ``max_tokens`` is set).
        scheduler: the ``batch_llm.Scheduler`` to use; default ``batch_llm.get_scheduler()``.
    """

    # The request settings are the wrapped LLM's, fixed when it is built: frozen, so that
    # assigning one fails loudly instead of silently changing nothing.
    model: str = Field(description="The provider and model, as 'provider:model'.", frozen=True)
    temperature: float | None = Field(
        default=None,
        description="The sampling temperature (the provider LLM's default if None).",
        frozen=True,
    )
    max_tokens: int | None = Field(
        default=None, description="The most tokens to generate.", gt=0, frozen=True
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Additional parameters for each request body.",
        frozen=True,
    )
    api_key: str | None = Field(
        default=None, description="The provider API key.", exclude=True, repr=False, frozen=True
    )
    api_base: str | None = Field(
        default=None, description="The provider API base URL.", frozen=True
    )
    context_window: int | None = Field(
        default=None, description="Overrides the context window the model reports.", gt=0
    )
    scheduler: Scheduler | None = Field(
        default=None,
        description="The batch_llm.Scheduler to use (default: the process-wide one).",
        exclude=True,
    )

    _codec: ChatCodec = PrivateAttr()

    def __init__(
        self,
        llm: LLM | None = None,
        /,
        *,
        model: str | None = None,
        scheduler: Scheduler | None = None,
        **kwargs: Any,
    ) -> None:
        spec = resolve_settings(
            "BatchLLM",
            llm,
            model,
            kwargs,
            model_params=_MODEL_PARAMS,
            inherited=_INHERITED,
            what="a LlamaIndex LLM",
            example="openai:gpt-4o-mini",
        )
        if spec is None:
            codec = codec_for_llm(llm)
        else:
            provider, name, params = spec
            params.update({k: kwargs.get(k) for k in _SHARED_PARAMS})
            codec = codec_for_model(provider, name, params)
        super().__init__(**codec.fields(), scheduler=scheduler, **kwargs)
        self._codec = codec

    @classmethod
    def class_name(cls) -> str:
        return "BatchLLM"

    def __getstate__(self) -> dict[str, Any]:
        return pickle_state(super(BaseComponent, self).__getstate__())

    @property
    def metadata(self) -> LLMMetadata:
        metadata = self._codec.metadata()
        if self.context_window is not None:
            metadata = metadata.model_copy(update={"context_window": self.context_window})
        return metadata

    @property
    def wrapped_llm(self) -> FunctionCallingLLM:
        """The provider's LlamaIndex LLM whose requests and responses this one batches."""
        return self._codec.llm

    # -- batching -----------------------------------------------------------------------------

    def _submit(self, request: BatchRequest) -> RequestFuture:
        scheduler = self.scheduler or batch_llm.get_scheduler()
        # Single calls wait for company: LlamaIndex's worker pools send them one at a time.
        return scheduler.submit(self._codec.provider, request.endpoint, request.body)

    def _chat_result(
        self, future: RequestFuture, body: dict[str, Any], request: BatchRequest
    ) -> ChatResponse:
        return _with_batch_id(self._codec.chat_response(body, request), future)

    def _completion_result(
        self, future: RequestFuture, body: dict[str, Any], request: BatchRequest
    ) -> CompletionResponse:
        return _with_batch_id(self._codec.completion_response(body, request), future)

    def _uses_chat(self, kwargs: dict[str, Any]) -> bool:
        # Taken out rather than passed on: the provider SDK would refuse the unknown argument.
        use_chat = kwargs.pop("use_chat_completions", None)
        if use_chat is not None:
            return bool(use_chat)
        return self._codec.uses_chat_endpoint(kwargs)

    async def _asubmit_and_wait(self, request: BatchRequest) -> tuple[RequestFuture, Any]:
        # Inside a round (the sweep helpers, gather_in_batches) the request is held for it.
        future = self._submit(request)
        return future, await future

    # Each request is released once answered or failed (a codec removes what it uploaded for
    # it), as the realtime call cleans up after itself.

    def _answer(self, request: BatchRequest) -> tuple[RequestFuture, Any]:
        try:
            future = self._submit(request)
            return future, future.result()
        finally:
            self._codec.release(request)

    async def _aanswer(self, request: BatchRequest) -> tuple[RequestFuture, Any]:
        try:
            return await self._asubmit_and_wait(request)
        finally:
            await self._codec.arelease(request)

    def _chat_call(self, request: BatchRequest) -> ChatResponse:
        return self._chat_result(*self._answer(request), request)

    async def _achat_call(self, request: BatchRequest) -> ChatResponse:
        return self._chat_result(*await self._aanswer(request), request)

    def _chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_call(self._codec.chat_request(messages, kwargs))

    async def _achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return await self._achat_call(await self._codec.achat_request(messages, kwargs))

    def _complete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        request = self._codec.completion_request(prompt, kwargs)
        return self._completion_result(*self._answer(request), request)

    async def _acomplete(self, prompt: str, **kwargs: Any) -> CompletionResponse:
        request = self._codec.completion_request(prompt, kwargs)
        return self._completion_result(*await self._aanswer(request), request)

    # A batch answers all at once, so a stream is one chunk. As the realtime call does, the
    # request goes out when the stream is first read.

    def _stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        request = self._codec.chat_request(messages, kwargs)

        def gen() -> ChatResponseGen:
            yield self._codec.stream_chunk(self._chat_call(request))

        return gen()

    async def _astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        request = await self._codec.achat_request(messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            yield self._codec.stream_chunk(await self._achat_call(request))

        return gen()

    def _stream_complete(self, prompt: str, **kwargs: Any) -> CompletionResponseGen:
        request = self._codec.completion_request(prompt, kwargs)

        def gen() -> CompletionResponseGen:
            response = self._completion_result(*self._answer(request), request)
            response.delta = response.text
            yield response

        return gen()

    async def _astream_complete(self, prompt: str, **kwargs: Any) -> CompletionResponseAsyncGen:
        request = self._codec.completion_request(prompt, kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            response = self._completion_result(*await self._aanswer(request), request)
            response.delta = response.text
            yield response

        return gen()

    # -- the LLM interface: the wrapped LLM's routing between chat and completion -------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._uses_chat(kwargs):
            return self._chat(messages, **kwargs)
        return completion_to_chat_decorator(self._complete)(messages, **kwargs)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._uses_chat(kwargs):
            return await self._achat(messages, **kwargs)
        return await acompletion_to_chat_decorator(self._acomplete)(messages, **kwargs)

    # A completion through the chat endpoint is what the wrapped LLM makes of its chat answer.

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if self._uses_chat(kwargs):
            return self._codec.completion_from_chat(
                self._chat(prompt_to_messages(prompt), **kwargs)
            )
        return self._complete(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        if self._uses_chat(kwargs):
            return self._codec.completion_from_chat(
                await self._achat(prompt_to_messages(prompt), **kwargs)
            )
        return await self._acomplete(prompt, **kwargs)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        if self._uses_chat(kwargs):
            return self._stream_chat(messages, **kwargs)
        return stream_completion_to_chat_decorator(self._stream_complete)(messages, **kwargs)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        if self._uses_chat(kwargs):
            return await self._astream_chat(messages, **kwargs)
        return await astream_completion_to_chat_decorator(self._astream_complete)(
            messages, **kwargs
        )

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        if self._uses_chat(kwargs):
            chunks = self._stream_chat(prompt_to_messages(prompt), **kwargs)
            return (self._codec.completion_from_chat(chunk) for chunk in chunks)
        return self._stream_complete(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if self._uses_chat(kwargs):
            chunks = await self._astream_chat(prompt_to_messages(prompt), **kwargs)

            async def gen() -> CompletionResponseAsyncGen:
                async for chunk in chunks:
                    yield self._codec.completion_from_chat(chunk)

            return gen()
        return await self._astream_complete(prompt, **kwargs)

    # -- tools: the wrapped LLM's own handling, which only builds chat kwargs or reads a
    # response and never touches the network ---------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        return self.wrapped_llm._prepare_chat_with_tools_compat(
            tools,
            user_msg=user_msg,
            chat_history=chat_history,
            verbose=verbose,
            allow_parallel_tool_calls=allow_parallel_tool_calls,
            tool_required=tool_required,
            **kwargs,
        )

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        return self.wrapped_llm._validate_chat_with_tools_response(
            response, tools, allow_parallel_tool_calls=allow_parallel_tool_calls, **kwargs
        )

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        return self.wrapped_llm.get_tool_calls_from_response(
            response, error_on_no_tool_call=error_on_no_tool_call, **kwargs
        )

    # -- structured output: the wrapped LLM's own way ------------------------------------------
    # Three ways, as the provider LLM does it: one request of its own (Anthropic's and Gemini's
    # native structured output), one chat call with a schema (OpenAI's), or LlamaIndex's
    # function-calling program over chat_with_tools.

    def _structured_route(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> _StructuredRoute:
        """The way the wrapped LLM takes a ``structured_predict`` of this prompt; it decides
        on its own copy of ``llm_kwargs``."""
        llm_kwargs = dict(llm_kwargs or {})
        mode = self.pydantic_program_mode
        call = self._codec.structured_call(
            output_cls, prompt.format_messages(**prompt_args), llm_kwargs, mode
        )
        if call is not None:
            return _StructuredRoute(call, native=False, llm_kwargs=llm_kwargs)
        native, llm_kwargs = self._codec.structured_plan(output_cls, llm_kwargs, mode)
        return _StructuredRoute(None, native=native, llm_kwargs=llm_kwargs)

    async def _astructured_route(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None,
        prompt_args: dict[str, Any],
    ) -> _StructuredRoute:
        """``_structured_route`` for async callers."""
        llm_kwargs = dict(llm_kwargs or {})
        mode = self.pydantic_program_mode
        call = await self._codec.astructured_call(
            output_cls, prompt.format_messages(**prompt_args), llm_kwargs, mode
        )
        if call is not None:
            return _StructuredRoute(call, native=False, llm_kwargs=llm_kwargs)
        native, llm_kwargs = self._codec.structured_plan(output_cls, llm_kwargs, mode)
        return _StructuredRoute(None, native=native, llm_kwargs=llm_kwargs)

    def _structured_direct(self, call: StructuredCall) -> Any:
        _future, body = self._answer(call.request)
        return call.parse(body)

    async def _astructured_direct(self, call: StructuredCall) -> Any:
        _future, body = await self._aanswer(call.request)
        return call.parse(body)

    @dispatcher.span
    def structured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        route = self._structured_route(output_cls, prompt, llm_kwargs, prompt_args)
        if route.call is not None:
            direct: Model = self._structured_direct(route.call)
            return direct
        if not route.native:
            predicted: Model = super().structured_predict(
                output_cls, prompt, llm_kwargs=route.llm_kwargs, **prompt_args
            )
            return predicted
        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        response = self.chat(messages, **route.llm_kwargs)
        result: Model = output_cls.model_validate_json(str(response.message.content))
        return result

    @dispatcher.span
    async def astructured_predict(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Model:
        route = await self._astructured_route(output_cls, prompt, llm_kwargs, prompt_args)
        if route.call is not None:
            direct: Model = await self._astructured_direct(route.call)
            return direct
        if not route.native:
            predicted: Model = await super().astructured_predict(
                output_cls, prompt, llm_kwargs=route.llm_kwargs, **prompt_args
            )
            return predicted
        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        response = await self.achat(messages, **route.llm_kwargs)
        result: Model = output_cls.model_validate_json(str(response.message.content))
        return result

    def _structured_stream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None, None]:
        route = self._structured_route(output_cls, prompt, llm_kwargs, prompt_args)
        if route.call is not None:
            yield self._structured_direct(route.call)
            return
        if not route.native:
            yield from super()._structured_stream_call(
                output_cls, prompt, route.llm_kwargs, **prompt_args
            )
            return
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages = self._extend_messages(prompt.format_messages(**prompt_args))
        current = None
        for response in self.stream_chat(messages, **route.llm_kwargs):
            current = process_streaming_content_incremental(response, output_cls, current)
            yield current

    async def _structured_astream_call(
        self,
        output_cls: type[Model],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Model | list[Model] | FlexibleModel | list[FlexibleModel], None]:
        route = await self._astructured_route(output_cls, prompt, llm_kwargs, prompt_args)
        if route.call is not None:
            direct = route.call

            async def one() -> AsyncGenerator[
                Model | list[Model] | FlexibleModel | list[FlexibleModel], None
            ]:
                yield await self._astructured_direct(direct)

            return one()
        if not route.native:
            return await super()._structured_astream_call(
                output_cls, prompt, route.llm_kwargs, **prompt_args
            )
        from llama_index.core.program.streaming_utils import process_streaming_content_incremental

        messages = self._extend_messages(prompt.format_messages(**prompt_args))

        async def gen() -> AsyncGenerator[
            Model | list[Model] | FlexibleModel | list[FlexibleModel], None
        ]:
            current = None
            async for response in await self.astream_chat(messages, **route.llm_kwargs):
                current = process_streaming_content_incremental(response, output_cls, current)
                yield current

        return gen()


_Response = TypeVar("_Response", ChatResponse, CompletionResponse)


def _with_batch_id(response: _Response, future: RequestFuture) -> _Response:
    """``response``, naming the provider batch that answered it (see the class docstring)."""
    response.additional_kwargs["batch_id"] = future.batch_id
    return response


@dataclass(frozen=True, slots=True)
class _StructuredRoute:
    """Which of the three ways a ``structured_predict`` goes: ``call``, one request of its own;
    else ``native``, one chat call with a schema; else the function-calling program. The chat
    call and the program take ``llm_kwargs``, as the codec's ``structured_plan`` left them."""

    call: StructuredCall | None
    native: bool
    llm_kwargs: dict[str, Any]
