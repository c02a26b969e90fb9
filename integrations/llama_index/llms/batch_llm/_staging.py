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
from collections.abc import Awaitable
from typing import Any

from batch_llm._rounds import Round

__all__ = ["StagedGather", "gather_in_batches"]


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
