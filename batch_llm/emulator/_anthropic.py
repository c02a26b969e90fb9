"""Anthropic's routes: realtime Messages and Message Batches.

Batch items are answered by the same function as realtime calls (``_anthropic_shapes.respond``)
and the answers are spliced into the results JSONL as already-encoded bytes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from ._anthropic_shapes import count_tokens, error_body, error_outcome, message_stream, respond
from ._api import ProviderApi
from ._faults import LineDamage
from ._outcome import EmulatedError
from ._server import RETRY_NOW, Request, Response, Router, dumps, rfc3339
from ._store import (
    CANCELLED,
    DROPPED,
    ERROR,
    EXPIRED,
    OK,
    TERMINAL_STATUSES,
    BatchJob,
    JobView,
    Loaded,
    Outcome,
)

__all__ = ["MAX_BATCH_BYTES", "MAX_BATCH_REQUESTS", "AnthropicApi"]

MAX_BATCH_REQUESTS = 100_000
MAX_BATCH_BYTES = 256 * 1024 * 1024
_DAY = 86_400
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NO_KEY = "x-api-key header is required (batch-llm emulator: any key works)"
_BAD_JSON = "Request body is not valid JSON."
# Processing states the API reports as one "in_progress".
_PROCESSING = {"cancelling": "canceling"}


class _AnthropicBatch:
    """The store hooks of one message batch: the items were checked at create time."""

    def __init__(self, custom_ids: list[str], params: list[Any]) -> None:
        self._custom_ids: list[str] | None = custom_ids
        self._params: list[Any] | None = params

    def load(self) -> Loaded:
        custom_ids, params = self._custom_ids or [], self._params or []
        self._custom_ids = self._params = None  # the job owns them from here on
        models: dict[str, None] = {}
        for item in params:
            model = item.get("model") if isinstance(item, dict) else None
            if isinstance(model, str):
                models.setdefault(model)
        return Loaded(custom_ids, params, list(models))

    def respond(self, request: Any) -> Outcome:
        return respond(request, batch=True)

    def error_outcome(self, status: int, message: str) -> Outcome:
        return error_outcome(status, message)

    def finish(self, job: BatchJob) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        lines: list[bytes] = []
        expired_tail = b',"result":{"type":"expired"}}\n'
        canceled_tail = b',"result":{"type":"canceled"}}\n'
        damage = LineDamage(job)
        damaging = bool(damage)
        for index, (custom_id, state, outcome) in enumerate(
            zip(job.custom_ids, job.states, job.results, strict=True)
        ):
            head = b'{"custom_id":' + dumps(custom_id)
            if state in (OK, ERROR) and outcome is not None:
                if outcome.ok:
                    counts["succeeded"] += 1
                    line = head + b',"result":{"type":"succeeded","message":' + outcome.body
                else:
                    counts["errored"] += 1
                    line = head + b',"result":{"type":"errored","error":' + outcome.body
                line += b"}}\n"
            elif state == EXPIRED:
                counts["expired"] += 1
                line = head + expired_tail
            elif state == CANCELLED:
                counts["canceled"] += 1
                line = head + canceled_tail
            else:
                if state == DROPPED and outcome is not None:
                    # Counted (and billed) as the provider believes it ran; missing from the file.
                    counts["succeeded" if outcome.ok else "errored"] += 1
                continue
            # Damaged lines are counted as what they were: the provider believes it sent them.
            lines.append(damage(index, line, len(head)) if damaging else line)
        # Anthropic does not promise result order; reverse_output makes clients prove it.
        if job.knobs.reverse_output:
            lines.reverse()
        job.results = []
        return {"results": b"".join(lines), "counts": counts}


class AnthropicApi(ProviderApi):
    """Anthropic's routes under ``/v1``, answering in Anthropic's shapes."""

    provider = "anthropic"

    # ------------------------------------------------------------------ Api protocol

    def authenticate(self, request: Request) -> Response | None:
        """Any non-empty ``x-api-key``, or bearer token (SDK 2.x), is accepted."""
        if (request.header("x-api-key") or "").strip():
            return None
        scheme, _, key = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and key.strip():
            return None
        return self.error(EmulatedError(401, _NO_KEY))

    def error(self, failure: EmulatedError, *, headers: dict[str, str] | None = None) -> Response:
        """An error in Anthropic's ``{"type": "error", "error": {...}}`` shape."""
        extra = {"request-id": _request_id(), **(headers or {})}
        if failure.status in (429, 529):
            extra.update(RETRY_NOW)
        return Response.json(error_body(failure.status, failure.message), failure.status, extra)

    @staticmethod
    def accepts(request: Request) -> bool:
        """Whether an unrouted request looks like it came from an Anthropic client."""
        return request.header("anthropic-version") is not None

    def register(self, router: Router) -> None:
        """Add every Anthropic route to ``router``."""
        routes: list[tuple[str, str, Callable[[Request], Response]]] = [
            ("POST", "/v1/messages", self._messages),
            ("POST", "/v1/messages/count_tokens", self._count_tokens),
            ("POST", "/v1/messages/batches", self._create_batch),
            ("GET", "/v1/messages/batches", self._list_batches),
            ("GET", "/v1/messages/batches/{id}", self._get_batch),
            ("DELETE", "/v1/messages/batches/{id}", self._delete_batch),
            ("POST", "/v1/messages/batches/{id}/cancel", self._cancel_batch),
            ("GET", "/v1/messages/batches/{id}/results", self._results),
        ]
        for method, template, handler in routes:
            router.add(method, template, _with_request_id(handler), self)

    # ------------------------------------------------------------------ realtime

    def _messages(self, request: Request) -> Response:
        self._stats.add("realtime_calls")
        body = request.json_object(_BAD_JSON)
        if body.get("stream"):
            events = message_stream(body)  # an invalid request raises: an ordinary HTTP error
            return Response(200, events, "text/event-stream; charset=utf-8")
        return self._outcome(respond(body))

    def _count_tokens(self, request: Request) -> Response:
        return self._outcome(count_tokens(request.json_object(_BAD_JSON)))

    def _outcome(self, outcome: Outcome) -> Response:
        headers = dict(RETRY_NOW) if outcome.status in (429, 529) else {}
        return Response(outcome.status, outcome.body, "application/json", headers)

    # ------------------------------------------------------------------ batches

    def _create_batch(self, request: Request) -> Response:
        if len(request.body) > MAX_BATCH_BYTES:
            raise EmulatedError(
                413, f"Request exceeds the maximum size of {MAX_BATCH_BYTES} bytes."
            )
        body = request.json_object(_BAD_JSON)
        requests = body.get("requests")
        if requests is None:
            raise EmulatedError(400, "requests: Field required")
        if not isinstance(requests, list):
            raise EmulatedError(400, "requests: Input should be a valid list")
        if not requests:
            raise EmulatedError(400, "requests: List should have at least 1 item after validation")
        if len(requests) > MAX_BATCH_REQUESTS:
            raise EmulatedError(
                400,
                f"requests: List should have at most {MAX_BATCH_REQUESTS} items after "
                f"validation, not {len(requests)}",
            )
        knobs = self._knobs()
        if knobs.fail_validation is not None:
            # Anthropic checks a batch when it is created, so a rejected batch is never made.
            raise EmulatedError(400, knobs.fail_validation)
        custom_ids: list[str] = []
        params: list[Any] = []
        seen: set[str] = set()
        for index, item in enumerate(requests):
            if not isinstance(item, dict):
                raise EmulatedError(400, f"requests.{index}: Input should be a valid dictionary")
            custom_id = item.get("custom_id")
            if not isinstance(custom_id, str) or _CUSTOM_ID.fullmatch(custom_id) is None:
                raise EmulatedError(
                    400,
                    f"requests.{index}.custom_id: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'",
                )
            if custom_id in seen:
                raise EmulatedError(
                    400,
                    f"requests.{index}.custom_id: Duplicate custom_id '{custom_id}'; each "
                    "request in a batch needs a unique custom_id.",
                )
            item_params = item.get("params")
            if not isinstance(item_params, dict):
                raise EmulatedError(
                    400, f"requests.{index}.params: Input should be a valid dictionary"
                )
            seen.add(custom_id)
            custom_ids.append(custom_id)
            params.append(item_params)
        view = self._store.create_batch(
            prefix="msgbatch_",
            provider=self.provider,
            endpoint="/v1/messages",
            hooks=_AnthropicBatch(custom_ids, params),
            knobs=knobs,
            line_count=len(custom_ids),
        )
        return self._create_reply(Response.json(_batch_json(view, request.base_url)))

    def _view(self, request: Request) -> JobView:
        view = self._store.view(request.params["id"])
        if view is None or view.provider != self.provider:
            raise EmulatedError(404, f"Message batch {request.params['id']} not found.")
        return view

    def _get_batch(self, request: Request) -> Response:
        return Response.json(_batch_json(self._view(request), request.base_url))

    def _list_batches(self, request: Request) -> Response:
        raw_limit = request.arg("limit") or "20"
        try:
            limit = int(raw_limit)
        except ValueError:
            raise EmulatedError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise EmulatedError(400, "limit: Input should be between 1 and 1000")
        views = list(reversed(self._store.views(self.provider)))  # newest first
        ids = [v.id for v in views]
        after, before = request.arg("after_id"), request.arg("before_id")
        if before is not None:
            end = ids.index(before) if before in ids else 0
            start = max(0, end - limit)
            page, has_more = views[start:end], start > 0
        else:
            start = ids.index(after) + 1 if after is not None and after in ids else 0
            if after is not None and after not in ids:
                start = len(views)
            page, has_more = views[start : start + limit], start + limit < len(views)
        data = [_batch_json(v, request.base_url) for v in page]
        return Response.json(
            {
                "data": data,
                "has_more": has_more,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    def _cancel_batch(self, request: Request) -> Response:
        self._view(request)
        view, accepted = self._store.request_cancel(request.params["id"])
        if view is None:
            raise EmulatedError(404, f"Message batch {request.params['id']} not found.")
        if not accepted:
            raise EmulatedError(
                400, f"Message batch {view.id} has already ended and cannot be canceled."
            )
        return Response.json(_batch_json(view, request.base_url))

    def _delete_batch(self, request: Request) -> Response:
        view = self._view(request)
        if view.status not in TERMINAL_STATUSES:
            raise EmulatedError(
                400,
                f"Message batch {view.id} is still processing; cancel it and wait for it to "
                "end before deleting it.",
            )
        self._store.delete_batch(view.id)
        return Response.json({"id": view.id, "type": "message_batch_deleted"})

    def _results(self, request: Request) -> Response:
        view = self._view(request)
        if view.status not in TERMINAL_STATUSES:
            raise EmulatedError(400, f"Message batch {view.id} has not finished processing.")
        return self._download_reply(view.extra.get("results", b""), "application/x-jsonl")


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def _with_request_id(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """``handler``, its answers carrying a ``request-id`` as Anthropic's do (errors get theirs
    from ``AnthropicApi.error``)."""

    def handle(request: Request) -> Response:
        response = handler(request)
        response.headers.setdefault("request-id", _request_id())
        return response

    return handle


def _processing_status(status: str) -> str:
    if status in TERMINAL_STATUSES:
        return "ended"
    return _PROCESSING.get(status, "in_progress")


def _batch_json(view: JobView, base_url: str) -> dict[str, Any]:
    processing_status = _processing_status(view.status)
    ended = processing_status == "ended"
    counts = view.extra.get("counts")
    if not ended:
        counts = {"processing": view.line_count, "succeeded": 0, "errored": 0}
        counts.update(canceled=0, expired=0)
    elif counts is None:  # ended without results (the emulator itself failed)
        counts = {"processing": 0, "succeeded": 0, "errored": view.line_count}
        counts.update(canceled=0, expired=0)
    ended_at = next(
        (view.times[s] for s in ("completed", "expired", "cancelled", "failed") if s in view.times),
        None,
    )
    return {
        "id": view.id,
        "type": "message_batch",
        "processing_status": processing_status,
        "request_counts": counts,
        "ended_at": rfc3339(ended_at) if ended else None,
        "created_at": rfc3339(view.created_at),
        "expires_at": rfc3339(view.created_at + _DAY),
        "archived_at": None,
        "cancel_initiated_at": rfc3339(view.times.get("cancelling")),
        # The SDK fetches this exactly as given, so it must be absolute and point back here.
        "results_url": f"{base_url}/v1/messages/batches/{view.id}/results" if ended else None,
    }
