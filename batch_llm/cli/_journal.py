"""The journal a ``batch-llm`` command reads: opening it (never creating one), finding an
entry by id, and what an entry says about its batch and its stored results."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Hashable
from pathlib import Path
from typing import Any

from .._errors import JournalError
from .._journal import (
    Intent,
    Journal,
    PostgresJournal,
    SQLiteJournal,
    default_journal_path,
    is_journal_off,
    is_postgres_url,
)
from .._redact import redact
from ..providers import BatchStatus, Provider
from ._errors import CLIError

__all__ = [
    "batch_key",
    "ended_status",
    "find_intent",
    "open_existing_journal",
    "probe",
    "stored_results",
]


def open_existing_journal(path: str | None) -> Journal:
    """The journal at ``path`` (a file or a ``postgresql://`` URL), else
    ``BATCH_LLM_JOURNAL``, else the default one; a file must exist (reading a journal must not
    create an empty one). Errors name the journal without its credentials."""
    setting = path or os.environ.get("BATCH_LLM_JOURNAL")
    if setting is not None and is_journal_off(setting):
        raise CLIError(
            "the journal is turned off (BATCH_LLM_JOURNAL=off); pass --journal PATH", status=2
        )
    try:
        if setting and is_postgres_url(setting):
            return PostgresJournal(setting)
        where = Path(setting).expanduser() if setting else default_journal_path()
        if not where.is_file():
            raise CLIError(
                f"no journal at {where} (pass --journal PATH or set BATCH_LLM_JOURNAL)",
                status=2,
            )
        return SQLiteJournal(where)
    except JournalError as exc:
        raise CLIError(redact(str(exc)), status=2) from None


def find_intent(journal: Journal, ident: str) -> Intent | None:
    """The journal entry ``ident`` names (a batch id, an intent id or its prefix)."""
    found = journal.find(ident)
    if len(found) > 1 and len({i.intent_id for i in found}) > 1:
        names = ", ".join(i.batch_id or i.intent_id for i in found[:5])
        raise CLIError(f"{ident!r} names more than one journal entry: {names}", status=2)
    return found[0] if found else None


def probe(intent: Intent) -> BatchStatus:
    """A status holding what the provider needs to look the batch up."""
    if not intent.batch_id:
        raise CLIError(
            f"journal entry {intent.intent_id} never became a batch (status {intent.status}): "
            "there is nothing upstream",
            status=1,
        )
    return BatchStatus(intent.batch_id, "in_progress", intent.status, endpoint=intent.endpoint)


def ended_status(intent: Intent) -> BatchStatus:
    """The status a replay of ``intent``'s stored results parses against."""
    return BatchStatus(
        intent.batch_id or "",
        "ended",
        intent.status,
        outcome=intent.outcome,  # type: ignore[arg-type]
        endpoint=intent.endpoint,
    )


def batch_key(intent: Intent) -> Hashable:
    """The adapter's grouping key, as far as the journal knows it: usage falls back on its
    model when an answer does not name one."""
    return (intent.endpoint, intent.model) if intent.model else None


async def stored_results(
    journal: Journal, intent: Intent, adapter: Provider
) -> AsyncIterator[list[tuple[str, Any]]]:
    """The batch's results as kept in the journal, parsed as the scheduler parsed them."""
    streams = journal.load_results(intent.intent_id)
    async for rows in adapter.replay(ended_status(intent), streams):
        yield rows
