"""``FakeProvider``: a Batch API in memory, for tests of code built on batch-llm.

No HTTP and no credentials: batches live in the adapter, and their time is the clock it is
given, so a test that injects the scheduler's clock and sleep never really waits. It answers
OpenAI-shaped requests (chat completions, embeddings, responses, completions) with the
emulator's deterministic model, so its answers are the emulator's, byte for byte, and it reads
the emulator's ``Knobs`` for faults:

- ``validating_delay``, ``processing_delay``, ``finalizing_delay``: where a batch is, by the
  clock (request counts move through ``processing_delay``);
- ``line_error_every``/``line_error_status``/``line_error_message``, ``drop_line_every``,
  ``reverse_output``, ``malformed_line_every``: what its results hold;
- ``fail_validation``, ``expire_after_fraction``, ``cancel_after_fraction``: how it ends;
- ``http_error_every``/``http_error_status``/``http_error_routes``: calls that fail with
  ``FakeStatusError`` (every Nth call to each method; the routes are method names: ``submit``,
  ``poll``, ``cancel``, ``list``, ``results``, ``realtime``);
- ``lose_create_reply``: creates that make the batch, then fail as if the reply was lost.

The knobs are read when a batch is created (as the emulator does), except the HTTP faults,
which apply to the next call.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import (
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
    InvalidRequestError,
    UnsupportedEndpointError,
)
from ._base import (
    CAPABILITIES,
    INTENT_KEY,
    BatchStatus,
    Capability,
    Limits,
    Line,
    Provider,
    Usage,
    encode_body,
)
from ._sdk import parse_result_lines

if TYPE_CHECKING:
    from ..emulator import Knobs

__all__ = ["FakeProvider", "FakeStatusError"]

_ENDPOINTS = frozenset(
    {"/v1/chat/completions", "/v1/embeddings", "/v1/responses", "/v1/completions"}
)
_CHUNK = 64 * 1024
_ENDED = frozenset({"completed", "failed", "expired", "cancelled"})


class FakeStatusError(Exception):
    """An HTTP-style failure of the fake: ``status_code`` (429 and 5xx are transient, as the
    real SDKs' are) and the error ``body``."""

    def __init__(self, status_code: int, message: str, body: Any = None) -> None:
        super().__init__(f"Error code: {status_code} - {message}")
        self.status_code = status_code
        self.body = body if body is not None else {"error": {"message": message}}


@dataclass(slots=True)
class _FakeBatch:
    batch_id: str
    endpoint: str
    lines: list[tuple[str, bytes]]
    metadata: dict[str, str]
    created: float
    knobs: Knobs
    cancel_at: float | None = None
    results: bytes | None = field(default=None, repr=False)


class FakeProvider(Provider):
    """An in-memory Batch API with the emulator's answers and knobs (module docstring).

    Args:
        knobs: the faults and delays (``batch_llm.emulator.Knobs``); live, so a test may
            change them between batches.
        clock: the time batches age by (Unix seconds, as providers stamp batches); pass the
            scheduler's when it has an injected one.
        base_url, api_key: taken, as every provider factory takes them, and ignored.
        max_requests, max_bytes, max_inputs: the limits of one batch.

    Attributes:
        calls: calls made to each method (``submit``, ``poll``...), faults included.
        batches_created, lines_submitted, realtime_calls: what clients did, as the emulator's
            stats count it.
    """

    name = "fake"
    capabilities: ClassVar[frozenset[Capability]] = CAPABILITIES

    def __init__(
        self,
        *,
        knobs: Knobs | None = None,
        clock: Callable[[], float] = time.time,
        base_url: str | None = None,
        api_key: str | None = None,
        max_requests: int = 50_000,
        max_bytes: int = 200_000_000,
        max_inputs: int | None = None,
    ) -> None:
        from ..emulator import Knobs

        self.knobs = knobs if knobs is not None else Knobs()
        self._clock = clock
        self._limits = Limits(max_requests, max_bytes, max_inputs)
        self._batches: dict[str, _FakeBatch] = {}
        self.calls: dict[str, int] = {}
        self.batches_created = 0
        self.lines_submitted = 0
        self.realtime_calls = 0

    def __repr__(self) -> str:
        return f"FakeProvider(batches={len(self._batches)})"

    def describe(self) -> str:
        return f"fake({id(self):x})"

    # -- on the caller's thread -------------------------------------------------------------

    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Line:
        path = "/" + endpoint.strip().strip("/")
        path = path if path.startswith("/v1/") else "/v1" + path
        if path not in _ENDPOINTS:
            raise UnsupportedEndpointError(
                f"the fake provider cannot batch {endpoint!r}; it batches "
                f"{', '.join(sorted(_ENDPOINTS))}"
            )
        data = encode_body(body)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError(f"a request to {path} needs a 'model' string")
        embeddings = path == "/v1/embeddings"
        value = body.get("input")
        inputs = len(value) if embeddings and isinstance(value, list) and value else 1
        return Line(
            key=(path, model),
            endpoint=path,
            data=data,
            nbytes=len(data) + 100,
            inputs=inputs,
            deterministic=embeddings or body.get("temperature") == 0,
            model=model,
        )

    def limits(self, key: Hashable) -> Limits:
        return self._limits

    # -- the batch API ----------------------------------------------------------------------

    async def submit(
        self,
        key: Hashable,
        lines: Sequence[Line],
        metadata: Mapping[str, str],
        before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchStatus:
        self._fault("submit")
        if before_create is not None:
            await before_create()
        batch = _FakeBatch(
            batch_id="fakebatch_" + uuid.uuid4().hex[:20],
            endpoint=lines[0].endpoint,
            lines=[(line.custom_id, line.data) for line in lines],
            metadata=dict(metadata),
            created=self._clock(),
            knobs=self.knobs.copy(),
        )
        self._batches[batch.batch_id] = batch
        self.batches_created += 1
        self.lines_submitted += len(lines)
        if self.knobs.lose_create_reply > 0:
            self.knobs.lose_create_reply -= 1
            raise FakeStatusError(502, "the create reply was lost (fake provider)")
        return self._status(batch)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        self._fault("poll")
        return self._status(self._get(status.batch_id))

    async def cancel(self, status: BatchStatus) -> BatchStatus:
        self._fault("cancel")
        batch = self._get(status.batch_id)
        if batch.cancel_at is None and not self._status(batch).ended:
            batch.cancel_at = self._clock()
        return self._status(batch)

    async def list_batches(self, limit: int = 20) -> list[BatchStatus]:
        self._fault("list")
        newest = sorted(self._batches.values(), key=lambda b: b.created, reverse=True)
        return [self._status(b) for b in newest[:limit]]

    async def find_batch(
        self, intent_id: str, created_after: float, requests: int | None = None
    ) -> BatchStatus | None:
        self._fault("list")
        for batch in self._batches.values():
            if batch.metadata.get(INTENT_KEY) == intent_id:
                return self._status(batch)
        return None

    def result_streams(self, status: BatchStatus) -> list[str]:
        return ["output"]

    @contextlib.asynccontextmanager
    async def open_stream(
        self, status: BatchStatus, name: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        self._fault("results")
        data = self._results(self._get(status.batch_id))

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), _CHUNK):
                yield data[start : start + _CHUNK]

        yield chunks()

    def parse_stream(
        self, status: BatchStatus, name: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        batch_id = status.batch_id
        return parse_result_lines(
            chunks,
            lambda row: _outcome(row, batch_id),
            id_field="custom_id",
            batch_id=batch_id,
            stream=name,
        )

    async def realtime(self, prepared: Line) -> Any:
        self._fault("realtime")
        self.realtime_calls += 1
        status, body = _answer(prepared.endpoint, prepared.data)
        if status >= 400:
            raise FakeStatusError(status, _message(body), body)
        return body

    def usage(self, endpoint: str, body: Any, key: Hashable = None) -> Usage | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        model = body.get("model") or (key[1] if isinstance(key, tuple) else "")
        return Usage(
            str(model),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )

    def is_not_found(self, exc: BaseException) -> bool:
        return isinstance(exc, FakeStatusError) and exc.status_code == 404

    # -- the batch's life, by the clock -----------------------------------------------------

    def _get(self, batch_id: str) -> _FakeBatch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise FakeStatusError(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _fault(self, route: str) -> None:
        """Every Nth call to each method fails, as ``http_error_every`` asks."""
        count = self.calls[route] = self.calls.get(route, 0) + 1
        knobs = self.knobs
        every = knobs.http_error_every
        routes = knobs.http_error_routes
        if every and count % every == 0 and (routes is None or route in routes):
            raise FakeStatusError(knobs.http_error_status, f"injected error on {route}")

    def _timeline(self, batch: _FakeBatch) -> tuple[str, int]:
        """``(status, lines processed)`` at the clock's now, in OpenAI's status words."""
        from ..emulator._store import _stop_point

        knobs, total = batch.knobs, len(batch.lines)
        elapsed = self._clock() - batch.created
        if elapsed < knobs.validating_delay:
            return "validating", 0
        if knobs.fail_validation is not None:
            return "failed", 0
        running = elapsed - knobs.validating_delay
        delay = knobs.processing_delay
        stop, ending = _stop_point(total, knobs)
        if batch.cancel_at is not None:
            at = max(0.0, batch.cancel_at - batch.created - knobs.validating_delay)
            processed = min(stop, _processed(at, delay, total))
            late = running - at < knobs.finalizing_delay
            return ("cancelling" if late else "cancelled"), processed
        processed = min(stop, _processed(running, delay, total))
        if running < delay * (stop / total if total else 1.0):
            return "in_progress", processed
        if ending != "completed":  # expiry and cancellation cut processing short
            return ending, processed
        return ("finalizing" if running < delay + knobs.finalizing_delay else "completed"), stop

    def _status(self, batch: _FakeBatch) -> BatchStatus:
        raw, processed = self._timeline(batch)
        ended = raw in _ENDED
        errors = batch.knobs.line_error_every
        failed = processed // errors if errors else 0
        return BatchStatus(
            batch_id=batch.batch_id,
            state="ended" if ended else raw,  # type: ignore[arg-type]
            raw_status=raw,
            total=len(batch.lines),
            succeeded=processed - failed,
            failed=failed,
            outcome=raw if ended else None,  # type: ignore[arg-type]
            reason=batch.knobs.fail_validation if raw == "failed" else None,
            endpoint=batch.endpoint,
            times={"created": batch.created},
            handle=batch,
        )

    def _results(self, batch: _FakeBatch) -> bytes:
        """The batch's result file, rendered once (as a real provider's stays the same)."""
        if batch.results is not None:
            return batch.results
        outcome, processed = self._timeline(batch)
        knobs = batch.knobs
        rows: list[bytes] = []
        for number, (custom_id, data) in enumerate(batch.lines, start=1):
            if knobs.drop_line_every and number % knobs.drop_line_every == 0:
                continue
            if number > processed:
                code = "batch_cancelled" if outcome == "cancelled" else "batch_expired"
                row: dict[str, Any] = {
                    "custom_id": custom_id,
                    "response": None,
                    "error": {"code": code, "message": "this request was not run"},
                }
            elif knobs.line_error_every and number % knobs.line_error_every == 0:
                status, message = knobs.line_error_status, knobs.line_error_message
                body = {"error": {"message": message, "type": "server_error"}}
                row = {"custom_id": custom_id, "response": {"status_code": status, "body": body}}
            else:
                status, body = _answer(batch.endpoint, data)
                row = {"custom_id": custom_id, "response": {"status_code": status, "body": body}}
            malformed = knobs.malformed_line_every
            if malformed and number % malformed == 0:
                truncated = knobs.malformed_line_kind == "truncated"
                rows.append(
                    b'{"custom_id":"' + custom_id.encode() + b'","response":{'
                    if truncated
                    else b"<<not json>>"
                )
                continue
            rows.append(json.dumps(row, separators=(",", ":")).encode())
        if knobs.reverse_output:
            rows.reverse()
        batch.results = b"".join(row + b"\n" for row in rows)
        return batch.results


def _processed(running: float, delay: float, total: int) -> int:
    if running <= 0:
        return 0
    if delay <= 0 or running >= delay:
        return total
    return math.floor(total * running / delay)


def _answer(endpoint: str, data: bytes) -> tuple[int, Any]:
    from ..emulator._openai_shapes import respond

    outcome = respond(endpoint, json.loads(data), batch=True)
    return outcome.status, json.loads(outcome.body)


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else "error"


def _outcome(row: Mapping[str, Any], batch_id: str) -> Any:
    custom_id = row.get("custom_id")
    response = row.get("response")
    if isinstance(response, dict):
        status = int(response.get("status_code") or 0)
        body = response.get("body")
        if 200 <= status < 300:
            return body
        return FakeStatusError(status, _message(body), body)
    error = row.get("error") or {}
    code = error.get("code")
    message = f"{error.get('message') or 'request was not run'} (batch {batch_id}, {code})"
    if code == "batch_expired":
        return BatchExpiredError(message, batch_id=batch_id, custom_id=custom_id)
    if code == "batch_cancelled":
        return BatchCancelledError(message, batch_id=batch_id, custom_id=custom_id)
    return BatchError(message, batch_id=batch_id, custom_id=custom_id)
