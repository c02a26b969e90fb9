"""The journal: a durable record of what was submitted, so nothing is lost or paid for twice.

Every submission is written twice: an *intent* before the provider hears of it (with the ids of
every request in it), and the provider's batch id once the batch exists. The intent id is also
stamped on the batch's metadata where the provider keeps metadata, so a crash between the two
writes can be reconciled through the provider's list API. Result files are kept as the raw bytes
the provider sent, so a re-run takes answers already fetched instead of asking again.

SQLite (stdlib ``sqlite3``, WAL mode) by default, one file of mode 0600, behind a small
interface that a shared database can implement when many workers feed the same batches. Calls
are made from the scheduler's loop through a single worker thread (``JournalWriter``) so the
loop never waits on disk.
"""

from __future__ import annotations

import abc
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._files import make_private_dirs, open_private

__all__ = [
    "Counts",
    "Intent",
    "Journal",
    "NullJournal",
    "SQLiteJournal",
    "default_journal_path",
    "open_journal",
]

_OFF = {"", "0", "off", "false", "no", "none", "disabled"}
# SQLite caps the number of bound parameters per statement; stay well under it.
_CHUNK = 500


@dataclass(slots=True)
class Intent:
    """One submission as the journal knows it.

    Attributes:
        intent_id: our id for the submission, also stamped on the batch's metadata.
        provider: the adapter's description (no secrets).
        provider_id: a digest identifying the adapter's settings (credentials hashed).
        endpoint: the endpoint every line of the batch calls.
        requests: lines in the batch.
        created_at: when the intent was written (Unix time).
        batch_id: the provider's id, once the batch exists.
        status: the provider's latest status word (``intent`` until the batch exists).
        outcome: how the batch ended, once it has.
        results_stored: whether the batch's result files are in the journal.
        provider_name: the adapter's registry name (``openai``, ``anthropic``, ``gemini``,
            a preset's name), so a tool can build the adapter again from the environment's
            credentials.
        base_url: where the adapter sends its calls, when not the provider's default (no
            credentials: user info and query strings are dropped).
        model: the model every line asks for, where one batch holds one model ("" otherwise).
        total, succeeded, failed: the provider's request counts at the latest status (None
            until reported).
    """

    intent_id: str
    provider: str
    provider_id: str
    endpoint: str
    requests: int
    created_at: float = 0.0
    batch_id: str | None = None
    status: str = "intent"
    outcome: str | None = None
    results_stored: bool = False
    provider_name: str = ""
    base_url: str | None = None
    model: str = ""
    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None


#: The request counts ``record_status`` may carry: ``total``, ``succeeded``, ``failed``.
Counts = Mapping[str, int]


class Journal(abc.ABC):
    """Where submissions, their requests and their results are recorded."""

    @abc.abstractmethod
    def record_intent(self, intent: Intent, custom_ids: Sequence[str]) -> None:
        """Before submitting: the batch about to be made and every request in it."""

    @abc.abstractmethod
    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        """After submitting: the provider's id for the batch."""

    @abc.abstractmethod
    def record_status(
        self,
        intent_id: str,
        status: str,
        outcome: str | None = None,
        counts: Counts | None = None,
    ) -> None:
        """The batch's latest status (and outcome, once it ended; and the provider's request
        counts, when known)."""

    @abc.abstractmethod
    def append_results(self, intent_id: str, stream: str, data: bytes) -> None:
        """Raw bytes of one of the batch's result streams, in order."""

    @abc.abstractmethod
    def clear_results(self, intent_id: str) -> None:
        """Drop a batch's stored result bytes (a read that is starting over)."""

    @abc.abstractmethod
    def finish_results(self, intent_id: str) -> None:
        """Every result stream of the batch is stored."""

    @abc.abstractmethod
    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        """The stored result streams of a batch: ``(stream, bytes)`` in the order stored."""

    @abc.abstractmethod
    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        """These requests got no answer from this batch: a later run must submit them again."""

    @abc.abstractmethod
    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        """The latest submission holding each of these requests, where there is one."""

    @abc.abstractmethod
    def intents(self, *, limit: int = 100) -> list[Intent]:
        """The most recent submissions, newest first."""

    def find(self, ident: str) -> list[Intent]:
        """The submissions a batch id, an intent id or an intent id's prefix names (several
        when a prefix is ambiguous). Scans the recent ones; journals can do better."""
        if not ident:
            return []
        recent = self.intents(limit=10_000)
        exact = [i for i in recent if ident in (i.batch_id, i.intent_id)]
        return exact or [i for i in recent if i.intent_id.startswith(ident)]

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the journal's resources."""


