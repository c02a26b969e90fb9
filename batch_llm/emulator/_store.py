"""Provider-neutral state: uploaded files, and batch jobs that a worker thread each runs.

A job is a list of ``(custom_id, request)`` items, a ``respond`` function that answers one request,
and a small set of provider hooks. The store drives every job through the same state machine::

    validating -> in_progress -> finalizing -> completed
         |             |  \\-> expired           (expire_after_fraction)
         |             \\----> cancelling -> cancelled
         \\-> failed (validation)

and records one outcome per item (ok, error, expired, cancelled, dropped). Providers render jobs
into their own shapes: OpenAI into a batch object plus output and error files, Anthropic into a
message batch and a results stream, Gemini into an operation.

One lock guards the store's dicts and each job's status fields; it is never held while requests
are answered or files are rendered.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ._faults import without_last_vector
from ._knobs import Knobs
from ._outcome import Outcome
from ._stats import StatsRecorder

__all__ = [
    "CANCELLED",
    "DROPPED",
    "ERROR",
    "EXPIRED",
    "OK",
    "PENDING",
    "TERMINAL_STATUSES",
    "BatchHooks",
    "BatchJob",
    "JobView",
    "Loaded",
    "Outcome",
    "Store",
    "StoredFile",
    "ValidationFailed",
    "new_id",
]

log = logging.getLogger("batch_llm.emulator")

# Item states. "pending" left at the end means the item never ran (only after a failure).
PENDING = "pending"
OK = "ok"
ERROR = "error"
EXPIRED = "expired"
CANCELLED = "cancelled"
DROPPED = "dropped"

TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})

# Without a processing delay, items are answered in chunks this big so that a cancel still lands
# between chunks and the request counts still move on a huge batch.
_UNTIMED_CHUNK = 2000
# With a delay, progress advances in at most this many steps (and steps of at least 10 ms).
_MAX_STEPS = 200


def new_id(prefix: str) -> str:
    """A fresh random id such as ``batch_3f2a...``."""
    return prefix + uuid.uuid4().hex


class Loaded(NamedTuple):
    """The items of a batch that passed validation."""

    custom_ids: list[str]
    requests: list[Any]
    models: list[str]


class ValidationFailed(Exception):
    """The batch input was rejected; ``errors`` are ``{code, message, param, line}`` dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e.get("message")) for e in errors))
        self.errors = errors


class BatchHooks(Protocol):
    """What a provider supplies for each batch job."""

    def load(self) -> Loaded:
        """Parse and validate the input (in the worker thread, while ``validating``).

        Raises:
            ValidationFailed: the whole batch is rejected.
        """
        ...

    def respond(self, request: Any) -> Outcome:
        """Answer one request exactly as the realtime API would."""
        ...

    def error_outcome(self, status: int, message: str) -> Outcome:
        """An error answer in the provider's shape (for injected line errors and crashes)."""
        ...

    def finish(self, job: BatchJob) -> dict[str, Any]:
        """Render results before the terminal status is published.

        Returns:
            Updates to ``job.extra`` published atomically with the terminal status (such as
            OpenAI's ``output_file_id``), so a client never sees the status without its files.
        """
        ...


@dataclass(slots=True)
class StoredFile:
    """An uploaded (or emulator-written) file held in memory."""

    id: str
    filename: str
    purpose: str
    created_at: float
    data: bytes | bytearray
    seq: int = 0

    @property
    def size(self) -> int:
        """The file's length in bytes."""
        return len(self.data)


@dataclass(frozen=True, slots=True)
class JobView:
    """A consistent snapshot of a job's public state, taken under the store lock."""

    id: str
    provider: str
    endpoint: str
    status: str
    created_at: float
    times: dict[str, float]
    line_count: int
    total: int
    completed: int
    failed: int
    input_tokens: int
    output_tokens: int
    errors: list[dict[str, Any]]
    models: list[str]
    extra: dict[str, Any]
    cancel_requested: bool


