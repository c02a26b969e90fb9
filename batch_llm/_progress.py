"""A progress display for callers that wait on a fan-out: requests done out of total, with the
batches' status (validating, in_progress, finalizing, downloading...).

Drawn with ``tqdm.auto``, so a notebook gets a widget and a terminal a bar. Whether one is
drawn (see ``display_for``):

1. ``progress=`` given to ``wait``/``gather``/``track_progress``: True, False, or a tqdm-like
   factory to draw with;
2. else only for fan-outs (``submit_many`` with ``flush``), and then ``Scheduler(progress=...)``
   if given; single calls the window collects have nobody waiting on them as a group, so the
   scheduler draws each such batch itself, from when the window closes to its last answer;
3. else ``BATCH_LLM_PROGRESS=1|0``;
4. else on when the bar has somewhere to go: a Jupyter kernel, or stderr (where tqdm writes)
   being a terminal.

The position follows the lines the provider reports done (``succeeded + failed`` out of its
``total``, scaled to the fan-out's requests in each batch, since identical requests share a line
and a batch may hold other callers' lines) plus the requests already answered, and it reaches
the total only once every request is answered: a batch that is finalizing, or whose results are
still downloading, stays at 99% at most.

Nothing here runs on the scheduler's loop but ``_on_event``, which appends to a deque. A daemon
thread per display drains the events and redraws a few times a second; tqdm throttles the
drawing itself (``mininterval``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._config import ProgressOption
from ._events import EventHub
from ._futures import RequestFuture

__all__ = ["ProgressDisplay", "ProgressOption", "display_for", "drawer", "track_progress"]

logger = logging.getLogger("batch_llm")

# Seconds between redraws of the display's own thread (tqdm still throttles the output).
REFRESH = 0.1
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# Labels in the order a batch goes through them; a display with several batches lists them so.
_ORDER = (
    "submitting",
    "resumed",
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "downloading",
    "expired",
    "failed",
    "cancelled",
)
_ENDED = {
    "batch_completed": "done",
    "batch_failed": "failed",
    "batch_expired": "expired",
    "batch_cancelled": "cancelled",
}


def _env_flag() -> bool | None:
    raw = os.environ.get("BATCH_LLM_PROGRESS", "").strip().lower()
    if not raw:
        return None
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    logger.warning("BATCH_LLM_PROGRESS=%r is neither 1 nor 0; ignored", raw)
    return None


def in_notebook() -> bool:
    """True inside a running Jupyter (IPython) kernel."""
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    try:
        shell = ipython.get_ipython() if ipython is not None else None
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _interactive() -> bool:
    if in_notebook():
        return True
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams
        return False


def _tqdm(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(**kwargs)


def drawer(setting: ProgressOption = None) -> Callable[..., Any] | None:
    """What to draw a display with under ``setting`` (a scheduler's or a caller's
    ``progress=``): a tqdm-like factory, or None to draw nothing. None defers to
    ``BATCH_LLM_PROGRESS``, then to whether there is a terminal or a notebook to draw on."""
    if setting is False:
        return None
    if callable(setting):
        return setting
    if setting is None:
        flag = _env_flag()
        if flag is False or (flag is None and not _interactive()):
            return None
    return _tqdm


def display_for(
    futures: Sequence[RequestFuture], progress: ProgressOption = None, desc: str | None = None
) -> ProgressDisplay | None:
    """A running display for ``futures``, or None when none should be drawn (module
    docstring). Cheap when the answer is no: it looks at the first future only."""
    if progress is False or not futures:
        return None
    if progress is None:
        latch = futures[0].latch
        if latch is None or not latch.fan_out:
            return None
        factory = drawer(latch.progress)
    else:
        factory = drawer(progress)
    if factory is None:
        return None
    try:
        return ProgressDisplay(futures, factory, desc=desc)
    except Exception as exc:  # no tqdm, no terminal: the batch goes on without a display
        logger.debug("no progress display: %s", exc)
        return None


@contextlib.contextmanager
def track_progress(
    futures: Sequence[RequestFuture], *, progress: ProgressOption = None, desc: str | None = None
) -> Iterator[ProgressDisplay | None]:
    """Show the progress of ``futures`` while the block runs (for callers that wait on them in
    their own way; ``wait`` and ``gather`` do this themselves)."""
    display = display_for(futures, progress, desc)
    try:
        yield display
    finally:
        if display is not None:
            display.close()


class _BatchView:
    __slots__ = ("done", "ended", "label", "total")

    def __init__(self) -> None:
        self.label = "submitting"
        self.done = 0
        self.total = 0
        self.ended = False


class ProgressDisplay:
    """One fan-out's progress bar, redrawn by its own daemon thread until ``close``."""

    def __init__(
        self,
        futures: Sequence[RequestFuture],
        factory: Callable[..., Any] = _tqdm,
        *,
        desc: str | None = None,
        refresh: float = REFRESH,
    ) -> None:
        self.futures = futures
        self.total = len(futures)
        self._refresh = refresh
        latches = {id(f.latch): f.latch for f in futures if f.latch is not None}
        exact = sum(latch.size for latch in latches.values()) == self.total and all(
            f.latch is not None for f in futures
        )
        self._latches = list(latches.values()) if exact else None
        self._hubs: list[EventHub] = list(
            {id(hub): hub for lt in latches.values() if (hub := lt.events)}.values()
        )
        self._events: collections.deque[dict[str, Any]] = collections.deque()
        self._views: dict[str, _BatchView] = {}
        self._pending: dict[str | None, int] = {}
        self._position = 0
        self._label = ""
        self._closed = False
        self._stop = threading.Event()
        self.bar = factory(
            total=self.total, desc=desc or "batch-llm", unit="req", dynamic_ncols=True
        )
        self._recount()
        self._redraw()
        for hub in self._hubs:
            hub.add(self._on_event)
        self._thread = threading.Thread(target=self._run, name="batch-llm-progress", daemon=True)
        self._thread.start()

    # -- fed by the scheduler's loop ------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        self._events.append(event)

    # -- on the display's thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._refresh):
            try:
                self._tick()
            except Exception:  # a display must never take the batch down with it
                logger.debug("progress display failed", exc_info=True)
                return

    def _tick(self) -> None:
        events = self._events
        recount = False
        while events:
            event = events.popleft()
            batch_id = event.get("batch_id")
            if not batch_id:
                continue
            view = self._views.get(batch_id)
            if view is None:
                view = self._views[batch_id] = _BatchView()
                recount = True
            self._apply(view, event)
        if recount:
            self._recount()
        self._redraw()

    def _apply(self, view: _BatchView, event: dict[str, Any]) -> None:
        name = event.get("event")
        total = event.get("total") or 0
        if total:
            view.total = int(total)
            view.done = int(event.get("succeeded") or 0) + int(event.get("failed") or 0)
        if name in _ENDED:
            view.label, view.ended = _ENDED[name], True
        elif name == "batch_resumed":
            view.label = "resumed"
        elif name in ("batch_submitted", "batch_progress"):
            state = event.get("state") or "in_progress"
            view.ended = state == "ended"
            view.label = "downloading" if view.ended else str(state)

    def _recount(self) -> None:
        """Which batch each unanswered request is in (a pass over the futures; done when a
        batch first shows up, not on every redraw)."""
        pending: dict[str | None, int] = {}
        for future in self.futures:
            if not future.done():
                pending[future.batch_id] = pending.get(future.batch_id, 0) + 1
        self._pending = pending

    def _done(self) -> int:
        if self._latches is not None:
            return sum(latch.size - latch.remaining for latch in self._latches)
        return sum(1 for f in self.futures if f.done())

    def _redraw(self) -> None:
        done = self._done()
        total = self.total
        if done >= total:
            position, label = total, "done"
        else:
            estimate = float(done)
            labels: dict[str, int] = {}
            for batch_id, pending in self._pending.items():
                view = self._views.get(batch_id) if batch_id else None
                if view is None:
                    labels["submitting"] = labels.get("submitting", 0) + 1
                    continue
                if not view.ended and view.total:
                    estimate += pending * min(1.0, view.done / view.total)
                if view.label != "done":
                    labels[view.label] = labels.get(view.label, 0) + 1
            # Short of the total until every request is answered, whatever the batch says, and
            # short enough that the percentage cannot round up to 100 either.
            position = min(int(estimate), math.ceil(total * 0.995) - 1)
            label = _describe(labels)
        bar = self.bar
        relabel = label != self._label
        if relabel:
            self._label = label
            bar.set_postfix_str(label, refresh=False)
        if position > self._position:
            bar.update(position - self._position)
            self._position = position
        if relabel:  # a new status is shown at once, not at tqdm's next redraw
            bar.refresh()

    # -- from the waiting caller -----------------------------------------------------------------

    def close(self) -> None:
        """Stop redrawing and close the bar: at the total if every request was answered."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for hub in self._hubs:
            with contextlib.suppress(ValueError):
                hub.remove(self._on_event)
        if self._thread is not threading.current_thread():
            # Bounded: a display stuck writing (a blocked pipe) must not hold the caller.
            self._thread.join(timeout=2.0)
            if self._thread.is_alive():
                return
        try:
            self._tick()
            self.bar.close()
        except Exception:
            logger.debug("closing the progress display failed", exc_info=True)


def _describe(labels: dict[str, int]) -> str:
    """One batch: its status; several: how many are at each status."""
    if not labels:
        return "submitting"
    if sum(labels.values()) == 1:
        return next(iter(labels))
    ordered = sorted(labels, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    return ", ".join(f"{labels[k]} {k}" for k in ordered)
