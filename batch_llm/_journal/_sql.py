"""The journal's logic, written once in SQL, for every database that keeps it.

``SQLJournal`` owns a ``Database``: the part that knows one database (how to connect, how to run
a transaction and retry it, its parameter marker, its clock, its table names, and the two
statements that differ: a list of ids in a query, and inserting many request rows). Everything
the journal promises (module docstring of ``_base``) is here, once, so SQLite and PostgreSQL
keep it alike; the behavioural suite runs on both.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from .._errors import JournalError
from ._base import Counts, DamagedResultsError, Intent, Journal, LeaseLostError

__all__ = ["COLUMNS", "Database", "SQLJournal", "Transaction"]

T = TypeVar("T")

#: The intent columns, in ``Intent``'s order.
COLUMNS = (
    "intent_id",
    "provider",
    "provider_id",
    "endpoint",
    "requests",
    "created_at",
    "batch_id",
    "status",
    "outcome",
    "results_stored",
    "provider_name",
    "base_url",
    "model",
    "total",
    "succeeded",
    "failed",
    "owner",
    "lease_until",
)
_SELECT = ", ".join(COLUMNS)
_SELECT_I = ", ".join("i." + c for c in COLUMNS)


class Cursor(Protocol):
    """What a statement returns: its rows, or how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


class Transaction(Protocol):
    """One transaction of a ``Database``; statements use ``?`` markers and ``{table}``
    names, rendered by the database."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run ``sql`` for every row; returns how many rows it changed in all."""


class Database(Protocol):
    """One database's part of a journal (module docstring)."""

    #: Every process sharing it runs on this machine (``Journal.local``).
    local: bool

    def describe(self) -> str:
        """Where it is, without credentials."""

    def run(
        self, work: Callable[[Transaction], T], *, write: bool = True, patient: bool = True
    ) -> T:
        """Run ``work`` in one transaction, committed when it returns; transient failures
        (a busy file, a dropped connection) re-run it whole, so ``work`` must be idempotent.
        Not ``patient``: a connection that cannot be had at once fails the call instead."""

    def select_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> list[Any]:
        """Rows of ``sql``, whose ``{ids}`` is a membership test of a column in ``ids``
        (``before`` are the parameters ahead of it)."""

    def delete_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> None:
        """``sql`` (a DELETE with ``{ids}`` as in ``select_ids``) for every id."""

    def insert_requests(
        self, tx: Transaction, provider_id: str, intent_id: str, ids: Sequence[str]
    ) -> int:
        """Rows ``(provider_id, id, intent_id)`` for ``ids``, skipping ids already held;
        returns how many were inserted."""

    def close(self) -> None:
        """Close every connection."""


def _intent(row: Sequence[Any]) -> Intent:
    return Intent(
        intent_id=str(row[0]),
        provider=str(row[1]),
        provider_id=str(row[2]),
        endpoint=str(row[3]),
        requests=int(row[4]),
        created_at=float(row[5]),
        batch_id=None if row[6] is None else str(row[6]),
        status=str(row[7]),
        outcome=None if row[8] is None else str(row[8]),
        results_stored=bool(row[9]),
        provider_name=str(row[10] or ""),
        base_url=None if row[11] is None else str(row[11]),
        model=str(row[12] or ""),
        total=None if row[13] is None else int(row[13]),
        succeeded=None if row[14] is None else int(row[14]),
        failed=None if row[15] is None else int(row[15]),
        owner=None if row[16] is None else str(row[16]),
        lease_until=None if row[17] is None else float(row[17]),
    )


