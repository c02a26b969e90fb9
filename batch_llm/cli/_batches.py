"""``batch-llm batches``: list, show, cancel and fetch the results of batches.

The journal is the source: every submission with its provider, endpoint, model, status, counts
and whether its results are stored. ``--remote`` lists what the provider itself holds.
``show`` adds the live status when the provider can be reached; ``cancel`` cancels upstream and
journals the new status; ``results`` replays stored results, or downloads those of an ended
batch, as JSONL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any, TypeVar

from .._journal import Intent, Journal
from .._redact import redact
from ..providers import BatchStatus, Provider
from ._adapter import adapter_for, run_async
from ._errors import CLIError
from ._journal import find_intent, open_existing_journal, probe, stored_results
from ._output import Output, iso_time, local_time

__all__ = ["cancel_batch", "list_batches", "show_batch", "write_results"]

T = TypeVar("T")


# -- shared -------------------------------------------------------------------------------------


def _run(adapter: Provider, work: Callable[[], Awaitable[T]], what: str) -> T:
    """Run one provider call on a fresh loop (the adapter's clients belong to it), with its
    failure reported in one line, without the key."""

    async def call() -> T:
        try:
            return await work()
        finally:
            await adapter.aclose()

    try:
        return run_async(call())
    except (CLIError, BrokenPipeError):  # a closed pipe is the reader's choice, not a failure
        raise
    except NotImplementedError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:
        raise CLIError(f"{what} failed: {type(exc).__name__}: {redact(str(exc))}") from None


def _adapter(args: argparse.Namespace, intent: Intent | None, *, offline: bool = False) -> Provider:
    return adapter_for(
        intent,
        provider=getattr(args, "provider", None),
        base_url=getattr(args, "base_url", None),
        api_key_env=getattr(args, "api_key_env", None),
        offline=offline,
    )


def _locate(args: argparse.Namespace) -> tuple[Journal | None, Intent | None]:
    """The journal and the entry ``args.id`` names. An id the journal does not hold may still
    be reached with ``--provider``; without one it is an error."""
    provider = getattr(args, "provider", None)
    try:
        journal = open_existing_journal(getattr(args, "journal", None))
    except CLIError:
        if provider:
            return None, None
        raise
    intent = find_intent(journal, args.id)
    if intent is None and not provider:
        journal.close()
        raise CLIError(
            f"no batch or intent {args.id!r} in the journal at {journal.describe()} (pass "
            "--provider NAME to reach a batch the journal does not hold)",
            status=2,
        )
    return journal, intent


def _done(total: int | None, succeeded: int | None, failed: int | None) -> str:
    if total is None:
        return ""
    return f"{(succeeded or 0) + (failed or 0):,}/{total:,}"


def _short_provider(description: str) -> str:
    """``openai(http://127.0.0.1:8765/v1)`` -> ``openai(127.0.0.1:8765/v1)``: tables are wide."""
    return description.replace("(https://", "(").replace("(http://", "(")


def _short_status(status: str) -> str:
    """Gemini's ``BATCH_STATE_RUNNING`` as ``running``, like the other providers' words."""
    return status.removeprefix("BATCH_STATE_").removeprefix("JOB_STATE_").lower()


def _intent_data(intent: Intent) -> dict[str, Any]:
    """A journal entry as JSON (the adapter digest left out: it identifies a credential)."""
    data = asdict(intent)
    data.pop("provider_id", None)
    data["created_at"] = iso_time(intent.created_at)
    return data


def _status_data(status: BatchStatus) -> dict[str, Any]:
    return {
        "batch_id": status.batch_id,
        "status": status.raw_status,
        "state": status.state,
        "outcome": status.outcome,
        "reason": status.reason,
        "endpoint": status.endpoint,
        "total": status.total,
        "succeeded": status.succeeded,
        "failed": status.failed,
        "times": {name: iso_time(value) for name, value in status.times.items()},
    }


# -- list ---------------------------------------------------------------------------------------


def list_batches(args: argparse.Namespace, out: Output) -> int:
    """``batch-llm batches``: the journal's submissions, newest first (``--remote``: the
    provider's batches)."""
    if args.remote:
        return _list_remote(args, out)
    journal = open_existing_journal(args.journal)
    try:
        intents = journal.intents(limit=args.limit)
    finally:
        journal.close()
    if args.json:
        out.json([_intent_data(i) for i in intents])
        return 0
    if not intents:
        out.line(f"no batches in the journal at {journal.describe()}")
        return 0
    rows = [
        [
            i.batch_id or f"(intent {i.intent_id[:8]})",
            _short_provider(i.provider),
            i.endpoint,
            i.model or "-",
            f"{i.requests:,}",
            _short_status(i.status),
            _done(i.total, i.succeeded, i.failed),
            "" if i.failed is None else f"{i.failed:,}",
            i.outcome or "",
            local_time(i.created_at),
            "stored" if i.results_stored else "",
        ]
        for i in intents
    ]
    headers = ["batch", "provider", "endpoint", "model", "requests", "status", "done", "failed"]
    headers += ["outcome", "created", "results"]
    out.table(
        headers, rows, title=f"{len(rows)} batch(es) in {journal.describe()}", right=(4, 6, 7)
    )
    return 0


def _list_remote(args: argparse.Namespace, out: Output) -> int:
    if not args.provider:
        raise CLIError("--remote needs --provider openai|anthropic|gemini", status=2)
    adapter = _adapter(args, None)
    statuses = _run(adapter, lambda: adapter.list_batches(args.limit), "listing batches")
    journaled: set[str] = set()
    try:
        journal = open_existing_journal(args.journal)
    except CLIError:  # listing the provider needs no journal; it only marks what it holds
        pass
    else:
        with_ids = {s.batch_id for s in statuses}
        journaled = {i.batch_id for i in journal.intents(limit=10_000) if i.batch_id in with_ids}
        journal.close()
    if args.json:
        out.json([{**_status_data(s), "in_journal": s.batch_id in journaled} for s in statuses])
        return 0
    if not statuses:
        out.line(f"no batches at {adapter.describe()}")
        return 0
    rows = [
        [
            s.batch_id,
            s.endpoint or "",
            _short_status(s.raw_status),
            _done(s.total, s.succeeded, s.failed),
            f"{s.failed:,}",
            s.outcome or "",
            local_time(s.times.get("created")),
            "yes" if s.batch_id in journaled else "",
        ]
        for s in statuses
    ]
    headers = ["batch", "endpoint", "status", "done", "failed", "outcome", "created", "journal"]
    out.table(headers, rows, title=f"{len(rows)} batch(es) at {adapter.describe()}", right=(3, 4))
    return 0


# -- show ---------------------------------------------------------------------------------------


def show_batch(args: argparse.Namespace, out: Output) -> int:
    """``batch-llm batches show ID``: the journal's entry and the provider's live status."""
    journal, intent = _locate(args)
    if journal is not None:
        journal.close()
    live: BatchStatus | None = None
    live_error: str | None = None
    batch_id = intent.batch_id if intent is not None else args.id
    if batch_id and not args.offline:
        adapter = _adapter(args, intent)
        look = probe(intent) if intent is not None else BatchStatus(batch_id, "in_progress", "")
        try:
            live = _run(adapter, lambda: adapter.poll(look), "asking the provider")
        except CLIError as exc:
            live_error = str(exc)
    if args.json:
        out.json(
            {
                "journal": _intent_data(intent) if intent is not None else None,
                "live": _status_data(live) if live is not None else None,
                "live_error": live_error,
            }
        )
        return 0
    pairs: list[tuple[str, str]] = []
    if intent is not None:
        pairs += [
            ("intent", intent.intent_id),
            ("provider", intent.provider),
            ("endpoint", intent.endpoint),
            ("model", intent.model or "-"),
            ("requests", f"{intent.requests:,}"),
            ("created", local_time(intent.created_at)),
            ("journal status", _journal_status(intent)),
            ("results", "stored in the journal" if intent.results_stored else "not stored"),
        ]
    else:
        pairs.append(("journal", "not in the journal"))
    if live is not None:
        counts = f"{live.succeeded:,} succeeded, {live.failed:,} failed of {live.total:,}"
        pairs.append(("live status", f"{live.raw_status} ({live.state}); {counts}"))
        if live.outcome:
            pairs.append(("outcome", live.outcome + (f": {live.reason}" if live.reason else "")))
        pairs += [(f"  {name}", local_time(value)) for name, value in live.times.items()]
    elif live_error is not None:
        pairs.append(("live status", f"unavailable ({live_error})"))
    title = f"batch {batch_id}" if batch_id else f"intent {args.id} (never became a batch)"
    out.fields(pairs, title=title)
    return 0


def _journal_status(intent: Intent) -> str:
    text = intent.status
    if intent.outcome and intent.outcome != intent.status:
        text += f" (outcome {intent.outcome})"
    if intent.total is not None:
        text += f"; {_done(intent.total, intent.succeeded, intent.failed)} done"
        text += f", {intent.failed or 0:,} failed"
    return text


# -- cancel -------------------------------------------------------------------------------------


def cancel_batch(args: argparse.Namespace, out: Output) -> int:
    """``batch-llm batches cancel ID``: cancel upstream, journal the new status, print it."""
    journal, intent = _locate(args)
    try:
        adapter = _adapter(args, intent)
        look = probe(intent) if intent is not None else BatchStatus(args.id, "in_progress", "")
        status = _run(adapter, lambda: adapter.cancel(look), f"cancelling {look.batch_id}")
        if journal is not None and intent is not None:
            counts = {"total": status.total, "succeeded": status.succeeded, "failed": status.failed}
            outcome = status.outcome if status.ended else None
            journal.record_status(intent.intent_id, status.raw_status, outcome, counts)
    finally:
        if journal is not None:
            journal.close()
    if args.json:
        out.json(_status_data(status))
        return 0
    done = _done(status.total, status.succeeded, status.failed)
    out.line(
        f"cancel requested: batch {status.batch_id} is {status.raw_status}"
        + (f" ({done} lines done)" if done else "")
    )
    if intent is not None:
        out.line(
            "A scheduler following it delivers the finished lines; the others raise "
            "BatchCancelledError."
        )
    return 0


# -- results ------------------------------------------------------------------------------------


def write_results(args: argparse.Namespace, out: Output) -> int:
    """``batch-llm batches results ID``: the batch's results as JSONL, one line per request:
    ``{"custom_id", "response"}`` or ``{"custom_id", "error"}``."""
    journal, intent = _locate(args)
    counts = {"response": 0, "error": 0}
    with contextlib.ExitStack() as cleanup:
        if journal is not None:
            cleanup.callback(journal.close)
        target: IO[str] = out.stream
        if args.output:
            target = cleanup.enter_context(Path(args.output).open("w", encoding="utf-8"))
        if journal is not None and intent is not None and intent.results_stored:
            adapter = _adapter(args, intent, offline=True)
            source = "the journal"
            kept, entry = journal, intent

            async def read() -> None:
                async for rows in stored_results(kept, entry, adapter):
                    _write_rows(target, rows, counts)

            _run(adapter, read, "reading the stored results")
        else:
            adapter = _adapter(args, intent)
            look = probe(intent) if intent is not None else BatchStatus(args.id, "in_progress", "")
            source = adapter.describe()

            async def fetch() -> None:
                status = await adapter.poll(look)
                if not status.ended:
                    done = _done(status.total, status.succeeded, status.failed)
                    raise CLIError(
                        f"batch {status.batch_id} is still {status.raw_status} ({done} done); "
                        "its results can be fetched once it ends"
                    )
                async for rows in adapter.results(status):
                    _write_rows(target, rows, counts)

            _run(adapter, fetch, "fetching the results")
    if args.output:
        out.line(
            f"wrote {counts['response'] + counts['error']:,} results ({counts['response']:,} "
            f"answers, {counts['error']:,} errors) from {source} to {args.output}"
        )
    return 0


def _write_rows(target: IO[str], rows: list[tuple[str, Any]], counts: dict[str, int]) -> None:
    for custom_id, outcome in rows:
        if isinstance(outcome, BaseException):
            line = {"custom_id": custom_id, "error": _error_data(outcome)}
            counts["error"] += 1
        else:
            line = {"custom_id": custom_id, "response": outcome}
            counts["response"] += 1
        target.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


def _error_data(exc: BaseException) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(exc).__name__, "message": redact(str(exc))}
    status_code = getattr(exc, "status_code", None) or getattr(exc, "code", None)
    if isinstance(status_code, int):
        data["status_code"] = status_code
    return data
