"""Gemini batch mode adapter (Gemini Developer API, through google-genai).

One batch holds one model and one endpoint (content generation or embeddings). A batch whose
requests fit under the inline limit (20 MB) is created with the requests inline; a bigger one
is uploaded as a JSONL file through the SDK's resumable upload first. Results come back in input
order, inline in the finished operation or in a responses file.

Request bodies
--------------
A body is what a realtime call passes to the SDK, so framework wrappers can hand over the
parameters they already build (LangChain's ``ChatGoogleGenerativeAI._prepare_request`` returns
exactly these keyword arguments):

* ``generateContent``: ``{"model", "contents", "config"}``, the arguments of
  ``client.models.generate_content(model=..., contents=..., config=...)``. ``contents`` and
  ``config`` may be google-genai objects (``types.Content``, ``types.GenerateContentConfig``)
  or their dicts. ``prepare`` turns them into the REST ``GenerateContentRequest`` with the SDK's
  own request converter, the one ``generate_content`` uses, so the batch sends exactly what the
  realtime call would have sent. Config fields that only steer the client (``http_options``,
  ``automatic_function_calling``) have no batch meaning and are dropped.
* ``embedContent``: ``{"model", "contents", "config"}``, the arguments of
  ``client.models.embed_content(...)`` for **one** content (one text): a batch line embeds one
  content, so submit one request per text.

A body may instead already be REST-shaped: ``{"model", ...GenerateContentRequest fields...}``
(``contents``, ``generationConfig``, ``systemInstruction``, ``tools``, ...) or
``{"model", "content", "taskType", ...}`` for embeddings. Any top-level key other than
``model``/``contents``/``config`` marks a body as REST-shaped; it is sent as given.

Results
-------
* ``generateContent``: the JSON of the ``GenerateContentResponse`` exactly as the realtime REST
  call returns it (camelCase). A wrapper builds ``types.GenerateContentResponse`` from it the
  way the SDK does for a realtime call.
* ``embedContent``: ``{"embeddings": [{"values": [...]}]}``, what the realtime
  ``embed_content`` call receives from ``batchEmbedContents`` for one content.
* A failed request is the ``google.genai.errors.ClientError``/``ServerError`` the realtime call
  would raise, with the provider's code and message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import io
import json
import os
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Hashable,
    Mapping,
    Sequence,
)
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from .._errors import (
    BatchError,
    InvalidRequestError,
    MalformedResultError,
    UnsupportedEndpointError,
)
from .._gc import gc_paused
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
from ._body import jsonl_body
from ._sdk import SDKProvider, malformed_result, parse_result_lines, shared_ssl_context

if TYPE_CHECKING:
    from google.genai import Client

__all__ = ["EMBED", "GENERATE", "GRPC_TO_HTTP", "GeminiProvider"]

GENERATE = "generateContent"
EMBED = "embedContent"
_ENDPOINTS = {
    "generatecontent": GENERATE,
    "generate_content": GENERATE,
    "embedcontent": EMBED,
    "embed_content": EMBED,
    "batchembedcontents": EMBED,
}
# The batch-creation method of each endpoint.
_CREATE = {GENERATE: "batchGenerateContent", EMBED: "asyncBatchEmbedContent"}
# The realtime method whose URL an error names.
_REALTIME = {GENERATE: "generateContent", EMBED: "batchEmbedContents"}
_SDK_KEYS = frozenset({"model", "contents", "config"})
# Config fields that steer the SDK client, not the request.
_CLIENT_ONLY_CONFIG = frozenset(
    {"http_options", "automatic_function_calling", "should_return_http_response"}
)
# Room for the envelope of one line: the larger of the inline item and the file line.
_ENVELOPE = len(b'{"request":,"metadata":{"key":""}},') + 64
_INSTALL_HINT = (
    'the Gemini adapter needs google-genai; install it with: pip install "batch-llm[gemini]"'
)

_STATES: dict[str, tuple[BatchState, Outcome | None]] = {
    "BATCH_STATE_UNSPECIFIED": ("validating", None),
    "BATCH_STATE_PENDING": ("validating", None),
    "BATCH_STATE_RUNNING": ("in_progress", None),
    "BATCH_STATE_SUCCEEDED": ("ended", "completed"),
    "BATCH_STATE_FAILED": ("ended", "failed"),
    "BATCH_STATE_CANCELLED": ("ended", "cancelled"),
    "BATCH_STATE_EXPIRED": ("ended", "expired"),
}

# A batch item's error is a google.rpc.Status with a gRPC code; the realtime call would have
# answered the matching HTTP status (and the SDK picks ClientError/ServerError by it).
GRPC_TO_HTTP: dict[int, tuple[int, str]] = {
    1: (499, "CANCELLED"),
    2: (500, "UNKNOWN"),
    3: (400, "INVALID_ARGUMENT"),
    4: (504, "DEADLINE_EXCEEDED"),
    5: (404, "NOT_FOUND"),
    6: (409, "ALREADY_EXISTS"),
    7: (403, "PERMISSION_DENIED"),
    8: (429, "RESOURCE_EXHAUSTED"),
    9: (400, "FAILED_PRECONDITION"),
    10: (409, "ABORTED"),
    11: (400, "OUT_OF_RANGE"),
    12: (501, "UNIMPLEMENTED"),
    13: (500, "INTERNAL"),
    14: (503, "UNAVAILABLE"),
    15: (500, "DATA_LOSS"),
    16: (401, "UNAUTHENTICATED"),
}
_HTTP_STATUS_NAMES = {http: name for http, name in GRPC_TO_HTTP.values()}
_HTTP_STATUS_NAMES.update({400: "INVALID_ARGUMENT", 409: "ABORTED", 500: "INTERNAL"})

# The name of the result stream that is the finished operation itself (inline results).
_INLINE_STREAM = "operation"

# Parsing a generation config costs far more than its contents; a fan-out usually shares one.
_CONFIG_CACHE_SIZE = 256


def _genai() -> Any:
    """google.genai, imported on first use: it is an optional dependency."""
    try:
        return importlib.import_module("google.genai")
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc


@functools.cache
def _converter() -> Any:
    """An offline SDK client whose only job is to run the SDK's request converters.

    The converters consult their client for the API flavour (Developer API, not Vertex); this
    one never sends anything.
    """
    _genai()
    from google.genai import _api_client

    context = shared_ssl_context()
    return _api_client.BaseApiClient(
        vertexai=False,
        api_key="batch-llm-offline-converter",
        http_options={
            "base_url": "https://converter.invalid/",
            "client_args": {"verify": context},
            "async_client_args": {"verify": context, "ssl": context},
        },
    )


@functools.lru_cache(maxsize=64)
def normalize_endpoint(endpoint: str) -> str | None:
    """``generateContent``/``generate_content``/``models/x:generateContent`` -> ``generateContent``;
    likewise for embeddings. None if it is neither."""
    name = endpoint.strip().rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return _ENDPOINTS.get(name.lower())


@functools.lru_cache(maxsize=1024)
def model_name(model: str) -> str:
    """The resource name the API uses: ``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``."""
    from google.genai import _transformers

    return str(_transformers.t_model(_converter(), model))


class GeminiProvider(SDKProvider["Client"]):
    """Gemini batch mode (Gemini Developer API), through google-genai.

    See the module documentation for the request bodies and results.

    Args:
        api_key: defaults to ``GOOGLE_API_KEY``, else ``GEMINI_API_KEY``.
        base_url: defaults to ``GOOGLE_GEMINI_BASE_URL``, else Google's; the host root (the SDK
            adds the API version).
        api_version: the API version the SDK calls (its default when None).
        default_headers: sent with every call.
        timeout: seconds per HTTP call.
        max_retries: retries of a failed call (429 and 5xx); 2 by default, like the other SDKs
            (google-genai itself does not retry unless told to).
        inline_limit: largest create-request payload sent inline; bigger batches are uploaded
            as a file. Google caps inline requests at 20 MB.
        max_requests, max_bytes: per-batch limits (a batch input file may be 2 GB; Google
            documents no request count, so 100,000 is a cautious default).
        display_name: the batches' display name.
        client: a ``google.genai.Client`` (Developer API) to use instead of building one.
    """

    name = "gemini"
    default_host = "generativelanguage.googleapis.com"

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        api_version: str | None = None,
        default_headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        inline_limit: int = 20_000_000,
        max_requests: int = 100_000,
        max_bytes: int = 2_000_000_000,
        display_name: str = "batch-llm",
        client: Client | None = None,
    ) -> None:
        self._api_key = (
            api_key
            if api_key is not None
            else os.environ.get("GOOGLE_API_KEY") or os.environ.get("GEMINI_API_KEY")
        )
        self._api_version = api_version
        self._default_headers = dict(default_headers or {})
        self._timeout = timeout
        self._max_retries = 2 if max_retries is None else max_retries
        self.inline_limit = inline_limit
        self.display_name = display_name
        self._limits = Limits(max_requests, max_bytes)
        if client is not None and getattr(client, "vertexai", False):
            raise InvalidRequestError(
                "GeminiProvider drives the Gemini Developer API; Vertex AI batch prediction "
                "(GCS/BigQuery input) is not supported"
            )
        # The httpx client under each SDK client this adapter built, closed with it.
        self._transports: weakref.WeakKeyDictionary[Client, Any] = weakref.WeakKeyDictionary()
        self._setup(
            client,
            self._api_key,
            base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None,
            (
                api_version,
                tuple(sorted(self._default_headers.items())),
                timeout,
                self._max_retries,
                inline_limit,
                max_requests,
                max_bytes,
                display_name,
            ),
        )
        # custom_ids of submitted batches in input order, for results without a key; and each
        # batch's endpoint and model (for error URLs and the shape of embedding results).
        self._order: dict[str, tuple[str, ...]] = {}
        self._endpoints: dict[str, tuple[str, str]] = {}

    def _new_client(self) -> Client:
        genai = _genai()
        import httpx

        context = shared_ssl_context()
        # An httpx client of our own: the shared TLS context, and no aiohttp session (which
        # google-genai prefers when aiohttp is installed) to tie to this loop.
        transport_client = httpx.AsyncClient(
            verify=context, timeout=None, follow_redirects=True, auth=self._url_credentials
        )
        options: dict[str, Any] = {
            "client_args": {"verify": context},
            "async_client_args": {"verify": context},
            "httpx_async_client": transport_client,
            "retry_options": {"attempts": self._max_retries + 1},
        }
        if self._base_url is not None:
            options["base_url"] = self._base_url
        if self._api_version is not None:
            options["api_version"] = self._api_version
        if self._default_headers:
            options["headers"] = dict(self._default_headers)
        if self._timeout is not None:
            options["timeout"] = int(self._timeout * 1000)  # the SDK counts milliseconds
        client: Client = genai.Client(api_key=self._api_key, http_options=options)
        self._transports[client] = transport_client
        return client

    async def _close_client(self, client: Client) -> None:
        await client.aio.aclose()
        client.close()
        transport = self._transports.pop(client, None)
        if transport is not None:
            await transport.aclose()

    # -- on the caller's thread ---------------------------------------------------------------

    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Line:
        path = normalize_endpoint(endpoint)
        if path is None:
            raise UnsupportedEndpointError(
                f"gemini cannot batch {endpoint!r}; it batches {GENERATE} and {EMBED}"
            )
        if not isinstance(body, Mapping):
            raise InvalidRequestError(
                f"a request body must be a mapping, got {type(body).__name__}"
            )
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequestError(f"a {path} request needs a 'model' string")
        if body.get("stream"):
            raise InvalidRequestError("stream=True cannot run in a batch; batches do not stream")
        try:
            name = model_name(model)
            if set(body) <= _SDK_KEYS:
                request = (
                    _generate_request(body) if path == GENERATE else _embed_request(name, body)
                )
            else:
                if "config" in body:
                    raise InvalidRequestError(
                        "a body is either SDK arguments (model, contents, config) or a REST "
                        f"request; this one mixes 'config' with {sorted(set(body) - _SDK_KEYS)}"
                    )
                request = {k: v for k, v in body.items() if k != "model"}
        except InvalidRequestError:
            raise
        except (ValueError, TypeError) as exc:  # the SDK's own checks (pydantic errors included)
            raise InvalidRequestError(f"invalid {path} request: {exc}") from None
        data = encode_body(request)
        return Line(
            key=shared_key(path, name),
            endpoint=path,
            data=data,
            nbytes=len(data) + _ENVELOPE,
            deterministic=path == EMBED or _greedy(request),
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
        """Create the batch inline, or upload the lines as a file first when they are too big.

        ``metadata`` goes into the display name (Gemini batches carry no metadata), which is
        also how ``find_batch`` recognizes a batch.
        """
        if not isinstance(key, tuple):
            raise InvalidRequestError(f"not a gemini batch key: {key!r}")
        endpoint, model = key
        display = _display_name(self.display_name, metadata)
        items: list[bytes] = []
        for line in lines:
            items += (
                b',{"request":' if items else b'{"request":',
                line.data,
                b',"metadata":{"key":"',
                line.custom_id.encode(),
                b'"}}',
            )
        head = b'{"batch":{"displayName":' + json.dumps(display).encode() + b',"inputConfig":'
        size = len(head) + sum(len(item) for item in items) + len(b'{"requests":{"requests":[]}}}}')
        if size <= self.inline_limit:
            payload = head + b'{"requests":{"requests":[' + b"".join(items) + b"]}}}}"
            items.clear()
        else:
            items.clear()
            name = await self._upload(lines, display)
            payload = head + b'{"fileName":' + json.dumps(name).encode() + b"}}}"
        operation, raw = await self._create_once(
            before_create,
            lambda: self._request("post", f"{model}:{_CREATE[endpoint]}", payload, retries=False),
        )
        status = self._status(operation, raw)
        self._order[status.batch_id] = tuple(line.custom_id for line in lines)
        self._endpoints[status.batch_id] = (endpoint, model)
        return status

    async def poll(self, status: BatchStatus) -> BatchStatus:
        return self._status(*await self._request("get", status.batch_id))

    async def cancel(self, status: BatchStatus) -> BatchStatus:
        await self.client.aio.batches.cancel(name=status.batch_id)
        return await self.poll(status)

    async def list_batches(self, limit: int = 20) -> list[BatchStatus]:
        found: list[BatchStatus] = []
        token = ""
        while len(found) < limit:
            query = f"batches?pageSize={min(limit - len(found), 100)}"
            page, _ = await self._request("get", query + (f"&pageToken={token}" if token else ""))
            found += [self._status(operation) for operation in page.get("operations") or []]
            token = str(page.get("nextPageToken") or "")
            if not token:
                break
        return found[:limit]

    def result_streams(self, status: BatchStatus) -> list[str]:
        handle = status.handle
        return list(handle.streams) if isinstance(handle, _Operation) else []

    @contextlib.asynccontextmanager
    async def open_stream(
        self, status: BatchStatus, name: str
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        if name == _INLINE_STREAM:
            handle = status.handle
            raw = handle.raw if isinstance(handle, _Operation) else b""
            yield _once(raw)
            return
        chunks = self._download(name)
        try:
            yield chunks
        finally:
            await chunks.aclose()

    async def parse_stream(
        self, status: BatchStatus, name: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        batch_id = status.batch_id
        endpoint, model = self._endpoints.get(batch_id, (status.endpoint or GENERATE, ""))
        outcome = self._outcome
        if name != _INLINE_STREAM:
            rows = parse_result_lines(
                chunks,
                functools.partial(outcome, endpoint=endpoint, model=model),
                id_field="key",
                batch_id=batch_id,
                stream=name,
            )
            async for answers in rows:
                yield answers
            self._order.pop(batch_id, None)
            return
        raw = b"".join([chunk async for chunk in chunks])
        with gc_paused():
            operation = json.loads(raw) if raw else {}
        model = model or str((operation.get("metadata") or {}).get("model") or "")
        output = _output(operation) or {}
        inline = output.get("inlinedResponses") or output.get("inlinedEmbedContentResponses")
        entries = (inline.get("inlinedResponses") or []) if isinstance(inline, Mapping) else []
        order = self._order.get(batch_id, ())
        step = 2000
        for start in range(0, len(entries), step):
            chunk = []
            with gc_paused():
                for index, entry in enumerate(entries[start : start + step], start):
                    metadata = entry.get("metadata") if isinstance(entry, Mapping) else None
                    key = metadata.get("key") if isinstance(metadata, Mapping) else None
                    if not isinstance(key, str):
                        if index >= len(order):
                            continue  # no key and no recorded order: left for the caller
                        key = order[index]
                    try:
                        if not isinstance(entry, Mapping):
                            raise ValueError("it is not an object")
                        answer = outcome(entry, endpoint, model)
                    except Exception as exc:  # this entry alone is unusable
                        answer = malformed_result(
                            batch_id, key, "the inline responses", index + 1, str(exc), "entry"
                        )
                    chunk.append((key, answer))
            yield chunk
        # Read in full: what was kept for this batch's results is no longer needed.
        self._order.pop(batch_id, None)

    async def find_batch(
        self, intent_id: str, created_after: float, requests: int | None = None
    ) -> BatchStatus | None:
        """The batch whose display name carries ``intent_id`` (newest first)."""
        tag = f"{INTENT_KEY}={intent_id}"
        token = ""
        while True:
            query = "batches?pageSize=100" + (f"&pageToken={token}" if token else "")
            page, _ = await self._request("get", query)
            for operation in page.get("operations") or []:
                metadata = operation.get("metadata") or {}
                if tag in str(metadata.get("displayName") or ""):
                    return await self.poll(
                        BatchStatus(str(operation.get("name")), "validating", "")
                    )
                created = _seconds(metadata.get("createTime"))
                if created is not None and created < created_after - 300:
                    return None
            token = str(page.get("nextPageToken") or "")
            if not token:
                return None

    async def realtime(self, prepared: Line) -> Any:
        """The same request through the realtime API; the answer as batch results give it."""
        endpoint, model = cast("tuple[str, str]", prepared.key)
        if endpoint == EMBED:
            payload = b'{"requests":[{"model":' + json.dumps(model).encode() + b","
            payload += prepared.data[1:] + b"]}"
            answer, _ = await self._request("post", f"{model}:batchEmbedContents", payload)
            try:
                _check_one_embedding(answer)
            except ValueError as exc:
                raise MalformedResultError(f"the realtime {EMBED} answer: {exc}") from None
        else:
            answer, _ = await self._request("post", f"{model}:generateContent", prepared.data)
        return answer

    def is_not_found(self, exc: BaseException) -> bool:
        return getattr(exc, "code", None) == 404

    def usage(self, endpoint: str, body: Any, key: Hashable = None) -> Usage | None:
        """A response's ``usageMetadata``: the prompt count includes cached and tool-use
        prompt tokens; thinking tokens are billed as output. Embedding answers carry no usage."""
        usage = body.get("usageMetadata") if isinstance(body, dict) else None
        if not isinstance(usage, dict):
            return None
        model = body.get("modelVersion") or (key[1] if isinstance(key, tuple) else "")
        return new_usage(
            (
                str(model).removeprefix("models/"),
                (usage.get("promptTokenCount") or 0) + (usage.get("toolUsePromptTokenCount") or 0),
                (usage.get("candidatesTokenCount") or 0) + (usage.get("thoughtsTokenCount") or 0),
                usage.get("cachedContentTokenCount") or 0,
                0,
            )
        )

    # -- helpers ------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, payload: bytes | None = None, *, retries: bool = True
    ) -> tuple[Any, bytes]:
        """One call through the SDK's own transport (auth, base URL, retries, error types),
        with the body sent as the bytes given; the answer decoded, and as it came.

        The public methods re-encode every request and parse every inline result into SDK
        objects; a batch of tens of thousands of lines needs neither.
        """
        api_client = self.client.aio._api_client
        http_request = api_client._build_request(method, path, {}, None)
        if payload is not None:
            http_request.data = payload
        # Per-call retry options replace the client's: one attempt where a retry could pay twice.
        options: Any = None if retries else {"retry_options": {"attempts": 1}}
        response = await api_client._async_request(
            http_request=http_request, http_options=options, stream=False
        )
        text = response.response_stream[0] if response.response_stream else ""
        raw = text.encode() if isinstance(text, str) else bytes(text or b"")
        if not raw:
            return {}, raw
        with gc_paused():
            return json.loads(raw), raw

    async def _upload(self, lines: Sequence[Line], display: str) -> str:
        # Made as the SDK reads it (8 MB at a time), never whole in memory.
        with jsonl_body(lines, b'{"key":"', b'","request":') as body:
            uploaded = await self.client.aio.files.upload(
                file=body.file(),
                config={"mime_type": "application/jsonl", "display_name": display},
            )
        if not uploaded.name:
            raise BatchError("the Gemini file upload returned no file name")
        return str(uploaded.name)

    async def _download(self, name: str) -> AsyncGenerator[bytes, None]:
        """A responses file as it arrives: the SDK writes each chunk to a sink, read here."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        class _Sink:
            async def write(self, chunk: bytes) -> None:
                queue.put_nowait(chunk)

        async def run() -> None:
            try:
                # Any object with a write() method will do; the SDK awaits an async one.
                sink = cast("io.IOBase", _Sink())
                await self.client.aio.files.download(file=name, destination=sink)
            finally:
                queue.put_nowait(None)

        task = asyncio.get_running_loop().create_task(run())
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            await task  # re-raises a failed download
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _status(self, operation: Mapping[str, Any], raw: bytes = b"") -> BatchStatus:
        metadata = operation.get("metadata") or {}
        raw_state = str(metadata.get("state") or "").replace("JOB_STATE_", "BATCH_STATE_")
        if not raw_state:
            raw_state = "BATCH_STATE_SUCCEEDED" if operation.get("done") else "BATCH_STATE_PENDING"
        state, outcome = _STATES.get(raw_state, ("in_progress", None))
        if operation.get("error") and state != "ended":
            state, outcome = "ended", "failed"
        stats = metadata.get("batchStats") or {}
        reason = None
        if outcome == "failed":
            error = operation.get("error") or {}
            reason = str(error.get("message") or "no reason given")
        batch_id = str(operation.get("name") or metadata.get("name"))
        known = self._endpoints.get(batch_id)
        endpoint = known[0] if known else _endpoint_of(operation)
        # Where the results are; the raw answer is kept only when it is itself the results
        # (inline), so the parsed operation is not held next to it.
        output = _output(operation) if state == "ended" else None
        streams: tuple[str, ...] = ()
        if output is not None and isinstance(output.get("responsesFile"), str):
            streams = (str(output["responsesFile"]),)
        elif output is not None:
            streams = (_INLINE_STREAM,)
        return BatchStatus(
            batch_id=batch_id,
            state=state,
            raw_status=raw_state,
            total=_count(stats.get("requestCount")),
            succeeded=_count(stats.get("successfulRequestCount")),
            failed=_count(stats.get("failedRequestCount")),
            outcome=outcome,
            reason=reason,
            endpoint=endpoint,
            times=_times(metadata),
            handle=_Operation(streams, raw if streams == (_INLINE_STREAM,) else b""),
        )

    def _outcome(self, entry: Mapping[str, Any], endpoint: str, model: str) -> Any:
        """One result entry's answer or error; raises ``ValueError`` for an entry that is
        neither (its caller then gets a ``MalformedResultError``)."""
        response = entry.get("response")
        if isinstance(response, Mapping):
            if endpoint == EMBED or "embedding" in response:
                # What the realtime embed_content call receives (batchEmbedContents, one item).
                answer = {"embeddings": [response.get("embedding")]}
                _check_one_embedding(answer)
                return answer
            return response
        error = entry.get("error")
        if isinstance(error, Mapping):
            return self._api_error(error, endpoint, model)
        if response is None and error is None:
            raise ValueError("it has neither a response nor an error")
        raise ValueError("its response or error is not an object")

    def _api_error(self, error: Mapping[str, Any], endpoint: str, model: str) -> BaseException:
        """The google-genai error the realtime call would raise for this batch item's error."""
        from google.genai import errors

        code = error.get("code")
        code = code if isinstance(code, int) else 2
        if code < 100:  # a gRPC code, as batch items carry
            http_status, status_name = GRPC_TO_HTTP.get(code, (500, "UNKNOWN"))
        else:
            http_status = code
            status_name = str(error.get("status") or _HTTP_STATUS_NAMES.get(code, "UNKNOWN"))
        body = {
            "error": {
                "code": http_status,
                "message": str(error.get("message") or "the request failed"),
                "status": status_name,
            }
        }
        if error.get("details"):
            body["error"]["details"] = error["details"]
        import httpx

        base = (self._base_url or "https://generativelanguage.googleapis.com").rstrip("/")
        url = f"{base}/{self._api_version or 'v1beta'}/{model}:{_REALTIME[endpoint]}"
        response = httpx.Response(http_status, json=body, request=httpx.Request("POST", url))
        if 400 <= http_status < 500:
            return errors.ClientError(http_status, body, response)
        if 500 <= http_status < 600:
            return errors.ServerError(http_status, body, response)
        return errors.APIError(http_status, body, response)