class NullJournal(Journal):
    """The journal turned off: nothing is recorded, nothing is resumed."""

    def record_intent(self, intent: Intent, custom_ids: Sequence[str]) -> None:
        pass

    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        pass

    def record_status(
        self,
        intent_id: str,
        status: str,
        outcome: str | None = None,
        counts: Counts | None = None,
    ) -> None:
        pass

    def append_results(self, intent_id: str, stream: str, data: bytes) -> None:
        pass

    def clear_results(self, intent_id: str) -> None:
        pass

    def finish_results(self, intent_id: str) -> None:
        pass

    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        return []

    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        pass

    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        return {}

    def intents(self, *, limit: int = 100) -> list[Intent]:
        return []


_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    intent_id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    requests INTEGER NOT NULL,
    created_at REAL NOT NULL,
    batch_id TEXT,
    status TEXT NOT NULL,
    outcome TEXT,
    results_stored INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    provider_name TEXT,
    base_url TEXT,
    model TEXT,
    total INTEGER,
    succeeded INTEGER,
    failed INTEGER
);
CREATE TABLE IF NOT EXISTS requests (
    provider_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    intent_id TEXT NOT NULL,
    PRIMARY KEY (provider_id, custom_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS requests_by_intent ON requests (intent_id);
CREATE TABLE IF NOT EXISTS results (
    intent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (intent_id, seq)
) WITHOUT ROWID;
"""

_COLUMNS = (
    "intent_id, provider, provider_id, endpoint, requests, created_at, batch_id, status, "
    "outcome, results_stored, provider_name, base_url, model, total, succeeded, failed"
)
# Columns added after the first release, with their types: a journal written by an older
# version gets them on open (``ALTER TABLE ... ADD COLUMN``), NULL in its existing rows.
_ADDED_COLUMNS = (
    ("provider_name", "TEXT"),
    ("base_url", "TEXT"),
    ("model", "TEXT"),
    ("total", "INTEGER"),
    ("succeeded", "INTEGER"),
    ("failed", "INTEGER"),
)


def _intent(row: Sequence[object]) -> Intent:
    return Intent(
        intent_id=str(row[0]),
        provider=str(row[1]),
        provider_id=str(row[2]),
        endpoint=str(row[3]),
        requests=int(row[4]),  # type: ignore[call-overload]
        created_at=float(row[5]),  # type: ignore[arg-type]
        batch_id=None if row[6] is None else str(row[6]),
        status=str(row[7]),
        outcome=None if row[8] is None else str(row[8]),
        results_stored=bool(row[9]),
        provider_name=str(row[10] or ""),
        base_url=None if row[11] is None else str(row[11]),
        model=str(row[12] or ""),
        total=_maybe_int(row[13]),
        succeeded=_maybe_int(row[14]),
        failed=_maybe_int(row[15]),
    )


def _maybe_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


class SQLiteJournal(Journal):
    """The journal in one SQLite file (WAL mode, mode 0600).

    Thread-safe: one connection, one lock. Each write is its own transaction, committed before
    the call returns, so a write that returned survives a crash.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        make_private_dirs(self.path.parent)
        # Create the file private before SQLite opens it: it names batches and may hold
        # answers. WAL and shared-memory files are made private as they appear.
        os.close(open_private(self.path, os.O_RDWR))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        self._private_sidecars()

    def _add_columns(self) -> None:
        """Bring a journal written by an older version up to the current columns."""
        present = {str(row[1]) for row in self._db.execute("PRAGMA table_info(intents)")}
        for name, kind in _ADDED_COLUMNS:
            if name in present:
                continue
            try:
                self._db.execute(f"ALTER TABLE intents ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                # Another process opening the same old journal added it first.
                if "duplicate column" not in str(exc).lower():
                    raise

    def _private_sidecars(self) -> None:
        for suffix in ("-wal", "-shm"):
            sidecar = Path(str(self.path) + suffix)
            if sidecar.exists():
                os.chmod(sidecar, 0o600)

    def _write(self, sql: str, rows: Iterable[Sequence[object]] | Sequence[object]) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                if isinstance(rows, list):
                    db.executemany(sql, rows)
                else:
                    db.execute(sql, rows)  # type: ignore[arg-type]
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def record_intent(self, intent: Intent, custom_ids: Sequence[str]) -> None:
        now = time.time()
        intent.created_at = intent.created_at or now
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.execute(
                    f"INSERT OR REPLACE INTO intents ({_COLUMNS}, updated_at) "
                    f"VALUES ({', '.join('?' * 17)})",
                    (
                        intent.intent_id,
                        intent.provider,
                        intent.provider_id,
                        intent.endpoint,
                        intent.requests,
                        intent.created_at,
                        intent.batch_id,
                        intent.status,
                        intent.outcome,
                        int(intent.results_stored),
                        intent.provider_name or None,
                        intent.base_url,
                        intent.model or None,
                        intent.total,
                        intent.succeeded,
                        intent.failed,
                        now,
                    ),
                )
                # A generator, not a list: rows built and dropped one at a time do not pile up
                # as 10,000 tracked tuples that set off a full garbage collection.
                provider_id, intent_id = intent.provider_id, intent.intent_id
                db.executemany(
                    "INSERT OR REPLACE INTO requests (provider_id, custom_id, intent_id) "
                    "VALUES (?, ?, ?)",
                    ((provider_id, cid, intent_id) for cid in custom_ids),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        self._private_sidecars()

    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        self._write(
            "UPDATE intents SET batch_id = ?, status = ?, updated_at = ? WHERE intent_id = ?",
            (batch_id, status, time.time(), intent_id),
        )

    def record_status(
        self,
        intent_id: str,
        status: str,
        outcome: str | None = None,
        counts: Counts | None = None,
    ) -> None:
        counts = counts or {}
        self._write(
            "UPDATE intents SET status = ?, outcome = coalesce(?, outcome), "
            "total = coalesce(?, total), succeeded = coalesce(?, succeeded), "
            "failed = coalesce(?, failed), updated_at = ? WHERE intent_id = ?",
            (
                status,
                outcome,
                counts.get("total"),
                counts.get("succeeded"),
                counts.get("failed"),
                time.time(),
                intent_id,
            ),
        )

    def append_results(self, intent_id: str, stream: str, data: bytes) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                (seq,) = db.execute(
                    "SELECT coalesce(max(seq), -1) + 1 FROM results WHERE intent_id = ?",
                    (intent_id,),
                ).fetchone()
                db.execute(
                    "INSERT INTO results (intent_id, seq, stream, data) VALUES (?, ?, ?, ?)",
                    (intent_id, seq, stream, data),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def clear_results(self, intent_id: str) -> None:
        self._write("DELETE FROM results WHERE intent_id = ?", (intent_id,))

    def finish_results(self, intent_id: str) -> None:
        self._write(
            "UPDATE intents SET results_stored = 1, updated_at = ? WHERE intent_id = ?",
            (time.time(), intent_id),
        )

    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT stream, data FROM results WHERE intent_id = ? ORDER BY seq", (intent_id,)
            ).fetchall()
        return [(str(stream), bytes(data)) for stream, data in rows]

    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN")
            try:
                db.executemany(
                    "DELETE FROM requests WHERE intent_id = ? AND custom_id = ?",
                    ((intent_id, cid) for cid in custom_ids),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        found: dict[str, Intent] = {}
        intents: dict[str, Intent] = {}
        with self._lock:
            db = self._db
            for start in range(0, len(custom_ids), _CHUNK):
                part = custom_ids[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    f"SELECT r.custom_id, {', '.join('i.' + c for c in _COLUMNS.split(', '))} "
                    "FROM requests r JOIN intents i ON i.intent_id = r.intent_id "
                    f"WHERE r.provider_id = ? AND r.custom_id IN ({marks})",
                    (provider_id, *part),
                ).fetchall()
                for row in rows:
                    intent_id = str(row[1])
                    intent = intents.get(intent_id)
                    if intent is None:
                        intent = intents[intent_id] = _intent(row[1:])
                    found[str(row[0])] = intent
        return found

    def intents(self, *, limit: int = 100) -> list[Intent]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM intents ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_intent(row) for row in rows]

    def find(self, ident: str) -> list[Intent]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM intents WHERE batch_id = ? OR intent_id = ? "
                "ORDER BY created_at DESC",
                (ident, ident),
            ).fetchall()
            if not rows and ident:
                # A prefix of an intent id (they are long to type).
                rows = self._db.execute(
                    f"SELECT {_COLUMNS} FROM intents WHERE substr(intent_id, 1, ?) = ? "
                    "ORDER BY created_at DESC",
                    (len(ident), ident),
                ).fetchall()
        return [_intent(row) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def default_journal_path() -> Path:
    """Where the journal lives unless ``BATCH_LLM_JOURNAL`` says otherwise: the user's cache."""
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "batch-llm" / "journal.sqlite3"


def open_journal(setting: str | os.PathLike[str] | Journal | None = None) -> Journal:
    """The journal a setting names: a ``Journal``, a path, "off", or None for
    ``BATCH_LLM_JOURNAL`` (a path, or "off"), else the default path."""
    if isinstance(setting, Journal):
        return setting
    if setting is None:
        setting = os.environ.get("BATCH_LLM_JOURNAL")
        if setting is None:
            return SQLiteJournal(default_journal_path())
    if str(setting).strip().lower() in _OFF:
        return NullJournal()
    return SQLiteJournal(setting)
