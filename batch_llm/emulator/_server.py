"""The emulator's HTTP layer: a threaded HTTP/1.1 server, a router, fault injection, control routes.

Provider modules register routes together with an :class:`Api` that knows how that provider
authenticates and shapes its errors; a handler refuses a request by raising ``EmulatedError``,
and the route's Api shapes the answer. Everything here is provider-neutral.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from ._knobs import Knobs
from ._outcome import EmulatedError
from ._stats import EmulatorStats, StatsRecorder

__all__ = [
    "RETRY_NOW",
    "Api",
    "App",
    "EmulatorHTTPServer",
    "Request",
    "Response",
    "Router",
    "add_control_routes",
    "dumps",
    "rfc3339",
]

log = logging.getLogger("batch_llm.emulator")

# Captured at import so that pytest-socket, which swaps ``socket.socket`` while a test runs,
# cannot break the server's own listening and accepted sockets.
_REAL_SOCKET = socket.socket

# Bigger than any file a provider accepts (OpenAI: 512 MB), small enough to refuse runaway bodies.
MAX_BODY_BYTES = 600 * 1024 * 1024
# Bodies up to this size go out in the same write as the headers: one packet, one syscall.
_COALESCE_LIMIT = 256 * 1024

_ENCODER = json.JSONEncoder(separators=(",", ":"))

# Sent with every emulated 429. The openai SDK ignores a zero delay and falls back to its own
# backoff (about 0.5 s), so the millisecond header asks for 1 ms: retries stay instant.
RETRY_NOW = {"Retry-After": "0", "retry-after-ms": "1"}


def dumps(payload: Any) -> bytes:
    """Encode JSON the way every emulator response body is encoded (compact, ASCII)."""
    return _ENCODER.encode(payload).encode("ascii")


def rfc3339(when: float | None) -> str | None:
    """A Unix time as RFC 3339 in UTC with microseconds (``...Z``), as Anthropic and Google
    write timestamps; None stays None."""
    if when is None:
        return None
    return (
        datetime.fromtimestamp(when, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


@dataclass(slots=True)
class Request:
    """An HTTP request as handlers see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lowercased
    body: bytearray
    base_url: str
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A header value (case-insensitive)."""
        return self.headers.get(name.lower())

    def json_object(self, invalid: str, not_object: str | None = None) -> dict[str, Any]:
        """The body as a JSON object, else a 400 with the provider's words for it: ``invalid``
        for a body that is not JSON, ``not_object`` (``invalid`` if not given) for JSON that is
        not an object."""
        try:
            body = json.loads(self.body)
        except ValueError:
            raise EmulatedError(400, invalid) from None
        if not isinstance(body, dict):
            raise EmulatedError(400, invalid if not_object is None else not_object)
        return body


@dataclass(slots=True)
class Response:
    """An HTTP response; the body is always sent with a Content-Length.

    ``chunk_bytes`` and ``chunk_delay`` send the body in pieces that far apart (a slow
    download); ``lost`` sends nothing at all and closes the connection (a reply lost on the
    way, see :meth:`lost_reply`).
    """

    status: int
    body: bytes | bytearray = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    chunk_bytes: int = 0
    chunk_delay: float = 0.0
    lost: bool = False

    @classmethod
    def lost_reply(cls) -> Response:
        """No answer: the connection is closed once the request has been handled, so the
        client sees it drop without knowing whether the request took effect."""
        return cls(0, lost=True)

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        """A JSON response."""
        return cls(status, dumps(payload), "application/json", dict(headers or {}))


Handler = Callable[[Request], Response]


class Api(Protocol):
    """How one provider's routes authenticate and report errors."""

    def authenticate(self, request: Request) -> Response | None:
        """None if the request may proceed, else the error response to send."""
        ...

    def error(self, failure: EmulatedError, *, headers: dict[str, str] | None = None) -> Response:
        """The response that answers with ``failure``, in the provider's shape."""
        ...


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    key: str
    handler: Handler
    api: Api | None
    when: Callable[[Request], bool] | None = None


_PARAM = re.compile(r"\{(\w+)\}")


