"""The journal in one SQLite file: the default, for every process on one machine.

WAL mode, so readers (a scheduler following another's batch, ``batch-llm batches``) never wait
for the writer; writes take the file's write lock up front (``BEGIN IMMEDIATE``) and wait up to
``timeout`` for it, so processes sharing the file queue up instead of failing with "database is
locked". The file is mode 0600 in folders created 0700: it names batches and keeps answers.

A damaged file is found when it is opened, before anything is sent: its pages are checked
(``PRAGMA quick_check``: 0.3 s for a 320 MB journal holding a million requests and 200 MB of
results). Damage inside stored result bytes, which no page check sees, fails their CRC when
they are read, and those results are fetched from the provider again.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .._errors import JournalError
from .._files import make_private_dirs, open_private
from ._sql import SQLJournal, Transaction

__all__ = ["SQLiteDatabase", "SQLiteJournal"]

T = TypeVar("T")

# SQLite caps the number of bound parameters per statement; stay well under it.
_CHUNK = 500
# How long a write waits for another process's write to finish before it fails.
_BUSY_TIMEOUT = 60.0

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

# Columns added after the first release, with their types: a journal written by an older
# version gets them on open (``ALTER TABLE ... ADD COLUMN``), NULL in its existing rows.
_ADDED_COLUMNS = (
    ("provider_name", "TEXT"),
    ("base_url", "TEXT"),
    ("model", "TEXT"),
    ("total", "INTEGER"),
    ("succeeded", "INTEGER"),
    ("failed", "INTEGER"),
    ("owner", "TEXT"),
    ("lease_until", "REAL"),
    ("results_chunks", "INTEGER"),
    ("results_bytes", "INTEGER"),
    ("results_crc", "INTEGER"),
)
_ADDED_INDEXES = "CREATE INDEX IF NOT EXISTS intents_by_owner ON intents (owner);"

_TABLES = {
    "intents": "intents",
    "requests": "requests",
    "results": "results",
    "ids": "{ids}",
    # SQLite's own clock, the machine's: every process sharing the file reads the same one.
    "now": "((julianday('now') - 2440587.5) * 86400.0)",
}


class _Tx:
    """A transaction on the journal's one connection (``Transaction``)."""

    def __init__(self, db: sqlite3.Connection, render: Callable[[str], str]) -> None:
        self._db = db
        self._render = render

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(self._render(sql), params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        return self._db.executemany(self._render(sql), rows).rowcount


class SQLiteDatabase:
    """One SQLite file as a journal's database (``_sql.Database``).

    Thread-safe: one connection, one lock.
    """

    local = True

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = _BUSY_TIMEOUT) -> None:
        self.path = Path(path).expanduser()
        make_private_dirs(self.path.parent)
        # Create the file private before SQLite opens it: it names batches and may hold
        # answers. WAL and shared-memory files are made private as they appear.
        os.close(open_private(self.path, os.O_RDWR))
        self._lock = threading.Lock()
        self._sql: dict[str, str] = {}
        self._sidecars_private = False
        self._db = sqlite3.connect(
            self.path, timeout=timeout, check_same_thread=False, isolation_level=None
        )
        try:
            self._set_up(timeout)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and not _is_damage(exc):
                raise JournalError(f"cannot open the journal at {self.path}: {exc}") from exc
            raise self.damaged(exc) from exc
        self._private_sidecars()

    def describe(self) -> str:
        return str(self.path)

    def _set_up(self, timeout: float) -> None:
        """WAL mode, a check of every page, the tables. Processes opening a new journal
        together may find it locked where SQLite does not wait (switching to WAL takes the
        file whole): they try again, for up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._check_intact()
                self._db.executescript(_SCHEMA)
                self._add_columns()
                self._db.executescript(_ADDED_INDEXES)
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() + pause > deadline:
                    raise
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def damaged(self, cause: BaseException | str) -> JournalError:
        """The error that says the file is damaged and how to start a new one."""
        path = shlex.quote(str(self.path))
        return JournalError(
            f"the journal at {self.path} is damaged ({cause}); nothing was sent. Move it "
            f'aside with its -wal and -shm files (for f in {path}*; do mv "$f" '
            f'"$f.damaged"; done) or set BATCH_LLM_JOURNAL to another path, and run again: a '
            "new journal is started. Batches it recorded are still at the provider "
            "(batch-llm batches --remote --provider NAME lists them)."
        )

    def _check_intact(self) -> None:
        problems = [str(row[0]) for row in self._db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise self.damaged("; ".join(problems[:3]))

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
        # Once both are there and private, they stay so while this connection is open (SQLite
        # removes them only when the last connection closes): no more calls on every write.
        if self._sidecars_private:
            return
        found = 0
        for suffix in ("-wal", "-shm"):
            sidecar = Path(str(self.path) + suffix)
            if sidecar.exists():
                os.chmod(sidecar, 0o600)
                found += 1
        self._sidecars_private = found == 2

    def _render(self, sql: str) -> str:
        rendered = self._sql.get(sql)
        if rendered is None:
            rendered = self._sql[sql] = sql.format(**_TABLES)
        return rendered

    def run(
        self, work: Callable[[Transaction], T], *, write: bool = True, patient: bool = True
    ) -> T:
        # Impatience changes nothing here: a read never waits in WAL mode, and a write waits
        # for the file's lock (the busy timeout) whatever the caller.
        with self._lock:
            db = self._db
            try:
                # IMMEDIATE takes the write lock now, waiting for it (the busy timeout): a
                # transaction that reads then writes can then never fail half way for it.
                db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(_Tx(db, self._render))
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if _is_damage(exc):
                    raise self.damaged(exc) from exc
                raise JournalError(f"the journal at {self.path}: {exc}") from exc
        if write:
            self._private_sidecars()
        return result

    def select_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(ids), _CHUNK):
            part = ids[start : start + _CHUNK]
            marks = f"IN ({','.join('?' * len(part))})"
            rows += tx.execute(sql.replace("{ids}", marks), (*before, *part)).fetchall()
        return rows

    def delete_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> None:
        tx.executemany(sql.replace("{ids}", "= ?"), ((*before, i) for i in ids))

    def insert_requests(
        self, tx: Transaction, provider_id: str, intent_id: str, ids: Sequence[str]
    ) -> int:
        # A generator, not a list: rows built and dropped one at a time do not pile up as
        # 10,000 tracked tuples that set off a full garbage collection.
        return tx.executemany(
            "INSERT INTO {requests} (provider_id, custom_id, intent_id) VALUES (?, ?, ?) "
            "ON CONFLICT (provider_id, custom_id) DO NOTHING",
            ((provider_id, cid, intent_id) for cid in ids),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """A damaged file, as opposed to one busy or out of room."""
    if isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


class SQLiteJournal(SQLJournal):
    """The journal in one SQLite file (module docstring).

    Args:
        path: the file; created (mode 0600, its new folders 0700) if missing.
        timeout: seconds a write waits for another process's write before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = _BUSY_TIMEOUT) -> None:
        self._database = SQLiteDatabase(path, timeout=timeout)
        self.path = self._database.path
        super().__init__(self._database)
