"""What the scheduler knows of each batch: queued lines, then a batch followed to its end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from ._cost import UsageMeter, model_from_key
from ._journal import Intent
from ._redact import public_url
from ._waiters import Waiters, all_cancelled
from .providers import BatchStatus, Limits, Line, Provider

__all__ = ["Batch", "BatchRecord", "Queue"]


@dataclass
class BatchRecord:
    """What the scheduler knows of one batch it made or resumed; kept for inspection.

    Attributes:
        provider: the adapter's description (no secrets).
        key: the adapter's grouping key (for OpenAI, endpoint and model).
        requests: lines in the batch.
        batch_id: the provider's id, once created.
        status: the provider's latest status word, or ``queued`` / ``submit_failed``.
        outcome: how it ended, once it has.
        counts: the provider's request counts (total, succeeded, failed).
        intent_id: the journal's id for the submission.
        resumed: True if an earlier run submitted it and this one picked it up.
        state: where it is, in the provider-neutral words of ``BatchStatus.state``
            (``queued`` until submitted).
        metadata: the key/values stamped on it (the scheduler's and the submitter's).
        usage: answers and tokens read from it, once its results are in.
        cost: what it cost (USD; a dict of ``cost``, ``realtime_cost`` and ``saving``), once
            its results are in and if its models have prices.
    """

    provider: str
    key: Hashable
    requests: int
    batch_id: str | None = None
    status: str = "queued"
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    intent_id: str = ""
    resumed: bool = False
    state: str = "queued"
    metadata: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    cost: dict[str, Any] | None = None


class Batch:
    """One provider batch: its lines, the callers still waiting, and how far it got.

    Created when a queue is cut (under the scheduler's lock) or when a journal entry is picked
    up again; from then on only the scheduler's loop touches it.
    """

    __slots__ = (
        "by_id",
        "deadlines",
        "finished",
        "intent",
        "key",
        "late",
        "lines",
        "metadata",
        "meter",
        "pending",
        "provider",
        "record",
        "status",
        "stored",
    )

    def __init__(
        self,
        provider: Provider,
        key: Hashable,
        lines: list[Line],
        pending: dict[str, Waiters],
        *,
        intent: Intent | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.provider = provider
        # What the submitter asked to stamp on the batch, on top of the scheduler's metadata.
        self.metadata = metadata or {}
        # Usage of the answers read from this batch.
        self.meter = UsageMeter()
        self.key = key
        self.lines = lines
        # Lines by id, kept after submission: expired or rejected lines are sent again.
        self.by_id: dict[str, Line] = {}
        self.pending = pending
        # Whether any caller waiting on it set a deadline (then it is looked through for the
        # earliest at every poll).
        self.deadlines = False
        self.finished = False
        # Callers that asked for a line of this batch after its results were handed out.
        self.late: list[tuple[Line, Waiters]] = []
        self.status: BatchStatus | None = None
        # Whether its results are in the journal, read whole (by this scheduler or another).
        self.stored = False
        endpoint = lines[0].endpoint if lines else (intent.endpoint if intent else "")
        self.intent = intent or Intent(
            intent_id=uuid.uuid4().hex,
            provider=provider.describe(),
            provider_id=provider.identity(),
            endpoint=endpoint,
            requests=len(lines),
            # When it was asked for (reconciling a lost create looks for batches made since),
            # whether or not a journal keeps it.
            created_at=time.time(),
            # What `batch-llm batches` needs to reach the batch again, without credentials.
            provider_name=provider.name,
            base_url=public_url(provider.base_url),
            model=model_from_key(key) or _models(lines),
        )
        self.record = BatchRecord(
            provider.describe(),
            key,
            len(lines) or self.intent.requests,
            batch_id=self.intent.batch_id,
            intent_id=self.intent.intent_id,
            resumed=intent is not None,
        )

    @property
    def intent_id(self) -> str:
        """The journal's id for this submission."""
        return self.intent.intent_id

    def take_lines(self) -> list[Line]:
        """The lines to submit, once: those of callers who gave up before submission cost
        nothing, so they are left out (and their callers forgotten)."""
        gone = [cid for cid, waiting in self.pending.items() if all_cancelled(waiting)]
        for cid in gone:
            del self.pending[cid]
        lines = [p for p in self.lines if p.custom_id in self.pending] if gone else self.lines
        self.lines = []
        return lines


class Queue:
    """Requests waiting to share one batch."""

    __slots__ = (
        "generation",
        "inputs",
        "joined",
        "key",
        "limits",
        "lines",
        "metadata",
        "nbytes",
        "opened",
        "provider",
        "waiters",
    )

    def __init__(
        self,
        provider: Provider,
        key: Hashable,
        limits: Limits,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.provider = provider
        self.key = key
        self.limits = limits
        self.metadata = metadata or {}
        self.lines: list[Line] = []
        self.waiters: dict[str, Waiters] = {}
        self.nbytes = 0
        self.inputs = 0
        self.generation = 0
        # When (time.monotonic) the queue's first and latest single calls joined it.
        self.opened = 0.0
        self.joined = 0.0

    def fits(self, prepared: Line) -> bool:
        """Whether one more line stays within every limit."""
        limits = self.limits
        if len(self.lines) >= limits.max_requests:
            return False
        if self.nbytes + prepared.nbytes > limits.max_bytes:
            return False
        return limits.max_inputs is None or self.inputs + prepared.inputs <= limits.max_inputs

    def add(self, prepared: Line, waiting: Waiters) -> None:
        """Queue a new line."""
        self.lines.append(prepared)
        self.waiters[prepared.custom_id] = waiting
        self.nbytes += prepared.nbytes
        self.inputs += prepared.inputs

    def cut(self) -> Batch:
        """Everything queued, as one batch; the queue starts empty again."""
        batch = Batch(self.provider, self.key, self.lines, self.waiters, metadata=self.metadata)
        self.lines = []
        self.waiters = {}
        self.nbytes = self.inputs = 0
        return batch


def _models(lines: list[Line]) -> str:
    """The models a batch's lines ask for, for the journal (Anthropic batches mix them)."""
    return ", ".join(sorted({line.model for line in lines if line.model}))