# -- request conversion (the SDK's converters, fed plain data) ----------------------------------


def _generate_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The REST ``GenerateContentRequest`` the SDK would send for these arguments."""
    from google.genai import _transformers, models

    contents = body.get("contents")
    if contents is None:
        raise InvalidRequestError("a generateContent request needs 'contents'")
    request: dict[str, Any] = {}
    config = body.get("config")
    if config is not None:
        request.update(_config_fragment(config))
    # Converting dumped dicts rather than SDK objects is the same conversion, five times faster:
    # the converters read SDK objects field by field through pydantic's iterator.
    request["contents"] = [
        models._Content_to_mldev(content.model_dump(exclude_none=True), request, None)
        for content in _transformers.t_contents(contents)
    ]
    return request


def _config_fragment(config: Any) -> dict[str, Any]:
    """``generationConfig``, ``systemInstruction``, ``tools`` ... of a request, from a config."""
    from google.genai import types

    if isinstance(config, Mapping):
        config = types.GenerateContentConfig.model_validate(dict(config))
    try:
        cache_key: str | None = config.model_dump_json(
            exclude_none=True, exclude=set(_CLIENT_ONLY_CONFIG)
        )
    except Exception:  # a config holding Python callables or classes: convert every time
        cache_key = None
    if cache_key is not None:
        return _cached_fragment(cache_key)
    return _convert_config(config)


@functools.lru_cache(maxsize=_CONFIG_CACHE_SIZE)
def _cached_fragment(cache_key: str) -> dict[str, Any]:
    from google.genai import types

    return _convert_config(types.GenerateContentConfig.model_validate_json(cache_key))


def _convert_config(config: Any) -> dict[str, Any]:
    from google.genai import _common, models

    config = config.model_copy(update={field: None for field in _CLIENT_ONLY_CONFIG})
    request = models._GenerateContentParameters_to_mldev(_converter(), {"config": config})
    request.pop("_url", None)
    request.pop("config", None)
    converted: dict[str, Any] = _common.encode_unserializable_types(
        _common.convert_to_dict(request)
    )
    return converted


def _embed_request(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The REST ``EmbedContentRequest`` for one content, as the SDK builds it."""
    from google.genai import _common, _transformers, models, types

    contents = body.get("contents")
    if contents is None:
        raise InvalidRequestError("an embedContent request needs 'contents'")
    if "gemini-embedding-2" in name:  # as the SDK does: these models embed one multimodal content
        contents = _transformers.t_contents(contents)
    params = types._EmbedContentParametersPrivate(
        model=name, contents=contents, config=body.get("config")
    )
    converted = models._EmbedContentParametersPrivate_to_mldev(_converter(), params, None, params)
    requests = _common.encode_unserializable_types(_common.convert_to_dict(converted)).get(
        "requests"
    )
    if not isinstance(requests, list) or len(requests) != 1:
        count = len(requests) if isinstance(requests, list) else 0
        raise InvalidRequestError(
            f"an embedContent batch line embeds one content, this request has {count}; "
            "submit one request per text"
        )
    request: dict[str, Any] = requests[0]
    request.pop("model", None)
    return request


