"""Fan-outs that LangChain runs itself, one provider batch per round of model calls.

``chain.batch(inputs)`` of a chain whose model is a ``BatchChatModel`` is one batch: the
sequence hands the whole list to the model's own ``batch``. Most runnables do not:
``RunnableParallel``, LangGraph graphs, agents and configurable models run ``invoke`` per
input through a pool of ``max_concurrency`` threads (by default min(32, CPUs + 4)), so the
model sees one pool's worth of single calls at a time, and the window cuts them into many
sequential batches. ``batch``/``abatch`` here run the runnable's async path for every input
at once, each input a job of one ``batch_llm`` round: whatever the runnable does (parallel
branches, ``Send`` fan-outs, tool calls between model calls), each round of model calls goes
up as one batch as soon as every input is waiting on it. LangChain's callback runs tell the
round which branches are still working, so a branch still retrieving keeps the round open.

``sweep`` does the same for several runnables over the same inputs (models x prompts): every
runnable's batches go up together, and the sweep waits one turnaround, not one per runnable.

Sync calls run on an event loop of their own, so they work in scripts and inside Jupyter's
running loop alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager
from langchain_core.runnables import Runnable, RunnableConfig, get_config_list

from batch_llm._config import ProgressOption
from batch_llm._loop import run_sync
from batch_llm._progress import drawer
from batch_llm._rounds import Round, current_job

__all__ = ["abatch", "asweep", "batch", "sweep"]

# Threads for the sync steps of a runnable run this way (made only as needed): every job, and
# every parallel branch of one, may block one on a batch.
_MIN_WORKERS = 1024


class _RoundRuns(BaseCallbackHandler):
    """Tells each job's round which LangChain runs of it are going on (see ``_rounds``): every
    kind of run (chain, chat model, LLM, tool, retriever) starts and ends the same way."""

    run_inline = True  # called in the run's own task or thread, which is what the round needs


def _started(
    self: _RoundRuns, *_: Any, run_id: UUID, parent_run_id: UUID | None = None, **__: Any
) -> None:
    job = current_job()
    if job is not None:
        job.run_started(run_id, parent_run_id)


def _ended(self: _RoundRuns, *_: Any, run_id: UUID, **__: Any) -> None:
    job = current_job()
    if job is not None:
        job.run_ended(run_id)


for _kind in ("chain", "chat_model", "llm", "tool", "retriever"):
    setattr(_RoundRuns, f"on_{_kind}_start", _started)
for _kind in ("chain", "llm", "tool", "retriever"):
    setattr(_RoundRuns, f"on_{_kind}_end", _ended)
    setattr(_RoundRuns, f"on_{_kind}_error", _ended)

_RUNS = _RoundRuns()


def _with_runs(config: RunnableConfig) -> RunnableConfig:
    """``config`` with the round's callback handler added to whatever callbacks it has."""
    callbacks = config.get("callbacks")
    if callbacks is None:
        handlers: Any = [_RUNS]
    elif isinstance(callbacks, BaseCallbackManager):
        handlers = callbacks.copy()
        handlers.add_handler(_RUNS, inherit=True)
    else:
        handlers = [*callbacks, _RUNS]
    return {**config, "callbacks": handlers}


async def _job(
    runnable: Runnable[Any, Any],
    value: Any,
    config: RunnableConfig,
    return_exceptions: bool,
    kwargs: dict[str, Any],
) -> Any:
    try:
        return await runnable.ainvoke(value, _with_runs(config), **kwargs)
    except Exception as exc:
        if return_exceptions:
            return exc
        raise


_Job = tuple[Runnable[Any, Any], Any, RunnableConfig, dict[str, str] | None]


async def _gather(
    jobs: list[_Job],
    return_exceptions: bool,
    progress: ProgressOption,
    kwargs: dict[str, Any],
) -> list[Any]:
    rounds = Round(jobs=len(jobs))
    bar = _bar(len(jobs), progress)

    async def one(job: _Job) -> Any:
        runnable, value, cfg, stamp = job
        try:
            return await rounds.run(_job(runnable, value, cfg, return_exceptions, kwargs), stamp)
        finally:
            if bar is not None:
                bar.set_postfix_str(f"{len(rounds.releases)} round(s) sent", refresh=False)
                bar.update(1)

    try:
        return list(await asyncio.gather(*(one(job) for job in jobs)))
    finally:
        if bar is not None:
            bar.close()


