"""The emulator's fault and timing knobs, settable from Python and over HTTP."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["MALFORMED_KINDS", "Knobs"]

#: What ``Knobs.malformed_line_kind`` may be.
MALFORMED_KINDS = ("truncated", "garbage")
# Guards the knobs that count down as they are used (``lose_create_reply``): handler threads
# consume them concurrently.
_CONSUME_LOCK = threading.Lock()

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
        lose_create_reply: the next N batch-create calls (OpenAI ``POST /v1/batches``,
            Anthropic ``POST /v1/messages/batches``, Gemini ``:batchGenerateContent`` and
            ``:asyncBatchEmbedContent``) really create their batch, then close the connection
            without answering: the reply is lost on the way, so the client cannot tell whether
            the batch exists (it does: list calls and stats show it). A 5xx would tell the
            client the call failed, which is a different fault. Counts down to 0 as replies
            are lost.
        malformed_line_every: every Nth line (by input position, ``index % N == 0``) of a
            batch's results is damaged as ``malformed_line_kind`` says: in OpenAI's output or
            error file, Anthropic's results JSONL and Gemini's responses file. Gemini's inline
            results are one JSON document, which a damaged byte would break whole; there the
            entry's ``response`` is a string holding the answer's JSON cut short instead.
        malformed_line_kind: ``"truncated"``: the line is cut off halfway, after its
            ``custom_id`` (Gemini: ``key``), so a client can still tell whose line it was;
            ``"garbage"``: the line is replaced by text that is not JSON and names no request.
        short_embeddings_every: every Nth embeddings answer holds one vector too few: in a
            batch, every Nth line of an embeddings batch; realtime, every Nth embeddings call
            (OpenAI ``/v1/embeddings``, Gemini ``:embedContent`` and ``:batchEmbedContents``)
            since the last reset. OpenAI's ``data`` and Gemini's ``embeddings`` lose their last
            item; a Gemini answer with a single ``embedding`` loses it.
        upload_delay: seconds a file upload takes before it is answered (OpenAI ``POST
            /v1/files``, the last request of a Gemini resumable upload).
        download_chunk_delay: seconds between the chunks of a result download (OpenAI file
            content, Anthropic results, Gemini file download): a slow, streamed download.
        download_chunk_bytes: size of those chunks; None sends a download in one write, or in
            64 KiB chunks when ``download_chunk_delay`` is set. Small chunks split lines
            across reads, as a real network does.
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
    lose_create_reply: int = 0
    malformed_line_every: int | None = None
    malformed_line_kind: str = "truncated"
    short_embeddings_every: int | None = None
    upload_delay: float = 0.0
    download_chunk_delay: float = 0.0
    download_chunk_bytes: int | None = None

    def copy(self) -> Knobs:
        """An independent copy (the route set is copied too)."""
        clone = dataclasses.replace(self)
        if self.http_error_routes is not None:
            clone.http_error_routes = set(self.http_error_routes)
        return clone

    def take_lost_create_reply(self) -> bool:
        """Whether this batch-create call loses its reply; counts ``lose_create_reply`` down."""
        with _CONSUME_LOCK:
            if self.lose_create_reply <= 0:
                return False
            self.lose_create_reply -= 1
            return True

    def download_chunking(self) -> tuple[int, float]:
        """``(chunk size, delay)`` for a result download; a size of 0 means one write."""
        delay = self.download_chunk_delay
        size = self.download_chunk_bytes
        if size is None:
            size = _DEFAULT_DOWNLOAD_CHUNK if delay > 0 else 0
        return size, delay

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
    "lose_create_reply": ("int", False),
    "malformed_line_every": ("int", True),
    "malformed_line_kind": ("kind", False),
    "short_embeddings_every": ("int", True),
    "upload_delay": ("float", False),
    "download_chunk_delay": ("float", False),
    "download_chunk_bytes": ("int", True),
}
# The least each integer knob accepts (``*_every`` knobs: 1).
_INT_MINIMUM = {"lose_create_reply": 0, "download_chunk_bytes": 1}
_DEFAULT_DOWNLOAD_CHUNK = 64 * 1024


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
        minimum = _INT_MINIMUM.get(name, 1 if name.endswith("_every") else None)
        if minimum is not None and value < minimum:
            raise ValueError(f"Knob {name!r} must be at least {minimum}")
        return value
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "kind":
        if value in MALFORMED_KINDS:
            return value
        raise ValueError(f"Knob {name!r} must be one of {', '.join(MALFORMED_KINDS)}")
    if kind == "bool" and isinstance(value, bool):
        return value
    if (
        kind == "routes"
        and isinstance(value, list | set | tuple)
        and all(isinstance(v, str) for v in value)
    ):
        return set(value)
    raise ValueError(f"Knob {name!r} got a value of the wrong type: {value!r}")
