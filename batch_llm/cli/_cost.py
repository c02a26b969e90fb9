"""``batch-llm cost``: what the journal's batches cost, from the results it keeps.

Every batch whose results are stored is read again the way the scheduler read it (the
adapter's parser, then its ``usage``), priced with the price table in force (``prices.json``,
``BATCH_LLM_PRICES``), at batch price, next to what the same tokens cost realtime. Nothing is
sent to any provider. Answers a run took realtime (escalations) are not in the journal, so they
are not in this report; ``Scheduler.cost()`` has them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from .._cost import CostReport, UsageMeter, format_money
from .._journal import Intent, Journal
from .._redact import redact
from ._adapter import adapter_for, run_async
from ._errors import CLIError
from ._journal import batch_key, open_existing_journal, stored_results
from ._output import Output, local_time

__all__ = ["JournalCost", "journal_cost", "show_cost"]


@dataclass
class JournalCost:
    """The cost of a journal's stored batches.

    Attributes:
        report: every counted answer, by provider and model (kind ``batch``).
        batches: each counted batch with its own report, newest first.
        not_stored: batches without stored results (still running, failed, or collected by
            no run yet): not counted.
    """

    report: CostReport
    batches: list[tuple[Intent, CostReport]] = field(default_factory=list)
    not_stored: list[Intent] = field(default_factory=list)


def journal_cost(journal: Journal, *, limit: int = 100_000) -> JournalCost:
    """Replay the stored results of the journal's latest ``limit`` batches and price them."""
    intents = journal.intents(limit=limit)
    total = UsageMeter()
    result = JournalCost(total.report())
    meters: list[tuple[Intent, UsageMeter]] = []

    async def replay_all() -> None:
        for intent in intents:
            if not (intent.results_stored and intent.batch_id):
                result.not_stored.append(intent)
                continue
            adapter = adapter_for(intent, offline=True)
            meter = UsageMeter()
            count = meter.counter(
                adapter.name, "batch", adapter.usage, intent.endpoint, batch_key(intent), total
            )
            try:
                async for rows in stored_results(journal, intent, adapter):
                    for _custom_id, outcome in rows:
                        if not isinstance(outcome, BaseException):
                            count(outcome)
            finally:
                await adapter.aclose()
            meters.append((intent, meter))

    run_async(replay_all())
    result.report = total.report()
    result.batches = [(intent, meter.report()) for intent, meter in meters]
    return result


def show_cost(args: argparse.Namespace, out: Output) -> int:
    """``batch-llm cost``: the journal's cost report."""
    journal = open_existing_journal(args.journal)
    try:
        cost = journal_cost(journal)
    except CLIError:
        raise
    except Exception as exc:  # a stored result the adapter cannot read
        raise CLIError(
            f"reading the journal's results failed: {type(exc).__name__}: {redact(str(exc))}"
        ) from None
    finally:
        journal.close()
    report = cost.report
    if args.json:
        data = report.to_dict()
        data["batches"] = [
            {
                "batch_id": intent.batch_id,
                "intent_id": intent.intent_id,
                "model": intent.model,
                "requests": one.requests,
                "cost": one.cost if one.complete else None,
                "realtime_cost": one.realtime_cost if one.complete else None,
            }
            for intent, one in cost.batches
        ]
        data["not_stored"] = [i.batch_id or i.intent_id for i in cost.not_stored]
        out.json(data)
        return 0
    out.line(
        f"{len(cost.batches)} batch(es) with stored results in {journal.describe()}"
        + (
            f"; {len(cost.not_stored)} without stored results are not counted"
            if cost.not_stored
            else ""
        )
    )
    if not report.rows:
        out.line("no answers stored yet")
        return 0
    if args.by_batch:
        rows = [
            [
                intent.batch_id or "",
                intent.model or ",".join(r.model for r in one.rows),
                local_time(intent.created_at),
                f"{one.requests:,}",
                format_money(one.cost) if one.complete else "unknown",
                format_money(one.realtime_cost) if one.complete else "unknown",
                format_money(one.saving) if one.complete else "unknown",
            ]
            for intent, one in cost.batches
        ]
        headers = ["batch", "model", "created", "answers", "cost", "realtime", "saved"]
        out.table(headers, rows, title="by batch", right=(3, 4, 5, 6))
        out.line()
    headers, body = report.table()
    out.table(
        headers,
        body,
        title=f"batch-llm cost ({report.currency}, prices as of {report.prices_as_of})",
        right=range(3, len(headers)),
    )
    for note in report.notes():
        out.line(note)
    return 0
