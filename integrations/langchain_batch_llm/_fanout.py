"""The fan-out engine: many LangChain chat calls, one provider batch.

``BaseChatModel.generate`` runs its prompts one after another, and ``Runnable.batch`` sends each
input through ``invoke`` on a thread pool. For a Batch API both are wrong: every input must be
submitted before any is waited on, or a fan-out becomes thousands of one-line batches. So a
fan-out here runs in three phases:

1. **prepare** (caller's thread): messages, callback runs (one ``on_chat_model_start`` per group
   of inputs sharing a config, which still gives each input its own run), cache lookups, and the
   wrapped model's request for every input that needs one;
2. **submit**: the whole list goes to the scheduler at once;
3. **finish, as each answer arrives**: the input goes through
   ``BaseChatModel._generate_with_cache`` itself, exactly as a realtime call would (cache
   writes, rate limiter, response metadata, message ids, streaming callbacks), except that
   ``_generate`` finds its answer already fetched; its run ends, and the fan-out keeps only what
   its caller returns (``keep``: the message, for ``batch``), as a realtime call drops its
   wrappers when it returns. Finishing overlaps the download of the rest, and no input's
   answer body, callback run or ``ChatResult`` outlives its own finish.

Phases 1 and 3 mirror what ``BaseChatModel.generate`` does per call; the private helpers it uses
are imported from ``langchain_core`` rather than copied. The engine sees its model through
``FanOutModel``, what it uses of it, so that it does not import the model that imports it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
    Callbacks,
)
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models._utils import _normalize_messages
from langchain_core.language_models.base import LangSmithParams
from langchain_core.language_models.chat_models import (  # type: ignore[attr-defined]
    _filter_invocation_params_for_tracing,
    _format_for_tracing,
    _format_ls_structured_output,
    _gen_info_and_msg_metadata,
    _generate_response_from_error,
    _update_message_content_to_blocks,
)
from langchain_core.load import dumps
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult, LLMResult
from langchain_core.prompt_values import PromptValue
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils.utils import LC_ID_PREFIX

from batch_llm import BatchRequest, RequestFuture, Scheduler, gather
from batch_llm._config import ProgressOption
from batch_llm._futures import before_blocking
from batch_llm._gc import gc_paused
from batch_llm._progress import display_for

from ._codec import ChatCodec

__all__ = ["FanOut", "FanOutModel", "Prefetched", "message_of", "off_loop", "prefetched"]

T = TypeVar("T")


class FanOutModel(Protocol):
    """What a fan-out uses of its model (``BatchChatModel`` is one): a LangChain chat model's
    own machinery, as ``BaseChatModel`` has it, and where its requests go."""

    callbacks: Callbacks
    verbose: bool
    tags: list[str] | None
    metadata: dict[str, Any] | None
    cache: BaseCache | bool | None
    rate_limiter: BaseRateLimiter | None
    output_version: str | None

    @property
    def codec(self) -> ChatCodec: ...

    @property
    def scheduler(self) -> Scheduler: ...

    @property
    def batch_metadata(self) -> dict[str, str] | None: ...

    @property
    def _serialized(self) -> dict[str, Any]: ...

    def _convert_input(self, model_input: LanguageModelInput) -> PromptValue: ...

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]: ...

    def _get_ls_params_with_defaults(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> LangSmithParams: ...

    def _get_llm_string(self, stop: list[str] | None = None, **kwargs: Any) -> str: ...

    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool: ...

    def _should_use_protocol_streaming(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool: ...

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult: ...

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult: ...


@dataclass(slots=True)
class Prefetched:
    """An input's answer, submitted ahead of ``_generate``: its future, or why it has none."""

    request: BatchRequest | None = None
    future: RequestFuture | None = None
    error: BaseException | None = None


#: Set around each input's ``_generate_with_cache`` so that ``_generate`` (or ``_stream``)
#: uses the answer already fetched instead of submitting again.
prefetched: contextvars.ContextVar[Prefetched | None] = contextvars.ContextVar(
    "batch_llm_prefetched", default=None
)