class SQLJournal(Journal):
    """A journal kept in a SQL database (``Database``): SQLite or PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.local = database.local

    def describe(self) -> str:
        return self._db.describe()

    # -- claims and ownership -------------------------------------------------------------------

    def claim(self, intent: Intent, custom_ids: Sequence[str], lease: float) -> dict[str, Intent]:
        # Sorted, so that concurrent claims lock rows in one order and never deadlock.
        ids = sorted(custom_ids)
        intent.created_at = intent.created_at or time.time()
        db = self._db

        def work(tx: Transaction) -> tuple[dict[str, Intent], int]:
            tx.execute(
                f"INSERT INTO {{intents}} ({_SELECT}, updated_at) "
                f"VALUES ({', '.join('?' * (len(COLUMNS) - 1))}, {{now}} + ?, ?) "
                "ON CONFLICT (intent_id) DO NOTHING",
                (
                    intent.intent_id,
                    intent.provider,
                    intent.provider_id,
                    intent.endpoint,
                    len(ids),
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
                    intent.owner,
                    lease,
                    time.time(),
                ),
            )
            # Insert first, then read who holds the rest: a concurrent claim's rows are only
            # seen once it commits, and the insert waits for exactly that.
            inserted = db.insert_requests(tx, intent.provider_id, intent.intent_id, ids)
            held: dict[str, Intent] = {}
            if inserted < len(ids):  # some were there already: whose?
                rows = db.select_ids(
                    tx,
                    f"SELECT r.custom_id, {_SELECT_I} FROM {{requests}} r "
                    "JOIN {intents} i ON i.intent_id = r.intent_id "
                    "WHERE r.provider_id = ? AND r.intent_id <> ? AND r.custom_id {ids}",
                    (intent.provider_id, intent.intent_id),
                    ids,
                )
                held = _by_request(rows)
            taken = len(ids) - len(held)
            if taken == 0:
                tx.execute("DELETE FROM {intents} WHERE intent_id = ?", (intent.intent_id,))
            elif held:
                tx.execute(
                    "UPDATE {intents} SET requests = ? WHERE intent_id = ?",
                    (taken, intent.intent_id),
                )
            return held, taken

        held, taken = db.run(work)
        intent.requests = taken
        return held

    def acquire(
        self, intent_id: str, owner: str, lease: float, *, steal_from: str | None = None
    ) -> Intent | None:
        def work(tx: Transaction) -> Intent | None:
            row = tx.execute(
                "UPDATE {intents} SET owner = ?, lease_until = {now} + ?, updated_at = ? "
                "WHERE intent_id = ? AND (owner IS NULL OR owner = ? OR owner = ? "
                "OR lease_until < {now}) AND status NOT IN ('submit_failed', 'abandoned') "
                f"RETURNING {_SELECT}",
                (owner, lease, time.time(), intent_id, owner, steal_from or owner),
            ).fetchone()
            return None if row is None else _intent(row)

        return self._db.run(work)

    def renew(self, owner: str, lease: float) -> list[str]:
        rows = self._db.run(
            lambda tx: tx.execute(
                "UPDATE {intents} SET lease_until = {now} + ? WHERE owner = ? RETURNING intent_id",
                (lease, owner),
            ).fetchall()
        )
        return [str(row[0]) for row in rows]

    def release(self, owner: str, intent_ids: Sequence[str] | None = None) -> None:
        sql = "UPDATE {intents} SET owner = NULL, lease_until = NULL WHERE owner = ?"

        def work(tx: Transaction) -> None:
            if intent_ids is None:
                tx.execute(sql, (owner,))
            else:
                tx.executemany(sql + " AND intent_id = ?", [(owner, i) for i in intent_ids])

        self._db.run(work)

    def get(self, intent_id: str) -> Intent | None:
        row = self._db.run(
            lambda tx: tx.execute(
                f"SELECT {_SELECT} FROM {{intents}} WHERE intent_id = ?", (intent_id,)
            ).fetchone(),
            write=False,
        )
        return None if row is None else _intent(row)

    # -- the batch's life -----------------------------------------------------------------------

    def _update(self, sql: str, params: Sequence[Any]) -> int:
        return self._db.run(lambda tx: tx.execute(sql, params).rowcount)

    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        self._update(
            "UPDATE {intents} SET batch_id = ?, status = ?, updated_at = ? WHERE intent_id = ?",
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
        self._update(
            "UPDATE {intents} SET status = ?, outcome = coalesce(?, outcome), "
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

    def abandon(self, intent_id: str, status: str) -> None:
        def work(tx: Transaction) -> None:
            tx.execute(
                "UPDATE {intents} SET status = ?, outcome = 'failed', owner = NULL, "
                "lease_until = NULL, updated_at = ? WHERE intent_id = ?",
                (status, time.time(), intent_id),
            )
            tx.execute("DELETE FROM {requests} WHERE intent_id = ?", (intent_id,))

        self._db.run(work)

    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        ids = sorted(custom_ids)
        if ids:
            self._db.run(
                lambda tx: self._db.delete_ids(
                    tx,
                    "DELETE FROM {requests} WHERE intent_id = ? AND custom_id {ids}",
                    (intent_id,),
                    ids,
                )
            )

    # -- results --------------------------------------------------------------------------------

    def clear_results(self, intent_id: str, owner: str) -> None:
        def work(tx: Transaction) -> None:
            changed = tx.execute(
                "UPDATE {intents} SET results_stored = 0, results_chunks = NULL, "
                "results_bytes = NULL, results_crc = NULL WHERE intent_id = ? AND owner = ?",
                (intent_id, owner),
            ).rowcount
            if not changed:
                raise _lease_lost(tx, intent_id, owner)
            tx.execute("DELETE FROM {results} WHERE intent_id = ?", (intent_id,))

        self._db.run(work)

    def append_results(
        self, intent_id: str, owner: str, seq: int, stream: str, data: bytes
    ) -> None:
        def work(tx: Transaction) -> None:
            added = tx.execute(
                "INSERT INTO {results} (intent_id, seq, stream, data) SELECT ?, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM {intents} WHERE intent_id = ? AND owner = ?) "
                "ON CONFLICT (intent_id, seq) DO NOTHING",
                (intent_id, seq, stream, data, intent_id, owner),
            ).rowcount
            if not added and _owner_of(tx, intent_id) != owner:
                raise _lease_lost(tx, intent_id, owner)

        self._db.run(work)

    def finish_results(
        self, intent_id: str, owner: str, chunks: int, nbytes: int, crc: int
    ) -> None:
        def work(tx: Transaction) -> None:
            count, total = tx.execute(
                "SELECT count(*), coalesce(sum(length(data)), 0) FROM {results} "
                "WHERE intent_id = ?",
                (intent_id,),
            ).fetchone()
            if (int(count), int(total)) != (chunks, nbytes):
                raise JournalError(
                    f"the journal holds {count} result chunk(s) ({total:,} bytes) of intent "
                    f"{intent_id}, not the {chunks} ({nbytes:,} bytes) read: not marked stored"
                )
            changed = tx.execute(
                "UPDATE {intents} SET results_stored = 1, results_chunks = ?, "
                "results_bytes = ?, results_crc = ?, owner = NULL, lease_until = NULL, "
                "updated_at = ? WHERE intent_id = ? AND owner = ?",
                (chunks, nbytes, crc, time.time(), intent_id, owner),
            ).rowcount
            if changed:
                return
            # A retry after a reply lost on its way back finds its own work done.
            done = tx.execute(
                "SELECT 1 FROM {intents} WHERE intent_id = ? AND results_stored = 1 "
                "AND results_chunks = ? AND results_crc = ?",
                (intent_id, chunks, crc),
            ).fetchone()
            if done is None:
                raise _lease_lost(tx, intent_id, owner)

        self._db.run(work)

    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        def work(tx: Transaction) -> tuple[Any, list[Any]]:
            marks = tx.execute(
                "SELECT results_chunks, results_bytes, results_crc FROM {intents} "
                "WHERE intent_id = ?",
                (intent_id,),
            ).fetchone()
            rows = tx.execute(
                "SELECT stream, data FROM {results} WHERE intent_id = ? ORDER BY seq",
                (intent_id,),
            ).fetchall()
            return marks, rows

        marks, rows = self._db.run(work, write=False)
        streams = [(str(stream), bytes(data)) for stream, data in rows]
        if marks is not None and marks[0] is not None:
            chunks, nbytes, crc = (int(v) for v in marks)
            got_bytes = sum(len(data) for _, data in streams)
            got_crc = 0
            for _, data in streams:
                got_crc = zlib.crc32(data, got_crc)
            if (len(streams), got_bytes, got_crc) != (chunks, nbytes, crc):
                raise DamagedResultsError(
                    f"the journal's copy of intent {intent_id}'s results is damaged: "
                    f"{len(streams)} chunk(s), {got_bytes:,} bytes, CRC {got_crc:08x} where "
                    f"{chunks}, {nbytes:,} bytes, CRC {crc:08x} were stored"
                )
        return streams

    # -- reading --------------------------------------------------------------------------------

    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        if not custom_ids:
            return {}
        rows = self._db.run(
            lambda tx: self._db.select_ids(
                tx,
                f"SELECT r.custom_id, {_SELECT_I} FROM {{requests}} r "
                "JOIN {intents} i ON i.intent_id = r.intent_id "
                "WHERE r.provider_id = ? AND r.custom_id {ids}",
                (provider_id,),
                custom_ids,
            ),
            write=False,
            # Made from callers' threads, as a shortcut the claim backs up: never worth
            # holding a caller through an outage for.
            patient=False,
        )
        return _by_request(rows)

    def intents(self, *, limit: int = 100) -> list[Intent]:
        rows = self._db.run(
            lambda tx: tx.execute(
                f"SELECT {_SELECT} FROM {{intents}} ORDER BY created_at DESC LIMIT ?", (limit,)
            ).fetchall(),
            write=False,
        )
        return [_intent(row) for row in rows]

    def find(self, ident: str) -> list[Intent]:
        def work(tx: Transaction) -> list[Any]:
            rows = tx.execute(
                f"SELECT {_SELECT} FROM {{intents}} WHERE batch_id = ? OR intent_id = ? "
                "ORDER BY created_at DESC",
                (ident, ident),
            ).fetchall()
            if not rows and ident:
                # A prefix of an intent id (they are long to type).
                rows = tx.execute(
                    f"SELECT {_SELECT} FROM {{intents}} WHERE substr(intent_id, 1, ?) = ? "
                    "ORDER BY created_at DESC",
                    (len(ident), ident),
                ).fetchall()
            return rows

        return [_intent(row) for row in self._db.run(work, write=False)]

    def close(self) -> None:
        self._db.close()


def _by_request(rows: Iterable[Sequence[Any]]) -> dict[str, Intent]:
    """``custom_id -> Intent`` from rows of a custom id and an intent's columns (one
    ``Intent`` per intent, however many requests it holds)."""
    found: dict[str, Intent] = {}
    intents: dict[str, Intent] = {}
    for row in rows:
        intent_id = str(row[1])
        intent = intents.get(intent_id)
        if intent is None:
            intent = intents[intent_id] = _intent(row[1:])
        found[str(row[0])] = intent
    return found


def _owner_of(tx: Transaction, intent_id: str) -> str | None:
    row = tx.execute("SELECT owner FROM {intents} WHERE intent_id = ?", (intent_id,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _lease_lost(tx: Transaction, intent_id: str, owner: str) -> LeaseLostError:
    holder = _owner_of(tx, intent_id)
    return LeaseLostError(
        f"intent {intent_id} is no longer {owner}'s: "
        + (f"{holder} took it over" if holder else "it was released")
    )
