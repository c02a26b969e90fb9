"""Fixtures of the journal tests: a PostgreSQL schema of each test's own, and the two journals
the behavioural suite runs on (see ``journal_helpers`` for where PostgreSQL is)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from journal_helpers import POSTGRES, Backend, admin_connection, with_schema

from batch_llm._journal import Journal, PostgresJournal, SQLiteJournal


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables land in a schema of this test's own, dropped after it."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with admin_connection() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(POSTGRES, schema)
    finally:
        # A connection of its own: the test may have restarted the server meanwhile.
        with admin_connection() as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each journal the library ships, in turn (the suite is written once)."""
    if request.param == "sqlite":
        import sqlite3

        path = tmp_path / "journal.sqlite3"

        def sqlite_sql(sql: str, params: tuple[Any, ...]) -> None:
            db = sqlite3.connect(path, isolation_level=None)
            db.execute(sql, params)
            db.close()

        made = Backend("sqlite", lambda: SQLiteJournal(path), sqlite_sql, lambda t: t)
        yield made
    else:
        url = request.getfixturevalue("postgres_url")

        def postgres_sql(sql: str, params: tuple[Any, ...]) -> None:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.replace("?", "%s"), params)

        made = Backend(
            "postgresql", lambda: PostgresJournal(url), postgres_sql, lambda t: f"batch_llm_{t}"
        )
        yield made
    for journal in made.opened:
        journal.close()


@pytest.fixture
def journal(backend: Backend) -> Journal:
    return backend.open()