@dataclass(slots=True)
class _Group:
    """Inputs sharing a config: one callback manager, one ``on_chat_model_start``."""

    manager: CallbackManager
    config: RunnableConfig
    indexes: list[int]
    params: dict[str, Any]


@dataclass(slots=True)
class _Input:
    messages: list[BaseMessage] | None = None
    run: CallbackManagerForLLMRun | None = None
    run_id: Any = None
    pre: Prefetched = field(default_factory=Prefetched)
    cached: bool = False
    plain: bool = False
    # Why the input failed, once it has: its answer is handed to the caller, not kept here.
    outcome: BaseException | None = None


def _group_key(config: RunnableConfig) -> Any:
    """Inputs whose configs agree on these can share one ``on_chat_model_start`` call."""
    metadata = config.get("metadata") or {}
    return (
        id(config.get("callbacks")),
        tuple(config.get("tags") or ()),
        repr(sorted(metadata.items())),
        config.get("run_name"),
    )


#: Where a request's body was, once it is encoded and queued: only its context is read again.
#: One for all requests, read-only, so a stray write fails instead of reaching every request.
_SENT = cast(dict[str, Any], MappingProxyType({}))


class FanOut:
    """One fan-out through ``model``: prepared and submitted when made; then
    ``finish_as_answered`` (or ``afinish_as_answered``) finishes each input as its answer
    arrives, or ``finish`` finishes chosen inputs whose answers are in."""

    def __init__(
        self,
        model: FanOutModel,
        inputs: Sequence[Any],
        configs: Sequence[RunnableConfig],
        /,
        *,
        stop: list[str] | None,
        flush: bool,
        as_messages: bool = False,
        share_round: bool = False,
        **kwargs: Any,
    ) -> None:
        self.model = model
        self.stop = stop
        self.flush = flush
        # Awaited on the caller's loop: fan-outs started together there may share a batch.
        self.share_round = share_round
        ls_format = kwargs.pop("ls_structured_output_format", None) or kwargs.pop(
            "structured_output_format", None
        )
        self.kwargs = kwargs
        # Set (from the caller's side) when it stops waiting: the finisher then stops too.
        self._stopped = False
        with gc_paused():
            # Made inside the pause: ten thousand of them would trigger a full collection
            # that walks every object LangChain and the SDKs loaded.
            self.items = [_Input() for _ in inputs]
            self._convert(inputs, as_messages)
            groups = self._group(configs)
            self._submit(groups)
            # The callback runs start once the batch is on its way: creating ten thousand of
            # them then overlaps the provider's work instead of delaying the upload.
            self._start_runs(groups, _format_ls_structured_output(ls_format))

    # -- prepare ------------------------------------------------------------------------------

    def _convert(self, inputs: Sequence[Any], as_messages: bool) -> None:
        model = self.model
        for item, value in zip(self.items, inputs, strict=True):
            try:
                messages = value if as_messages else model._convert_input(value).to_messages()
            except Exception as exc:  # a bad input fails alone, as its own invoke would
                item.outcome = exc
                continue
            item.messages = messages

    def _group(self, configs: Sequence[RunnableConfig]) -> list[_Group]:
        """Inputs whose configs agree share one callback manager (each still gets its own run)."""
        model, stop, kwargs = self.model, self.stop, self.kwargs
        params = model._get_invocation_params(stop=stop, **kwargs)
        ls_params = model._get_ls_params_with_defaults(stop=stop, **kwargs)
        tracing = _filter_invocation_params_for_tracing(params)
        by_key: dict[Any, list[int]] = {}
        keys: dict[int, Any] = {}  # by config identity: a fan-out's inputs usually share one
        for index, item in enumerate(self.items):
            if item.messages is None:
                continue
            config = configs[index]
            if config.get("run_id"):
                key: Any = ("run", index)
            else:
                key = keys.get(id(config))
                if key is None:
                    key = keys[id(config)] = _group_key(config)
            by_key.setdefault(key, []).append(index)
        groups = []
        for indexes in by_key.values():
            config = ensure_config(configs[indexes[0]])
            manager = CallbackManager.configure(
                config.get("callbacks"),
                model.callbacks,
                model.verbose,
                config.get("tags"),
                model.tags,
                {**(config.get("metadata") or {}), **ls_params},
                model.metadata,
                langsmith_inheritable_metadata=tracing,
            )
            groups.append(_Group(manager, config, indexes, params))
        return groups

    def _start_runs(self, groups: list[_Group], ls_format: dict[str, Any]) -> None:
        model, stop = self.model, self.stop
        options = {"stop": stop, **ls_format}
        for group in groups:
            indexes = group.indexes
            # In slices, with the GIL given up between them: the scheduler's threads are
            # writing the journal and uploading the batch meanwhile, and each of their many
            # calls into C would otherwise wait a switch interval for it. A slice's events
            # are the ones one call for the whole group makes, input by input.
            for at in range(0, len(indexes), _RUN_SLICE):
                if at:
                    time.sleep(0)
                chosen = indexes[at : at + _RUN_SLICE]
                runs = group.manager.on_chat_model_start(
                    model._serialized,
                    [_format_for_tracing(self.items[i].messages or []) for i in chosen],
                    invocation_params=group.params,
                    options=options,
                    name=group.config.get("run_name"),
                    run_id=group.config.get("run_id"),
                    batch_size=len(indexes),
                )
                for i, run in zip(chosen, runs, strict=True):
                    item = self.items[i]
                    item.run = run
                    item.run_id = run.run_id
                    if item.plain:  # on the plain path nothing reads the messages again
                        item.messages = None

    def _submit(self, groups: list[_Group]) -> None:
        model, stop, kwargs = self.model, self.stop, self.kwargs
        manager_of = {i: group.manager for group in groups for i in group.indexes}
        codec = model.codec
        cache = _llm_cache(model)
        llm_string = model._get_llm_string(stop=stop, **kwargs) if cache is not None else ""
        plain = cache is None and model.rate_limiter is None
        # Whether a run streams depends on its handlers, which a group's runs share.
        streams: dict[int, bool] = {}
        by_endpoint: dict[str, list[_Input]] = {}
        for index, item in enumerate(self.items):
            if item.messages is None:
                continue
            item.messages = _normalize_messages(item.messages)
            if cache is not None and _cache_hit(cache, item.messages, llm_string):
                item.cached = True  # _generate_with_cache answers it; nothing to pay for
                continue
            try:
                item.pre.request = codec.request(item.messages, stop, **kwargs)
            except Exception as exc:  # raised where the realtime call would raise it
                item.pre.error = exc
                continue
            by_endpoint.setdefault(item.pre.request.endpoint, []).append(item)
            if plain:
                # The group's manager has the handlers its runs will have.
                manager = manager_of[index]
                quiet = streams.get(id(manager))
                if quiet is None:
                    quiet = streams[id(manager)] = _no_streaming(model, manager, kwargs)
                item.plain = quiet
        scheduler = model.scheduler
        for endpoint, items in by_endpoint.items():
            futures = scheduler.submit_many(
                codec.adapter,
                endpoint,
                _bodies(items),
                flush=self.flush,
                return_exceptions=True,
                metadata=model.batch_metadata,
                share_round=self.share_round,
            )
            for item, future in zip(items, futures, strict=True):
                item.pre.future = future

    @property
    def futures(self) -> list[RequestFuture]:
        """The futures of the inputs not finished yet."""
        return [item.pre.future for item in self.items if item.pre.future is not None]

    # -- finish -------------------------------------------------------------------------------

    def finish_as_answered(
        self,
        keep: Callable[[ChatResult], Any] = lambda result: result,
        *,
        progress: ProgressOption = None,
    ) -> list[Any]:
        """Wait in this thread, finishing each input as its answer arrives; return, per input,
        ``keep`` of its ``ChatResult`` (what the caller returns of it) or its error.

        The wait is ``batch_llm.wait``'s: it tells whoever holds the requests that a thread
        blocks on them, and shows the fan-out's progress display if it has one (``progress``
        as for ``wait``; False where the caller shows one for several fan-outs)."""
        futures = self.futures
        if not futures:
            return self._finish_all(keep)
        display = display_for(futures, progress)
        try:
            before_blocking(futures)
            del futures  # the display's list aside, each input's body goes once it is finished
            return self._finish_as_answered(keep)
        finally:
            if display is not None:
                display.close()

    async def afinish_as_answered(
        self,
        keep: Callable[[ChatResult], Any] = lambda result: result,
        *,
        progress: ProgressOption = None,
    ) -> list[Any]:
        """``finish_as_answered`` for the caller's event loop: a large fan-out is finished on
        a worker thread as its answers arrive, a small one on the loop once they are all in.
        Cancelling the awaiting task cancels the requests not yet submitted (as
        ``batch_llm.gather`` does) and stops finishing."""
        futures = self.futures
        if len(self.items) < _OFF_LOOP or not futures:
            if futures:
                await gather(futures, return_exceptions=True, progress=progress)
            del futures
            return self._finish_all(keep)
        display = display_for(futures, progress)
        del futures
        try:
            return await asyncio.to_thread(self._finish_as_answered, keep)
        except asyncio.CancelledError:
            self._stopped = True
            for future in self.futures:
                future.cancel()
            raise
        finally:
            if display is not None:
                display.close()

    def _finish_all(self, keep: Callable[[ChatResult], Any]) -> list[Any]:
        """Finish every input, in order: their answers are all in."""
        with gc_paused():
            return [self._kept(item, keep) for item in self.items]

    def _finish_as_answered(self, keep: Callable[[ChatResult], Any]) -> list[Any]:
        """Finish every input as its answer arrives (inputs without one first), in this
        thread, each burst of work with collection paused."""
        items = self.items
        outcomes: list[Any] = [None] * len(items)
        ready: queue.SimpleQueue[int] = queue.SimpleQueue()
        put = ready.put
        with gc_paused():
            for index, item in enumerate(items):
                future = item.pre.future
                if future is None:
                    put(index)
                else:
                    future.add_done_callback(functools.partial(_put_index, put, index))
        left = len(items)
        while left and not self._stopped:
            index = ready.get()  # blocks between bursts, with the collector running
            with gc_paused():
                while True:
                    outcomes[index] = self._kept(items[index], keep)
                    left -= 1
                    if not left or self._stopped:
                        break
                    try:
                        index = ready.get_nowait()
                    except queue.Empty:
                        break
        return outcomes

    def _kept(self, item: _Input, keep: Callable[[ChatResult], Any]) -> Any:
        outcome = self._finish_one(item)
        return outcome if isinstance(outcome, BaseException) else keep(outcome)

    def finish(self, indexes: Iterable[int]) -> list[ChatResult | BaseException]:
        """Finish the inputs at ``indexes``, whose answers are in, and return their outcomes
        (``batch_as_completed``; whole fan-outs finish as answered)."""
        with gc_paused():
            return [self._finish_one(self.items[i]) for i in indexes]

    def _finish_one(self, item: _Input) -> ChatResult | BaseException:
        """Run one input through ``_generate_with_cache``, end its callback run, and return its
        outcome; the input keeps nothing of it."""
        if item.outcome is not None:
            return item.outcome  # failed before it had a request
        model, stop, kwargs = self.model, self.stop, self.kwargs
        run = item.run
        item.run = None  # ended here: its handlers and metadata copies can go
        token = prefetched.set(None if item.cached else item.pre)
        try:
            if item.plain:
                result = _generate_plain(model, item.messages, run, stop, kwargs)
            else:
                result = model._generate_with_cache(
                    item.messages or [], stop=stop, run_manager=run, **kwargs
                )
        except Exception as exc:
            if run is not None:
                run.on_llm_error(
                    exc,
                    response=LLMResult(generations=[list(_generate_response_from_error(exc))]),
                )
            item.outcome = exc
            return exc
        finally:
            prefetched.reset(token)
            item.pre = _DONE
            item.messages = None
        # With no handler at all nobody can observe the end event: skip building it.
        if run is not None and (run.handlers or run.inheritable_handlers):
            run.on_llm_end(
                LLMResult(generations=[list(result.generations)], llm_output=result.llm_output)
            )
        return result

    @property
    def run_ids(self) -> list[Any]:
        """Each input's callback run id (None where the input failed before it started)."""
        return [item.run_id for item in self.items]


