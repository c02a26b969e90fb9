"""``ModelSlot``: the place in a chain where config picks the chat model.

The one-line swap this library promises needs the chain to read its model from config::

    llm = ModelSlot(ChatOpenAI(model="gpt-4o-mini"))          # realtime by default
    chain = prompt | llm | StrOutputParser()

    chain.invoke(question)                                                   # realtime
    chain.with_config(llm=BatchChatModel(model="openai:gpt-4o-mini")).batch(questions)  # ONE batch

``with_config(llm=...)`` and ``with_config(configurable={"llm": ...})`` put the model in
``config["configurable"]["llm"]`` (LangChain moves unknown top-level keys there); the slot
runs whatever model it finds there, or the alternative named by a string, else its default.
Its ``batch``/``abatch`` group the inputs by the model each resolves to and hand each group to
that model as one fan-out, sent together: sync and async are one batch per model.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Hashable, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.runnables import (
    ConfigurableFieldSpec,
    Runnable,
    RunnableConfig,
    RunnableSerializable,
    ensure_config,
)
from langchain_core.runnables.utils import get_unique_config_specs
from pydantic import ConfigDict, Field, PrivateAttr

from ._chat import BatchChatModel
from ._grouped import GroupedBatch

__all__ = ["ModelSlot"]


class ModelSlot(GroupedBatch, RunnableSerializable[Any, Any]):
    """A chat model a chain takes from config: ``configurable[id]`` (``"llm"`` by default) may
    be a model object, or the name of one of ``alternatives``; without it, ``default`` runs.

    Args:
        default: the model that runs unless config picks another (any chat model, batch or
            realtime).
        id: the configurable key the slot reads.
        alternatives: models config may name by key (``configurable={"llm": "batch"}``).

    ``bind_tools`` and ``with_structured_output`` apply to whichever model runs, as they would
    to it directly. ``batch``/``abatch`` are one provider batch per batch model the inputs
    resolve to (module docstring).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    default: Runnable[Any, Any]
    id: str = "llm"
    alternatives: dict[str, Runnable[Any, Any]] = Field(default_factory=dict)
    operations: tuple[tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]], ...] = ()
    """Declarative calls (``bind_tools``, ``with_structured_output``) applied to the model that
    runs, in order."""

    _resolved: dict[int, tuple[Any, Runnable[Any, Any]]] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        default: Runnable[Any, Any],
        /,
        *,
        id: str = "llm",
        alternatives: Mapping[str, Runnable[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        fields: dict[str, Any] = {
            "default": default,
            "id": id,
            "alternatives": dict(alternatives or {}),
            **kwargs,
        }
        super().__init__(**fields)

    # -- what runs ------------------------------------------------------------------------------

    @property
    def config_specs(self) -> list[ConfigurableFieldSpec]:
        own = ConfigurableFieldSpec(
            id=self.id,
            annotation=Any,
            name="chat model",
            description=(
                "The chat model this step runs with (a model object), or the key of one of "
                f"its alternatives: {', '.join(sorted(self.alternatives)) or 'none'}"
            ),
            default=None,
        )
        nested = [
            spec
            for model in (self.default, *self.alternatives.values())
            for spec in model.config_specs
        ]
        return get_unique_config_specs([own, *nested])

    def chosen(self, config: RunnableConfig | None = None) -> Runnable[Any, Any]:
        """The model that runs under ``config``, with this slot's operations applied."""
        value = (ensure_config(config).get("configurable") or {}).get(self.id)
        if value is None:
            model = self.default
        elif isinstance(value, str):
            if value not in self.alternatives:
                raise ValueError(
                    f"configurable[{self.id!r}] = {value!r} names no model of this slot; its "
                    f"alternatives are {', '.join(sorted(self.alternatives)) or 'none'}, or "
                    "pass a chat model object"
                )
            model = self.alternatives[value]
        elif isinstance(value, Runnable):
            model = value
        else:
            raise TypeError(
                f"configurable[{self.id!r}] must be a chat model or the key of an alternative, "
                f"got {type(value).__name__}"
            )
        return self._with_operations(model)

    def _with_operations(self, model: Runnable[Any, Any]) -> Runnable[Any, Any]:
        if not self.operations:
            return model
        # Binding tools converts them each time: do it once per model (the model is kept, so
        # its id cannot be reused while the entry lives).
        with self._lock:
            cached = self._resolved.get(id(model))
        if cached is not None:
            return cached[1]
        bound = model
        for name, args, kwargs in self.operations:
            bound = getattr(bound, name)(*args, **dict(kwargs))
        with self._lock:
            self._resolved[id(model)] = (model, bound)
        return bound

    def _add(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ModelSlot:
        # A new slot, not a copy: a copy would share this one's cache of bound models.
        return ModelSlot(
            self.default,
            id=self.id,
            alternatives=self.alternatives,
            operations=(*self.operations, (name, args, tuple(kwargs.items()))),
        )

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ModelSlot:
        """``bind_tools`` on whichever model runs."""
        return self._add("bind_tools", (tools,), kwargs)

    def with_structured_output(self, schema: Any, **kwargs: Any) -> ModelSlot:
        """``with_structured_output`` on whichever model runs."""
        return self._add("with_structured_output", (schema,), kwargs)

    # -- running ----------------------------------------------------------------------------------

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return self.chosen(config).invoke(input, config, **kwargs)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        return await self.chosen(config).ainvoke(input, config, **kwargs)

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        yield from self.chosen(config).stream(input, config, **kwargs)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        async for chunk in self.chosen(config).astream(input, config, **kwargs):
            yield chunk

    def _dispatch(self) -> _SlotDispatch:
        return _SlotDispatch(self)


class _SlotDispatch:
    """How the inputs of a slot pick their model (``_grouped.Dispatch``)."""

    model_type = BatchChatModel

    def __init__(self, slot: ModelSlot) -> None:
        self.slot = slot

    def configure(self, config: RunnableConfig) -> RunnableConfig:
        return ensure_config(config)

    def key(self, config: RunnableConfig) -> Hashable:
        value = (config.get("configurable") or {}).get(self.slot.id)
        return value if isinstance(value, str) or value is None else id(value)

    def resolve(self, config: RunnableConfig) -> Runnable[Any, Any]:
        return self.slot.chosen(config)
