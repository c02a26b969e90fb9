"""``BatchChatModel``: a LangChain chat model whose calls go through a provider's Batch API."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import queue
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult, LLMResult, RunInfo
from langchain_core.runnables import (
    ConfigurableField,
    Runnable,
    RunnableConfig,
    RunnableSerializable,
    ensure_config,
    get_config_list,
)
from langchain_core.runnables.utils import AnyConfigurableField
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

import batch_llm
from batch_llm import BatchLLMWarning, Scheduler
from batch_llm._rounds import current_holder
from batch_llm._waves import pool_wave

from ._codec import ChatCodec
from ._configurable import BatchConfigurableAlternatives, BatchConfigurableFields
from ._fanout import FanOut, Prefetched, message_of, off_loop, prefetched
from ._registry import build_inner_model, codec_for, split_model_id
from ._runnables import rebind

__all__ = ["BatchChatModel"]

logger = logging.getLogger("batch_llm")

# Standard params that are forwarded to the provider's model when building it from kwargs.
_STANDARD = ("temperature", "max_tokens", "stop", "timeout", "max_retries", "base_url", "streaming")
# This model's fields that hold the wrapped model's settings: read from it, written through to it.
_MIRRORED = (*_STANDARD, "api_key", "model_kwargs")
# Settings of this model itself (and of every LangChain chat model), never the wrapped model's.
_OWN = frozenset(
    {*BaseChatModel.model_fields, "chat_model", "provider", "scheduler_", "batch_metadata"}
)


class BatchChatModel(BaseChatModel):
    """A chat model that sends its calls through the provider's Batch API, at batch price.

    Build it like any chat model, or wrap one you already have::

        llm = BatchChatModel(model="openai:gpt-4o-mini", temperature=0)
        llm = BatchChatModel(ChatOpenAI(model="gpt-4o-mini", temperature=0))

        answers = (prompt | llm | StrOutputParser()).batch(questions)   # one provider batch

    The wrapped model (built for you from ``model="provider:model"`` and the standard params)
    builds every request and reads every answer, so a batched call sends exactly the request
    and returns exactly the message (content, tool calls, usage, response metadata, errors) the
    realtime call would; ``response_metadata["batch_id"]`` says which batch answered.

    ``batch``/``abatch``/``generate``/``agenerate`` submit all their inputs at once and flush,
    so a fan-out is one provider batch (``max_concurrency`` does not split it). Single calls
    (``invoke``, ``ainvoke``, from agents, ``RunnableParallel`` or ``asyncio.gather``) are
    collected for a short window (``BATCH_LLM_WINDOW``, 3 s) and share a batch. ``stream``
    yields the whole message as one chunk: batch APIs do not stream.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, arbitrary_types_allowed=True)

    chat_model: BaseChatModel | None = Field(default=None, exclude=True)
    """A provider chat model to batch (``ChatOpenAI(...)``); or build one from the fields below."""
    model_name: str | None = Field(default=None, alias="model")
    """``"provider:model"`` (``"openai:gpt-4o-mini"``), or a model name with ``provider``."""
    provider: str | None = None
    """The provider, when ``model`` has no ``provider:`` prefix."""
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    timeout: float | None = None
    """Per-request timeout of the wrapped model's realtime calls (not the batch's)."""
    max_retries: int | None = None
    api_key: SecretStr | None = None
    base_url: str | None = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra request-body parameters, passed to the provider's model."""
    streaming: bool = False
    scheduler_: Scheduler | None = Field(default=None, alias="scheduler", exclude=True)
    """The scheduler to batch through; the process-wide one by default."""
    batch_metadata: dict[str, str] | None = Field(default=None, exclude=True)
    """Key/values stamped on this model's batches (a run id, say), on top of the scheduler's
    ``metadata``, where the provider keeps batch metadata (OpenAI; Gemini's display name)."""

    _inner: BaseChatModel = PrivateAttr()
    _codec: ChatCodec = PrivateAttr()

    def __init__(self, chat_model: BaseChatModel | None = None, /, **kwargs: Any) -> None:
        if chat_model is not None:
            kwargs["chat_model"] = chat_model
        super().__init__(**kwargs)

    @model_validator(mode="after")
    def _set_up(self) -> Self:
        if self.chat_model is not None:
            given = [
                name for name in (*_STANDARD, "api_key") if getattr(self, name) not in (None, False)
            ]
            given += list(self.model_extra or {})
            if self.model_name or self.model_kwargs or given:
                raise ValueError(
                    "BatchChatModel takes either a chat model to wrap or model=... with its "
                    f"parameters, not both (got {', '.join(given or ['model'])}); set parameters "
                    "on the wrapped model"
                )
            inner = self.chat_model
        else:
            if not self.model_name:
                raise ValueError(
                    "BatchChatModel needs model='provider:model' or a chat model to wrap"
                )
            provider, name = split_model_id(self.model_name, self.provider)
            params: dict[str, Any] = {
                key: getattr(self, key) for key in _STANDARD if getattr(self, key) is not None
            }
            if self.api_key is not None:
                params["api_key"] = self.api_key
            if self.model_kwargs:
                params["model_kwargs"] = self.model_kwargs
            params.update(self.model_extra or {})
            inner = build_inner_model(provider, model=name, **params)
        self._inner = inner
        self._codec = codec_for(inner)
        # ``llm.temperature`` reads what the wrapped model sends (its defaults included), as
        # ChatOpenAI's own attribute would: ragas reads it to restore it after a call.
        for name in _MIRRORED:
            target = _settable(type(inner)).get(name)
            if target is not None:
                self.__dict__[name] = getattr(inner, target)
        self.provider = self._codec.provider_name
        self.model_name = str(
            getattr(inner, "model_name", None) or getattr(inner, "model", None) or self.model_name
        )
        return self

    # -- the wrapped model's settings, read and written through this one ---------------------

    if not TYPE_CHECKING:  # as pydantic's own: mypy keeps checking attribute names

        def __setattr__(self, name: str, value: Any) -> None:
            # Frameworks tune the model they are given by assignment (ragas sets
            # ``llm.temperature``); the wrapped model builds every request, so it must take the
            # new value, as ChatOpenAI would.
            inner, target = self._wrapped_field(name)
            mine = name in self.__dict__ or name in (self.model_extra or {})
            if target is not None:
                setattr(inner, target, value)
            elif inner is not None and not mine:
                # ChatAnthropic has no ``n``: setting it raises there, so it does here too.
                raise ValueError(
                    f'"{type(self).__name__}" object has no field "{name}", nor has the '
                    f"wrapped {type(inner).__name__}"
                )
            if mine or target is None:
                super().__setattr__(name, value)

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                inner, target = self._wrapped_field(name)
                if target is None:
                    raise
                return getattr(inner, target)

    def _wrapped_field(self, name: str) -> tuple[BaseChatModel | None, str | None]:
        """The wrapped model and its field that ``name`` stands for (by name or alias:
        ``stop`` is ChatAnthropic's ``stop_sequences``); no model where ``name`` is this
        model's own business or nothing is wrapped yet, no field where it has none."""
        if name.startswith("_") or name in _OWN:
            return None, None
        private = self.__pydantic_private__
        if not private or "_inner" not in private:
            return None, None
        inner: BaseChatModel = private["_inner"]
        return inner, _settable(type(inner)).get(name)

    def __copy__(self) -> Self:
        # A copy tuned by assignment must not retune the original: it gets its own wrapped model.
        copied = super().__copy__()
        inner = self._inner.model_copy()
        if self.chat_model is self._inner:
            copied.__dict__["chat_model"] = inner
        copied._inner = inner
        copied._codec = codec_for(inner)
        return copied

    # -- token counts: the wrapped model's tokenizer, not LangChain's GPT-2 fallback -----------
    # (map_reduce summarize chains size their splits with these; unless this model was given
    # its own ``custom_get_token_ids``, which then counts as it would on any chat model)

    def get_token_ids(self, text: str) -> list[int]:
        if self.custom_get_token_ids is not None:
            return super().get_token_ids(text)
        return self._inner.get_token_ids(text)

    def get_num_tokens(self, text: str) -> int:
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens(text)
        return self._inner.get_num_tokens(text)

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None, **kwargs: Any
    ) -> int:
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens_from_messages(messages, tools)
        return self._inner.get_num_tokens_from_messages(messages, tools, **kwargs)

    # -- what LangChain asks of a chat model --------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "batch-llm-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"batch_provider": self.provider, **self._inner._identifying_params}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return self._inner._get_ls_params(stop=stop, **kwargs)

    @property
    def wrapped(self) -> BaseChatModel:
        """The provider's own chat model that builds requests and reads answers."""
        return self._inner

    @property
    def codec(self) -> ChatCodec:
        """How requests are built and answers read for this model's provider."""
        # Read straight from pydantic's private store: ``self._codec`` goes through
        # ``__getattr__`` (2 µs), once for every answer a fan-out reads.
        codec: ChatCodec = self.__pydantic_private__["_codec"]  # type: ignore[index]
        return codec

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler requests go through."""
        return self.scheduler_ or batch_llm.get_scheduler()

    # -- one call -----------------------------------------------------------------------------

    def _prefetch(
        self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any
    ) -> Prefetched:
        """The input's answer: fetched by a fan-out already, or submitted now (windowed)."""
        pre = prefetched.get()
        if pre is not None:
            return pre
        codec = self.codec
        request = codec.request(messages, stop, **kwargs)
        future = self.scheduler.submit(
            codec.adapter, request.endpoint, request.body, metadata=self.batch_metadata
        )
        return Prefetched(request=request, future=future)

    def _read(self, pre: Prefetched, body: Any) -> ChatResult:
        request = pre.request
        assert request is not None and pre.future is not None
        result = self.codec.result(body, request)
        for generation in result.generations:
            generation.message.response_metadata["batch_id"] = pre.future.batch_id
        return result

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if prefetched.get() is None:
            _say_if_pool_wave()
        pre = self._prefetch(messages, stop, **kwargs)
        if pre.error is not None:
            raise pre.error
        assert pre.future is not None
        try:
            body = pre.future.result()
        except Exception as exc:
            raise self.codec.error(exc) from None
        return self._read(pre, body)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        pre = self._prefetch(messages, stop, **kwargs)
        if pre.error is not None:
            raise pre.error
        assert pre.future is not None
        try:
            body = await pre.future
        except Exception as exc:
            raise self.codec.error(exc) from None
        return self._read(pre, body)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # Batch APIs do not stream: the whole answer is one chunk.
        yield _as_chunk(self._generate(messages, stop, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        yield _as_chunk(await self._agenerate(messages, stop, **kwargs))

    # -- fan-outs: every input submitted before any is waited on ------------------------------

    def generate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        if len(messages) == 1:  # a single call (what invoke makes): it waits for the window
            _say_if_pool_wave()
        fan_out = self._generate_fan_out(
            messages, stop, callbacks, tags, metadata, run_name, run_id, kwargs
        )
        return _llm_result(self, fan_out, fan_out.finish_as_answered())

    async def agenerate(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None = None,
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: Any = None,
        **kwargs: Any,
    ) -> LLMResult:
        fan_out = self._generate_fan_out(
            messages, stop, callbacks, tags, metadata, run_name, run_id, kwargs, share_round=True
        )
        return _llm_result(self, fan_out, await fan_out.afinish_as_answered())

    def _generate_fan_out(
        self,
        messages: list[list[BaseMessage]],
        stop: list[str] | None,
        callbacks: Callbacks,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        run_name: str | None,
        run_id: Any,
        kwargs: dict[str, Any],
        share_round: bool = False,
    ) -> FanOut:
        config: RunnableConfig = {
            "callbacks": callbacks,
            "tags": tags or [],
            "metadata": metadata or {},
            "run_name": run_name,  # type: ignore[typeddict-item]
        }
        if run_id is not None:
            config["run_id"] = run_id
        # A single call waits for company (the window); a list is a fan-out: submit it now.
        return FanOut(
            self,
            messages,
            [config] * len(messages),
            stop=stop,
            flush=len(messages) > 1,
            as_messages=True,
            share_round=share_round,
            **kwargs,
        )

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        fan_out = self._batch_fan_out(inputs, config, kwargs)
        return _raise_first(fan_out.finish_as_answered(message_of), return_exceptions)

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        if not inputs:
            return []
        fan_out = await off_loop(
            lambda: self._batch_fan_out(inputs, config, kwargs, share_round=True), len(inputs)
        )
        return _raise_first(await fan_out.afinish_as_answered(message_of), return_exceptions)

    def batch_as_completed(  # type: ignore[override]
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> Iterator[tuple[int, AIMessage | Exception]]:
        if not inputs:
            return
        fan_out = self._batch_fan_out(list(inputs), config, kwargs)
        done: queue.SimpleQueue[int] = queue.SimpleQueue()
        _when_answered(fan_out, done.put)
        for _ in range(len(inputs)):
            index = done.get()
            yield index, _one(fan_out, index, return_exceptions)

    async def abatch_as_completed(  # type: ignore[override]
        self,
        inputs: Sequence[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[tuple[int, AIMessage | Exception]]:
        if not inputs:
            return
        fan_out = await off_loop(
            lambda: self._batch_fan_out(list(inputs), config, kwargs), len(inputs)
        )
        loop = asyncio.get_running_loop()
        done: asyncio.Queue[int] = asyncio.Queue()
        _when_answered(fan_out, lambda i: loop.call_soon_threadsafe(done.put_nowait, i))
        for _ in range(len(inputs)):
            index = await done.get()
            yield index, _one(fan_out, index, return_exceptions)

    def _batch_fan_out(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | Sequence[RunnableConfig] | None,
        kwargs: dict[str, Any],
        *,
        share_round: bool = False,
    ) -> FanOut:
        configs = _configs(config, len(inputs))
        kwargs = dict(kwargs)
        stop = kwargs.pop("stop", None)
        return FanOut(
            self, inputs, configs, stop=stop, flush=True, share_round=share_round, **kwargs
        )

    # -- configurable: a configured batch is still one batch -----------------------------------

    def configurable_fields(self, **kwargs: AnyConfigurableField) -> RunnableSerializable[Any, Any]:
        """LangChain's ``configurable_fields``; a ``batch`` configured per input is one batch
        per distinct configuration, sent together (not a thread pool of single calls)."""
        plain = super().configurable_fields(**kwargs)  # LangChain's checks of the field names
        return BatchConfigurableFields(default=self, fields=plain.fields)  # type: ignore[attr-defined]

    def configurable_alternatives(
        self,
        which: ConfigurableField,
        *,
        default_key: str = "default",
        prefix_keys: bool = False,
        **kwargs: Runnable[Any, Any] | Callable[[], Runnable[Any, Any]],
    ) -> RunnableSerializable[Any, Any]:
        """LangChain's ``configurable_alternatives``; a ``batch`` configured per input is one
        batch per chosen batch model, sent together (not a thread pool of single calls)."""
        return BatchConfigurableAlternatives(
            which=which,
            default=self,
            alternatives=kwargs,
            default_key=default_key,
            prefix_keys=prefix_keys,
        )

    # -- tools and structured output: the wrapped model's own, bound to this one --------------

    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools exactly as the wrapped model formats them."""
        bound = self._inner.bind_tools(tools, tool_choice=tool_choice, **kwargs)  # type: ignore[arg-type]
        return self.bind(**getattr(bound, "kwargs", {}))

    def with_structured_output(
        self,
        schema: Any,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """The wrapped model's structured output (every ``method`` it has), batched."""
        runnable = self._inner.with_structured_output(schema, include_raw=include_raw, **kwargs)
        rebound: Runnable[LanguageModelInput, Any] = rebind(runnable, self._inner, self)
        return rebound


@functools.cache
def _settable(cls: type[BaseModel]) -> dict[str, str]:
    """Every name that sets a field of ``cls`` (its own, then its aliases) -> the field."""
    names = {
        alias: name
        for name, info in cls.model_fields.items()
        for alias in (info.validation_alias, info.alias)
        if isinstance(alias, str)
    }
    names.update((name, name) for name in cls.model_fields)
    return names


def _configs(
    config: RunnableConfig | Sequence[RunnableConfig] | None, size: int
) -> list[RunnableConfig]:
    """One config per input, as ``get_config_list`` gives them, but one shared dict when a
    single config stands for every input: nothing here mutates it, and ``ensure_config`` per
    input was a tenth of a large fan-out's own cost."""
    if config is not None and not isinstance(config, dict):
        return get_config_list(config, size)
    if config is not None and config.get("run_id") is not None and size > 1:
        return get_config_list(config, size)  # it warns, and gives the id to the first only
    return [ensure_config(config)] * size


def _say_if_pool_wave() -> None:
    """A sync single call about to wait for the window: if a thread pool is feeding this
    model one pool's worth of calls at a time, say so once, with the way out (``_waves``)."""
    if current_holder(False)[0] is not None:
        return  # a round or a block holds it: it goes with the others
    wave = pool_wave()
    if wave is None:
        return
    message = (
        f"batch-llm: about {wave.calls} calls are reaching BatchChatModel {wave.threads} at a "
        f"time, from a thread pool (LangChain's Runnable.batch, a configurable model's batch, "
        f"RunnableParallel or LangGraph's sync runner): they will go as about {wave.waves} "
        f"batches of {wave.threads}, one after another, each waiting a batch turnaround. Run "
        "the fan-out with langchain_batch_llm.batch(runnable, inputs), or await "
        "runnable.abatch(inputs), to send each round of calls as one batch."
    )
    logger.warning("%s", message)
    warnings.warn(message, BatchLLMWarning, stacklevel=2)


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    generation = result.generations[0]
    message = generation.message
    assert isinstance(message, AIMessage)
    tool_call_chunks = [
        {"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": i}
        for i, call in enumerate(message.tool_calls)
    ]
    chunk = AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        # What _generate_with_cache would merge in for a non-streamed call (model name, ids).
        response_metadata={**(result.llm_output or {}), **message.response_metadata},
        usage_metadata=message.usage_metadata,
        id=message.id,
        tool_call_chunks=tool_call_chunks,  # type: ignore[arg-type]
        chunk_position="last",
    )
    return ChatGenerationChunk(message=chunk, generation_info=generation.generation_info)


def _raise_first(messages: list[Any], return_exceptions: bool) -> list[Any]:
    """Each input's message, or (``return_exceptions``) its error in its place; else the first
    error raises, as ``Runnable.batch`` raises it."""
    if not return_exceptions:
        for message in messages:
            if isinstance(message, BaseException):
                raise message
    return messages


def _llm_result(
    model: BatchChatModel, fan_out: FanOut, outcomes: list[ChatResult | BaseException]
) -> LLMResult:
    """What ``BaseChatModel.generate`` returns; like it, the first failure raises."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    results: list[ChatResult] = outcomes  # type: ignore[assignment]
    output = LLMResult(
        generations=[list(r.generations) for r in results],
        llm_output=model._combine_llm_outputs([r.llm_output for r in results]),
    )
    output.run = [RunInfo(run_id=run_id) for run_id in fan_out.run_ids if run_id is not None]
    return output


def _when_answered(fan_out: FanOut, on_done: Callable[[int], Any]) -> None:
    """Call ``on_done(index)`` as each input's answer arrives (at once for inputs without one)."""
    for index, item in enumerate(fan_out.items):
        future = item.pre.future
        if future is None:
            on_done(index)
        else:
            future.add_done_callback(functools.partial(_answered, on_done, index))


def _answered(on_done: Callable[[int], Any], index: int, _future: Any) -> None:
    on_done(index)


def _one(fan_out: FanOut, index: int, return_exceptions: bool) -> Any:
    """Finish one input of an as-completed fan-out."""
    (outcome,) = fan_out.finish([index])
    if isinstance(outcome, BaseException):
        if not return_exceptions:
            raise outcome
        return outcome
    return outcome.generations[0].message
