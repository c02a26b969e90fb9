"""OpenAI Batch API adapter; also serves OpenAI-compatible servers through ``base_url``.

One batch holds one endpoint and one model. Requests go up as a JSONL file (``/v1/files``),
the batch is created with ``/v1/batches``, and results come back in an output file and an error
file whose lines are matched to callers by ``custom_id`` (their order is not guaranteed).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Mapping,
    Sequence,
)
from typing import IO, TYPE_CHECKING, Any, cast

from .._errors import (
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
    InvalidRequestError,
    MalformedResultError,
    UnsupportedEndpointError,
)
from ._base import (
    INTENT_KEY,
    BatchState,
    BatchStatus,
    Limits,
    Line,
    Outcome,
    Usage,
    encode_body,
    new_usage,
    shared_key,
)
from ._body import Body, jsonl_body
from ._sdk import (
    NO_SDK_RETRIES,
    SDKProvider,
    http_module_of,
    parse_result_lines,
    shared_ssl_context,
)

if TYPE_CHECKING:
    from openai import AsyncOpenAI

__all__ = ["OpenAIProvider"]

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
RESPONSES = "/v1/responses"
COMPLETIONS = "/v1/completions"
_ENDPOINTS = frozenset({CHAT, EMBEDDINGS, RESPONSES, COMPLETIONS})

# Room for the envelope around each body: custom_id (at most 64 chars), method, url.
_ENVELOPE = len(b'{"custom_id":"","method":"POST","url":"","body":}\n') + 64

_STATES: dict[str, tuple[BatchState, Outcome | None]] = {
    "validating": ("validating", None),
    "in_progress": ("in_progress", None),
    "finalizing": ("finalizing", None),
    "cancelling": ("cancelling", None),
    "completed": ("ended", "completed"),
    "failed": ("ended", "failed"),
    "expired": ("ended", "expired"),
    "cancelled": ("ended", "cancelled"),
}


@functools.lru_cache(maxsize=64)
def normalize_endpoint(endpoint: str) -> str:
    """Accept ``chat/completions``, ``/chat/completions`` or ``/v1/chat/completions``."""
    path = "/" + endpoint.strip().lstrip("/")
    if not path.startswith("/v1/"):
        path = "/v1" + path
    return path.rstrip("/")


class OpenAIProvider(SDKProvider["AsyncOpenAI"]):
    """OpenAI's Batch API, or any server that speaks it.

    Args:
        api_key: defaults to ``OPENAI_API_KEY``.
        base_url: defaults to ``OPENAI_BASE_URL``, else the OpenAI API; it includes ``/v1``.
        organization, project, default_headers, timeout, max_retries: passed to the SDK client.
        completion_window: the batch's window; ``"24h"`` on OpenAI, some compatible servers
            accept shorter ones.
        file_purpose: the upload's ``purpose``; ``"batch"`` on OpenAI.
        max_requests, max_bytes, max_embedding_inputs: per-batch limits, for servers whose
            limits are lower than OpenAI's.
        client: an ``AsyncOpenAI`` to use instead of building one.
    """

    name = "openai"
    default_host = "api.openai.com"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        completion_window: str = "24h",
        file_purpose: str = "batch",
        max_requests: int = 50_000,
        max_bytes: int = 200_000_000,
        max_embedding_inputs: int = 50_000,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._organization = organization
        self._project = project
        self._default_headers = dict(default_headers or {})
        self._timeout = timeout
        self._max_retries = max_retries
        self.completion_window = completion_window
        self.file_purpose = file_purpose
        self._limits = Limits(max_requests, max_bytes)
        self._embedding_limits = Limits(max_requests, max_bytes, max_embedding_inputs)
        self._setup(
            client,
            self._api_key,
            (base_url or os.environ.get("OPENAI_BASE_URL") or "").rstrip("/") or None,
            (
                organization,
                project,
                tuple(sorted(self._default_headers.items())),
                completion_window,
                file_purpose,
                max_requests,
                max_bytes,
                max_embedding_inputs,
            ),
        )

    def _new_client(self) -> AsyncOpenAI:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient

        kwargs: dict[str, Any] = {
            "http_client": DefaultAsyncHttpxClient(
                verify=shared_ssl_context(), auth=self._url_credentials
            ),
            "api_key": self._api_key,
            "base_url": self._base_url,
            "organization": self._organization,
            "project": self._project,
            "default_headers": self._default_headers or None,
        }
        if self._timeout is not None:
            kwargs["timeout"] = self._timeout
        if self._max_retries is not None:
            kwargs["max_retries"] = self._max_retries
        return AsyncOpenAI(**kwargs)

    # -- on the caller's thread ---------------------------------------------------------------

    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Line:
        path = normalize_endpoint(endpoint)
        if path not in _ENDPOINTS:
            raise UnsupportedEndpointError(
                f"openai cannot batch {endpoint!r}; it batches {', '.join(sorted(_ENDPOINTS))}"
            )
        data = encode_body(body, _SDK_DUMPS[path])
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError(f"a request to {path} needs a 'model' string")
        if body.get("stream"):
            raise InvalidRequestError("stream=True cannot run in a batch; batches do not stream")
        inputs = 1
        if path == EMBEDDINGS:
            value = body.get("input")
            if value is None or value == "" or value == []:
                raise InvalidRequestError("an embeddings request needs a non-empty 'input'")
            if isinstance(value, list) and value and not isinstance(value[0], int):
                inputs = len(value)
            deterministic = True
        else:
            # OpenAI samples at temperature 1 unless told otherwise.
            deterministic = body.get("temperature") == 0 and body.get("n", 1) == 1
        return Line(
            key=shared_key(path, model),
            endpoint=path,
            data=data,
            nbytes=len(data) + len(path) + _ENVELOPE,
            inputs=inputs,
            deterministic=deterministic,
            model=model,
        )

    def limits(self, key: Hashable) -> Limits:
        endpoint = key[0] if isinstance(key, tuple) else None
        return self._embedding_limits if endpoint == EMBEDDINGS else self._limits

    # -- on the scheduler's loop --------------------------------------------------------------

    async def submit(
        self,
        key: Hashable,
        lines: Sequence[Line],
        metadata: Mapping[str, str],
        before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchStatus:
        endpoint = lines[0].endpoint
        with _jsonl(lines, endpoint) as body:
            uploaded = await self.client.files.create(
                # A file object: the SDK's multipart upload reads it 64 KiB at a time.
                file=("batch-llm.jsonl", cast("IO[bytes]", body.file()), "application/jsonl"),
                purpose=self.file_purpose,  # type: ignore[arg-type]
            )
        batch = await self._create_once(
            before_create,
            lambda: self.client.with_options(**NO_SDK_RETRIES).batches.create(
                input_file_id=uploaded.id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window=self.completion_window,  # type: ignore[arg-type]
                metadata=_clip_metadata(metadata) or None,
            ),
        )
        return self._status(batch)

    async def poll(self, status: BatchStatus) -> BatchStatus:
        return self._status(await self.client.batches.retrieve(status.batch_id))

    async def cancel(self, status: BatchStatus) -> BatchStatus:
        return self._status(await self.client.batches.cancel(status.batch_id))

    async def list_batches(self, limit: int = 20) -> list[BatchStatus]:
        found: list[BatchStatus] = []
        if limit <= 0:
            return found
        # The SDK pages on; stop as soon as there are enough.
        async for batch in self.client.batches.list(limit=min(limit, 100)):
            found.append(self._status(batch))
            if len(found) >= limit:
                break
        return found

    def result_streams(self, status: BatchStatus) -> list[str]:
        batch = status.handle
        return [f for f in (batch.output_file_id, batch.error_file_id) if f]

    @contextlib.asynccontextmanager
    async def open_stream(
        self, status: BatchStatus, name: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        async with self.client.files.with_streaming_response.content(name) as response:
            yield response.iter_bytes()

    def parse_stream(
        self, status: BatchStatus, name: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        batch_id, endpoint = status.batch_id, status.endpoint or CHAT
        return parse_result_lines(
            chunks,
            functools.partial(self._outcome, batch_id=batch_id, endpoint=endpoint),
            id_field="custom_id",
            batch_id=batch_id,
            stream=name,
        )

    async def find_batch(
        self, intent_id: str, created_after: float, requests: int | None = None
    ) -> BatchStatus | None:
        # Newest first; stop once past the intent's time (with slack for clock skew).
        async for batch in self.client.batches.list(limit=100):
            if (batch.metadata or {}).get(INTENT_KEY) == intent_id:
                return self._status(batch)
            if batch.created_at < created_after - 300:
                return None
        return None

    async def realtime(self, prepared: Line) -> Any:
        body = await self.client.post(
            prepared.endpoint.removeprefix("/v1"), body=json.loads(prepared.data), cast_to=object
        )
        try:
            self.check_answer(prepared, body)
        except ValueError as exc:
            raise MalformedResultError(f"the realtime answer to this request has {exc}") from None
        return body

    def checks_answers(self, endpoint: str | None) -> bool:
        return endpoint is None or normalize_endpoint(endpoint) == EMBEDDINGS

    def check_answer(self, prepared: Line, body: Any) -> None:
        """An embeddings answer holds one vector per input, indexed 0 to n-1: with one too
        few or too many, no vector can be trusted to belong to its text."""
        if prepared.endpoint != EMBEDDINGS:
            return
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ValueError(f"no embedding vectors for its {prepared.inputs} input(s)")
        if len(data) != prepared.inputs:
            raise ValueError(f"{len(data)} embedding vectors for its {prepared.inputs} input(s)")
        indexes = [item.get("index") if isinstance(item, dict) else None for item in data]
        ints = [i for i in indexes if type(i) is int]
        if len(ints) != len(indexes) or sorted(ints) != list(range(len(data))):
            raise ValueError(
                f"embedding vectors whose indexes are not 0 to {len(data) - 1} "
                f"(one per input, each once)"
            )

    def usage(self, endpoint: str, body: Any, key: Hashable = None) -> Usage | None:
        """Chat and completions report ``prompt_tokens``/``completion_tokens`` (cached tokens
        in ``prompt_tokens_details``), embeddings ``prompt_tokens`` alone, and responses
        ``input_tokens``/``output_tokens`` (cached in ``input_tokens_details``)."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        model = body.get("model") or (key[1] if isinstance(key, tuple) else "")
        if "prompt_tokens" in usage:
            details = usage.get("prompt_tokens_details")
            return new_usage(
                (
                    str(model),
                    usage["prompt_tokens"] or 0,
                    usage.get("completion_tokens") or 0,
                    (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
                    0,
                )
            )
        details = usage.get("input_tokens_details")
        return new_usage(
            (
                str(model),
                usage.get("input_tokens") or 0,
                usage.get("output_tokens") or 0,
                (details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
                0,
            )
        )

    # -- helpers ------------------------------------------------------------------------------

    def _status(self, batch: Any) -> BatchStatus:
        state, outcome = _STATES.get(batch.status, ("in_progress", None))
        counts = batch.request_counts
        reason = None
        line_errors: dict[int, str] = {}
        if outcome == "failed":
            errors = getattr(batch.errors, "data", None) or []
            reason = "; ".join(_describe_batch_error(e) for e in errors) or "no reason given"
            line_errors = {
                int(e.line): _describe_batch_error(e) for e in errors if getattr(e, "line", None)
            }
        return BatchStatus(
            batch_id=batch.id,
            state=state,
            raw_status=batch.status,
            total=counts.total if counts else 0,
            succeeded=counts.completed if counts else 0,
            failed=counts.failed if counts else 0,
            outcome=outcome,
            reason=reason,
            line_errors=line_errors,
            endpoint=getattr(batch, "endpoint", None),
            times=_times(batch),
            handle=batch,
        )

    def _outcome(self, row: Mapping[str, Any], batch_id: str, endpoint: str) -> Any:
        response = row.get("response")
        custom_id = row.get("custom_id")
        if response:
            status_code = response.get("status_code") or 0
            if 200 <= status_code < 300:
                return response.get("body")
            return self._status_error(
                int(status_code), response.get("body"), response.get("request_id"), endpoint
            )
        error = row.get("error") or {}
        code = error.get("code") or "unknown"
        message = f"{error.get('message') or 'request was not run'} (batch {batch_id}, {code})"
        if code == "batch_expired":
            return BatchExpiredError(message, batch_id=batch_id, custom_id=custom_id)
        if code == "batch_cancelled":
            return BatchCancelledError(message, batch_id=batch_id, custom_id=custom_id)
        return BatchError(message, batch_id=batch_id, custom_id=custom_id)

    def _status_error(
        self, status_code: int, body: Any, request_id: str | None, endpoint: str
    ) -> BaseException:
        """The exception the SDK raises when the realtime call answers this status and body."""
        client = self.client
        httpx = http_module_of(client)
        url = str(client.base_url).rstrip("/") + endpoint.removeprefix("/v1")
        headers = {"x-request-id": request_id} if request_id else {}
        response = httpx.Response(
            status_code, json=body, headers=headers, request=httpx.Request("POST", url)
        )
        return client._make_status_error_from_response(response)


def _jsonl(lines: Sequence[Line], endpoint: str) -> Body:
    """The batch's input file, one line per request, made as the upload reads it."""
    middle = b'","method":"POST","url":"' + endpoint.encode() + b'","body":'
    return jsonl_body(lines, b'{"custom_id":"', middle)


def _sdk_dumps(path: str, body: Mapping[str, Any]) -> bytes:
    """The bytes the openai SDK's realtime call sends for ``body``: its params transform
    (pydantic models in typed places dumped, dates formatted), then its JSON encoder
    (``datetime`` as ISO 8601, pydantic models dumped by alias)."""
    from openai._utils._json import openapi_dumps  # older SDKs: ImportError, plain JSON only
    from openai._utils._transform import maybe_transform

    return openapi_dumps(maybe_transform(dict(body), _params_type(path)))


def _params_type(path: str) -> Any:
    """The params type the SDK's create method transforms its body with, for ``path``."""
    if path == CHAT:
        from openai.types.chat import completion_create_params as chat

        return chat.CompletionCreateParamsNonStreaming
    if path == RESPONSES:
        from openai.types.responses import response_create_params

        return response_create_params.ResponseCreateParamsNonStreaming
    if path == EMBEDDINGS:
        from openai.types import embedding_create_params

        return embedding_create_params.EmbeddingCreateParams
    from openai.types import completion_create_params

    return completion_create_params.CompletionCreateParamsNonStreaming


# One per endpoint, built once: prepare runs for every request.
_SDK_DUMPS = {path: functools.partial(_sdk_dumps, path) for path in _ENDPOINTS}


def _times(batch: Any) -> dict[str, float]:
    """The batch's ``*_at`` timestamps that are set, by their name without ``_at``."""
    times: dict[str, float] = {}
    for name in _TIMESTAMPS:
        value = getattr(batch, f"{name}_at", None)
        if isinstance(value, int | float):
            times[name] = float(value)
    return times


_TIMESTAMPS = (
    "created",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
    "expires",
)


def _describe_batch_error(error: Any) -> str:
    line = f"line {error.line}: " if getattr(error, "line", None) is not None else ""
    code = f" ({error.code})" if getattr(error, "code", None) else ""
    return f"{line}{getattr(error, 'message', None) or 'error'}{code}"


def _clip_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """OpenAI takes at most 16 pairs, keys up to 64 and values up to 512 characters. The
    journal's intent id goes first, so that reconciling a crash still finds the batch however
    many pairs the user stamps."""
    ordered = sorted(metadata.items(), key=lambda item: item[0] != INTENT_KEY)
    clipped: dict[str, str] = {}
    for key, value in ordered[:16]:
        clipped[str(key)[:64]] = str(value)[:512]
    return clipped
