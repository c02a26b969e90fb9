"""OpenAI's routes: Files, Batches, and realtime chat completions, embeddings and responses.

Batch lines are answered by the same functions as realtime calls (``_openai_shapes.respond``),
and the answers are spliced into the output and error files as already-encoded bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

from ._api import ProviderApi
from ._faults import LineDamage, shorten_realtime
from ._multipart import MultipartError, boundary_of, parse_multipart
from ._openai_shapes import ENDPOINTS, chat_stream, error_outcome, error_payload, respond
from ._outcome import EmulatedError
from ._server import RETRY_NOW, Request, Response, Router, dumps
from ._store import (
    CANCELLED,
    ERROR,
    EXPIRED,
    OK,
    BatchJob,
    JobView,
    Loaded,
    Outcome,
    Store,
    StoredFile,
    ValidationFailed,
)

__all__ = ["MAX_BATCH_INPUT_BYTES", "MAX_BATCH_REQUESTS", "OpenAIApi"]

# The real limit, from the API's own message: "larger than the 209715200 maximum".
MAX_BATCH_INPUT_BYTES = 200 * 1024 * 1024
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_EMBEDDING_INPUTS = 50_000
# Past this many, a broken file's remaining errors add nothing for the user.
_MAX_VALIDATION_ERRORS = 100

_PURPOSES = frozenset({"assistants", "batch", "fine-tune", "vision", "user_data", "evals"})
_WINDOWS = {"24h": 86_400, "1h": 3_600}
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). (batch-llm emulator: any key works)"
)
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was "
    "not valid JSON.)"
)
_EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
_CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."
_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-5",
    "gpt-5-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
)


def _invalid_type(param: str, expected: str) -> EmulatedError:
    return EmulatedError(
        400, f"Invalid type for '{param}': expected {expected}.", code="invalid_type", param=param
    )


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.arg("limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise EmulatedError(
            400,
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            code="invalid_type",
            param="limit",
        ) from None
    if not 1 <= value <= maximum:
        raise EmulatedError(
            400,
            f"Invalid 'limit': expected a value between 1 and {maximum}, but got {value} instead.",
            code="invalid_value",
            param="limit",
        )
    return value


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def _file_json(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "object": "file",
        "bytes": stored.size,
        "created_at": int(stored.created_at),
        "filename": stored.filename,
        "purpose": stored.purpose,
        "status": "processed",
        "expires_at": None,
        "status_details": None,
    }


def _check_metadata(metadata: Any) -> dict[str, str] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _invalid_type("metadata", "an object")
    if len(metadata) > 16:
        raise EmulatedError(
            400,
            f"Invalid 'metadata': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(metadata)} properties instead.",
            code="object_above_max_properties",
            param="metadata",
        )
    for key, value in metadata.items():
        if len(key) > 64:
            raise EmulatedError(
                400,
                f"Invalid 'metadata': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(key)} instead.",
                code="string_above_max_length",
                param="metadata",
            )
        if not isinstance(value, str):
            raise _invalid_type(f"metadata.{key}", "a string")
        if len(value) > 512:
            raise EmulatedError(
                400,
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length 512, but got a string with length {len(value)} instead.",
                code="string_above_max_length",
                param=f"metadata.{key}",
            )
    return metadata


def _check_output_expiry(value: Any) -> None:
    if value is None:
        return
    seconds = value.get("seconds") if isinstance(value, dict) else None
    if (
        not isinstance(value, dict)
        or value.get("anchor") != "created_at"
        or not isinstance(seconds, int)
        or not 3600 <= seconds <= 2_592_000
    ):
        raise EmulatedError(
            400,
            'Invalid \'output_expires_after\': expected {"anchor": "created_at", "seconds": '
            "3600..2592000}.",
            code="invalid_value",
            param="output_expires_after",
        )


def _count_lines(data: bytes | bytearray) -> int:
    # A fast count for stats at create time; validation counts exactly later.
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _line_error(
    code: str, message: str, line: int | None, param: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _embedding_input_count(body: dict[str, Any]) -> int:
    value = body.get("input")
    if isinstance(value, list) and value and not all(isinstance(v, int) for v in value):
        return len(value)
    return 1


class _OpenAIBatch:
    """The store hooks of one OpenAI batch: parse the JSONL input, answer lines, write files."""

    def __init__(self, store: Store, file_id: str, file: StoredFile | None, endpoint: str) -> None:
        self._store = store
        self._file_id = file_id
        self._file = file
        self._endpoint = endpoint

    def load(self) -> Loaded:
        file, self._file = self._file, None  # the batch holds the data only until it is parsed
        if file is None:
            raise ValidationFailed(
                [
                    _line_error(
                        "file_not_found",
                        f"No such File object: {self._file_id}",
                        None,
                        "input_file_id",
                    )
                ]
            )
        if file.purpose != "batch":
            raise ValidationFailed(
                [
                    _line_error(
                        "invalid_file_purpose",
                        "The input file must be uploaded with purpose 'batch', "
                        f"not '{file.purpose}'.",
                        None,
                        "input_file_id",
                    )
                ]
            )
        return self._parse(file.data)

    def _parse(self, data: bytes | bytearray) -> Loaded:
        endpoint = self._endpoint
        custom_ids: list[str] = []
        bodies: list[Any] = []
        seen: set[str] = set()
        models: list[str] = []
        errors: list[dict[str, Any]] = []
        embedding_inputs = 0

        def fail(code: str, message: str, line: int, param: str | None = None) -> None:
            errors.append(_line_error(code, message, line, param))

        # bytes or bytearray alike; the cast only spares mypy the union of list types.
        lines = cast("list[bytes]", data.split(b"\n"))
        for number, raw in enumerate(lines, 1):
            if len(errors) >= _MAX_VALIDATION_ERRORS:
                break
            if not raw or raw.isspace():
                continue
            try:
                item = json.loads(raw)
            except ValueError:
                fail("invalid_json_line", "This line is not parseable as valid JSON.", number)
                continue
            if not isinstance(item, dict):
                fail("invalid_json_line", "This line is not a JSON object.", number)
                continue
            custom_id = item.get("custom_id")
            method = item.get("method")
            url = item.get("url")
            body = item.get("body")
            missing = [
                k
                for k, v in (
                    ("custom_id", custom_id),
                    ("method", method),
                    ("url", url),
                    ("body", body),
                )
                if v is None
            ]
            if missing:
                fail(
                    "missing_required_parameter",
                    f"Missing required parameter: '{missing[0]}'.",
                    number,
                    missing[0],
                )
                continue
            if not isinstance(custom_id, str) or not custom_id:
                fail(
                    "invalid_custom_id",
                    "The custom_id must be a non-empty string.",
                    number,
                    "custom_id",
                )
                continue
            if method != "POST":
                fail(
                    "invalid_method",
                    f"Invalid 'method': only POST is supported, got {method!r}.",
                    number,
                    "method",
                )
                continue
            if url != endpoint:
                fail(
                    "url_mismatch",
                    f"The provided URL '{url}' does not match the batch endpoint '{endpoint}'.",
                    number,
                    "url",
                )
                continue
            if not isinstance(body, dict):
                fail("invalid_body", "The body must be a JSON object.", number, "body")
                continue
            if custom_id in seen:
                fail(
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate of "
                    "another request. The custom_id parameter must be unique for each "
                    "individual request in a batch.",
                    number,
                    "custom_id",
                )
                continue
            model = body.get("model")
            if isinstance(model, str) and model:
                if not models:
                    models.append(model)
                elif model != models[0]:
                    fail(
                        "model_mismatch",
                        f"The provided model '{model}' does not match the "
                        f"model '{models[0]}' of the other requests in this batch; a batch "
                        "must use one model.",
                        number,
                        "body.model",
                    )
                    continue
            if endpoint == "/v1/embeddings":
                embedding_inputs += _embedding_input_count(body)
            seen.add(custom_id)
            custom_ids.append(custom_id)
            bodies.append(body)
        if errors:
            raise ValidationFailed(errors)
        if not custom_ids:
            raise ValidationFailed(
                [_line_error("empty_file", "The batch input file is empty.", None)]
            )
        if len(custom_ids) > MAX_BATCH_REQUESTS:
            raise ValidationFailed(
                [
                    _line_error(
                        "too_many_tasks",
                        f"The batch input file contains {len(custom_ids)} requests, "
                        f"more than the maximum of {MAX_BATCH_REQUESTS}.",
                        None,
                    )
                ]
            )
        if embedding_inputs > MAX_BATCH_EMBEDDING_INPUTS:
            raise ValidationFailed(
                [
                    _line_error(
                        "too_many_embedding_inputs",
                        f"The batch contains {embedding_inputs} embedding "
                        f"inputs, more than the maximum of {MAX_BATCH_EMBEDDING_INPUTS}.",
                        None,
                    )
                ]
            )
        return Loaded(custom_ids, bodies, models)

    def respond(self, request: Any) -> Outcome:
        return respond(self._endpoint, request, batch=True)

    def error_outcome(self, status: int, message: str) -> Outcome:
        return error_outcome(status, message)

    def finish(self, job: BatchJob) -> dict[str, Any]:
        # Line and request ids only need to be unique; deriving them from the batch id and the
        # line index avoids a random draw per line.
        line_prefix = job.id[-32:-16].encode()
        request_prefix = job.id[-16:].encode()
        expired_tail = (
            b'"response":null,"error":'
            + dumps({"code": "batch_expired", "message": _EXPIRED_MESSAGE})
            + b"}\n"
        )
        cancelled_tail = (
            b'"response":null,"error":'
            + dumps({"code": "batch_cancelled", "message": _CANCELLED_MESSAGE})
            + b"}\n"
        )
        ok_lines: list[bytes] = []
        error_lines: list[bytes] = []
        damage = LineDamage(job)
        damaging = bool(damage)
        for index, (custom_id, state, outcome) in enumerate(
            zip(job.custom_ids, job.states, job.results, strict=True)
        ):
            head = b'{"id":"batch_req_%s%016x","custom_id":%s,' % (
                line_prefix,
                index,
                dumps(custom_id),
            )
            if state in (OK, ERROR) and outcome is not None:
                line = (
                    head + b'"response":{"status_code":%d,"request_id":"req_%s%016x",'
                    b'"body":%s},"error":null}\n'
                    % (outcome.status, request_prefix, index, outcome.body)
                )
                lines = ok_lines if state == OK else error_lines
            elif state == EXPIRED:
                line, lines = head + expired_tail, error_lines
            elif state == CANCELLED:
                line, lines = head + cancelled_tail, error_lines
            else:
                continue  # DROPPED lines (and PENDING ones, only after a crash) go nowhere
            lines.append(damage(index, line, len(head)) if damaging else line)
        if job.knobs.reverse_output:
            ok_lines.reverse()
            error_lines.reverse()
        extra = {
            "output_file_id": self._results_file(job, "output", ok_lines),
            "error_file_id": self._results_file(job, "error", error_lines),
        }
        # The files now hold every answer; keeping the outcomes too would double the memory.
        job.results = []
        return extra

    def _results_file(self, job: BatchJob, kind: str, lines: list[bytes]) -> str | None:
        """The id of the batch's ``kind`` ("output" or "error") file, None if it has no lines."""
        if not lines:
            return None
        stored = self._store.add_file(
            b"".join(lines), filename=f"{job.id}_{kind}.jsonl", purpose="batch_output", owner=job
        )
        return stored.id


