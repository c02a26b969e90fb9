"""Evaluation sweeps that send each of their rounds as one batch.

``BatchEvalRunner`` runs its queries and evaluations through a pool of 2 workers. Against a
Batch API that means two requests per batch, each pair waiting a whole batch turnaround. The
runner made here runs every job at once, and holds each job's batch requests until every job
of the stage waits on one (see ``_staging``), so that the answers go up as one batch and the
evaluations as another however long LlamaIndex's own work between them takes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.evaluation import BaseEvaluator, BatchEvalRunner, EvaluationResult

from ._staging import StagedGather

__all__ = ["arun_eval_sweep", "batch_eval_runner", "run_eval_sweep"]

# Enough workers that no job waits for another: a semaphore this wide never blocks.
_ALL_AT_ONCE = 1_000_000


def batch_eval_runner(
    evaluators: Mapping[str, BaseEvaluator], *, show_progress: bool = False
) -> BatchEvalRunner:
    """A ``BatchEvalRunner`` for ``BatchLLM`` and ``BatchEmbedding``: every query and every
    evaluation runs at once, and each round of their calls is sent as one batch once every job
    is waiting on it. Use it as you would ``BatchEvalRunner``.

    Calls that go to the realtime API (an ordinary LlamaIndex LLM, or
    ``BatchEmbedding(realtime_queries=True)``) are not held; the round goes when they are done.
    """
    runner = BatchEvalRunner(dict(evaluators), workers=_ALL_AT_ONCE, show_progress=show_progress)
    # BatchEvalRunner gathers each stage's jobs through this attribute (asyncio or tqdm).
    if hasattr(runner, "asyncio_mod"):
        runner.asyncio_mod = StagedGather(runner.asyncio_mod)
    else:  # a LlamaIndex that gathers some other way: the window alone then groups the calls
        warnings.warn(
            "this BatchEvalRunner has no asyncio_mod; sweep rounds rely on the scheduler's "
            "window alone and may be split into several batches",
            RuntimeWarning,
            stacklevel=2,
        )
    return runner


def run_eval_sweep(
    evaluators: Mapping[str, BaseEvaluator],
    query_engine: BaseQueryEngine,
    queries: Sequence[str],
    *,
    show_progress: bool = False,
    **eval_kwargs_lists: Any,
) -> dict[str, list[EvaluationResult]]:
    """Answer ``queries`` with ``query_engine`` and evaluate the answers, as
    ``BatchEvalRunner.evaluate_queries`` does, in one batch for the answers and one for the
    evaluations (plus one for query embeddings, unless they are realtime).

    Returns:
        One list of results per evaluator name, in query order.
    """
    runner = batch_eval_runner(evaluators, show_progress=show_progress)
    return runner.evaluate_queries(query_engine, queries=list(queries), **eval_kwargs_lists)


async def arun_eval_sweep(
    evaluators: Mapping[str, BaseEvaluator],
    query_engine: BaseQueryEngine,
    queries: Sequence[str],
    *,
    show_progress: bool = False,
    **eval_kwargs_lists: Any,
) -> dict[str, list[EvaluationResult]]:
    """The async form of :func:`run_eval_sweep`."""
    runner = batch_eval_runner(evaluators, show_progress=show_progress)
    return await runner.aevaluate_queries(query_engine, queries=list(queries), **eval_kwargs_lists)
