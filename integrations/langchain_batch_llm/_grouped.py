"""Fan-outs whose inputs each pick their model by config, still one batch per model.

``configurable_fields``, ``configurable_alternatives`` and ``ModelSlot`` choose a runnable per
input from its config. LangChain's own dynamic runnables then run ``invoke`` per input through
a thread pool (a window's worth of calls at a time, so many sequential batches). Here the
inputs are grouped by the runnable they resolve to, every group that ends in a
``BatchChatModel`` (bare, or bound with ``bind``/``bind_tools``) is submitted inside one
``together()`` block, so each queue is cut once, and all of them are waited on as one. Groups
on any other runnable (a realtime model chosen by config) go through that runnable's own
``batch``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol, cast

from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, get_config_list

from batch_llm._progress import ProgressDisplay, display_for
from batch_llm._rounds import together

from ._fanout import FanOut, message_of, off_loop

__all__ = ["Dispatch", "FanOutModel", "GroupedBatch", "abatch_grouped", "batch_grouped"]


class FanOutModel(Protocol):
    """What grouping needs of a batch model (``BatchChatModel``): a fan-out of its own."""

    def _batch_fan_out(
        self,
        inputs: list[Any],
        config: RunnableConfig | Sequence[RunnableConfig] | None,
        kwargs: dict[str, Any],
    ) -> FanOut: ...


class Dispatch(Protocol):
    """How inputs pick their runnable: ``resolve`` one (the expensive part, done once per
    group), ``key`` says which configs resolve alike, ``configure`` gives the config an input
    runs with, and ``model_type`` is the batch model's class."""

    model_type: type[Any]

    def resolve(self, config: RunnableConfig) -> Runnable[Any, Any]: ...

    def key(self, config: RunnableConfig) -> Hashable: ...

    def configure(self, config: RunnableConfig) -> RunnableConfig: ...


class _Group:
    __slots__ = ("configs", "indexes", "runnable")

    def __init__(self, runnable: Runnable[Any, Any]) -> None:
        self.runnable = runnable
        self.indexes: list[int] = []
        self.configs: list[RunnableConfig] = []


def _groups(configs: Sequence[RunnableConfig], dispatch: Dispatch) -> list[_Group]:
    by_key: dict[Hashable, _Group] = {}
    by_runnable: dict[int, _Group] = {}
    for index, config in enumerate(configs):
        configured = dispatch.configure(config)
        k = dispatch.key(configured)
        group = by_key.get(k)
        if group is None:
            runnable = dispatch.resolve(configured)
            # Keys that resolve to the very same runnable share its group.
            group = by_runnable.get(id(runnable))
            if group is None:
                group = by_runnable[id(runnable)] = _Group(runnable)
            by_key[k] = group
        group.indexes.append(index)
        group.configs.append(configured)
    return list(by_runnable.values())


def _batch_model(
    runnable: Runnable[Any, Any], model_type: type[Any]
) -> tuple[FanOutModel, dict[str, Any], Callable[[RunnableConfig], RunnableConfig]] | None:
    """The batch model a runnable is (or binds), with the binding's kwargs and config."""
    if isinstance(runnable, model_type):
        return cast(FanOutModel, runnable), {}, lambda config: config
    if isinstance(runnable, RunnableBinding) and isinstance(runnable.bound, model_type):
        binding = runnable
        return (
            cast(FanOutModel, binding.bound),
            dict(binding.kwargs),
            lambda config: binding._merge_configs(config),
        )
    return None


def _submit(
    groups: list[_Group], inputs: Sequence[Any], kwargs: dict[str, Any], model_type: type[Any]
) -> tuple[list[tuple[_Group, FanOut]], list[_Group]]:
    """Every batch group's fan-out, submitted together; the other groups, to run on their own."""
    fan_outs: list[tuple[_Group, FanOut]] = []
    others: list[_Group] = []
    with together():
        for group in groups:
            target = _batch_model(group.runnable, model_type)
            if target is None:
                others.append(group)
                continue
            model, bound, merge = target
            fan_outs.append(
                (
                    group,
                    model._batch_fan_out(
                        [inputs[i] for i in group.indexes],
                        [merge(c) for c in group.configs],
                        {**bound, **kwargs},
                    ),
                )
            )
    return fan_outs, others


