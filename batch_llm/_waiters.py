"""Callers waiting on batch lines, and the errors for lines that got no answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._errors import (
    BatchCancelledError,
    BatchExpiredError,
    BatchFailedError,
    MissingResultError,
)
from ._futures import RequestFuture
from .providers import BatchStatus

__all__ = [
    "Waiters",
    "add_waiters",
    "all_cancelled",
    "deadline_of",
    "each",
    "earliest_deadline",
    "fail_all",
    "leftover_error",
    "settle",
]

# The callers waiting on one line: usually one future; a list once identical requests share it.
Waiters = RequestFuture | list[RequestFuture]


def each(waiting: Waiters) -> list[RequestFuture]:
    """The futures of one line."""
    return waiting if isinstance(waiting, list) else [waiting]


def add_waiters(pending: dict[str, Waiters], custom_id: str, more: Waiters) -> None:
    """Add callers to a line (creating it if needed)."""
    current = pending.get(custom_id)
    if current is None:
        pending[custom_id] = more
        return
    pending[custom_id] = each(current) + each(more)


def deadline_of(waiting: Waiters) -> float | None:
    """The earliest deadline of a line's callers (None if none set one)."""
    if isinstance(waiting, RequestFuture):
        return waiting.deadline
    deadlines = [f.deadline for f in waiting if f.deadline is not None]
    return min(deadlines) if deadlines else None


def earliest_deadline(pending: dict[str, Waiters]) -> float | None:
    """The earliest deadline of any caller waiting on these lines (None if none set one)."""
    earliest: float | None = None
    for waiting in pending.values():
        due = waiting.deadline if isinstance(waiting, RequestFuture) else deadline_of(waiting)
        if due is not None and (earliest is None or due < earliest):
            earliest = due
    return earliest


def all_cancelled(waiting: Waiters) -> bool:
    """True once every caller of a line gave up."""
    if isinstance(waiting, list):
        return all(f.cancelled() for f in waiting)
    return waiting.cancelled()


def settle(waiting: Waiters, outcome: Any) -> None:
    """Complete every caller of one line; callers already done (cancelled) are skipped."""
    if isinstance(waiting, list):
        for future in waiting:
            settle(future, outcome)
    elif not waiting.done():
        if isinstance(outcome, BaseException):
            waiting.set_exception(outcome)
        else:
            waiting.set_result(outcome)


def fail_all(
    pending: dict[str, Waiters],
    error: BaseException | Callable[[str], BaseException],
    custom_ids: Iterable[str] | None = None,
) -> None:
    """Fail callers still waiting (all, or those of ``custom_ids``): with one shared error, or
    one made per line."""
    for custom_id in list(pending if custom_ids is None else custom_ids):
        waiting = pending.pop(custom_id, None)
        if waiting is not None:
            settle(waiting, error if isinstance(error, BaseException) else error(custom_id))


def leftover_error(status: BatchStatus, custom_id: str) -> BaseException:
    """The error for a request its ended batch returned nothing for."""
    batch_id = status.batch_id
    if status.outcome == "failed":
        return BatchFailedError(
            f"batch {batch_id} failed: {status.reason}", batch_id=batch_id, custom_id=custom_id
        )
    if status.outcome == "expired":
        return BatchExpiredError(
            f"batch {batch_id} expired before this request was processed",
            batch_id=batch_id,
            custom_id=custom_id,
        )
    if status.outcome == "cancelled":
        return BatchCancelledError(
            f"batch {batch_id} was cancelled before this request was processed",
            batch_id=batch_id,
            custom_id=custom_id,
        )
    return MissingResultError(
        f"batch {batch_id} ended without a result line for request {custom_id}",
        batch_id=batch_id,
        custom_id=custom_id,
    )