def _timestamp(view: JobView, status: str) -> int | None:
    when = view.times.get(status)
    return int(when) if when is not None else None


def _batch_json(view: JobView) -> dict[str, Any]:
    extra = view.extra
    window = extra.get("completion_window", "24h")
    return {
        "id": view.id,
        "object": "batch",
        "endpoint": view.endpoint,
        "model": view.models[0] if view.models else None,
        "errors": {"object": "list", "data": view.errors} if view.errors else None,
        "input_file_id": extra.get("input_file_id"),
        "completion_window": window,
        "status": view.status,
        "output_file_id": extra.get("output_file_id"),
        "error_file_id": extra.get("error_file_id"),
        "created_at": int(view.created_at),
        "in_progress_at": _timestamp(view, "in_progress"),
        "expires_at": int(view.created_at) + _WINDOWS.get(window, 86_400),
        "finalizing_at": _timestamp(view, "finalizing"),
        "completed_at": _timestamp(view, "completed"),
        "failed_at": _timestamp(view, "failed"),
        "expired_at": _timestamp(view, "expired"),
        "cancelling_at": _timestamp(view, "cancelling"),
        "cancelled_at": _timestamp(view, "cancelled"),
        "request_counts": {"total": view.total, "completed": view.completed, "failed": view.failed},
        "usage": {
            "input_tokens": view.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": view.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": view.input_tokens + view.output_tokens,
        },
        "metadata": extra.get("metadata"),
    }