def _outputs(
    size: int,
    results: list[tuple[_Group, list[Any]]],
    return_exceptions: bool,
) -> list[Any]:
    outputs: list[Any] = [None] * size
    for group, values in results:
        for index, value in zip(group.indexes, values, strict=True):
            outputs[index] = value
    if not return_exceptions:
        for value in outputs:
            if isinstance(value, BaseException):
                raise value
    return outputs


def _display(fan_outs: list[tuple[_Group, FanOut]]) -> ProgressDisplay | None:
    """One progress display for every fan-out, if one is drawn (the list is not kept
    otherwise: each input's answer goes once it is finished)."""
    return display_for([f for _, fan_out in fan_outs for f in fan_out.futures])


def batch_grouped(
    inputs: Sequence[Any],
    configs: Sequence[RunnableConfig],
    dispatch: Dispatch,
    *,
    return_exceptions: bool,
    kwargs: dict[str, Any],
) -> list[Any]:
    """``batch`` of inputs that pick their runnable by config (module docstring)."""
    groups = _groups(configs, dispatch)
    fan_outs, others = _submit(groups, inputs, kwargs, dispatch.model_type)
    results: list[tuple[_Group, list[Any]]] = []
    for group in others:
        values = group.runnable.batch(
            [inputs[i] for i in group.indexes], group.configs, return_exceptions=True, **kwargs
        )
        results.append((group, values))
    # Each fan-out's inputs are finished as their answers arrive; later fan-outs' answers
    # wait in their futures meanwhile. One display follows them all.
    display = _display(fan_outs)
    try:
        for group, fan_out in fan_outs:
            results.append((group, fan_out.finish_as_answered(message_of, progress=False)))
    finally:
        if display is not None:
            display.close()
    return _outputs(len(inputs), results, return_exceptions)


async def abatch_grouped(
    inputs: Sequence[Any],
    configs: Sequence[RunnableConfig],
    dispatch: Dispatch,
    *,
    return_exceptions: bool,
    kwargs: dict[str, Any],
) -> list[Any]:
    """``abatch`` of inputs that pick their runnable by config (module docstring)."""
    groups = _groups(configs, dispatch)
    fan_outs, others = await off_loop(
        lambda: _submit(groups, inputs, kwargs, dispatch.model_type), len(inputs)
    )
    results: list[tuple[_Group, list[Any]]] = []
    for group in others:
        values = await group.runnable.abatch(
            [inputs[i] for i in group.indexes], group.configs, return_exceptions=True, **kwargs
        )
        results.append((group, values))
    display = _display(fan_outs)
    try:
        for group, fan_out in fan_outs:
            outcomes = await fan_out.afinish_as_answered(message_of, progress=False)
            results.append((group, outcomes))
    finally:
        if display is not None:
            display.close()
    return _outputs(len(inputs), results, return_exceptions)


class GroupedBatch:
    """``batch``/``abatch`` that batch by model, for a runnable whose inputs pick their model
    by config: mix it in before the runnable's class and say how they pick (``_dispatch``)."""

    def _dispatch(self) -> Dispatch:
        raise NotImplementedError

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        return batch_grouped(
            inputs, configs, self._dispatch(), return_exceptions=return_exceptions, kwargs=kwargs
        )

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any | None,
    ) -> list[Any]:
        if not inputs:
            return []
        configs = get_config_list(config, len(inputs))
        return await abatch_grouped(
            inputs, configs, self._dispatch(), return_exceptions=return_exceptions, kwargs=kwargs
        )
