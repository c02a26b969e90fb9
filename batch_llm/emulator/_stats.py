"""Counters of what clients did to the emulator, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EmulatorStats", "StatsRecorder"]


@dataclass
class EmulatorStats:
    """A snapshot of the emulator's counters since start or the last reset.

    Attributes:
        batches_created: batches accepted by a create call (whatever became of them).
        lines_submitted: input lines over all created batches.
        files_uploaded: files uploaded by clients (result files the emulator writes excluded).
        bytes_uploaded: total size of those files.
        realtime_calls: realtime calls of any provider (chat, messages, generateContent,
            embeddings, responses...) made outside batches.
        http_errors_injected: answers replaced by an error through ``Knobs.http_error_every``.
        create_replies_lost: batch-create calls answered by closing the connection
            (``Knobs.lose_create_reply``); each of them did create its batch.
        lines_malformed: result lines damaged through ``Knobs.malformed_line_every``.
        embeddings_shortened: embeddings answers (batch lines and realtime calls) that lost a
            vector through ``Knobs.short_embeddings_every``.
        calls_by_route: calls per route key, such as ``"GET /v1/batches/{id}"``.
        calls_by_path: calls per method and path as sent, such as
            ``"GET /v1/batches/batch_abc"``: how often one batch was polled.
        batches: one dict per batch: ``id``, ``provider``, ``endpoint``, ``models``, ``lines``,
            ``status``.
    """

    batches_created: int = 0
    lines_submitted: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    realtime_calls: int = 0
    http_errors_injected: int = 0
    create_replies_lost: int = 0
    lines_malformed: int = 0
    embeddings_shortened: int = 0
    calls_by_route: dict[str, int] = field(default_factory=dict)
    calls_by_path: dict[str, int] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The snapshot as a JSON-friendly dict."""
        return asdict(self)


class StatsRecorder:
    """The live counters behind :class:`EmulatorStats`; every method is thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._routes: dict[str, int] = {}
        self._paths: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        """Add to one of the integer counters of :class:`EmulatorStats`."""
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + amount

    def tick(self, name: str) -> int:
        """Add one to a counter (of the snapshot's or a private one) and return its new value."""
        with self._lock:
            count = self._counters.get(name, 0) + 1
            self._counters[name] = count
            return count

    def count_route(self, key: str, path: str | None = None) -> int:
        """Count one call to a route (and to ``path``, the ``METHOD /path`` it was sent to)
        and return how many calls the route has had, this one included."""
        with self._lock:
            count = self._routes.get(key, 0) + 1
            self._routes[key] = count
            if path is not None:
                self._paths[path] = self._paths.get(path, 0) + 1
            return count

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._counters.clear()
            self._routes.clear()
            self._paths.clear()

    def snapshot(self, batches: Callable[[], list[dict[str, Any]]]) -> EmulatorStats:
        """A copy of the counters; ``batches`` lists the batches the store still knows."""
        with self._lock:
            counters = dict(self._counters)
            routes = dict(self._routes)
            paths = dict(self._paths)
        return EmulatorStats(
            batches_created=counters.get("batches_created", 0),
            lines_submitted=counters.get("lines_submitted", 0),
            files_uploaded=counters.get("files_uploaded", 0),
            bytes_uploaded=counters.get("bytes_uploaded", 0),
            realtime_calls=counters.get("realtime_calls", 0),
            http_errors_injected=counters.get("http_errors_injected", 0),
            create_replies_lost=counters.get("create_replies_lost", 0),
            lines_malformed=counters.get("lines_malformed", 0),
            embeddings_shortened=counters.get("embeddings_shortened", 0),
            calls_by_route=routes,
            calls_by_path=paths,
            batches=batches(),
        )
