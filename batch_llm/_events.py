"""Lifecycle events: what a scheduler tells its listeners and the ``batch_llm`` logger.

Every event is a dict of plain data (JSON-ready) with at least ``event``, ``time`` (Unix
seconds), ``batch_id``, ``intent_id``, ``provider``, ``requests`` (lines in the batch),
``status`` (the provider's word), ``state`` (``validating``, ``in_progress``, ``finalizing``,
``cancelling``, ``ended``), the provider's counts (``total``, ``succeeded``, ``failed``; None
until known) and ``resumed``; ``metadata`` when the batch was stamped with any. When each is
emitted:

- ``batch_submitted``: the provider accepted the batch;
- ``batch_progress``: a poll saw its status or counts change (the last one, ``state`` ``ended``,
  says the answers are being read);
- ``batch_completed`` / ``batch_failed`` / ``batch_expired`` / ``batch_cancelled``: the batch is
  over and every caller has its answer (or was sent on); with ``outcome``, ``reason`` when
  there is one, and ``usage`` (answers and tokens) and ``cost`` (``cost``, ``realtime_cost``,
  ``saving`` in USD; None if a model has no price) once answers were read. A submission or
  a poll that fails for good, and a batch cancelled because every caller went realtime, end
  this way too; answers taken from the journal say ``replayed``;
- ``batch_resumed``: a batch an earlier run submitted is followed again (``waiting``: callers);
- ``request_escalated``: one request was sent realtime (``custom_id``, ``reason``: ``deadline``
  or ``expired``).

Nothing in an event comes from a credential: ``provider`` is the adapter's description, and
``reason`` (often an SDK error's message) passes through ``redact``, as does every record of
the ``batch_llm`` logger.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from ._files import make_private_dirs, open_private
from ._redact import RedactingFilter, redact

__all__ = [
    "EVENTS",
    "EventHub",
    "JsonlEvents",
    "Listener",
    "event_fields",
    "events_from_env",
    "log_event",
]

logger = logging.getLogger("batch_llm")
# Every module logs to this one logger, so this one filter sees every line the library logs.
logger.addFilter(RedactingFilter())

EVENTS = (
    "batch_submitted",
    "batch_progress",
    "batch_completed",
    "batch_failed",
    "batch_expired",
    "batch_cancelled",
    "batch_resumed",
    "request_escalated",
)
# Frequent events log at DEBUG; a batch's milestones at INFO.
_DEBUG = frozenset({"batch_progress", "request_escalated"})

#: Something that receives events: any callable taking the event dict.
Listener = Callable[[dict[str, Any]], object]


class EventHub:
    """One scheduler's listeners: every event is logged, then handed to each of them.

    Listeners run on the thread that emits (the scheduler's loop) and must return quickly; one
    that raises is logged and skipped, never allowed to break the batch that emitted.
    """

    def __init__(self, listeners: Iterable[Listener] = ()) -> None:
        self._listeners = list(listeners)

    def add(self, listener: Listener) -> None:
        """Also send events to ``listener`` (once, however often it is added)."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove(self, listener: Listener) -> None:
        """Stop sending events to ``listener``; ``ValueError`` if it was not listening."""
        self._listeners.remove(listener)

    def emit(self, payload: dict[str, Any]) -> None:
        """Log ``payload`` and hand it to every listener."""
        log_event(payload)
        for listener in list(self._listeners):
            try:
                listener(payload)
            except Exception:  # a broken listener must not break the batch
                logger.exception("event listener %r raised", listener)


class JsonlEvents:
    """A listener that writes each event as one JSON line, to a file (appended) or a stream.

        scheduler = Scheduler(listeners=[JsonlEvents("events.jsonl")])

    Thread-safe: one instance may serve several schedulers. Each line is flushed as it is
    written, so a crashed run still leaves every event it emitted. Setting
    ``BATCH_LLM_EVENTS=/path/events.jsonl`` attaches one to every scheduler. A file is made
    readable by its owner only (0600), as are the folders this creates for it (0700).
    """

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        self._lock = threading.Lock()
        self.path: Path | None
        if isinstance(target, str | os.PathLike):
            self.path = Path(target).expanduser()
            make_private_dirs(self.path.parent)
            fd = open_private(self.path, os.O_WRONLY | os.O_APPEND)
            self._stream: IO[str] = open(fd, "a", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self.path = None
            self._stream = target
            self._owned = False

    def __repr__(self) -> str:
        return f"JsonlEvents({str(self.path) if self.path else self._stream!r})"

    def __call__(self, event: dict[str, Any]) -> None:
        """Write one event."""
        line = json.dumps(event, default=str, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            if self._stream.closed:
                return
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        """Close the file (a stream passed in is left open)."""
        with self._lock:
            if self._owned and not self._stream.closed:
                self._stream.close()

    def __enter__(self) -> JsonlEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: dict[str, JsonlEvents] = {}
_shared_lock = threading.Lock()


def events_from_env() -> JsonlEvents | None:
    """The ``BATCH_LLM_EVENTS`` listener (one per path in the process), if it is set."""
    path = os.environ.get("BATCH_LLM_EVENTS", "").strip()
    if not path:
        return None
    with _shared_lock:
        listener = _shared.get(path)
        if listener is None or (listener._stream.closed):
            listener = _shared[path] = JsonlEvents(path)
        return listener


def event_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """An event's own fields as listeners may see them: ``reason``, free text that often
    quotes an SDK error (and so a URL or a key), redacted."""
    reason = fields.get("reason")
    if isinstance(reason, str):
        return {**fields, "reason": redact(reason)}
    return fields


def log_event(payload: dict[str, Any]) -> None:
    """The event on the ``batch_llm`` logger: INFO for milestones, DEBUG for progress."""
    event = payload["event"]
    level = logging.DEBUG if event in _DEBUG else logging.INFO
    if not logger.isEnabledFor(level):
        return
    who = payload.get("batch_id") or f"intent {payload.get('intent_id')}"
    text = (
        f"{event} {who} ({payload.get('provider')}): {payload.get('requests')} requests, "
        f"status {payload.get('status')}"
    )
    if payload.get("total"):
        done = (payload.get("succeeded") or 0) + (payload.get("failed") or 0)
        text += f", {done}/{payload['total']} lines done"
    if payload.get("failed"):
        text += f" ({payload['failed']} failed)"
    if payload.get("custom_id"):
        text += f", request {payload['custom_id']}"
    if payload.get("reason"):
        text += f"; {payload['reason']}"
    cost = payload.get("cost")
    if isinstance(cost, dict) and cost.get("cost") is not None:
        text += f"; cost ${cost['cost']:.4f} (realtime ${cost['realtime_cost']:.4f})"
    if payload.get("replayed"):
        text += " (replayed from the journal)"
    logger.log(level, "%s", text)