# -- small helpers ------------------------------------------------------------------------------


class _Operation(NamedTuple):
    """What a polled batch leaves for reading its results: the result streams, and the raw
    operation JSON when the results are inline in it."""

    streams: tuple[str, ...]
    raw: bytes


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _check_one_embedding(answer: Mapping[str, Any]) -> None:
    """An embedContent request embeds one content: its answer must hold exactly one vector.

    Raises:
        ValueError: it holds none, or more than one (a caller must never get a wrong one).
    """
    embeddings = answer.get("embeddings")
    vectors = (
        [e for e in embeddings if isinstance(e, Mapping) and isinstance(e.get("values"), list)]
        if isinstance(embeddings, list)
        else []
    )
    count = len(embeddings) if isinstance(embeddings, list) else 0
    if count != 1 or len(vectors) != 1:
        junk = (
            f" (and {count - len(vectors)} entries that are not one)"
            if count > len(vectors)
            else ""
        )
        raise ValueError(
            f"it holds {len(vectors)} embedding vectors{junk} for the request's 1 content"
        )


def _greedy(request: Mapping[str, Any]) -> bool:
    """Whether a request samples greedily (temperature 0, one candidate): one answer only."""
    config = request.get("generationConfig") or {}
    return config.get("temperature") == 0 and config.get("candidateCount", 1) == 1


