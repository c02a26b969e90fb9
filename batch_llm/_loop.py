"""The scheduler's own event loop, on a daemon thread.

Sync callers (including code already running inside Jupyter's event loop, where
``asyncio.run`` is impossible) block on ``concurrent.futures`` results while all network work
happens here, so one code path serves threads, notebooks and foreign event loops alike.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread", "run_sync"]

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running forever on a daemon thread, started lazily."""

    def __init__(self, name: str = "batch-llm") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; started on first use."""
        loop = self._loop
        if loop is not None:
            return loop
        with self._lock:
            if self._loop is None:
                ready = threading.Event()
                new_loop = asyncio.new_event_loop()

                def run() -> None:
                    asyncio.set_event_loop(new_loop)
                    new_loop.call_soon(ready.set)
                    new_loop.run_forever()

                self._thread = threading.Thread(target=run, name=self._name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = new_loop
            return self._loop

    @property
    def started(self) -> bool:
        """True once the loop runs (and until it is stopped)."""
        return self._loop is not None

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop, from any thread, in a context of its own: what the
        caller's context holds (its round's job, its framework's run) is not the loop's."""
        loop = self.loop
        context = contextvars.Context()
        if self.in_loop_thread():
            loop.call_soon(fn, *args, context=context)
        else:
            loop.call_soon_threadsafe(fn, *args, context=context)

    def run(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop and return a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and join its thread; idempotent."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout)
        if not thread.is_alive():
            loop.close()


def run_sync(coro: Coroutine[Any, Any, T], *, workers: int = 64) -> T:
    """Run ``coro`` to its end from sync code, in scripts and inside a running event loop
    alike (Jupyter's): on an event loop of its own, in the calling thread if it runs no loop,
    else in a thread of its own that the caller waits on. The coroutine sees the caller's
    context variables. Sync work it hands to the loop's default executor gets up to
    ``workers`` threads, so that many jobs can each block a thread on a batch at once.
    """
    context = contextvars.copy_context()

    def run() -> T:
        with asyncio.Runner() as runner:
            runner.get_loop().set_default_executor(
                concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="batch-llm-job")
            )
            return runner.run(coro, context=context)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batch-llm-run") as pool:
        return pool.submit(run).result()
