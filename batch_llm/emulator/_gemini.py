"""Gemini Developer API routes: realtime generateContent and embeddings, batch mode (inline or
file input), the resumable Files upload and downloads.

Served under ``/v1beta`` (google-genai up to 2.x) and ``/v1`` (3.x). Under ``/v1`` the paths
``/v1/batches/…`` and ``/v1/files/…`` are OpenAI's too, so Gemini takes only requests that carry
a Google API key (``x-goog-api-key`` or ``?key=``). Batch items are answered by the same
functions as realtime calls, and their answers are spliced into the operation (or the
responses file) as already-encoded bytes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from ._api import ProviderApi
from ._faults import LineDamage, shorten_realtime
from ._gemini_shapes import (
    batch_embed_contents,
    count_tokens,
    embed_content,
    error_body,
    error_outcome,
    generate_content,
    model_id,
    rpc_status,
    stream_generate_content,
)
from ._knobs import Knobs
from ._outcome import EmulatedError
from ._server import Request, Response, Router, dumps, rfc3339
from ._stats import StatsRecorder
from ._store import (
    ERROR,
    OK,
    TERMINAL_STATUSES,
    BatchJob,
    JobView,
    Loaded,
    Outcome,
    Store,
    StoredFile,
    ValidationFailed,
)

__all__ = ["MAX_INLINE_BYTES", "GeminiApi"]

# The documented cap on a batch created with inline requests.
MAX_INLINE_BYTES = 20 * 1024 * 1024
VERSIONS = ("v1beta", "v1")
UPLOAD_CHUNK = 8 * 1024 * 1024
_FILE_PREFIX = "batchllm"
_INPUT_PURPOSE = "gemini_batch_input"
_OUTPUT_PURPOSE = "gemini_batch_output"
_TYPE_ROOT = "type.googleapis.com/google.ai.generativelanguage.v1main."
_KINDS = {
    "generate": ("GenerateContentBatch", "GenerateContentBatchOutput"),
    "embed": ("EmbedContentBatch", "EmbedContentBatchOutput"),
}
_STATES = {
    "validating": "BATCH_STATE_PENDING",
    "in_progress": "BATCH_STATE_RUNNING",
    "finalizing": "BATCH_STATE_RUNNING",
    "cancelling": "BATCH_STATE_RUNNING",
    "completed": "BATCH_STATE_SUCCEEDED",
    "failed": "BATCH_STATE_FAILED",
    "expired": "BATCH_STATE_EXPIRED",
    "cancelled": "BATCH_STATE_CANCELLED",
}
# Spliced in place of the already-encoded output when an operation is rendered.
_OUTPUT_SENTINEL = b'"@@batch-llm-output@@"'
_RESPONSE_SENTINEL = b'"@@batch-llm-response@@"'
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). Please "
    "use API Key or other form of API consumer identity to call this API. (batch-llm emulator: "
    "any key works)"
)


def _field(obj: Any, camel: str) -> Any:
    """A field by its JSON name or its proto name: Google accepts both, and the SDK sends
    ``file_name`` for embedding batches."""
    if not isinstance(obj, dict):
        return None
    if camel in obj:
        return obj[camel]
    return obj.get("".join(f"_{c.lower()}" if c.isupper() else c for c in camel))


def _json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}  # no body at all: a request that leaves every field out
    return request.json_object(
        "Invalid JSON payload received.", "Invalid JSON payload received. Expected an object."
    )


def _file_id(name: str) -> str:
    return name.split("/", 1)[1] if name.startswith("files/") else name


@dataclass
class _Upload:
    """A resumable upload in progress."""

    display_name: str
    mime_type: str
    size: int | None
    data: bytearray = field(default_factory=bytearray)


class _GeminiBatch:
    """The store hooks of one Gemini batch (content generation or embeddings)."""

    def __init__(
        self,
        store: Store,
        *,
        kind: str,
        model: str,
        items: list[Any] | None = None,
        file: StoredFile | None = None,
    ) -> None:
        self._store = store
        self._kind = kind
        self._model = model
        self._items = items
        self._file = file
        # Inline items echo their metadata; file lines their key.
        self._metadata: list[Any] = []
        self._inline = items is not None

    def load(self) -> Loaded:
        items, self._items = self._items, None
        file, self._file = self._file, None
        requests: list[Any] = []
        if items is not None:
            for item in items:
                requests.append(item.get("request") if isinstance(item, dict) else None)
                self._metadata.append(item.get("metadata") if isinstance(item, dict) else None)
            keys = [str(i) for i in range(len(requests))]
        else:
            assert file is not None
            keys = []
            for number, raw in enumerate(bytes(file.data).split(b"\n"), 1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise ValidationFailed(
                        [_line_error(f"Line {number} of the input file is not valid JSON.")]
                    ) from None
                if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
                    raise ValidationFailed(
                        [_line_error(f"Line {number} of the input file has no 'request' object.")]
                    )
                keys.append(str(line.get("key", number - 1)))
                requests.append(line["request"])
            if not requests:
                raise ValidationFailed([_line_error("The input file has no requests.")])
        return Loaded(keys, requests, [model_id(self._model)])

    def respond(self, request: Any) -> Outcome:
        model = self._model
        if isinstance(request, dict) and isinstance(request.get("model"), str):
            model = request["model"]
        if self._kind == "embed":
            return embed_content(model, request)
        return generate_content(model, request)

    def error_outcome(self, status: int, message: str) -> Outcome:
        return error_outcome(status, message)

    def finish(self, job: BatchJob) -> dict[str, Any]:
        results = job.results
        job.results = []
        # An expired batch returns nothing at all (Gemini: "EXPIRED ... returns no results").
        if job.ending == "expired":
            return {"output": None}
        items: list[bytes] = []
        damage = LineDamage(job)
        damaging = bool(damage)
        for index, (key, state, outcome) in enumerate(
            zip(job.custom_ids, job.states, results, strict=True)
        ):
            if state not in (OK, ERROR) or outcome is None:
                continue  # dropped, cancelled or never run
            answer = (
                b'"response":' + outcome.body
                if outcome.ok
                else b'"error":' + dumps(rpc_status(outcome))
            )
            if self._inline:
                metadata = self._metadata[index] if index < len(self._metadata) else None
                if damaging and damage.hits(index):
                    # One broken byte would break the whole operation (the SDK could not even
                    # list batches): the entry loses its answer instead, and its key too when
                    # the damage is garbage.
                    answer, metadata = damage.lose_entry(metadata)
                tail = b'"metadata":' + dumps(metadata) if metadata is not None else b""
                items.append(b"{" + answer + (b"," if answer and tail else b"") + tail + b"}")
            else:
                head = b'{"key":' + dumps(key) + b","
                line = head + answer + b"}\n"
                items.append(damage(index, line, len(head)) if damaging else line)
        if self._inline:
            return {
                "output": b'{"inlinedResponses":{"inlinedResponses":[' + b",".join(items) + b"]}}"
            }
        stored = self._store.add_file(
            b"".join(items),
            filename=f"{job.id}-responses.jsonl",
            purpose=_OUTPUT_PURPOSE,
            prefix=_FILE_PREFIX,
            owner=job,
        )
        return {"output": dumps({"responsesFile": f"files/{stored.id}"})}


def _line_error(message: str) -> dict[str, Any]:
    return {"code": "invalid_request", "message": message, "param": None, "line": None}


class _UploadErrors:
    """Upload routes answer errors with ``x-goog-upload-status: final``: without that header
    the SDK retries the chunk after a blocking sleep instead of reporting the error."""

    def __init__(self, api: GeminiApi) -> None:
        self._api = api

    def authenticate(self, request: Request) -> Response | None:
        # The upload session id authorizes its chunks: the SDK sends them without the key.
        if self._api.upload_session(request.arg("upload_id") or "") is not None:
            return None
        denied = self._api.authenticate(request)
        if denied is not None:
            denied.headers["x-goog-upload-status"] = "final"
        return denied

    def error(self, failure: EmulatedError, *, headers: dict[str, str] | None = None) -> Response:
        return self._api.error(
            failure, headers={**(headers or {}), "x-goog-upload-status": "final"}
        )


class GeminiApi(ProviderApi):
    """Gemini's routes under ``/v1beta`` and ``/v1``, answering in Google's shapes."""

    provider = "gemini"

    def __init__(self, store: Store, knobs: Callable[[], Knobs], stats: StatsRecorder) -> None:
        super().__init__(store, knobs, stats)
        self._lock = threading.Lock()
        self._uploads: dict[str, _Upload] = {}
        self._files: dict[str, tuple[str, str]] = {}  # file id -> (display name, mime type)

    def upload_session(self, upload_id: str) -> _Upload | None:
        """The resumable upload with this id, if one is in progress."""
        with self._lock:
            return self._uploads.get(upload_id)

    def reset(self) -> None:
        """Forget uploads in progress and file metadata (the store forgets the files)."""
        with self._lock:
            self._uploads.clear()
            self._files.clear()

    # ------------------------------------------------------------------ Api protocol

    def authenticate(self, request: Request) -> Response | None:
        """Any non-empty API key, in ``x-goog-api-key`` or ``?key=``, is accepted."""
        if (request.header("x-goog-api-key") or request.arg("key") or "").strip():
            return None
        return self.error(EmulatedError(403, _NO_KEY))

    def error(self, failure: EmulatedError, *, headers: dict[str, str] | None = None) -> Response:
        """An error in Google's ``{"error": {"code", "message", "status"}}`` shape."""
        return Response.json(error_body(failure.status, failure.message), failure.status, headers)

    @staticmethod
    def accepts(request: Request) -> bool:
        """Whether a request is meant for Gemini (it carries a Google API key)."""
        return request.header("x-goog-api-key") is not None or "key" in request.query

    def register(self, router: Router) -> None:
        """Add every Gemini route to ``router``, before OpenAI's (they share ``/v1`` paths)."""
        uploads = _UploadErrors(self)
        for version in VERSIONS:
            root = f"/{version}"
            routes: list[tuple[str, str, Callable[[Request], Response]]] = [
                ("POST", f"{root}/models/{{model}}:generateContent", self._generate),
                ("POST", f"{root}/models/{{model}}:streamGenerateContent", self._stream),
                ("POST", f"{root}/models/{{model}}:countTokens", self._count_tokens),
                ("POST", f"{root}/models/{{model}}:embedContent", self._embed),
                ("POST", f"{root}/models/{{model}}:batchEmbedContents", self._batch_embed),
                ("POST", f"{root}/models/{{model}}:batchGenerateContent", self._create_generate),
                ("POST", f"{root}/models/{{model}}:asyncBatchEmbedContent", self._create_embed),
                ("GET", f"{root}/models/{{model}}", self._get_model),
                ("GET", f"{root}/batches", self._list_batches),
                ("GET", f"{root}/batches/{{name}}", self._get_batch),
                ("DELETE", f"{root}/batches/{{name}}", self._delete_batch),
                ("POST", f"{root}/batches/{{name}}:cancel", self._cancel_batch),
                # Before files/{name}: that template would take "abc:download" as a name.
                ("GET", f"{root}/files/{{name}}:download", self._download),
                ("GET", f"{root}/files", self._list_files),
                ("GET", f"{root}/files/{{name}}", self._get_file),
                ("DELETE", f"{root}/files/{{name}}", self._delete_file),
            ]
            # Under /v1 the paths are OpenAI's too: take only Google-keyed requests.
            when = self.accepts if version == "v1" else None
            for method, template, handler in routes:
                router.add(method, template, handler, self, when=when)
            router.add("POST", f"/upload/{version}/files", self._upload, uploads)

    # ------------------------------------------------------------------ realtime

    def _generate(self, request: Request) -> Response:
        self._stats.add("realtime_calls")
        return _outcome(generate_content(request.params["model"], _json_body(request)))

    def _stream(self, request: Request) -> Response:
        self._stats.add("realtime_calls")
        # An invalid request raises: an ordinary HTTP error.
        events = stream_generate_content(request.params["model"], _json_body(request))
        return Response(200, events, "text/event-stream")

    def _count_tokens(self, request: Request) -> Response:
        return _outcome(count_tokens(request.params["model"], _json_body(request)))

    def _embed(self, request: Request) -> Response:
        self._stats.add("realtime_calls")
        outcome = embed_content(request.params["model"], _json_body(request))
        return _outcome(shorten_realtime(outcome, self._knobs(), self._stats))

    def _batch_embed(self, request: Request) -> Response:
        self._stats.add("realtime_calls")
        outcome = batch_embed_contents(request.params["model"], _json_body(request))
        return _outcome(shorten_realtime(outcome, self._knobs(), self._stats))

    def _get_model(self, request: Request) -> Response:
        """A model's description: integrations read its token limits when they start."""
        name = model_id(request.params["model"])
        if name.startswith("unknown-"):
            raise EmulatedError(404, f"models/{name} is not found for API version v1beta.")
        embedding = "embedding" in name
        return Response.json(
            {
                "name": f"models/{name}",
                "baseModelId": name,
                "version": "001",
                "displayName": name,
                "description": "An emulated model.",
                "inputTokenLimit": 2048 if embedding else 1_048_576,
                "outputTokenLimit": 1 if embedding else 65_536,
                "supportedGenerationMethods": (
                    ["embedContent", "asyncBatchEmbedContent"]
                    if embedding
                    else ["generateContent", "countTokens", "batchGenerateContent"]
                ),
            }
        )

    # ------------------------------------------------------------------ batches

    def _create_generate(self, request: Request) -> Response:
        return self._create(request, "generate")

    def _create_embed(self, request: Request) -> Response:
        return self._create(request, "embed")

    def _create(self, request: Request, kind: str) -> Response:
        model = "models/" + model_id(request.params["model"])
        if model_id(model).startswith("unknown-"):
            raise EmulatedError(404, f"{model} is not found for API version v1beta.")
        body = _json_body(request)
        batch = body.get("batch")
        if not isinstance(batch, dict):
            raise EmulatedError(400, "* batch: batch is required.\n")
        input_config = _field(batch, "inputConfig")
        if not isinstance(input_config, dict):
            raise EmulatedError(400, "* batch.input_config: input_config is required.\n")
        inline = _field(input_config, "requests")
        file_name = _field(input_config, "fileName")
        if (inline is None) == (file_name is None):
            raise EmulatedError(
                400, "* batch.input_config: exactly one of requests or file_name must be set.\n"
            )
        display_name = str(_field(batch, "displayName") or "")
        hooks: _GeminiBatch
        if inline is not None:
            if len(request.body) > MAX_INLINE_BYTES:
                raise EmulatedError(
                    400,
                    f"Request payload size exceeds the limit: {MAX_INLINE_BYTES} bytes. Use a "
                    "file for batches this large.",
                )
            items = inline.get("requests") if isinstance(inline, dict) else None
            if not isinstance(items, list) or not items:
                raise EmulatedError(
                    400, "* batch.input_config.requests.requests: must not be empty.\n"
                )
            hooks = _GeminiBatch(self._store, kind=kind, model=model, items=items)
            line_count = len(items)
            echo: dict[str, Any] = {}
        else:
            stored = self._store.get_file(_file_id(str(file_name)))
            if stored is None or stored.purpose != _INPUT_PURPOSE:
                raise EmulatedError(404, f"File {file_name} not found.")
            hooks = _GeminiBatch(self._store, kind=kind, model=model, file=stored)
            line_count = bytes(stored.data).count(b"\n") + (
                0 if bytes(stored.data).endswith(b"\n") else 1
            )
            echo = {"fileName": f"files/{stored.id}"}
        view = self._store.create_batch(
            prefix="",
            provider=self.provider,
            endpoint="asyncBatchEmbedContent" if kind == "embed" else "batchGenerateContent",
            hooks=hooks,
            knobs=self._knobs(),
            line_count=line_count,
            extra={"model": model, "display_name": display_name, "kind": kind, "input": echo},
        )
        return self._create_reply(_operation_response(view))

    def _view(self, request: Request) -> JobView:
        name = request.params["name"]
        view = self._store.view(name)
        if view is None or view.provider != self.provider:
            raise EmulatedError(404, "Requested entity was not found.")
        return view

    def _get_batch(self, request: Request) -> Response:
        return _operation_response(self._view(request))

    def _list_batches(self, request: Request) -> Response:
        try:
            size = int(request.arg("pageSize") or 50)
            start = int(request.arg("pageToken") or 0)
        except ValueError:
            raise EmulatedError(400, "Invalid pageSize or pageToken.") from None
        size = max(1, min(size, 1000))
        views = list(reversed(self._store.views(self.provider)))
        page = views[start : start + size]
        body = b'{"operations":[' + b",".join(_operation(v) for v in page) + b"]"
        if start + size < len(views):
            body += b',"nextPageToken":' + dumps(str(start + size))
        return Response(200, body + b"}")

    def _cancel_batch(self, request: Request) -> Response:
        view = self._view(request)
        _, accepted = self._store.request_cancel(view.id)
        if not accepted:
            raise EmulatedError(400, f"Batch batches/{view.id} has already finished.")
        return Response.json({})

    def _delete_batch(self, request: Request) -> Response:
        self._store.delete_batch(self._view(request).id)
        return Response.json({})

    # ------------------------------------------------------------------ files

    def _upload(self, request: Request) -> Response:
        command = (request.header("x-goog-upload-command") or "").lower()
        version = request.path.split("/")[2]
        if "start" in command:
            body = _json_body(request)
            meta = body.get("file") if isinstance(body.get("file"), dict) else {}
            size_header = request.header("x-goog-upload-header-content-length")
            upload = _Upload(
                display_name=str(_field(meta, "displayName") or ""),
                mime_type=str(
                    request.header("x-goog-upload-header-content-type")
                    or _field(meta, "mimeType")
                    or "application/octet-stream"
                ),
                size=int(size_header) if size_header and size_header.isdigit() else None,
            )
            upload_id = uuid.uuid4().hex
            with self._lock:
                self._uploads[upload_id] = upload
            url = (
                f"{request.base_url}/upload/{version}/files?upload_id={upload_id}"
                "&upload_protocol=resumable"
            )
            return Response(
                200,
                b"",
                "text/plain",
                {
                    # Absolute: the SDK sends the bytes to this URL as given (host rewritten).
                    "x-goog-upload-url": url,
                    "x-goog-upload-status": "active",
                    "x-goog-upload-chunk-granularity": str(UPLOAD_CHUNK),
                },
            )
        upload_id = request.arg("upload_id") or ""
        with self._lock:
            session = self._uploads.get(upload_id)
        if session is None:
            raise EmulatedError(404, "Unknown or expired upload session.")
        if "upload" not in command:
            raise EmulatedError(400, f"Unsupported X-Goog-Upload-Command: {command!r}.")
        offset = request.header("x-goog-upload-offset")
        if offset is not None and offset.isdigit() and int(offset) != len(session.data):
            raise EmulatedError(
                400,
                f"Upload offset {offset} does not match the {len(session.data)} bytes received.",
            )
        session.data += request.body
        if "finalize" not in command:
            return Response(200, b"", "text/plain", {"x-goog-upload-status": "active"})
        with self._lock:
            self._uploads.pop(upload_id, None)
        delay = self._knobs().upload_delay
        if delay > 0:
            time.sleep(delay)  # a slow upload: the file exists only once it is answered
        if session.size is not None and session.size != len(session.data):
            raise EmulatedError(
                400, f"Upload size {len(session.data)} does not match the declared {session.size}."
            )
        stored = self._store.add_file(
            session.data,
            filename=session.display_name,
            purpose=_INPUT_PURPOSE,
            prefix=_FILE_PREFIX,
        )
        with self._lock:
            self._files[stored.id] = (session.display_name, session.mime_type)
        self._stats.add("files_uploaded")
        self._stats.add("bytes_uploaded", stored.size)
        return Response.json(
            {"file": self._file_json(stored, request.base_url, version)},
            headers={"x-goog-upload-status": "final"},
        )

    def _file_json(self, stored: StoredFile, base_url: str, version: str) -> dict[str, Any]:
        generated = stored.purpose == _OUTPUT_PURPOSE
        with self._lock:
            display_name, mime_type = self._files.get(
                stored.id, (stored.filename, "application/jsonl" if generated else "")
            )
        name = f"files/{stored.id}"
        created = rfc3339(stored.created_at)
        result: dict[str, Any] = {
            "name": name,
            "displayName": display_name,
            "mimeType": mime_type or "application/octet-stream",
            "sizeBytes": str(stored.size),
            "createTime": created,
            "updateTime": created,
            "expirationTime": rfc3339(stored.created_at + 48 * 3600),
            "uri": f"{base_url}/{version}/{name}",
            "state": "ACTIVE",
            "source": "GENERATED" if generated else "UPLOADED",
        }
        if generated:
            result["downloadUri"] = f"{base_url}/{version}/{name}:download?alt=media"
        return result

    def _stored(self, request: Request) -> StoredFile:
        stored = self._store.get_file(_file_id(request.params["name"]))
        if stored is None or stored.purpose not in (_INPUT_PURPOSE, _OUTPUT_PURPOSE):
            raise EmulatedError(
                403,
                f"You do not have permission to access the File {request.params['name']} or it "
                "may not exist.",
            )
        return stored

    def _get_file(self, request: Request) -> Response:
        version = request.path.split("/")[1]
        return Response.json(self._file_json(self._stored(request), request.base_url, version))

    def _list_files(self, request: Request) -> Response:
        version = request.path.split("/")[1]
        files = [
            self._file_json(f, request.base_url, version)
            for f in reversed(self._store.files())
            if f.purpose in (_INPUT_PURPOSE, _OUTPUT_PURPOSE)
        ]
        return Response.json({"files": files})

    def _delete_file(self, request: Request) -> Response:
        stored = self._stored(request)
        self._store.delete_file(stored.id)
        with self._lock:
            self._files.pop(stored.id, None)
        return Response.json({})

    def _download(self, request: Request) -> Response:
        stored = self._stored(request)
        if stored.purpose != _OUTPUT_PURPOSE:
            raise EmulatedError(
                400, "Only generated files can be downloaded; uploaded files cannot."
            )
        return self._download_reply(stored.data, "application/octet-stream")


