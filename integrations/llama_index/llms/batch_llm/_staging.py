"""LlamaIndex jobs whose batch requests go up together, one round at a time.

LlamaIndex runs work through small worker pools with CPU work in between: before its LLM call
each query of an evaluation sweep retrieves, ranks and packs a prompt, so 200 queries reach
their calls over seconds, and a window cuts them into many batches. When the jobs are known
(the sweep helpers and ``gather_in_batches`` start them), each one is a job of a
``batch_llm`` round: its requests are held until every unfinished job waits on one, then go up
as one batch. The mechanism is the core's (``batch_llm._rounds``), the same the LangChain
integration uses; what is here only starts LlamaIndex's jobs as rounds.

Outside a round, requests go straight to the scheduler and its window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Protocol

import batch_llm
from batch_llm import RequestFuture, Scheduler
from batch_llm._rounds import Round

__all__ = ["StagedGather", "gather_in_batches", "submit_and_wait", "wait_submitted"]


class _Request(Protocol):
    @property
    def endpoint(self) -> str: ...

    @property
    def body(self) -> Mapping[str, Any]: ...


class StagedGather:
    """Stands in for the ``asyncio`` module where LlamaIndex gathers jobs: each ``gather`` is a
    round of its own. Anything else is taken from the module it wraps (``asyncio`` or tqdm's)."""

    def __init__(self, module: Any) -> None:
        self._module = module

    async def gather(self, *awaitables: Awaitable[Any], **kwargs: Any) -> list[Any]:
        rounds = Round(jobs=len(awaitables))
        return list(await self._module.gather(*(rounds.run(a) for a in awaitables), **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


async def gather_in_batches(
    *awaitables: Awaitable[Any], return_exceptions: bool = False
) -> list[Any]:
    """``asyncio.gather`` for a fan-out through LlamaIndex components that use ``BatchLLM`` or
    ``BatchEmbedding``: each round of their calls goes up as one batch, sent as soon as every
    awaitable is waiting on it (no window to wait out, however spread out the calls are)::

        answers = await gather_in_batches(*(query_engine.aquery(q) for q in questions))
    """
    return await StagedGather(asyncio).gather(*awaitables, return_exceptions=return_exceptions)


async def submit_and_wait(
    scheduler: Scheduler, provider: batch_llm.Provider, request: _Request
) -> tuple[RequestFuture, Any]:
    """Send one request and wait for its response body (held for its round inside one)."""
    future = scheduler.submit(provider, request.endpoint, request.body)
    return future, await future


async def wait_submitted(futures: Sequence[RequestFuture]) -> list[Any]:
    """Await requests submitted already (a round counts their job as waiting on them)."""
    return await batch_llm.gather(futures)
