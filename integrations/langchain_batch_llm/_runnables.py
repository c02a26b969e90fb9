"""Re-pointing a runnable graph built around one model at another.

``with_structured_output`` is provider logic (tool formatting, JSON-schema response formats,
output parsers, ``include_raw`` maps); rather than copy it, the wrapped model builds the graph and
every binding of the wrapped model in it is pointed at the batch model instead.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import Runnable

__all__ = ["rebind"]


def rebind(node: Any, old: Runnable[Any, Any], new: Runnable[Any, Any]) -> Any:
    """``node`` with every occurrence of ``old`` replaced by ``new`` (unchanged parts shared)."""
    if node is old:
        return new
    if isinstance(node, list | tuple):
        items = [rebind(item, old, new) for item in node]
        changed = any(a is not b for a, b in zip(items, node, strict=True))
        return type(node)(items) if changed else node
    if isinstance(node, dict):
        values = {key: rebind(value, old, new) for key, value in node.items()}
        changed = any(values[key] is not node[key] for key in node)
        return values if changed else node
    # Runnables that hold other runnables (bindings, sequences, maps, fallbacks) are pydantic
    # models whose fields say where; anything else is a leaf.
    fields = getattr(type(node), "model_fields", None)
    if not isinstance(node, Runnable) or fields is None:
        return node
    updates = {}
    for name in fields:
        value = getattr(node, name, None)
        replaced = rebind(value, old, new)
        if replaced is not value:
            updates[name] = replaced
    return node.model_copy(update=updates) if updates else node  # type: ignore[attr-defined]
