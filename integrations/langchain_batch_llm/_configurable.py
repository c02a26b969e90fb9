"""``BatchChatModel(...).configurable_fields(...)`` and ``.configurable_alternatives(...)``.

LangChain's dynamic runnables run a configured ``batch`` as one ``invoke`` per input through a
thread pool whenever the configured choice is not the default, which against a Batch API is a
pool's worth of requests per batch, one batch after another. These subclasses keep every
other behaviour of LangChain's and batch by model instead (``_grouped``): 200 inputs set to
``temperature=0.3`` by config are one batch whose every request carries 0.3.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable
from typing import Any, cast

from langchain_core.runnables import (
    ConfigurableField,
    ConfigurableFieldMultiOption,
    ConfigurableFieldSingleOption,
    Runnable,
    RunnableConfig,
)
from langchain_core.runnables.config import ensure_config, merge_configs
from langchain_core.runnables.configurable import (
    DynamicRunnable,
    RunnableConfigurableAlternatives,
    RunnableConfigurableFields,
)

from ._grouped import Dispatch, GroupedBatch

__all__ = ["BatchConfigurableAlternatives", "BatchConfigurableFields"]


class _ByConfig:
    """How the inputs of a dynamic runnable pick their runnable (``_grouped.Dispatch``)."""

    def __init__(self, dynamic: DynamicRunnable[Any, Any], model_type: type[Any]) -> None:
        self.dynamic = dynamic
        self.model_type = model_type
        self._ids = [spec.id for spec in dynamic.config_specs]

    def configure(self, config: RunnableConfig) -> RunnableConfig:
        return ensure_config(merge_configs(self.dynamic.config, config))

    def key(self, config: RunnableConfig) -> Hashable:
        # Configs that agree on every configurable this runnable reads resolve alike.
        configurable = config.get("configurable") or {}
        return tuple(repr(configurable.get(spec_id)) for spec_id in self._ids)

    def resolve(self, config: RunnableConfig) -> Runnable[Any, Any]:
        runnable, _ = self.dynamic.prepare(config)
        return runnable


class _GroupedBatch(GroupedBatch):
    """Grouped ``batch``/``abatch`` for LangChain's dynamic runnables of a batch model."""

    def _dispatch(self) -> Dispatch:
        dynamic = cast(DynamicRunnable[Any, Any], self)
        return _ByConfig(dynamic, _model_type(dynamic))


def _model_type(dynamic: DynamicRunnable[Any, Any]) -> type[Any]:
    # The default is the BatchChatModel these were made from (configurable_* is its method).
    return type(dynamic.default)


class BatchConfigurableFields(_GroupedBatch, RunnableConfigurableFields):  # type: ignore[type-arg]
    """``RunnableConfigurableFields`` of a ``BatchChatModel``: a configured ``batch`` is one
    batch per distinct configuration, sent together, instead of a pool of single calls."""

    def _prepare(
        self, config: RunnableConfig | None = None
    ) -> tuple[Runnable[Any, Any], RunnableConfig]:
        # LangChain builds a new model from the default's fields, which a BatchChatModel
        # wrapping a chat model refuses (it takes the wrapped model or parameters, not both):
        # assign the configured values to a copy instead, which reaches its wrapped model.
        config = ensure_config(config)
        values = _configured_values(self, config)
        if not values:
            return self.default, config
        clone = copy.copy(self.default)
        for name, value in values.items():
            setattr(clone, name, value)
        return clone, config

    def configurable_fields(self, **kwargs: Any) -> Any:
        return self.default.configurable_fields(**{**self.fields, **kwargs})


class BatchConfigurableAlternatives(_GroupedBatch, RunnableConfigurableAlternatives):  # type: ignore[type-arg]
    """``RunnableConfigurableAlternatives`` whose default is a ``BatchChatModel``: a configured
    ``batch`` is one batch per chosen batch model, sent together; a realtime alternative runs
    through its own ``batch``."""


def _configured_values(
    fields: RunnableConfigurableFields[Any, Any], config: RunnableConfig
) -> dict[str, Any]:
    """The field values ``config`` sets, as LangChain's own ``_prepare`` reads them."""
    configurable = config.get("configurable") or {}
    values: dict[str, Any] = {}
    for name, spec in fields.fields.items():
        if isinstance(spec, ConfigurableField):
            if spec.id in configurable:
                values[name] = configurable[spec.id]
        elif isinstance(spec, ConfigurableFieldSingleOption):
            values[name] = spec.options[configurable.get(spec.id) or spec.default]
        elif isinstance(spec, ConfigurableFieldMultiOption):
            values[name] = [spec.options[o] for o in configurable.get(spec.id, spec.default)]
    return values