def _outcome(outcome: Outcome) -> Response:
    return Response(outcome.status, outcome.body, "application/json")


def _operation_response(view: JobView) -> Response:
    return Response(200, _operation(view), "application/json")


def _operation(view: JobView) -> bytes:
    """The batch as a long-running operation, results spliced in as encoded bytes."""
    extra = view.extra
    kind = extra.get("kind", "generate")
    batch_type, output_type = _KINDS[kind]
    done = view.status in TERMINAL_STATUSES
    name = f"batches/{view.id}"
    total = view.total or view.line_count
    processed = view.completed + view.failed
    updated = max(view.times.values()) if view.times else view.created_at
    metadata: dict[str, Any] = {
        "@type": _TYPE_ROOT + batch_type,
        "model": extra.get("model"),
        "displayName": extra.get("display_name", ""),
        "createTime": rfc3339(view.created_at),
        "updateTime": rfc3339(updated),
        "batchStats": {
            # int64 fields are strings in Google's JSON.
            "requestCount": str(total),
            "successfulRequestCount": str(view.completed),
            "failedRequestCount": str(view.failed),
            "pendingRequestCount": str(max(total - processed, 0) if not done else 0),
        },
        "state": _STATES.get(view.status, "BATCH_STATE_RUNNING"),
        "name": name,
    }
    if extra.get("input"):
        metadata["inputConfig"] = extra["input"]
    output = cast("bytes | None", extra.get("output"))
    if done:
        metadata["endTime"] = rfc3339(updated)
        if output is not None:
            metadata["output"] = _OUTPUT_SENTINEL.strip(b'"').decode()
    operation: dict[str, Any] = {"name": name, "metadata": metadata, "done": done}
    if done and output is not None:
        operation["response"] = _RESPONSE_SENTINEL.strip(b'"').decode()
    if view.status == "failed":
        message = "; ".join(str(e.get("message")) for e in view.errors) or "The batch failed."
        operation["error"] = {"code": 3, "message": message}
    encoded = dumps(operation)
    if done and output is not None:
        typed = b'{"@type":' + dumps(_TYPE_ROOT + output_type) + b"," + output[1:]
        encoded = encoded.replace(_OUTPUT_SENTINEL, output, 1)
        encoded = encoded.replace(_RESPONSE_SENTINEL, typed, 1)
    return encoded