def _display_name(base: str, metadata: Mapping[str, str]) -> str:
    if not metadata:
        return base
    # The intent tag first: display names are clipped, and find_batch looks for it.
    ordered = sorted(metadata.items(), key=lambda item: item[0] != INTENT_KEY)
    tags = " ".join(f"{k}={v}" for k, v in ordered)
    return f"{base} {tags}"[:512]


def _seconds(timestamp: Any) -> float | None:
    """An RFC 3339 timestamp as Unix seconds (None if absent or unreadable)."""
    if not isinstance(timestamp, str):
        return None
    text = timestamp.replace("Z", "+00:00")
    if "." in text:  # Python before 3.11's fromisoformat reads at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


_TIMESTAMPS = (
    ("created", "createTime"),
    ("updated", "updateTime"),
    ("ended", "endTime"),
    ("expires", "expirationTime"),
)


def _times(metadata: Mapping[str, Any]) -> dict[str, float]:
    """A batch's timestamps that are set, as Unix seconds."""
    times: dict[str, float] = {}
    for name, field in _TIMESTAMPS:
        seconds = _seconds(metadata.get(field))
        if seconds is not None:
            times[name] = seconds
    return times


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _output(operation: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Where the results are: ``metadata.output`` (what the SDK reads), else ``response``."""
    output = (operation.get("metadata") or {}).get("output")
    if not isinstance(output, Mapping):
        output = operation.get("response")
    return output if isinstance(output, Mapping) else None


def _endpoint_of(operation: Mapping[str, Any]) -> str:
    kind = str((operation.get("metadata") or {}).get("@type") or "")
    return EMBED if kind.endswith("EmbedContentBatch") else GENERATE
