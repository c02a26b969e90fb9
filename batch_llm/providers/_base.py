"""The contract between the scheduler and one provider's Batch API.

The scheduler knows nothing of any provider: it asks the adapter which requests may share a
batch (``Line.key``), how big a batch may grow (``limits``), and hands it finished groups of
lines to submit, poll, read back and cancel. Everything a provider does differently lives in
its adapter.

An adapter must do eight things (the abstract methods of ``Provider``) and may do four more,
which it declares in ``capabilities`` rather than leaving the scheduler to guess from a None:

========== ======================= =====================================================
capability method                  what depends on it
========== ======================= =====================================================
reconcile  ``find_batch``          a create whose reply was lost, or a crash between
                                   creating a batch and journaling its id, is found again
                                   instead of paid twice
usage      ``usage``               token counts and cost (``cost_report``, events)
list       ``list_batches``        ``batch-llm batches --remote``
realtime   ``realtime``            deadlines and ``on_expiry="realtime"``
========== ======================= =====================================================

Adapters are built by a factory registered under their name (``register_provider``) that takes
at least the keywords ``base_url`` and ``api_key`` (None: the provider's own default and
environment): that is how the CLI reaches a journaled batch again from another process.
``batch_llm.testing.ProviderContract`` is the suite an adapter passes to be done.
"""

from __future__ import annotations

import abc
import functools
import hashlib
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, NamedTuple

from .._errors import InvalidRequestError, MalformedResultError

__all__ = [
    "CAPABILITIES",
    "INTENT_KEY",
    "BatchState",
    "BatchStatus",
    "Capability",
    "Limits",
    "Line",
    "Outcome",
    "Provider",
    "Usage",
    "encode_body",
    "new_usage",
    "shared_key",
]

#: The batch-metadata key under which the scheduler stamps its journal intent id.
INTENT_KEY = "batch_llm_intent"

BatchState = Literal["validating", "in_progress", "finalizing", "cancelling", "ended"]
Outcome = Literal["completed", "failed", "expired", "cancelled"]
#: An optional duty an adapter declares it takes on (module docstring).
Capability = Literal["reconcile", "usage", "list", "realtime"]
CAPABILITIES: frozenset[Capability] = frozenset({"reconcile", "usage", "list", "realtime"})


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one batch may hold.

    Attributes:
        max_requests: lines per batch.
        max_bytes: bytes of the submitted payload per batch.
        max_inputs: a further cap on the sum of ``Line.inputs`` (OpenAI counts embedding
            inputs across the whole batch); None when the provider has none.
    """

    max_requests: int
    max_bytes: int
    max_inputs: int | None = None


class Line:
    """A request checked and encoded by its adapter: one line of a future batch.

    A plain slotted class, because one is built for every request of every fan-out.

    Attributes:
        key: requests whose keys are equal may share one batch.
        endpoint: the provider endpoint the request is for.
        data: the request body as the JSON bytes that will be sent.
        nbytes: what the request adds to its batch's payload, envelope included.
        inputs: what it adds towards ``Limits.max_inputs``.
        deterministic: the same request always gets the same answer (embeddings, sampling at
            temperature 0), so identical requests may share one line.
        model: the model the request asks for (what ``batch-llm batches`` shows: an Anthropic
            batch may mix several).
        custom_id: the line's id within its batch, set by the scheduler when it is queued.
        attempts: how many batches this line has already been sent in (expired or rejected
            lines are sent again, a bounded number of times).
    """

    __slots__ = (
        "attempts",
        "custom_id",
        "data",
        "deterministic",
        "endpoint",
        "inputs",
        "key",
        "model",
        "nbytes",
    )

    def __init__(
        self,
        key: Hashable,
        endpoint: str,
        data: bytes,
        nbytes: int,
        inputs: int = 1,
        *,
        deterministic: bool = False,
        model: str = "",
    ) -> None:
        self.key = key
        self.model = model
        self.endpoint = endpoint
        self.data = data
        self.nbytes = nbytes
        self.inputs = inputs
        self.deterministic = deterministic
        self.custom_id = ""
        self.attempts = 0

    def __repr__(self) -> str:
        return f"<Line {self.endpoint} {self.custom_id or '(unqueued)'} {self.nbytes} B>"


class Usage(NamedTuple):
    """The tokens one answer was billed for, as its provider reported them.

    Every count is of the whole prompt or answer: ``cached_input_tokens`` and
    ``cache_write_tokens`` are the parts of ``input_tokens`` read from or written to the
    provider's prompt cache (billed at their own rates), and ``output_tokens`` includes
    reasoning or thinking tokens.

    Attributes:
        model: the model that answered, as the provider names it ("" if it does not say).
        input_tokens: prompt tokens, cached ones included.
        output_tokens: answer tokens, reasoning included.
        cached_input_tokens: prompt tokens read from the cache.
        cache_write_tokens: prompt tokens written to the cache (Anthropic).
    """

    model: str
    input_tokens: int
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


def new_usage(fields: tuple[str, int, int, int, int]) -> Usage:
    """A ``Usage`` from its five fields, in order, without ``Usage(...)``'s argument handling
    (adapters build one per answer: this is half the cost)."""
    return _TUPLE_NEW(Usage, fields)


_TUPLE_NEW: Callable[[type[Usage], tuple[str, int, int, int, int]], Usage] = tuple.__new__


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A provider-neutral view of one submitted batch.

    Attributes:
        batch_id: the provider's id.
        state: where it is; ``ended`` once nothing more will change.
        raw_status: the provider's own word for ``state``.
        total, succeeded, failed: request counts as the provider reports them.
        outcome: how it ended, once ``state == "ended"``.
        reason: why it failed, when ``outcome == "failed"``.
        line_errors: for a batch that failed validation, the errors the provider tied to
            particular lines (1-based line number -> message); the other lines were fine.
        endpoint: the endpoint of the batch's lines.
        times: when things happened to it, as the provider reports them (Unix seconds, by
            the provider's word: ``created``, ``in_progress``, ``ended``, ``expires``...).
        handle: the provider's batch object, for the adapter's own use.
    """

    batch_id: str
    state: BatchState
    raw_status: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    outcome: Outcome | None = None
    reason: str | None = None
    line_errors: Mapping[int, str] = field(default_factory=dict)
    endpoint: str | None = None
    times: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)
    handle: Any = field(default=None, compare=False, repr=False)

    @property
    def ended(self) -> bool:
        """True once the batch will not change any more."""
        return self.state == "ended"


