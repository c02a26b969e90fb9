"""The emulator's fault and timing knobs, settable from Python and over HTTP."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Knobs"]

_DEFAULT_LINE_ERROR_MESSAGE = (
    "The server had an error while processing your request. Sorry about that!"
)


@dataclass(kw_only=True)
class Knobs:
    """How the emulated provider misbehaves. The defaults are a fast, well-behaved provider.

    A batch takes a copy of the knobs when it is created, so changing them affects the next
    batch (and the next HTTP call), never one already running.

    Attributes:
        validating_delay: seconds a new batch stays ``validating``.
        processing_delay: seconds a batch spends ``in_progress``; its request counts advance
            gradually through them.
        finalizing_delay: seconds a batch stays ``finalizing`` (or ``cancelling``) while its
            result files are written.
        line_error_every: every Nth input line (1-based, ``index % N == 0``) fails with
            ``line_error_status`` and ``line_error_message``.
        line_error_status: HTTP status of those failures.
        line_error_message: message of those failures.
        http_error_every: every Nth call to each API route (counted per route key, such as
            ``"POST /v1/files"`` or ``"GET /v1/batches/{id}"``) answers ``http_error_status``.
        http_error_status: status of those answers; a 429 carries ``Retry-After: 0`` (and
            ``retry-after-ms: 1``, the smallest delay the openai SDK does not ignore).
        http_error_routes: only these route keys misbehave (all API routes if ``None``).
        expire_after_fraction: a batch processes this fraction of its lines, then ``expired``.
        cancel_after_fraction: a batch is cancelled after processing this fraction of its lines.
        fail_validation: every new batch fails validation with this message.
        reverse_output: result files list lines in reverse input order.
        drop_line_every: every Nth line is silently missing from the result files.
    """

    validating_delay: float = 0.0
    processing_delay: float = 0.0
    finalizing_delay: float = 0.0
    line_error_every: int | None = None
    line_error_status: int = 500
    line_error_message: str = _DEFAULT_LINE_ERROR_MESSAGE
    http_error_every: int | None = None
    http_error_status: int = 500
    http_error_routes: set[str] | None = None
    expire_after_fraction: float | None = None
    cancel_after_fraction: float | None = None
    fail_validation: str | None = None
    reverse_output: bool = False
    drop_line_every: int | None = None

    def copy(self) -> Knobs:
        """An independent copy (the route set is copied too)."""
        clone = dataclasses.replace(self)
        if self.http_error_routes is not None:
            clone.http_error_routes = set(self.http_error_routes)
        return clone

    def reset(self) -> None:
        """Put every knob back to its default, in place."""
        defaults = Knobs()
        for f in fields(self):
            setattr(self, f.name, getattr(defaults, f.name))

    def to_json(self) -> dict[str, Any]:
        """The knobs as a JSON-friendly dict (sets become sorted lists)."""
        result: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            result[f.name] = sorted(value) if isinstance(value, set) else value
        return result

    def update(self, changes: dict[str, Any]) -> None:
        """Set several knobs from a JSON-style dict, validating names and types first.

        Raises:
            ValueError: an unknown knob or a value of the wrong type; nothing is changed then.
        """
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in _KNOB_TYPES:
                raise ValueError(f"Unknown knob {name!r}; known: {', '.join(sorted(_KNOB_TYPES))}")
            checked[name] = _coerce(name, value)
        for name, value in checked.items():
            setattr(self, name, value)


# What each knob accepts over HTTP; checked by hand because JSON has no sets and bools are ints.
_KNOB_TYPES: dict[str, tuple[str, bool]] = {
    "validating_delay": ("float", False),
    "processing_delay": ("float", False),
    "finalizing_delay": ("float", False),
    "line_error_every": ("int", True),
    "line_error_status": ("int", False),
    "line_error_message": ("str", False),
    "http_error_every": ("int", True),
    "http_error_status": ("int", False),
    "http_error_routes": ("routes", True),
    "expire_after_fraction": ("float", True),
    "cancel_after_fraction": ("float", True),
    "fail_validation": ("str", True),
    "reverse_output": ("bool", False),
    "drop_line_every": ("int", True),
}


def _coerce(name: str, value: Any) -> Any:
    kind, nullable = _KNOB_TYPES[name]
    if value is None:
        if nullable:
            return None
        raise ValueError(f"Knob {name!r} cannot be null")
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"Knob {name!r} must not be negative")
        return float(value)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        if name.endswith("_every") and value < 1:
            raise ValueError(f"Knob {name!r} must be at least 1")
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if (
        kind == "routes"
        and isinstance(value, list | set | tuple)
        and all(isinstance(v, str) for v in value)
    ):
        return set(value)
    raise ValueError(f"Knob {name!r} got a value of the wrong type: {value!r}")
