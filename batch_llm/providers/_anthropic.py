"""Anthropic Message Batches adapter.

One batch may mix models: every request goes to ``/v1/messages``, so the grouping key is the
endpoint alone. Requests go up inline in the create call (no file upload); the results come
back as a JSONL stream at the batch's ``results_url``, matched to callers by ``custom_id``
(their order is not guaranteed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any

from .._errors import (
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
    InvalidRequestError,
    UnsupportedEndpointError,
)
from ._base import (
    BatchState,
    BatchStatus,
    Limits,
    Line,
    Outcome,
    Usage,
    encode_body,
    new_usage,
)
from ._body import Body, spans
from ._sdk import (
    NO_SDK_RETRIES,
    SDKProvider,
    http_module_of,
    parse_result_lines,
    shared_ssl_context,
)

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

__all__ = ["ERROR_STATUS", "AnthropicProvider"]

MESSAGES = "/v1/messages"

# Room for the envelope around each body: '{"custom_id":"…","params":…},' with a 64-char id.
_ENVELOPE = len(b'{"custom_id":"","params":},') + 64
# What the create call adds around the requests.
_BATCH_ENVELOPE = len(b'{"requests":[]}')
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")

_STATES: dict[str, BatchState] = {
    "in_progress": "in_progress",
    "canceling": "cancelling",
    "ended": "ended",
}

# The HTTP status the realtime API answers with each error ``type``; an errored batch result
# carries only the type, and the SDK picks its exception class by status.
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "memory_path_conflict_error": 409,
    "memory_precondition_failed_error": 412,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


@functools.lru_cache(maxsize=16)
def _normalize_endpoint(endpoint: str) -> str:
    """Accept ``messages``, ``/messages`` or ``/v1/messages``."""
    path = "/" + endpoint.strip().strip("/")
    if not path.startswith("/v1/"):
        path = "/v1" + path
    return path


class AnthropicProvider(SDKProvider["AsyncAnthropic"]):
    """Anthropic's Message Batches API.

    The request body is exactly a non-streaming Messages API request, what
    ``anthropic.Anthropic().messages.create(**body)`` would send. Results are the message as
    the realtime call returns it (a dict of its JSON), or the ``anthropic`` exception the
    realtime call would have raised.

    Args:
        api_key: defaults to ``ANTHROPIC_API_KEY`` (else the SDK's own credential lookup).
        base_url: defaults to ``ANTHROPIC_BASE_URL``, else the Anthropic API; the host root,
            without ``/v1``.
        default_headers, timeout, max_retries: passed to the SDK client.
        max_requests, max_bytes: per-batch limits (100,000 requests and 256 MB on Anthropic).
        client: an ``AsyncAnthropic`` to use instead of building one.
    """

    name = "anthropic"
    default_host = "api.anthropic.com"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_requests: int = 100_000,
        max_bytes: int = 256_000_000,
        client: AsyncAnthropic | None = None,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY")
        self._default_headers = dict(default_headers or {})
        self._timeout = timeout
        self._max_retries = max_retries
        self._limits = Limits(max_requests, max_bytes - _BATCH_ENVELOPE)
        self._setup(
            client,
            self._api_key,
            (base_url or os.environ.get("ANTHROPIC_BASE_URL") or "").rstrip("/") or None,
            (
                tuple(sorted(self._default_headers.items())),
                timeout,
                max_retries,
                max_requests,
                max_bytes,
            ),
        )

    def _new_client(self) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic, DefaultAsyncHttpxClient

        kwargs: dict[str, Any] = {
            "http_client": DefaultAsyncHttpxClient(
                verify=shared_ssl_context(), auth=self._url_credentials
            ),
            "base_url": self._base_url,
            "default_headers": self._default_headers or None,
        }
        if self._api_key is not None:
            kwargs["api_key"] = self._api_key
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        if self._max_retries is not None:
            kwargs["max_retries"] = self._max_retries
        return AsyncAnthropic(**kwargs)

    # -- on the caller's thread ---------------------------------------------------------------

    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Line:
        path = _normalize_endpoint(endpoint)
        if path != MESSAGES:
            raise UnsupportedEndpointError(
                f"anthropic cannot batch {endpoint!r}; it batches {MESSAGES}"
            )
        data = encode_body(body, _sdk_dumps)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError(f"a request to {MESSAGES} needs a 'model' string")
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidRequestError(
                f"a request to {MESSAGES} needs 'max_tokens', a positive integer"
            )
        if body.get("stream"):
            raise InvalidRequestError("stream=True cannot run in a batch; batches do not stream")
        # Models share a batch on Anthropic, so the key is the endpoint alone. Claude samples at
        # temperature 1 unless told otherwise: only temperature 0 gives one answer per request.
        return Line(
            key=MESSAGES,
            endpoint=MESSAGES,
            data=data,
            nbytes=len(data) + _ENVELOPE,
            deterministic=body.get("temperature") == 0,
            model=model,
        )

    def limits(self, key: Hashable) -> Limits:
        return self._limits

    # -- on the scheduler's loop --------------------------------------------------------------

    async def submit(
        self,
        key: Hashable,
        lines: Sequence[Line],
        metadata: Mapping[str, str],
        before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchStatus:
        """Create the batch from the already-encoded bodies, without decoding any of them.

        Message batches take no metadata, so ``metadata`` is not sent (``find_batch`` matches a
        batch by when it was created and how many requests it holds instead).
        """
        from anthropic.types.messages import MessageBatch

        valid_id = _CUSTOM_ID.fullmatch
        size = len(b'{"requests":[]}') + max(len(lines) - 1, 0)
        size += len(b'{"custom_id":"","params":}') * len(lines)
        for line in lines:
            if valid_id(line.custom_id) is None:
                raise InvalidRequestError(
                    f"custom_id {line.custom_id!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$"
                )
            size += len(line.custom_id) + len(line.data)

        def chunks() -> Iterator[bytes]:
            yield b'{"requests":['
            separator = b""
            for span in spans(lines, size):
                parts: list[bytes] = []
                for line in span:
                    parts += (
                        separator,
                        b'{"custom_id":"',
                        line.custom_id.encode(),
                        b'","params":',
                        line.data,
                        b"}",
                    )
                    separator = b","
                yield b"".join(parts)
            yield b"]}"

        # The SDK's create() would re-encode every request; its post() sends bytes as they are,
        # here made as they are sent.
        with Body(chunks, size) as body:
            batch = await self._create_once(
                before_create,
                lambda: self.client.with_options(**NO_SDK_RETRIES).post(
                    "/v1/messages/batches",
                    content=body.stream(),
                    cast_to=MessageBatch,
                    options={
                        "headers": {
                            "Content-Type": "application/json",
                            "Content-Length": str(body.size),
                        }
                    },
                ),
            )
        return self._status(batch)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        return self._status(await self.client.messages.batches.retrieve(status.batch_id))

    async def cancel(self, status: BatchStatus) -> BatchStatus:
        return self._status(await self.client.messages.batches.cancel(status.batch_id))

    async def list_batches(self, limit: int = 20) -> list[BatchStatus]:
        found: list[BatchStatus] = []
        if limit <= 0:
            return found
        async for batch in self.client.messages.batches.list(limit=min(limit, 100)):
            found.append(self._status(batch))
            if len(found) >= limit:
                break
        return found

    def result_streams(self, status: BatchStatus) -> list[str]:
        return ["results"]

    @contextlib.asynccontextmanager
    async def open_stream(
        self, status: BatchStatus, name: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        # The SDK looks the batch up again and GETs its results_url exactly as given.
        results = self.client.messages.batches.with_streaming_response.results
        async with results(status.batch_id) as response:
            yield response.iter_bytes()

    def parse_stream(
        self, status: BatchStatus, name: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        return parse_result_lines(
            chunks,
            functools.partial(self._outcome, batch_id=status.batch_id),
            id_field="custom_id",
            batch_id=status.batch_id,
            stream=name,
        )

    async def find_batch(
        self, intent_id: str, created_after: float, requests: int | None = None
    ) -> BatchStatus | None:
        """Best effort: message batches carry no metadata, so the intent cannot be read back.

        The batch the intent became is the one created within a few minutes after the intent
        was written that holds exactly its number of requests; with more than one such batch
        the match is ambiguous, and None is safer than taking another run's batch.
        """
        if requests is None:
            return None
        window_end = created_after + 600
        matches = []
        async for batch in self.client.messages.batches.list(limit=100):
            created = batch.created_at.timestamp()
            if created < created_after - 60:
                break  # newest first: everything further is older still
            status = self._status(batch)
            if created <= window_end and status.total == requests:
                matches.append(status)
        return matches[0] if len(matches) == 1 else None

    async def realtime(self, prepared: Line) -> Any:
        """The same body through ``POST /v1/messages``; returns the message as a dict."""
        return await self.client.post(
            MESSAGES,
            content=prepared.data,
            cast_to=object,
            options={"headers": {"Content-Type": "application/json"}},
        )

    def usage(self, endpoint: str, body: Any, key: Hashable = None) -> Usage | None:
        """A message's ``usage``: ``input_tokens`` counts only uncached prompt tokens, so the
        cache reads and writes are added back in (and reported as their parts)."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        read = usage.get("cache_read_input_tokens") or 0
        written = usage.get("cache_creation_input_tokens") or 0
        return new_usage(
            (
                str(body.get("model") or ""),
                (usage.get("input_tokens") or 0) + read + written,
                usage.get("output_tokens") or 0,
                read,
                written,
            )
        )

    # -- helpers ------------------------------------------------------------------------------

    def _status(self, batch: Any) -> BatchStatus:
        counts = batch.request_counts
        state = _STATES.get(batch.processing_status, "in_progress")
        outcome: Outcome | None = None
        if state == "ended":
            if batch.cancel_initiated_at is not None:
                outcome = "cancelled"
            elif counts.expired:
                outcome = "expired"
            else:
                outcome = "completed"
        total = (
            counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        )
        return BatchStatus(
            batch_id=batch.id,
            state=state,
            raw_status=batch.processing_status,
            total=total,
            succeeded=counts.succeeded,
            failed=counts.errored,
            outcome=outcome,
            endpoint=MESSAGES,
            times=_times(batch),
            handle=batch,
        )

    def _outcome(self, row: Mapping[str, Any], batch_id: str) -> Any:
        result = row.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            return result.get("message")
        custom_id = row.get("custom_id")
        if kind == "errored":
            return self._status_error(result.get("error") or {})
        if kind == "expired":
            return BatchExpiredError(
                f"batch {batch_id} expired before this request was processed",
                batch_id=batch_id,
                custom_id=custom_id,
            )
        if kind == "canceled":
            return BatchCancelledError(
                f"batch {batch_id} was cancelled before this request was processed",
                batch_id=batch_id,
                custom_id=custom_id,
            )
        return BatchError(
            f"batch {batch_id} returned an unknown result type {kind!r}",
            batch_id=batch_id,
            custom_id=custom_id,
        )

    def _status_error(self, body: Mapping[str, Any]) -> BaseException:
        """The exception the SDK raises when the realtime call answers this error body."""
        error = body.get("error")
        kind = error.get("type") if isinstance(error, Mapping) else None
        status_code = ERROR_STATUS.get(kind or "", 500)
        client = self.client
        httpx = http_module_of(client)
        url = str(client.base_url).rstrip("/") + MESSAGES
        request_id = body.get("request_id")
        headers = {"request-id": request_id} if isinstance(request_id, str) else {}
        response = httpx.Response(
            status_code, json=dict(body), headers=headers, request=httpx.Request("POST", url)
        )
        return client._make_status_error_from_response(response)


def _times(batch: Any) -> dict[str, float]:
    """The batch's timestamps that are set (``created_at``, ``ended_at``...), as Unix seconds
    by their name without ``_at`` (``cancel_initiated_at`` is ``cancelling``)."""
    times: dict[str, float] = {}
    for name, field in _TIMESTAMPS:
        value = getattr(batch, field, None)
        if value is not None and hasattr(value, "timestamp"):
            times[name] = float(value.timestamp())
    return times


_TIMESTAMPS = (
    ("created", "created_at"),
    ("cancelling", "cancel_initiated_at"),
    ("ended", "ended_at"),
    ("expires", "expires_at"),
    ("archived", "archived_at"),
)


def _sdk_dumps(body: Mapping[str, Any]) -> bytes:
    """The bytes the anthropic SDK's realtime call sends for ``body``: it prepares the body
    (pydantic models dumped, ``date``/``datetime`` as ISO 8601, sets and iterators as lists,
    file inputs base64-encoded) and JSON-encodes the result."""
    try:
        from anthropic._utils._prepare import serialize_data
    except ImportError:  # SDKs from before request preparation: their encoder alone
        from anthropic._utils._json import openapi_dumps  # older still: plain JSON only

        return openapi_dumps(body)
    return serialize_data(body, location="body").encode()
