"""What the SDK-driven adapters share: their base class, TLS context, JSONL parsing, HTTP module."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import ssl
import sys
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping
from types import ModuleType
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

from .._errors import MalformedResultError
from .._gc import gc_paused
from .._redact import public_url, split_userinfo
from ._base import CAPABILITIES, Capability, Provider

__all__ = [
    "SDKProvider",
    "http_module_of",
    "malformed_result",
    "parse_result_lines",
    "shared_ssl_context",
]

logger = logging.getLogger("batch_llm")


ClientT = TypeVar("ClientT")
T = TypeVar("T")

#: Per-call options that switch a Stainless SDK's own retries off (openai, anthropic).
NO_SDK_RETRIES: dict[str, Any] = {"max_retries": 0}


class SDKProvider(Provider, Generic[ClientT]):
    """An adapter driving a provider's SDK: what the OpenAI, Anthropic and Gemini adapters share.

    - Two adapters built with the same settings are equal (they share queues), so equality
      covers every setting that changes where or how a batch is sent; the key enters only as
      a digest, never in a form that could be printed.
    - A base URL's user info (``https://user:password@host/v1``) is a credential: the SDK gets
      the URL without it, and the HTTP client sends it as Basic auth, which is what httpx
      makes of a URL's user info. So no SDK log line or error message can quote it, and
      ``describe``, ``repr`` and ``base_url`` show the URL without it (``public_url``).
    - An async client's connection pool belongs to the event loop it first ran on, and one
      adapter may serve several schedulers (each with its own loop): one client per loop
      (``client``, built by ``_new_client``), unless the caller handed one in.
    - The call that creates a batch goes through ``_create_once``: never retried by the SDK.
    """

    #: The provider's own API, named by ``describe`` when no base URL is set.
    default_host: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]] = CAPABILITIES

    #: The base URL the SDK is given (None: the provider's own API), without user info.
    _base_url: str | None
    #: The base URL's user info: the HTTP client's ``auth``, sent as Basic auth.
    _url_credentials: tuple[str, str] | None
    _client: ClientT | None

    def _setup(
        self,
        client: Any,
        api_key: str | None,
        base_url: str | None,
        settings: tuple[Hashable, ...],
    ) -> None:
        """Keep ``client`` (None: build one per loop), the base URL (its user info apart)
        and the adapter's identity: its name, the credentials' digest, the base URL, then
        ``settings``."""
        self._client = client
        self._base_url, self._url_credentials = split_userinfo(base_url)
        self._public_url = public_url(base_url)
        if client is None:
            shared_ssl_context()  # pay the one-time TLS set-up here, not on the first batch
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ClientT] = (
            weakref.WeakKeyDictionary()
        )
        secret = api_key or ""
        if self._url_credentials is not None:
            secret += "\0" + ":".join(self._url_credentials)
        key_digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
        self._identity: Hashable = (
            self.name,
            key_digest,
            self._base_url,
            *settings,
            id(client) if client is not None else None,
        )
        # Hashed once: every request's queue is looked up by its adapter.
        self._hash = hash(self._identity)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SDKProvider) and other._identity == self._identity

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._public_url!r})"

    def describe(self) -> str:
        return f"{self.name}({self._public_url or self.default_host})"

    @property
    def base_url(self) -> str | None:
        return self._public_url

    def identity(self) -> str:
        return hashlib.sha256(repr(self._identity).encode()).hexdigest()[:24]

    @property
    def client(self) -> ClientT:
        """The SDK client for the running event loop, built on first use."""
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._new_client()
        return client

    @abc.abstractmethod
    def _new_client(self) -> ClientT:
        """A new SDK client for the running loop, with the adapter's settings."""

    async def _close_client(self, client: ClientT) -> None:
        await client.close()  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await self._close_client(client)

    async def _create_once(
        self,
        before_create: Callable[[], Awaitable[None]] | None,
        create: Callable[[], Awaitable[T]],
    ) -> T:
        """The call that creates a batch, once the journal's intent is durable
        (``before_create``). ``create`` must switch the SDK's own retries off: a create whose
        reply was lost may have made the batch, and a blind retry would make (and bill) a
        second one. The runner retries only after reconciling through ``find_batch``."""
        if before_create is not None:
            await before_create()
        return await create()


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every SDK client this process builds.

    Building a context (loading the CA bundle) costs about 30 ms, and SDK clients each build
    their own; one client per event loop and provider would pay it again and again.
    """
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or _ca_bundle())


def _ca_bundle() -> str | None:
    try:
        import certifi
    except ImportError:  # the system's default trust store then
        return None
    return str(certifi.where())


def http_module_of(client: Any) -> ModuleType:
    """The HTTP library (``httpx`` or ``httpx2``) an SDK client is built on.

    SDK releases moved from ``httpx`` to ``httpx2``; errors must be built from the same
    library's ``Response`` the SDK itself would have used, so ask the client rather than guess.
    """
    inner = getattr(client, "_client", None)
    module_name = type(inner).__module__.split(".", 1)[0] if inner is not None else "httpx"
    module = sys.modules.get(module_name)
    if module is None or not hasattr(module, "Response"):
        import httpx

        return httpx
    return module


async def parse_result_lines(
    chunks: AsyncIterator[bytes],
    outcome: Callable[[Mapping[str, Any]], Any],
    *,
    id_field: str,
    batch_id: str,
    stream: str,
) -> AsyncIterator[list[tuple[str, Any]]]:
    """Parse a JSONL result stream as it arrives into ``(request id, outcome)`` lists, one per
    network chunk; ``outcome`` turns one decoded line into its answer (or error).

    A line that does not parse, or that ``outcome`` cannot make sense of (it raises), fails
    only its own request, with a ``MalformedResultError`` naming the batch and the line;
    its request is found by the ``id_field`` left in the line's bytes. A line that names no
    request is logged and left out, so its request ends up reported missing.

    Lines are decoded as they arrive, so a result file is never held whole in memory next to
    its parsed form. Each chunk's lines are decoded in one call, as one JSON array, with the
    cyclic GC paused (see ``_gc``): the decoder then shares one string per distinct key across
    all lines, which takes a result file's parsed form down by about 45 % and its parsing time
    by about a third, compared with decoding line by line. Only a chunk holding a bad line is
    decoded again line by line.
    """
    where = _Where(id_field, batch_id, stream)
    rest = b""
    number = 0  # lines of the stream before this chunk's
    async for chunk in chunks:
        if not chunk:
            continue
        buf = rest + chunk if rest else chunk
        lines = buf.split(b"\n")
        rest = lines.pop()
        if lines:
            yield _answers(lines, number, outcome, where)
            number += len(lines)
    if rest.strip():
        yield _answers([rest], number, outcome, where)


class _Where(NamedTuple):
    """Which stream of which batch is being read, and where its lines carry their id."""

    id_field: str
    batch_id: str
    stream: str

    def malformed(self, number: int, raw: bytes, reason: str) -> tuple[str, Any] | None:
        """The failed answer of a line that is not a usable result, if it names its request.

        The id is the first ``"<id_field>": "..."`` outside a string (a quote inside one is
        escaped): the providers write it at the start of the line, ahead of any answer.
        """
        found = re.search(
            rb'(?<!\\)"' + re.escape(self.id_field.encode()) + rb'"\s*:\s*("(?:[^"\\]|\\.)*")',
            raw,
        )
        custom_id = None
        if found is not None:
            with contextlib.suppress(ValueError):
                custom_id = json.loads(found.group(1))
        if not isinstance(custom_id, str):
            logger.warning(
                "batch %s: line %d of %s is not a result (%s) and names no request; that "
                "request will be reported missing",
                self.batch_id,
                number,
                self.stream,
                reason,
            )
            return None
        return custom_id, malformed_result(self.batch_id, custom_id, self.stream, number, reason)


def malformed_result(
    batch_id: str, custom_id: str, stream: str, number: int, reason: str, unit: str = "line"
) -> MalformedResultError:
    """The error of a request whose result (``unit`` ``number`` of ``stream``) is unusable."""
    return MalformedResultError(
        f"batch {batch_id}: {unit} {number} of {stream}, this request's answer, is not a "
        f"usable result ({reason})",
        batch_id=batch_id,
        custom_id=custom_id,
        stream=stream,
        line=number,
    )


def _answers(
    lines: list[bytes],
    before: int,
    outcome: Callable[[Mapping[str, Any]], Any],
    where: _Where,
) -> list[tuple[str, Any]]:
    """The answers of one chunk's lines (``before`` lines of the stream came earlier)."""
    id_field = where.id_field
    kept = [line for line in lines if line and not line.isspace()]
    with gc_paused():
        try:
            decoded = json.loads(b"[" + b",".join(kept) + b"]")
            # Every line an object naming its request, every outcome built: the common case.
            return [(str(row[id_field]), outcome(row)) for row in decoded]
        except Exception:  # a bad line somewhere: go again, line by line
            pass
        answers: list[tuple[str, Any]] = []
        for number, raw in enumerate(lines, before + 1):
            if not raw or raw.isspace():
                continue
            try:
                row = json.loads(raw)
            except ValueError as exc:
                bad = where.malformed(number, raw, f"not valid JSON: {exc}")
            else:
                if not isinstance(row, dict):
                    bad = where.malformed(number, raw, "not a JSON object")
                elif row.get(id_field) is None:
                    bad = where.malformed(number, raw, f"no {id_field}")
                else:
                    try:
                        answers.append((str(row[id_field]), outcome(row)))
                        continue
                    except Exception as exc:
                        bad = where.malformed(number, raw, f"{type(exc).__name__}: {exc}")
            if bad is not None:
                answers.append(bad)
    return answers