_DONE = Prefetched()
#: Fan-outs this big are prepared and finished off the caller's event loop.
_OFF_LOOP = 64
#: Callback runs started per call of ``on_chat_model_start``.
_RUN_SLICE = 256


def _bodies(items: list[_Input]) -> Iterator[dict[str, Any]]:
    """Each request's body, let go as the scheduler takes it: once encoded and queued, only
    its context is read again."""
    for item in items:
        request = item.pre.request
        assert request is not None
        body, request.body = request.body, _SENT
        yield body


def _put_index(put: Callable[[int], None], index: int, _future: RequestFuture) -> None:
    put(index)


def _no_streaming(model: FanOutModel, run: Any, kwargs: dict[str, Any]) -> bool:
    """True when ``_generate_with_cache`` would take neither streaming branch for this run, so
    that (with no cache and no rate limiter) it would only call ``_generate`` and decorate."""
    return not model._should_use_protocol_streaming(
        async_api=False, run_manager=run, **kwargs
    ) and not model._should_stream(async_api=False, run_manager=run, **kwargs)


def _generate_plain(
    model: FanOutModel,
    messages: list[BaseMessage] | None,
    run: CallbackManagerForLLMRun | None,
    stop: list[str] | None,
    kwargs: dict[str, Any],
) -> ChatResult:
    """``_generate_with_cache`` on its plain path, step for step, minus its per-call
    ``inspect.signature`` of ``_generate`` (a third of the cost of finishing a fan-out)."""
    result = model._generate(messages or [], stop=stop, run_manager=run, **kwargs)
    if model.output_version == "v1":
        for generation in result.generations:
            generation.message = _update_message_content_to_blocks(generation.message, "v1")
    generations = result.generations
    # The one answer with its llm_output (the usual case) gets both merges at once: the same
    # dict, without the first merge's copy.
    merged = result.llm_output if len(generations) == 1 else None
    for idx, generation in enumerate(generations):
        message = generation.message
        if run is not None and message.id is None:
            message.id = f"{LC_ID_PREFIX}-{run.run_id}-{idx}"
        metadata = _gen_info_and_msg_metadata(generation)
        message.response_metadata = metadata if merged is None else {**merged, **metadata}
    return result


def _llm_cache(model: FanOutModel) -> Any:
    if model.cache is False:
        return None
    cache = model.cache if model.cache not in (None, True) else get_llm_cache()
    return cache if cache is not None and hasattr(cache, "lookup") else None


def _cache_hit(cache: Any, messages: list[BaseMessage], llm_string: str) -> bool:
    """The lookup ``_generate_with_cache`` will make (message ids do not count)."""
    normalized = [
        m.model_copy(update={"id": None}) if getattr(m, "id", None) is not None else m
        for m in messages
    ]
    return isinstance(cache.lookup(dumps(normalized), llm_string), list)


async def off_loop(fn: Callable[[], T], size: int) -> T:
    """Run CPU-bound fan-out work off the caller's event loop once it is big enough to stall it."""
    if size < _OFF_LOOP:
        return fn()
    return await asyncio.to_thread(fn)


def message_of(result: ChatResult) -> BaseMessage:
    """What ``invoke`` returns of a call's ``ChatResult``: its message."""
    return result.generations[0].message