class Router:
    """Maps ``METHOD /path/{param}`` templates to handlers.

    The template, with its parameter names, is the route key used by stats and fault injection
    (``"GET /v1/batches/{id}"``).
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self,
        method: str,
        template: str,
        handler: Handler,
        api: Api | None,
        *,
        when: Callable[[Request], bool] | None = None,
    ) -> None:
        """Register a route; ``api`` None marks a control route (no auth, faults or counting).

        ``when`` lets two providers share a path (Gemini's ``/v1/batches/{name}`` and OpenAI's
        ``/v1/batches/{id}``): the route only takes requests it accepts, so register the one
        with a ``when`` first.
        """
        regex = "".join(
            f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part)
            for i, part in enumerate(_PARAM.split(template))
        )
        self._routes.append(
            _Route(
                method.upper(),
                re.compile(f"^{regex}$"),
                f"{method.upper()} {template}",
                handler,
                api,
                when,
            )
        )

    def match(
        self, method: str, path: str, request: Request | None = None
    ) -> tuple[_Route | None, dict[str, str], bool]:
        """The route for a request, its path parameters, and whether any route had that path."""
        path_known = False
        for route in self._routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.when is not None and (request is None or not route.when(request)):
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
        return None, {}, path_known


class App:
    """Dispatches requests: routing, stats, auth, injected faults, then the handler."""

    def __init__(
        self,
        router: Router,
        knobs: Callable[[], Knobs],
        stats: StatsRecorder,
        fallback: Api,
        *,
        fallbacks: Sequence[tuple[Callable[[Request], bool], Api]] = (),
    ) -> None:
        self._router = router
        self._knobs = knobs
        self._stats = stats
        self._fallback = fallback
        self._fallbacks = list(fallbacks)

    def _fallback_for(self, request: Request) -> Api:
        """The provider whose error shape answers a request no route took."""
        for accepts, api in self._fallbacks:
            if accepts(request):
                return api
        return self._fallback

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        route, params, path_known = self._router.match(request.method, request.path, request)
        if route is None:
            fallback = self._fallback_for(request)
            if path_known:
                return fallback.error(
                    EmulatedError(405, f"Method {request.method} not allowed for {request.path}.")
                )
            return fallback.error(
                EmulatedError(404, f"Invalid URL ({request.method} {request.path})")
            )
        request.params = params
        api = route.api
        try:
            if api is None:
                return route.handler(request)
            count = self._stats.count_route(route.key, f"{request.method} {request.path}")
            denied = api.authenticate(request)
            if denied is not None:
                return denied
            fault = self._injected_fault(route.key, count, api)
            if fault is not None:
                return fault
            return route.handler(request)
        except EmulatedError as exc:
            # How every handler refuses a request: the route's provider shapes the answer.
            return (api or self._fallback_for(request)).error(exc)
        except Exception:
            log.exception("emulator handler for %s failed", route.key)
            return (api or self._fallback_for(request)).error(
                EmulatedError(500, "The emulator failed on this request.")
            )

    def _injected_fault(self, key: str, count: int, api: Api) -> Response | None:
        knobs = self._knobs()
        every = knobs.http_error_every
        if not every or count % every:
            return None
        if knobs.http_error_routes is not None and key not in knobs.http_error_routes:
            return None
        self._stats.add("http_errors_injected")
        status = knobs.http_error_status
        headers = dict(RETRY_NOW) if status == 429 else None
        return api.error(EmulatedError(status, _fault_message(status)), headers=headers)


def _fault_message(status: int) -> str:
    if status == 429:
        return "Rate limit reached for requests. Please try again later. (emulated)"
    if status >= 500:
        return "The server had an error while processing your request. Sorry about that!"
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"{phrase} (emulated)"


def _unrouted_error(failure: EmulatedError) -> Response:
    """An error answered before any provider's route is known (a request too malformed to
    route, a control call), in OpenAI's shape as the App's default fallback answers."""
    error = {
        "message": failure.message,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    return Response.json({"error": error}, failure.status)


# --------------------------------------------------------------------------- control routes


def add_control_routes(
    router: Router,
    *,
    knobs: Callable[[], Knobs],
    stats: Callable[[], EmulatorStats],
    reset: Callable[[], None],
) -> None:
    """The ``/_emulator/*`` routes other processes (benchmarks, subprocess tests) drive it with."""

    def get_knobs(_: Request) -> Response:
        return Response.json(knobs().to_json())

    def set_knobs(request: Request) -> Response:
        try:
            changes = json.loads(request.body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("Send a JSON object of knob names to values.")
            knobs().update(changes)
        except ValueError as exc:
            return _unrouted_error(EmulatedError(400, str(exc)))
        return Response.json(knobs().to_json())

    def get_stats(_: Request) -> Response:
        return Response.json(stats().to_json())

    def do_reset(_: Request) -> Response:
        reset()
        return Response.json({"ok": True})

    def health(_: Request) -> Response:
        return Response.json({"ok": True})

    router.add("GET", "/_emulator/knobs", get_knobs, None)
    router.add("POST", "/_emulator/knobs", set_knobs, None)
    router.add("GET", "/_emulator/stats", get_stats, None)
    router.add("POST", "/_emulator/reset", do_reset, None)
    router.add("GET", "/_emulator/health", health, None)


# --------------------------------------------------------------------------- HTTP plumbing


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        # Small JSON answers must not wait for Nagle + delayed ACK (40 ms per call otherwise).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write(f"emulator: {self.address_string()} {format % args}\n")

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except EmulatedError as exc:
            self.close_connection = True
            self._send(_unrouted_error(exc))
            return
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            base_url=f"http://{host}",
        )
        self._send(self.server.app.handle(request))

    def _read_body(self) -> bytearray:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        raw_length = self.headers.get("Content-Length")
        if not raw_length:
            return bytearray()
        try:
            length = int(raw_length)
        except ValueError:
            raise EmulatedError(400, "Invalid Content-Length header.") from None
        if length < 0 or length > MAX_BODY_BYTES:
            raise EmulatedError(413, f"Request body too large ({length} bytes).")
        # One preallocated buffer filled in place: a 200 MB upload costs 200 MB, not 400.
        body = bytearray(length)
        view = memoryview(body)
        received = 0
        while received < length:
            n = self.rfile.readinto(view[received:])
            if not n:
                raise EmulatedError(400, "The request body ended early.")
            received += n
        view.release()
        return body

    def _read_chunked(self) -> bytearray:
        body = bytearray()
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise EmulatedError(400, "Malformed chunked request body.") from None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers carry nothing the emulator needs
                return body
            if len(body) + size > MAX_BODY_BYTES:
                raise EmulatedError(413, "Request body too large.")
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise EmulatedError(400, "The request body ended early.")
            body += chunk
            self.rfile.read(2)

    def _send(self, response: Response) -> None:
        if response.lost:
            self.close_connection = True
            with contextlib.suppress(OSError):
                # A FIN right away: the client reads the end of the connection instead of an
                # answer (SDKs report "server disconnected without sending a response").
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        status = response.status
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "x-request-id": "req_" + uuid.uuid4().hex,
            **response.headers,
        }
        if self.close_connection:
            headers["Connection"] = "close"
        head = (
            f"HTTP/1.1 {status} {phrase}\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        )
        self.log_request(status, len(response.body))
        try:
            if response.chunk_bytes > 0:
                self._send_chunked(head.encode("latin-1"), response)
            elif len(response.body) <= _COALESCE_LIMIT:
                self.wfile.write(head.encode("latin-1") + response.body)
            else:
                self.wfile.write(head.encode("latin-1"))
                self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send_chunked(self, head: bytes, response: Response) -> None:
        """The body in ``chunk_bytes`` pieces, ``chunk_delay`` seconds apart (not chunked
        transfer encoding: the length is known, only the bytes come slowly)."""
        self.wfile.write(head)
        body = memoryview(response.body)
        size = response.chunk_bytes
        for start in range(0, len(body), size):
            if start and response.chunk_delay > 0:
                time.sleep(response.chunk_delay)
            self.wfile.write(body[start : start + size])
        body.release()


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that tracks its connections so ``close_all`` can end them."""

    daemon_threads = True
    allow_reuse_address = True
    # Async benchmarks open hundreds of connections at once; the default backlog of 5 resets them.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: App, *, verbose: bool = False) -> None:
        # TCPServer.__init__ without its socket.socket() call, which pytest-socket may block.
        socketserver.BaseServer.__init__(self, address, _RequestHandler)
        self.socket = _REAL_SOCKET(self.address_family, self.socket_type)
        self.app = app
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        try:
            self.server_bind()
            self.server_activate()
        except BaseException:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on machines without DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def get_request(self) -> tuple[socket.socket, Any]:
        fd, address = self.socket._accept()  # type: ignore[attr-defined]
        conn = _REAL_SOCKET(self.socket.family, self.socket.type, self.socket.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.socket.gettimeout():
            conn.setblocking(True)
        with self._connections_lock:
            self._connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        """Shut down every open keep-alive connection (their threads then exit)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # clients hanging up is normal
        super().handle_error(request, client_address)