@functools.lru_cache(maxsize=1024)
def shared_key(endpoint: str, model: str) -> tuple[str, str]:
    """The grouping key ``(endpoint, model)``, one tuple for all the requests that share it:
    a ``Line`` keeps its key while its batch runs, and 50,000 copies of one are 4 MB."""
    return (endpoint, model)


# Built once: ``json.dumps`` with any non-default option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_body(
    body: Mapping[str, Any], sdk_dumps: Callable[[Mapping[str, Any]], bytes] | None = None
) -> bytes:
    """Serialize a request body once, compactly, or say clearly why it cannot be.

    ``sdk_dumps`` is how the provider's SDK puts a body on the wire, for values plain JSON
    lacks but the SDK's realtime call accepts (a ``datetime``, a pydantic model): a batch must
    take what realtime takes, and send it as realtime would. It runs only when plain JSON
    fails, so ordinary bodies pay nothing for it; where plain JSON succeeds, the SDKs write the
    same bytes (same separators, no ASCII escaping, no NaN).
    """
    if not isinstance(body, Mapping):
        raise InvalidRequestError(
            f"a request body must be a mapping (JSON object), got {type(body).__name__}"
        )
    try:
        text = _ENCODER.encode(body)
    except TypeError as exc:
        error: Exception = exc
    except ValueError as exc:
        raise InvalidRequestError(f"request body is not JSON-serializable: {exc}") from None
    else:
        try:
            return text.encode()
        except UnicodeEncodeError as exc:
            raise _not_unicode(exc) from None
    if sdk_dumps is not None:
        try:
            return sdk_dumps(body)
        except ImportError:
            pass  # an SDK too old to encode more than plain JSON does
        except UnicodeEncodeError as exc:
            raise _not_unicode(exc) from None
        except (TypeError, ValueError) as exc:
            error = exc
    raise InvalidRequestError(f"request body is not JSON-serializable: {error}") from None


def _not_unicode(exc: UnicodeEncodeError) -> InvalidRequestError:
    # A lone surrogate (such as "\ud800", left by a bad decode or a sliced emoji) is a valid
    # Python string but no valid UTF-8: no provider can be sent it.
    bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode()
    return InvalidRequestError(
        f"request body holds text that is not valid Unicode ({bad} at character "
        f"{exc.start} of its JSON: {exc.reason}); it cannot be sent"
    )


