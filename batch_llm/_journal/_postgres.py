"""The journal in PostgreSQL: many workers on many machines, one set of batches.

``BATCH_LLM_JOURNAL=postgresql://user:password@host/db`` (or ``Scheduler(journal=...)``) selects
it; psycopg 3 and its pool come with ``pip install "batch-llm[postgres]"``. Workers coordinate
through the database alone: claims are ``INSERT ... ON CONFLICT DO NOTHING`` in one transaction
(rows inserted in sorted order, so concurrent claims never deadlock), leases are timed by the
server's clock (workers' clocks may differ), and result writes are fenced by owner.

The tables (``batch_llm_intents``, ``batch_llm_requests``, ``batch_llm_results`` and
``batch_llm_schema``, which holds the schema's version) live in the connection's current
schema: the URL's ``options=-csearch_path%3Dmyschema`` puts them elsewhere. The library creates
and migrates them itself, under an advisory lock, so workers starting together do it once.

A dropped connection or a restarting server is waited out: every call is one transaction,
retried whole with backoff (up to ``retry_for`` seconds) on a fresh connection, and written so
that running it twice does what running it once does. The URL's password appears in no log,
event, error or output: the journal describes itself by ``public_url``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from .._errors import JournalError
from .._redact import public_url, redact
from ._sql import SQLJournal, Transaction

__all__ = ["PostgresDatabase", "PostgresJournal", "is_postgres_url"]

logger = logging.getLogger("batch_llm")

T = TypeVar("T")

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS batch_llm_intents (
    intent_id text PRIMARY KEY,
    provider text NOT NULL,
    provider_id text NOT NULL,
    endpoint text NOT NULL,
    requests integer NOT NULL,
    created_at double precision NOT NULL,
    batch_id text,
    status text NOT NULL,
    outcome text,
    results_stored integer NOT NULL DEFAULT 0,
    updated_at double precision NOT NULL,
    provider_name text,
    base_url text,
    model text,
    total integer,
    succeeded integer,
    failed integer,
    owner text,
    lease_until double precision,
    results_chunks integer,
    results_bytes bigint,
    results_crc bigint
);
CREATE INDEX IF NOT EXISTS batch_llm_intents_by_owner ON batch_llm_intents (owner)
    WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS batch_llm_intents_by_batch ON batch_llm_intents (batch_id);
CREATE INDEX IF NOT EXISTS batch_llm_intents_by_time ON batch_llm_intents (created_at);
-- No foreign key to the intents: a claim writes an intent and its requests in one
-- transaction, and checking 10,000 references made claiming them 30 % slower.
CREATE TABLE IF NOT EXISTS batch_llm_requests (
    provider_id text NOT NULL,
    custom_id text NOT NULL,
    intent_id text NOT NULL,
    PRIMARY KEY (provider_id, custom_id)
);
CREATE INDEX IF NOT EXISTS batch_llm_requests_by_intent ON batch_llm_requests (intent_id);
CREATE TABLE IF NOT EXISTS batch_llm_results (
    intent_id text NOT NULL REFERENCES batch_llm_intents (intent_id) ON DELETE CASCADE,
    seq integer NOT NULL,
    stream text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (intent_id, seq)
);
"""
# Each schema version and the statements that bring the previous one up to it. A database
# at a version above the last is from a newer batch-llm, and is refused.
_MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _SCHEMA_V1),)

_TABLES = {
    "intents": "batch_llm_intents",
    "requests": "batch_llm_requests",
    "results": "batch_llm_results",
    "ids": "{ids}",
    # The server's clock: leases mean the same to every worker, whatever its own clock says.
    "now": "extract(epoch from clock_timestamp())::float8",
}
_DEFAULT_RETRY_FOR = 300.0
_FIRST_BACKOFF = 0.05
_LONGEST_BACKOFF = 2.0


def is_postgres_url(setting: str) -> bool:
    """Whether a journal setting names a PostgreSQL database."""
    return setting.startswith(("postgresql://", "postgres://"))


