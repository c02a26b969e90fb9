"""Waiting for many requests at once, with a progress display while waiting."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ._config import ProgressOption
from ._futures import (
    RequestFuture,
    await_all,
    before_blocking,
    group_latch,
    on_all_done,
    outcome,
)
from ._progress import display_for

__all__ = ["gather", "raise_first_failure", "wait"]


def wait(
    futures: Sequence[RequestFuture],
    *,
    return_exceptions: bool = False,
    timeout: float | None = None,
    progress: ProgressOption = None,
) -> list[Any]:
    """Block until every future is done and return their results in order.

    Without ``return_exceptions`` the first failed request's error (in input order) is raised
    once all are done, as ``Runnable.batch`` does. ``progress`` shows a progress display while
    waiting: True or False force it, a tqdm-like factory draws with it, and None (the default)
    shows one for fan-outs when the output is a terminal or a notebook (``BATCH_LLM_PROGRESS``
    and ``Scheduler(progress=...)`` change that).
    """
    display = display_for(futures, progress) if progress is not False else None
    try:
        before_blocking(futures)
        latch = group_latch(futures)
        if latch is not None:
            event = latch.event
        else:
            event = threading.Event()
            on_all_done(futures, event.set)
        if not event.wait(timeout):
            left = sum(not f.done() for f in futures)
            raise TimeoutError(
                f"{left} of {len(futures)} requests were not answered in {timeout} s"
            )
    finally:
        if display is not None:
            display.close()
    return [outcome(f, return_exceptions) for f in futures]


async def gather(
    futures: Sequence[RequestFuture],
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
) -> list[Any]:
    """Await every future from any event loop and return their results in order.

    One wake-up of the caller's loop for the whole group, instead of one per request, which is
    what keeps a 10,000-request ``abatch`` cheap. Cancelling the awaiting task cancels the
    requests that were not yet submitted. ``progress`` is as for ``wait``.
    """
    done = all(f.done() for f in futures)
    display = None if done or progress is False else display_for(futures, progress)
    try:
        return await await_all(futures, return_exceptions=return_exceptions)
    finally:
        if display is not None:
            display.close()


def raise_first_failure(outcomes: Sequence[Any], sizes: Sequence[int], noun: str = "texts") -> None:
    """Raise the first error among the outcomes of requests that together cover consecutive
    items (request ``i`` covers the next ``sizes[i]``, as an embeddings call splits its texts),
    noting which items it was for and how the other requests fared; do nothing if none failed.

    The error raised is the request's own (the SDK error its realtime call would raise, or a
    batch-llm error), so callers catch what they would catch realtime; the note says which
    items to retry instead of all of them.
    """
    failed: list[tuple[int, int, BaseException]] = []
    start = 0
    for result, size in zip(outcomes, sizes, strict=True):
        if isinstance(result, BaseException):
            failed.append((start, start + size, result))
        start += size
    if not failed:
        return
    total, requests = start, len(outcomes)
    spans = ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b, _ in failed[:10])
    if len(failed) > 10:
        spans += f" and {len(failed) - 10} more"
    error = failed[0][2]
    rest = (
        f"the other {noun} were answered"
        if len(failed) < requests
        else f"that is all of the {noun}"
    )
    note = (
        f"batch-llm: {len(failed)} of {requests} request(s) failed, for {noun} {spans} "
        f"(0-based, of {total:,}); {rest}. This error is the first one's."
    )
    if note not in getattr(error, "__notes__", ()):
        error.add_note(note)
    raise error