def _bar(total: int, progress: ProgressOption) -> Any:
    """Inputs done out of ``total``, with the rounds sent so far: without it, a fan-out whose
    rounds each wait a batch turnaround looks like a hang."""
    factory = drawer(progress)
    if factory is None:
        return None
    try:
        return factory(total=total, desc="batch-llm", unit="input", dynamic_ncols=True)
    except Exception:  # no tqdm, no terminal: the fan-out goes on without a display
        return None


async def abatch(
    runnable: Runnable[Any, Any],
    inputs: Sequence[Any],
    config: RunnableConfig | Sequence[RunnableConfig] | None = None,
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
    **kwargs: Any,
) -> list[Any]:
    """``runnable.abatch(inputs)``, with each round of its model calls sent as one batch.

    Every input runs at once (``max_concurrency`` is left to the runnable's own steps: the
    provider's batch is the limit), each a job of one round (module docstring). Callbacks,
    tags and metadata are per input, as ``abatch`` gives them; with ``return_exceptions`` each
    failure takes its input's place, else the first failure is raised. ``progress`` draws
    inputs done and rounds sent, as ``batch_llm.wait``'s does (on in a terminal or notebook).
    """
    if not inputs:
        return []
    configs = get_config_list(config, len(inputs))
    jobs: list[_Job] = [
        (runnable, value, cfg, None) for value, cfg in zip(inputs, configs, strict=True)
    ]
    return await _gather(jobs, return_exceptions, progress, kwargs)


def batch(
    runnable: Runnable[Any, Any],
    inputs: Sequence[Any],
    config: RunnableConfig | Sequence[RunnableConfig] | None = None,
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
    **kwargs: Any,
) -> list[Any]:
    """``runnable.batch(inputs)``, with each round of its model calls sent as one batch.

    Works for any runnable: an LCEL chain, ``RunnableParallel``, a LangGraph graph (``Send``
    fan-outs included), an agent. Runs the runnable's async path on an event loop of its own
    (see ``abatch``), so it works in scripts and inside Jupyter's running loop; sync steps
    run in threads, as they do under ``ainvoke``.
    """
    if not inputs:
        return []
    return run_sync(
        abatch(
            runnable,
            inputs,
            config,
            return_exceptions=return_exceptions,
            progress=progress,
            **kwargs,
        ),
        workers=max(_MIN_WORKERS, 2 * len(inputs)),
    )


async def asweep(
    runnables: Mapping[str, Runnable[Any, Any]],
    inputs: Sequence[Any],
    config: RunnableConfig | None = None,
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
    **kwargs: Any,
) -> dict[str, list[Any]]:
    """Every runnable over the same inputs (models x prompts, say), as one fan-out: each
    round's batches go up together, so the sweep waits one turnaround, not one per runnable.
    Each runnable's requests go in batches of their own, stamped ``{"sweep": name}`` (OpenAI
    batch metadata, Gemini's display name), so ``scheduler.batches`` and ``batch-llm
    batches`` show each cell of the sweep. Returns each runnable's outputs, in input order,
    under its name."""
    names = list(runnables)
    if not inputs or not names:
        return {name: [] for name in names}
    jobs: list[_Job] = [
        (runnables[name], value, RunnableConfig(**(config or {})), {"sweep": name})
        for name in names
        for value in inputs
    ]
    flat = await _gather(jobs, return_exceptions, progress, kwargs)
    size = len(inputs)
    return {name: flat[i * size : (i + 1) * size] for i, name in enumerate(names)}


def sweep(
    runnables: Mapping[str, Runnable[Any, Any]],
    inputs: Sequence[Any],
    config: RunnableConfig | None = None,
    *,
    return_exceptions: bool = False,
    progress: ProgressOption = None,
    **kwargs: Any,
) -> dict[str, list[Any]]:
    """``asweep`` from sync code, in scripts and inside Jupyter's running loop alike::

    results = sweep({"mini/terse": terse | mini, "mini/steps": steps | mini,
                     "haiku/terse": terse | haiku, "haiku/steps": steps | haiku}, questions)
    """
    jobs = len(runnables) * len(inputs)
    return run_sync(
        asweep(
            runnables,
            inputs,
            config,
            return_exceptions=return_exceptions,
            progress=progress,
            **kwargs,
        ),
        workers=max(_MIN_WORKERS, 2 * jobs),
    )
