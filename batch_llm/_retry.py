"""Retrying transient provider failures: tenacity strategies, with ``Retry-After`` honoured.

Every call the scheduler makes to a provider (upload, create, poll, download, cancel) goes
through ``RetryPolicy.call``. The SDKs retry a little on their own; this bounds the whole affair
and outlasts longer outages (a batch runs for hours; a five-minute 503 must not lose it). Time is
injected (``sleep``) so tests never really wait.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

# tenacity is imported where a policy runs: importing it costs about 15 ms (more where tornado
# is installed, which it imports when it can), and importing the scheduler must not pay that.
if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy", "is_transient", "retry_after"]

T = TypeVar("T")

_TRANSIENT_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_TRANSIENT_NAMES = frozenset(
    {
        # openai / anthropic (Stainless SDKs)
        "APIConnectionError",
        "APITimeoutError",
        # google-genai, httpx / httpx2 transports
        "ConnectError",
        "ConnectTimeout",
        "ReadError",
        "ReadTimeout",
        "WriteError",
        "WriteTimeout",
        "PoolTimeout",
        "RemoteProtocolError",
        "TimeoutException",
    }
)


def _status(exc: BaseException) -> int | None:
    for attribute in ("status_code", "code", "status"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: rate limits, server errors, timeouts, dropped
    connections. Client errors (bad request, auth, not found) are not."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__):
        return True
    status = _status(exc)
    return status is not None and status in _TRANSIENT_STATUS


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if headers is None:
        return None
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            import email.utils  # an HTTP date: rare, and the email package is slow to import

            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class _WaitRetryAfter:
    """Wait what the provider asked for when it said, else the fallback strategy's wait (any
    callable is a wait strategy to tenacity; ``wait_base`` would need tenacity imported here)."""

    fallback: Callable[[tenacity.RetryCallState], float]
    cap: float

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        asked = None
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            asked = retry_after(exc) if exc is not None else None
        if asked is not None:
            return min(asked, self.cap)
        return float(self.fallback(retry_state))


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: exponential backoff with full jitter, bounded.

    Attributes:
        attempts: tries in all, the first one included.
        initial: the first backoff's scale, in seconds.
        cap: the longest single wait, Retry-After included.
        deadline: give up once this long has passed since the first try.
        transient: which errors are worth another try.
        sleep: how to wait (injected in tests).
    """

    attempts: int = 8
    initial: float = 0.5
    cap: float = 60.0
    deadline: float = 15 * 60.0
    transient: Callable[[BaseException], bool] = is_transient
    sleep: Callable[[float], Awaitable[Any]] | None = field(default=None, compare=False)

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        before_retry: Callable[[BaseException], Awaitable[None]] | None = None,
    ) -> T:
        """``await fn()``, retrying transient failures; ``before_retry(error)`` runs before each
        new try (a create that may have reached the provider is reconciled there)."""
        import tenacity

        kwargs: dict[str, Any] = {}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep

        async def hook(state: tenacity.RetryCallState) -> None:
            outcome = state.outcome
            if before_retry is not None and outcome is not None and outcome.failed:
                exc = outcome.exception()
                if exc is not None:
                    await before_retry(exc)

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(self.transient),
            wait=_WaitRetryAfter(
                tenacity.wait_random_exponential(multiplier=self.initial, max=self.cap), self.cap
            ),
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_after_delay(self.deadline),
            before_sleep=hook,
            reraise=True,
            **kwargs,
        )

        async def attempt() -> T:
            # tenacity awaits only what it recognises as a coroutine function; lambdas and
            # partials returning coroutines are not, so always hand it one.
            return await fn()

        return await retrying(attempt)
