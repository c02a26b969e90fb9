"""The contract between the scheduler and one provider's Batch API.

The scheduler knows nothing of any provider: it asks the adapter which requests may share a
batch (``Prepared.key``), how big a batch may grow (``limits``), and hands it finished groups of
lines to submit, poll, read back and cancel. Everything a provider does differently lives in
its adapter.
"""

from __future__ import annotations

import abc
import json
from collections.abc import AsyncIterator, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from .._errors import InvalidRequestError

__all__ = [
    "BatchState",
    "BatchStatus",
    "Limits",
    "Outcome",
    "Prepared",
    "Provider",
    "encode_body",
]

BatchState = Literal["validating", "in_progress", "finalizing", "cancelling", "ended"]
Outcome = Literal["completed", "failed", "expired", "cancelled"]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much one batch may hold.

    Attributes:
        max_requests: lines per batch.
        max_bytes: bytes of the submitted payload per batch.
        max_inputs: a further cap on the sum of ``Prepared.inputs`` (OpenAI counts embedding
            inputs across the whole batch); None when the provider has none.
    """

    max_requests: int
    max_bytes: int
    max_inputs: int | None = None


class Prepared:
    """A request checked and encoded by its adapter: one line of a future batch.

    A plain slotted class, because one is built for every request of every fan-out.

    Attributes:
        key: requests whose keys are equal may share one batch.
        endpoint: the provider endpoint the request is for.
        data: the request body as the JSON bytes that will be sent.
        nbytes: what the request adds to its batch's payload, envelope included.
        inputs: what it adds towards ``Limits.max_inputs``.
        custom_id: the line's id within its batch, set by the scheduler when it is queued.
    """

    __slots__ = ("custom_id", "data", "endpoint", "inputs", "key", "nbytes")

    def __init__(
        self, key: Hashable, endpoint: str, data: bytes, nbytes: int, inputs: int = 1
    ) -> None:
        self.key = key
        self.endpoint = endpoint
        self.data = data
        self.nbytes = nbytes
        self.inputs = inputs
        self.custom_id = ""

    def __repr__(self) -> str:
        return f"<Prepared {self.endpoint} {self.custom_id or '(unqueued)'} {self.nbytes} B>"


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
    handle: Any = field(default=None, compare=False, repr=False)

    @property
    def ended(self) -> bool:
        """True once the batch will not change any more."""
        return self.state == "ended"


# Built once: ``json.dumps`` with any non-default option builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Serialize a request body once, compactly, or say clearly why it cannot be."""
    if not isinstance(body, Mapping):
        raise InvalidRequestError(
            f"a request body must be a mapping (JSON object), got {type(body).__name__}"
        )
    try:
        text = _ENCODER.encode(body)
    except (TypeError, ValueError) as exc:
        raise InvalidRequestError(f"request body is not JSON-serializable: {exc}") from None
    return text.encode()


class Provider(abc.ABC):
    """One provider's Batch API.

    Lifecycle: ``prepare`` runs on the caller's thread for every request and must be cheap
    and free of I/O; ``submit``, ``poll``, ``results`` and ``cancel`` run on the scheduler's
    event loop; ``aclose`` releases clients. Two adapters that compare equal share queues.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def prepare(self, endpoint: str, body: Mapping[str, Any]) -> Prepared:
        """Check and encode one request; raise ``InvalidRequestError`` on bad input."""

    @abc.abstractmethod
    def limits(self, key: Hashable) -> Limits:
        """The limits of a batch of requests that share ``key``."""

    @abc.abstractmethod
    async def submit(
        self, key: Hashable, lines: Sequence[Prepared], metadata: Mapping[str, str]
    ) -> BatchStatus:
        """Create one batch holding ``lines`` (each with its ``custom_id``) and return its
        first status."""

    @abc.abstractmethod
    async def poll(self, status: BatchStatus) -> BatchStatus:
        """Fetch the batch's current status."""

    @abc.abstractmethod
    def results(self, status: BatchStatus) -> AsyncIterator[list[tuple[str, Any]]]:
        """Stream an ended batch's results as lists of ``(custom_id, outcome)``, a list at a time
        as they arrive.

        The outcome is the response body the realtime API would have returned, or an
        exception instance: the one the provider SDK raises for that error, or a
        ``BatchError`` for a request the batch never ran.
        """

    @abc.abstractmethod
    async def cancel(self, status: BatchStatus) -> BatchStatus:
        """Ask the provider to cancel the batch."""

    async def aclose(self) -> None:  # noqa: B027 - adapters without clients need nothing
        """Release network clients."""

    def describe(self) -> str:
        """A short name for logs, without secrets."""
        return self.name