class OpenAIApi(ProviderApi):
    """OpenAI's routes under ``/v1``, answering in OpenAI's shapes."""

    provider = "openai"

    # ------------------------------------------------------------------ Api protocol

    def authenticate(self, request: Request) -> Response | None:
        """Any non-empty bearer key is accepted."""
        header = request.header("Authorization") or ""
        scheme, _, key = header.partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return None
        return self.error(EmulatedError(401, _NO_KEY))

    def error(self, failure: EmulatedError, *, headers: dict[str, str] | None = None) -> Response:
        """An error in OpenAI's ``{"error": {...}}`` shape."""
        body = error_payload(
            failure.status, failure.message, code=failure.code, param=failure.param
        )
        return Response.json(body, failure.status, headers)

    def register(self, router: Router) -> None:
        """Add every OpenAI route to ``router``."""
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("POST", "/v1/files", self._upload),
            ("GET", "/v1/files", self._list_files),
            ("GET", "/v1/files/{id}", self._get_file),
            ("DELETE", "/v1/files/{id}", self._delete_file),
            ("GET", "/v1/files/{id}/content", self._file_content),
            ("POST", "/v1/batches", self._create_batch),
            ("GET", "/v1/batches", self._list_batches),
            ("GET", "/v1/batches/{id}", self._get_batch),
            ("POST", "/v1/batches/{id}/cancel", self._cancel_batch),
            ("GET", "/v1/models", self._list_models),
            ("GET", "/v1/models/{id}", self._get_model),
        ]
        routes.extend(("POST", endpoint, self._realtime(endpoint)) for endpoint in ENDPOINTS)
        for method, template, handler in routes:
            router.add(method, template, handler, self)

    # ------------------------------------------------------------------ realtime

    def _realtime(self, endpoint: str) -> Callable[[Request], Response]:
        def handle(request: Request) -> Response:
            self._stats.add("realtime_calls")
            body = request.json_object(_BAD_JSON)
            if body.get("stream"):
                if endpoint != "/v1/chat/completions":
                    raise EmulatedError(
                        400, f"The batch-llm emulator does not stream {endpoint}.", param="stream"
                    )
                try:
                    events = chat_stream(body)
                except EmulatedError as exc:
                    return self._outcome(
                        error_outcome(exc.status, exc.message, code=exc.code, param=exc.param)
                    )
                return Response(200, events, "text/event-stream; charset=utf-8")
            outcome = respond(endpoint, body)
            if endpoint == "/v1/embeddings":
                outcome = shorten_realtime(outcome, self._knobs(), self._stats)
            return self._outcome(outcome)

        return handle

    def _outcome(self, outcome: Outcome) -> Response:
        headers = dict(RETRY_NOW) if outcome.status == 429 else {}
        return Response(outcome.status, outcome.body, "application/json", headers)

    # ------------------------------------------------------------------ files

    def _upload(self, request: Request) -> Response:
        boundary = boundary_of(request.header("Content-Type"))
        if boundary is None:
            raise EmulatedError(400, "Invalid Content-Type: expected multipart/form-data.")
        try:
            parts = {part.name: part for part in parse_multipart(request.body, boundary)}
        except MultipartError as exc:
            raise EmulatedError(400, str(exc)) from None
        if "purpose" not in parts:
            raise EmulatedError(
                400,
                "Missing required parameter: 'purpose'.",
                code="missing_required_parameter",
                param="purpose",
            )
        purpose = bytes(parts["purpose"].data).decode("utf-8", "replace").strip()
        if purpose not in _PURPOSES:
            raise EmulatedError(
                400,
                f"Invalid value for 'purpose': '{purpose}'.",
                code="invalid_value",
                param="purpose",
            )
        file_part = parts.get("file")
        if file_part is None:
            raise EmulatedError(
                400,
                "Missing required parameter: 'file'.",
                code="missing_required_parameter",
                param="file",
            )
        if purpose == "batch" and len(file_part.data) > MAX_BATCH_INPUT_BYTES:
            raise EmulatedError(
                400,
                f"File is too large: {len(file_part.data)} bytes; a batch input "
                f"file may have at most {MAX_BATCH_INPUT_BYTES}.",
                param="file",
            )
        delay = self._knobs().upload_delay
        if delay > 0:
            time.sleep(delay)  # a slow upload: the file exists only once it is answered
        stored = self._store.add_file(
            file_part.data, filename=file_part.filename or "upload", purpose=purpose
        )
        self._stats.add("files_uploaded")
        self._stats.add("bytes_uploaded", stored.size)
        return Response.json(_file_json(stored))

    def _file(self, request: Request) -> StoredFile:
        stored = self._store.get_file(request.params["id"])
        if stored is None:
            raise EmulatedError(404, f"No such File object: {request.params['id']}", param="id")
        return stored

    def _list_files(self, request: Request) -> Response:
        purpose = request.arg("purpose")
        files = [
            _file_json(f)
            for f in self._store.files()
            # Gemini's files share the store but are not OpenAI files.
            if (purpose is None or f.purpose == purpose) and not f.purpose.startswith("gemini")
        ]
        if (request.arg("order") or "desc") == "desc":
            files.reverse()
        return Response.json(_page(files, request.arg("after"), _limit(request, 10_000, 10_000)))

    def _get_file(self, request: Request) -> Response:
        return Response.json(_file_json(self._file(request)))

    def _delete_file(self, request: Request) -> Response:
        stored = self._file(request)
        self._store.delete_file(stored.id)
        return Response.json({"id": stored.id, "object": "file", "deleted": True})

    def _file_content(self, request: Request) -> Response:
        return self._download_reply(self._file(request).data, "application/octet-stream")

    # ------------------------------------------------------------------ batches

    def _create_batch(self, request: Request) -> Response:
        body = request.json_object(_BAD_JSON)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if body.get(name) is None:
                raise EmulatedError(
                    400,
                    f"Missing required parameter: '{name}'.",
                    code="missing_required_parameter",
                    param=name,
                )
        file_id, endpoint, window = (
            body["input_file_id"],
            body["endpoint"],
            body["completion_window"],
        )
        if not isinstance(file_id, str):
            raise _invalid_type("input_file_id", "a string")
        if endpoint not in ENDPOINTS:
            supported = ", ".join(f"'{e}'" for e in ENDPOINTS)
            raise EmulatedError(
                400,
                f"Invalid value: '{endpoint}'. Supported values are: {supported}.",
                code="invalid_value",
                param="endpoint",
            )
        if window not in _WINDOWS:
            raise EmulatedError(
                400,
                f"Invalid value: '{window}'. Supported values are: '24h' and '1h'.",
                code="invalid_value",
                param="completion_window",
            )
        metadata = _check_metadata(body.get("metadata"))
        _check_output_expiry(body.get("output_expires_after"))
        stored = self._store.get_file(file_id)
        if stored is not None and stored.size > MAX_BATCH_INPUT_BYTES:
            raise EmulatedError(
                400,
                f"The batch input file is larger than the {MAX_BATCH_INPUT_BYTES} "
                "maximum. Please try again with a smaller batch.",
                param="input_file_id",
            )
        view = self._store.create_batch(
            prefix="batch_",
            provider=self.provider,
            endpoint=endpoint,
            hooks=_OpenAIBatch(self._store, file_id, stored, endpoint),
            knobs=self._knobs(),
            line_count=_count_lines(stored.data) if stored is not None else 0,
            extra={"input_file_id": file_id, "completion_window": window, "metadata": metadata},
        )
        return self._create_reply(Response.json(_batch_json(view)))

    def _view(self, request: Request) -> JobView:
        view = self._store.view(request.params["id"])
        if view is None or view.provider != self.provider:
            raise EmulatedError(404, f"No such Batch object: {request.params['id']}", param="id")
        return view

    def _get_batch(self, request: Request) -> Response:
        return Response.json(_batch_json(self._view(request)))

    def _list_batches(self, request: Request) -> Response:
        batches = [_batch_json(v) for v in reversed(self._store.views(self.provider))]
        return Response.json(_page(batches, request.arg("after"), _limit(request, 20, 100)))

    def _cancel_batch(self, request: Request) -> Response:
        self._view(request)
        view, accepted = self._store.request_cancel(request.params["id"])
        if view is None:
            raise EmulatedError(404, f"No such Batch object: {request.params['id']}", param="id")
        if not accepted:
            raise EmulatedError(409, f"Cannot cancel a batch with status '{view.status}'.")
        return Response.json(_batch_json(view))

    # ------------------------------------------------------------------ models

    def _list_models(self, _: Request) -> Response:
        return Response.json({"object": "list", "data": [_model_json(m) for m in _MODELS]})

    def _get_model(self, request: Request) -> Response:
        model = request.params["id"]
        if model.startswith("unknown-"):
            raise EmulatedError(
                404, f"The model '{model}' does not exist", code="model_not_found", param="model"
            )
        return Response.json(_model_json(model))


def _model_json(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "batch-llm"}
