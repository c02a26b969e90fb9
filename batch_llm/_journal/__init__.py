"""The journal: a durable record of what was submitted, so nothing is lost or paid for twice.

Every submission is written twice: an *intent* before the provider hears of it (with the ids of
every request in it, claimed atomically: see ``_base``), and the provider's batch id once the
batch exists. The intent id is also stamped on the batch's metadata where the provider keeps
metadata, so a crash between the two writes can be reconciled through the provider's list API.
Result files are kept as the raw bytes the provider sent, so a re-run takes answers already
fetched instead of asking again.

Three journals keep one interface (``Journal``): a SQLite file (the default; every process on
one machine), a PostgreSQL database (workers on many machines), and none (``off``). The
scheduler calls them from one worker thread of its own (``_journal_io.JournalWriter``), so its
loop never waits on disk or network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._base import Counts, DamagedResultsError, Intent, Journal, LeaseLostError, NullJournal
from ._postgres import PostgresJournal, is_postgres_url
from ._sqlite import SQLiteJournal

__all__ = [
    "Counts",
    "DamagedResultsError",
    "Intent",
    "Journal",
    "LeaseLostError",
    "NullJournal",
    "PostgresJournal",
    "SQLiteJournal",
    "default_journal_path",
    "is_journal_off",
    "is_postgres_url",
    "open_journal",
]

_OFF = {"", "0", "off", "false", "no", "none", "disabled"}


def default_journal_path() -> Path:
    """Where the journal lives unless ``BATCH_LLM_JOURNAL`` says otherwise: the user's cache."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "batch-llm" / "journal.sqlite3"


def is_journal_off(setting: str | os.PathLike[str]) -> bool:
    """Whether a journal setting turns the journal off (``off``, ``0``, ``none``...)."""
    return str(setting).strip().lower() in _OFF


def open_journal(setting: str | os.PathLike[str] | Journal | None = None) -> Journal:
    """The journal a setting names: a ``Journal``; a ``postgresql://`` URL; a path; "off";
    or None for ``BATCH_LLM_JOURNAL`` (any of those), else the default path.

    Raises:
        JournalError: the journal is damaged or cannot be reached (the message names it,
            without credentials, and says what to do).
    """
    if isinstance(setting, Journal):
        return setting
    if setting is None:
        setting = os.environ.get("BATCH_LLM_JOURNAL")
        if setting is None:
            return SQLiteJournal(default_journal_path())
    if is_journal_off(setting):
        return NullJournal()
    if is_postgres_url(str(setting)):
        return PostgresJournal(str(setting))
    return SQLiteJournal(setting)
