"""Errors that batch-llm raises itself.

Errors that a provider reports for one request are raised as that provider SDK's own exception
types (``openai.BadRequestError`` and so on), so that callers cannot tell a batched call from a
realtime one. The types here cover what only exists because of batching: a batch that failed
validation, expired, or was cancelled, and input rejected before anything was submitted.
"""

from __future__ import annotations

__all__ = [
    "BatchCancelledError",
    "BatchError",
    "BatchExpiredError",
    "BatchFailedError",
    "BatchLLMError",
    "BatchLLMWarning",
    "DryRunError",
    "InvalidRequestError",
    "JournalError",
    "MalformedResultError",
    "MissingResultError",
    "RequestTooLargeError",
    "SchedulerClosedError",
    "UnknownProviderError",
    "UnsupportedEndpointError",
]


class BatchLLMError(Exception):
    """Base class of every error batch-llm raises itself."""


class InvalidRequestError(BatchLLMError, ValueError):
    """A request was rejected before submission; nothing was sent for it."""


class UnknownProviderError(InvalidRequestError):
    """The provider name is not one batch-llm knows."""


class UnsupportedEndpointError(InvalidRequestError):
    """The provider cannot run this endpoint through its Batch API."""


class RequestTooLargeError(InvalidRequestError):
    """A single request is larger than a whole batch may be."""


class JournalError(BatchLLMError):
    """The journal cannot do what keeps work from being lost or paid for twice: it is
    damaged, unreachable, or a write to it failed. The message names the journal (without
    credentials) and says what to do; a request that gets it was not submitted, or its answer
    is still at the provider for a later run to fetch."""


class SchedulerClosedError(BatchLLMError, RuntimeError):
    """The scheduler was closed before the request could be submitted."""


class DryRunError(BatchLLMError):
    """The scheduler is in dry-run mode: the request was planned into a batch, not sent.

    Attributes:
        batch: the planned batch's number in the dry run's report (1-based).
    """

    def __init__(self, message: str, *, batch: int | None = None) -> None:
        super().__init__(message)
        self.batch = batch


class BatchError(BatchLLMError):
    """A request did not get an answer because of what happened to its batch."""

    def __init__(self, message: str, *, batch_id: str | None = None, custom_id: str | None = None):
        super().__init__(message)
        self.batch_id = batch_id
        self.custom_id = custom_id


class BatchFailedError(BatchError):
    """The provider rejected the whole batch (for example, it failed validation)."""


class BatchExpiredError(BatchError):
    """The batch ran out of time before this request was processed."""


class BatchCancelledError(BatchError):
    """The batch was cancelled before this request was processed."""


class MissingResultError(BatchError):
    """The batch ended but returned no line at all for this request."""


class MalformedResultError(BatchError):
    """The provider's answer to this request cannot be used: its result line does not parse
    (or does not have a result's shape), or it does not fit the request, such as an
    embeddings answer holding more or fewer vectors than the request had inputs.

    Only this request fails; the batch's other answers are delivered.

    Attributes:
        stream: the result stream the line was in (a file name, ``results``...), if known.
        line: the line's number in that stream (1-based), if known.
    """

    def __init__(
        self,
        message: str,
        *,
        batch_id: str | None = None,
        custom_id: str | None = None,
        stream: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message, batch_id=batch_id, custom_id=custom_id)
        self.stream = stream
        self.line = line


class BatchLLMWarning(UserWarning):
    """batch-llm can see that a fan-out will cost more turnarounds than it needs to (a thread
    pool feeding it one wave at a time, say), and says how to avoid it."""