class _Tx:
    """A transaction on one pooled connection (``Transaction``)."""

    def __init__(self, conn: Any, render: Callable[[str], str]) -> None:
        self._conn = conn
        self._render = render

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # No parameters, no extended protocol: a migration's several statements run as one.
        return self._conn.execute(self._render(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        with self._conn.cursor() as cursor:
            cursor.executemany(self._render(sql), list(rows))
            return int(cursor.rowcount)


class PostgresDatabase:
    """A PostgreSQL database as a journal's database (``_sql.Database``; module docstring).

    Args:
        url: ``postgresql://...`` (libpq's URI form, its parameters included).
        pool_size: the most connections this journal holds at once (one serves its writer;
            the rest, lookups made from callers' threads).
        retry_for: seconds a call keeps retrying an unreachable server before it fails.
        connect_timeout: seconds one attempt to connect may take.
        sleep: how retries wait (injected in tests).
    """

    local = False

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        retry_for: float = _DEFAULT_RETRY_FOR,
        connect_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError as exc:
            raise JournalError(
                "a PostgreSQL journal needs psycopg 3 and its pool: "
                'pip install "batch-llm[postgres]"'
            ) from exc
        self._psycopg = psycopg
        self._public = public_url(url) or "postgresql://"
        self._retry_for = retry_for
        self._connect_timeout = connect_timeout
        self._sleep = sleep
        self._sql: dict[str, str] = {}
        self._outage_lock = threading.Lock()
        self._in_outage = False
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            name="batch-llm-journal",
            timeout=connect_timeout,
            kwargs={
                "autocommit": True,
                "connect_timeout": max(1, round(connect_timeout)),
                # A server that vanished without closing the connection (a crashed machine,
                # a dropped network) is noticed in about 25 s instead of hours.
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
        )
        try:
            # One plain connection first: a server that refuses, or a wrong password, is
            # reported at once instead of after the pool's whole wait.
            psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))).close()
            self.pool.open(wait=True, timeout=connect_timeout)
        except Exception as exc:
            self.pool.close()
            raise JournalError(
                f"cannot reach the journal at {self._public}: {_reason(exc)}"
            ) from None
        try:
            self._schema = self._migrate()
        except BaseException:
            self.pool.close()
            raise

    def describe(self) -> str:
        if self._schema and self._schema != "public":
            return f"{self._public} (schema {self._schema})"
        return self._public

    def _migrate(self) -> str:
        """Create or upgrade the tables, once, however many workers start together; returns
        the schema they are in."""
        latest = _MIGRATIONS[-1][0]

        def work(tx: Transaction) -> str:
            (schema,) = tx.execute("SELECT current_schema()").fetchone()
            if schema is None:
                raise JournalError(
                    f"the journal at {self._public} has no schema to create its tables in "
                    "(the search_path names none that exists): create it first"
                )
            tx.execute("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.batch_llm'))")
            tx.execute("CREATE TABLE IF NOT EXISTS batch_llm_schema (version integer NOT NULL)")
            (current,) = tx.execute(
                "SELECT coalesce(max(version), 0) FROM batch_llm_schema"
            ).fetchone()
            if current > latest:
                raise JournalError(
                    f"the journal at {self._public} was written by a newer batch-llm (schema "
                    f"version {current}; this one knows up to {latest}): upgrade batch-llm"
                )
            for version, statements in _MIGRATIONS:
                if version > current:
                    tx.execute(statements)
                    tx.execute("INSERT INTO batch_llm_schema (version) VALUES (?)", (version,))
            return str(schema)

        return self.run(work)

    def _render(self, sql: str) -> str:
        rendered = self._sql.get(sql)
        if rendered is None:
            rendered = self._sql[sql] = sql.format(**_TABLES).replace("?", "%s")
        return rendered

    def run(
        self, work: Callable[[Transaction], T], *, write: bool = True, patient: bool = True
    ) -> T:
        psycopg = self._psycopg
        deadline: float | None = None
        delay = _FIRST_BACKOFF
        # An impatient call waits a second for a connection, and is not retried.
        wait = None if patient else 1.0
        while True:
            try:
                with self.pool.connection(timeout=wait) as conn, conn.transaction():
                    result = work(_Tx(conn, self._render))
            except psycopg.OperationalError as exc:
                # A dropped connection, a restarting server, a deadlock or serialization
                # failure: the transaction did not happen (or, if its commit's reply was lost,
                # happened and is harmless to run again). Run it again on a fresh connection.
                now = time.monotonic()
                deadline = deadline or now + self._retry_for
                if not patient:
                    raise JournalError(
                        f"the journal at {self._public} cannot be reached: {_reason(exc)}"
                    ) from None
                if now >= deadline:
                    raise JournalError(
                        f"the journal at {self._public} stayed unreachable for "
                        f"{self._retry_for:.0f} s: {_reason(exc)}"
                    ) from None
                self._outage(exc)
                self._sleep(random.uniform(0, delay))
                delay = min(delay * 2, _LONGEST_BACKOFF)
                continue
            except psycopg.Error as exc:
                raise JournalError(f"the journal at {self._public}: {_reason(exc)}") from None
            if deadline is not None:
                self._recovered()
            return result

    def _outage(self, exc: BaseException) -> None:
        with self._outage_lock:
            first, self._in_outage = not self._in_outage, True
        if first:
            logger.warning(
                "the journal at %s cannot be reached (%s); retrying for up to %.0f s",
                self._public,
                _reason(exc),
                self._retry_for,
            )

    def _recovered(self) -> None:
        with self._outage_lock:
            was, self._in_outage = self._in_outage, False
        if was:
            logger.info("the journal at %s is reachable again", self._public)

    def select_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> list[Any]:
        rows: list[Any] = tx.execute(
            sql.replace("{ids}", "= ANY(?)"), (*before, list(ids))
        ).fetchall()
        return rows

    def delete_ids(
        self, tx: Transaction, sql: str, before: Sequence[Any], ids: Sequence[str]
    ) -> None:
        tx.execute(sql.replace("{ids}", "= ANY(?)"), (*before, list(ids)))

    def insert_requests(
        self, tx: Transaction, provider_id: str, intent_id: str, ids: Sequence[str]
    ) -> int:
        # One statement for the whole list (an array unnested on the server): 10,000 rows
        # in one round trip instead of 10,000.
        return tx.execute(
            "INSERT INTO {requests} (provider_id, custom_id, intent_id) "
            "SELECT ?, unnest(?::text[]), ? ON CONFLICT (provider_id, custom_id) DO NOTHING",
            (provider_id, list(ids), intent_id),
        ).rowcount

    def close(self) -> None:
        self.pool.close()


def _reason(exc: BaseException) -> str:
    """An error's message on one line, with anything that may be a credential masked."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return redact(text)


class PostgresJournal(SQLJournal):
    """The journal in a PostgreSQL database (module docstring).

    Args:
        url: ``postgresql://user:password@host:5432/db`` (libpq's URI form).
        pool_size, retry_for, connect_timeout: as for ``PostgresDatabase``.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 4,
        retry_for: float = _DEFAULT_RETRY_FOR,
        connect_timeout: float = 10.0,
    ) -> None:
        self._database = PostgresDatabase(
            url, pool_size=pool_size, retry_for=retry_for, connect_timeout=connect_timeout
        )
        super().__init__(self._database)