class BatchJob:
    """A batch and the worker-owned lists of its items.

    ``custom_ids``, ``states`` and ``results`` are written only by the worker thread and are
    complete and immutable once the job is terminal; status fields change under the store lock.
    """

    def __init__(
        self,
        *,
        job_id: str,
        seq: int,
        provider: str,
        endpoint: str,
        created_at: float,
        hooks: BatchHooks,
        knobs: Knobs,
        line_count: int,
        extra: dict[str, Any],
    ) -> None:
        self.id = job_id
        self.seq = seq
        self.provider = provider
        self.endpoint = endpoint
        self.created_at = created_at
        self.hooks = hooks
        self.knobs = knobs
        self.line_count = line_count
        self.extra = extra
        self.status = "validating"
        self.times: dict[str, float] = {"validating": created_at}
        self.total = 0
        self.completed = 0
        self.failed = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.errors: list[dict[str, Any]] = []
        self.models: list[str] = []
        self.custom_ids: list[str] = []
        self.requests: list[Any] = []
        self.states: list[str] = []
        self.results: list[Outcome | None] = []
        self.cancel_requested = False
        # Result lines damaged through Knobs.malformed_line_every (counted by LineDamage).
        self.malformed = 0
        # The terminal status being published, set just before ``hooks.finish`` runs.
        self.ending: str | None = None
        # _wake cuts any delay short (cancel, reset); _abandon only reset/stop, so a cancelling
        # batch still spends its finalizing delay.
        self._wake = threading.Event()
        self._abandon = threading.Event()

    @property
    def abandoned(self) -> bool:
        """True once the store forgot this job (reset or stop); its worker just exits."""
        return self._abandon.is_set()

    def view(self) -> JobView:
        """Snapshot the public state (call with the store lock held)."""
        return JobView(
            id=self.id,
            provider=self.provider,
            endpoint=self.endpoint,
            status=self.status,
            created_at=self.created_at,
            times=dict(self.times),
            line_count=self.line_count,
            total=self.total,
            completed=self.completed,
            failed=self.failed,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            errors=list(self.errors),
            models=list(self.models),
            extra=dict(self.extra),
            cancel_requested=self.cancel_requested,
        )


@dataclass
class _State:
    files: dict[str, StoredFile] = field(default_factory=dict)
    jobs: dict[str, BatchJob] = field(default_factory=dict)
    seq: int = 0