class Provider(abc.ABC):
    """One provider's Batch API.

    Lifecycle: ``prepare`` runs on the caller's thread for every request and must be cheap
    and free of I/O; everything else runs on the scheduler's event loop; ``aclose`` releases
    clients. Two adapters that compare equal share queues.

    Results are read as named raw byte streams (``result_streams``, ``open_stream``) parsed by
    ``parse_stream``; the scheduler keeps a copy of the raw bytes in its journal and can parse
    them again later (``replay``) without asking the provider.

    The abstract methods are required. ``capabilities`` names the optional ones this adapter
    implements (``find_batch``, ``usage``, ``list_batches``, ``realtime``); the scheduler
    calls no optional method an adapter does not declare.
    """

    name: ClassVar[str]
    #: The optional duties this adapter takes on (module docstring).
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def supports(self, capability: Capability) -> bool:
        """Whether this adapter declares ``capability``."""
        return capability in self.capabilities

    @abc.abstractmethod
    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Line:
        """Check and encode one request; raise ``InvalidRequestError`` on bad input."""

    @abc.abstractmethod
    def limits(self, key: Hashable) -> Limits:
        """The limits of a batch of requests that share ``key``."""

    @abc.abstractmethod
    async def submit(
        self,
        key: Hashable,
        lines: Sequence[Line],
        metadata: Mapping[str, str],
        before_create: Callable[[], Awaitable[None]] | None = None,
    ) -> BatchStatus:
        """Create one batch holding ``lines`` (each with its ``custom_id``) and return its
        first status. ``before_create`` is awaited right before the call that creates the
        batch (after any upload), so the journal's intent is written by then."""

    @abc.abstractmethod
    async def poll(self, status: BatchStatus) -> BatchStatus:
        """Fetch the batch's current status (``status`` may carry only the batch id)."""

    @abc.abstractmethod
    async def cancel(self, status: BatchStatus) -> BatchStatus:
        """Ask the provider to cancel the batch."""

    async def list_batches(self, limit: int = 20) -> list[BatchStatus]:
        """Capability ``list``: the account's most recent batches, newest first, at most
        ``limit`` of them (whoever made them), for tools that show what is running."""
        raise NotImplementedError(f"{self.name} cannot list its batches")

    # -- results ----------------------------------------------------------------------------

    @abc.abstractmethod
    def result_streams(self, status: BatchStatus) -> list[str]:
        """Names of an ended batch's result streams, in reading order."""

    @abc.abstractmethod
    def open_stream(
        self, status: BatchStatus, name: str
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The raw bytes of one result stream, as they arrive."""

    @abc.abstractmethod
    def parse_stream(
        self, status: BatchStatus, name: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        """Parse one result stream into lists of ``(custom_id, outcome)``.

        The outcome is the response body the realtime API would have returned, or an
        exception instance: the one the provider SDK raises for that error, or a
        ``BatchError`` for a request the batch never ran. Only ``status.batch_id`` and
        ``status.endpoint`` may be relied on: a replay has nothing else.
        """

    def check_answer(self, prepared: Line, body: Any) -> None:  # noqa: B027 - optional
        """Make sure a successful answer ``body`` can be the answer to ``prepared``.

        ``results`` and ``replay`` call it for each answer whose request they are given, so
        that a caller never gets an answer that does not fit what it asked, such as an
        embeddings answer with more or fewer vectors than the request had inputs (whose
        vectors cannot be matched to their texts). Every answer fits unless an adapter knows
        better.

        Raises:
            ValueError: the answer does not fit, saying why; the caller gets a
                ``MalformedResultError`` instead of it.
        """

    def checks_answers(self, endpoint: str | None) -> bool:
        """Whether ``check_answer`` can find fault with an answer to a request of ``endpoint``
        (None: not known). Where it cannot, results skip it: it runs once per answer. True
        for any adapter that overrides ``check_answer``, unless it says better."""
        return type(self).check_answer is not Provider.check_answer

    async def results(
        self,
        status: BatchStatus,
        sink: Callable[[str, bytes], object] | None = None,
        requests: Mapping[str, Line] | None = None,
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        """Stream an ended batch's results as lists of ``(custom_id, outcome)``, a list at a
        time as they arrive; every raw chunk also goes to ``sink(stream, chunk)`` (awaited when
        it returns an awaitable, so a slow sink slows the reading down). Answers
        to ``requests`` (by custom_id) are checked against them (``check_answer``)."""
        check = self._checker(status, requests)
        for name in self.result_streams(status):
            async with self.open_stream(status, name) as chunks:
                source = chunks if sink is None else _tee(chunks, name, sink)
                async for rows in self.parse_stream(status, name, source):
                    yield rows if check is None else check(rows)

    async def replay(
        self,
        status: BatchStatus,
        streams: Sequence[tuple[str, bytes]],
        requests: Mapping[str, Line] | None = None,
    ) -> AsyncIterator[list[tuple[str, Any]]]:
        """Parse result streams kept from an earlier read (``(name, bytes)``, in order),
        checking answers to ``requests`` as ``results`` does."""
        check = self._checker(status, requests)
        grouped: dict[str, list[bytes]] = {}
        for name, data in streams:
            grouped.setdefault(name, []).append(data)
        for name, parts in grouped.items():
            async for rows in self.parse_stream(status, name, _from(parts)):
                yield rows if check is None else check(rows)

    def _checker(
        self, status: BatchStatus, requests: Mapping[str, Line] | None
    ) -> Callable[[list[tuple[str, Any]]], list[tuple[str, Any]]] | None:
        """What checks each list of answers against ``requests``; None when nothing would
        (no requests, or an adapter whose answers always fit), so results pay nothing."""
        if not requests or not self.checks_answers(status.endpoint):
            return None
        check_answer, get, batch_id = self.check_answer, requests.get, status.batch_id

        def check(rows: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
            for index, (custom_id, outcome) in enumerate(rows):
                prepared = get(custom_id)
                if prepared is None or isinstance(outcome, BaseException):
                    continue
                try:
                    check_answer(prepared, outcome)
                except ValueError as exc:
                    rows[index] = (
                        custom_id,
                        MalformedResultError(
                            f"batch {batch_id} answered this request with {exc}",
                            batch_id=batch_id,
                            custom_id=custom_id,
                        ),
                    )
            return rows

        return check

    # -- durability -------------------------------------------------------------------------

    def identity(self) -> str:
        """A stable digest of what makes this adapter's batches its own (endpoint,
        credentials hashed): the journal keys requests by it across processes."""
        return hashlib.sha256(self.describe().encode()).hexdigest()[:24]

    async def find_batch(
        self, intent_id: str, created_after: float, requests: int | None = None
    ) -> BatchStatus | None:
        """Capability ``reconcile``: the batch stamped with ``intent_id`` (created after that
        Unix time, holding ``requests`` lines), or None if the provider has none. Reconciles a
        create whose reply was lost, and a crash between creating a batch and recording it."""
        raise NotImplementedError(f"{self.name} cannot find a batch by its intent")

    def usage(self, endpoint: str, body: Any, key: Hashable = None) -> Usage | None:
        """Capability ``usage``: the usage reported in one successful result ``body`` of
        ``endpoint`` (None if that body reports none); ``key`` is the batch's grouping key,
        when known, for providers whose answers do not name their model.

        Called once for every answer read, on the scheduler's loop: keep it to a few lookups.
        """
        return None

    async def realtime(self, prepared: Line) -> Any:
        """Capability ``realtime``: send one request through the realtime API; returns its
        body or raises its error."""
        raise NotImplementedError(f"{self.name} cannot send requests realtime")

    def is_transient(self, exc: BaseException) -> bool:
        """Worth retrying: rate limits, server errors, timeouts, dropped connections."""
        from .._retry import is_transient

        return is_transient(exc)

    def is_not_found(self, exc: BaseException) -> bool:
        """The provider does not know the batch (a journal entry from another server)."""
        return getattr(exc, "status_code", None) == 404

    async def aclose(self) -> None:  # noqa: B027 - adapters without clients need nothing
        """Release network clients."""

    def describe(self) -> str:
        """A short name for logs, without secrets (a URL in it goes through ``public_url``)."""
        return self.name

    @property
    def base_url(self) -> str | None:
        """Where the adapter sends its calls when not the provider's own API (None): with the
        adapter's name, what a later process needs to find its batches again. Without
        credentials (no user info, query or fragment): they come from that process's
        environment."""
        return None


async def _tee(
    chunks: AsyncIterator[bytes], name: str, sink: Callable[[str, bytes], object]
) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk:
            kept = sink(name, chunk)
            if inspect.isawaitable(kept):  # the sink holds the reader back while it catches up
                await kept
        yield chunk


async def _from(parts: Sequence[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