class Store:
    """Files and batch jobs of every provider, safe to use from many handler threads."""

    def __init__(self, stats: StatsRecorder) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._stats = stats

    # ------------------------------------------------------------------ files

    def add_file(
        self,
        data: bytes | bytearray,
        *,
        filename: str,
        purpose: str,
        prefix: str = "file-",
        owner: BatchJob | None = None,
    ) -> StoredFile:
        """Store a file; one written for an ``owner`` job forgotten meanwhile is not kept."""
        file_id = new_id(prefix)[: len(prefix) + 24]
        stored = StoredFile(file_id, filename, purpose, time.time(), data)
        with self._lock:
            if owner is not None and owner.abandoned:
                return stored
            self._state.seq += 1
            stored.seq = self._state.seq
            self._state.files[stored.id] = stored
        return stored

    def get_file(self, file_id: str) -> StoredFile | None:
        """The file with this id, if it exists."""
        with self._lock:
            return self._state.files.get(file_id)

    def delete_file(self, file_id: str) -> bool:
        """Delete a file; False if there was none."""
        with self._lock:
            return self._state.files.pop(file_id, None) is not None

    def files(self) -> list[StoredFile]:
        """Every file, oldest first."""
        with self._lock:
            return sorted(self._state.files.values(), key=lambda f: f.seq)

    # ------------------------------------------------------------------ batches

    def create_batch(
        self,
        *,
        prefix: str,
        provider: str,
        endpoint: str,
        hooks: BatchHooks,
        knobs: Knobs,
        line_count: int,
        extra: dict[str, Any] | None = None,
    ) -> JobView:
        """Register a batch and start its worker; returns its first (``validating``) view."""
        now = time.time()
        with self._lock:
            self._state.seq += 1
            job = BatchJob(
                job_id=new_id(prefix),
                seq=self._state.seq,
                provider=provider,
                endpoint=endpoint,
                created_at=now,
                hooks=hooks,
                knobs=knobs.copy(),
                line_count=line_count,
                extra=dict(extra or {}),
            )
            self._state.jobs[job.id] = job
            view = job.view()
        self._stats.add("batches_created")
        self._stats.add("lines_submitted", line_count)
        worker = threading.Thread(
            target=self._run, args=(job,), name=f"emulator-{job.id}", daemon=True
        )
        worker.start()
        return view

    def view(self, job_id: str) -> JobView | None:
        """A snapshot of one job, if it exists."""
        with self._lock:
            job = self._state.jobs.get(job_id)
            return job.view() if job is not None else None

    def job(self, job_id: str) -> BatchJob | None:
        """The live job (its item lists are safe to read once its view is terminal)."""
        with self._lock:
            return self._state.jobs.get(job_id)

    def views(self, provider: str | None = None) -> list[JobView]:
        """Snapshots of every job (of one provider), oldest first."""
        with self._lock:
            jobs = sorted(self._state.jobs.values(), key=lambda j: j.seq)
            return [j.view() for j in jobs if provider is None or j.provider == provider]

    def request_cancel(self, job_id: str) -> tuple[JobView | None, bool]:
        """Ask a job to cancel.

        Returns:
            The job's view after the request (None if unknown) and whether the cancel was
            accepted: False if the job had already ended.
        """
        with self._lock:
            job = self._state.jobs.get(job_id)
            if job is None:
                return None, False
            if job.status in TERMINAL_STATUSES:
                return job.view(), False
            if not job.cancel_requested:
                job.cancel_requested = True
                job.status = "cancelling"
                job.times["cancelling"] = time.time()
                job._wake.set()
            return job.view(), True

    def delete_batch(self, job_id: str) -> bool:
        """Forget a job (its worker stops); False if there was none."""
        with self._lock:
            job = self._state.jobs.pop(job_id, None)
        if job is None:
            return False
        job._abandon.set()
        job._wake.set()
        return True

    def batch_summaries(self) -> list[dict[str, Any]]:
        """One small dict per job, for :class:`EmulatorStats`."""
        return [
            {
                "id": v.id,
                "provider": v.provider,
                "endpoint": v.endpoint,
                "models": v.models,
                "lines": v.total or v.line_count,
                "status": v.status,
            }
            for v in self.views()
        ]

    def reset(self) -> None:
        """Forget every file and job; running workers stop without publishing anything."""
        with self._lock:
            jobs = list(self._state.jobs.values())
            self._state = _State()
        for job in jobs:
            job._abandon.set()
            job._wake.set()

    close = reset

    # ------------------------------------------------------------------ the worker

    def _set_status(self, job: BatchJob, status: str) -> None:
        with self._lock:
            if job.abandoned or job.status in TERMINAL_STATUSES:
                return
            # A cancel that arrived meanwhile wins over the worker's own progress.
            if job.status == "cancelling" and status != "cancelling":
                return
            if status not in job.times:
                job.times[status] = time.time()
            job.status = status

    def _run(self, job: BatchJob) -> None:
        try:
            self._run_job(job)
        except Exception as exc:  # a bug must end the batch, never leave its caller polling
            log.exception("emulator batch %s crashed", job.id)
            self._publish(job, "failed", {}, errors=[_error("internal_error", repr(exc))])

    def _run_job(self, job: BatchJob) -> None:
        knobs = job.knobs
        job._wake.wait(knobs.validating_delay)
        if job.abandoned:
            return
        if knobs.fail_validation is not None and not job.cancel_requested:
            errors = [_error("invalid_request", knobs.fail_validation)]
            self._publish(job, "failed", {}, errors=errors)
            return
        try:
            loaded = job.hooks.load()
        except ValidationFailed as exc:
            if job.cancel_requested:
                self._end(job, "cancelled")
            else:
                self._publish(job, "failed", {}, errors=exc.errors)
            return

        count = len(loaded.custom_ids)
        job.custom_ids = loaded.custom_ids
        job.requests = loaded.requests
        job.states = [PENDING] * count
        job.results = [None] * count
        with self._lock:
            job.total = count
            job.models = list(loaded.models)
        if job.cancel_requested:
            self._end(job, "cancelled")
            return
        self._set_status(job, "in_progress")

        stop_at, ending = _stop_point(count, knobs)
        reached = self._process_all(job, stop_at)
        job.requests = []  # answered; let the request dicts go
        if job.abandoned:
            return
        if job.cancel_requested or (ending == "cancelled" and reached == stop_at):
            with self._lock:
                job.cancel_requested = True
            self._set_status(job, "cancelling")
            job._abandon.wait(knobs.finalizing_delay)
            self._end(job, "cancelled")
        elif ending == "expired" and reached == stop_at:
            self._end(job, "expired")
        else:
            self._set_status(job, "finalizing")
            job._wake.wait(knobs.finalizing_delay)
            self._end(job, "cancelled" if job.cancel_requested else "completed")

    def _process_all(self, job: BatchJob, stop_at: int) -> int:
        count = len(job.states)
        delay = job.knobs.processing_delay
        if delay > 0 and count:
            steps = max(1, min(count, _MAX_STEPS, int(delay / 0.01)))
            chunk = math.ceil(count / steps)
        else:
            chunk = _UNTIMED_CHUNK
        started = time.monotonic()
        done = 0
        while done < stop_at:
            if job.cancel_requested or job.abandoned:
                break
            upto = min(done + chunk, stop_at)
            self._process(job, done, upto)
            done = upto
            if delay > 0:
                remaining = started + delay * done / count - time.monotonic()
                if remaining > 0:
                    job._wake.wait(remaining)
        return done

    def _process(self, job: BatchJob, start: int, stop: int) -> None:
        # Locals on purpose: this loop runs once per request of every batch.
        hooks = job.hooks
        respond = hooks.respond
        requests, states, results = job.requests, job.states, job.results
        knobs = job.knobs
        error_every = knobs.line_error_every or 0
        drop_every = knobs.drop_line_every or 0
        short_every = knobs.short_embeddings_every or 0
        ok = failed = input_tokens = output_tokens = shortened = 0
        for index in range(start, stop):
            number = index + 1
            if error_every and number % error_every == 0:
                outcome = hooks.error_outcome(knobs.line_error_status, knobs.line_error_message)
            else:
                try:
                    outcome = respond(requests[index])
                except Exception:
                    log.exception("emulator could not answer request %d of %s", number, job.id)
                    outcome = hooks.error_outcome(500, "The emulator failed on this request.")
                if short_every and number % short_every == 0:
                    short = without_last_vector(outcome)
                    shortened += short is not outcome
                    outcome = short
            results[index] = outcome
            if outcome.status < 400:
                ok += 1
                input_tokens += outcome.input_tokens
                output_tokens += outcome.output_tokens
                state = OK
            else:
                failed += 1
                state = ERROR
            # The provider believes a dropped line ran (it is counted and billed); it only goes
            # missing from the results, which is the bug being emulated.
            states[index] = DROPPED if drop_every and number % drop_every == 0 else state
        with self._lock:
            job.completed += ok
            job.failed += failed
            job.input_tokens += input_tokens
            job.output_tokens += output_tokens
        if shortened:
            self._stats.add("embeddings_shortened", shortened)

    def _end(self, job: BatchJob, status: str) -> None:
        fill = {"cancelled": CANCELLED, "expired": EXPIRED}.get(status)
        if fill is not None:
            states = job.states
            for index, state in enumerate(states):
                if state == PENDING:
                    states[index] = fill
        if job.abandoned:
            return
        job.ending = status
        try:
            extra = job.hooks.finish(job)
        except Exception as exc:
            log.exception("emulator could not write the results of %s", job.id)
            self._publish(job, "failed", {}, errors=[_error("internal_error", repr(exc))])
            return
        if job.malformed:
            self._stats.add("lines_malformed", job.malformed)
        self._publish(job, status, extra)

    def _publish(
        self,
        job: BatchJob,
        status: str,
        extra: dict[str, Any],
        *,
        errors: Sequence[dict[str, Any]] = (),
    ) -> None:
        with self._lock:
            if job.abandoned or job.status in TERMINAL_STATUSES:
                return
            job.extra.update(extra)
            if errors:
                job.errors = list(errors)
            job.status = status
            job.times[status] = time.time()


def _error(code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": None}


def _stop_point(count: int, knobs: Knobs) -> tuple[int, str]:
    """How many items run before the batch ends, and how it ends."""
    expire, cancel = knobs.expire_after_fraction, knobs.cancel_after_fraction
    candidates = []
    if expire is not None:
        candidates.append((min(max(expire, 0.0), 1.0), 0, "expired"))
    if cancel is not None:
        candidates.append((min(max(cancel, 0.0), 1.0), 1, "cancelled"))
    if not candidates:
        return count, "completed"
    fraction, _, ending = min(candidates)
    return math.floor(fraction * count), ending
