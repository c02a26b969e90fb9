"""What the journal tests share (imported by name: pytest puts this folder on the path): where
PostgreSQL is, and a handle on each kind of journal.

PostgreSQL is ``BATCH_LLM_TEST_POSTGRES`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
Where it cannot be reached, its tests skip with a message saying how to get one, except in CI
(``CI`` or ``BATCH_LLM_REQUIRE_POSTGRES=1``, which ``.ci/run`` sets): there they fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from batch_llm._journal import Journal

POSTGRES = os.environ.get("BATCH_LLM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_HOW = (
    "start one (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) or "
    "point BATCH_LLM_TEST_POSTGRES at one"
)
_unreachable: list[str] = []  # why PostgreSQL cannot be reached, once known


def postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("BATCH_LLM_REQUIRE_POSTGRES") == "1"


def admin_connection() -> Any:
    """A connection for setting tests up, or a skip (a failure in CI) saying why not."""
    try:
        import psycopg
    except ImportError:
        _unreachable.append('psycopg is not installed (pip install -e ".[dev]")')
        psycopg = None
    if psycopg is not None and not _unreachable:
        try:
            return psycopg.connect(POSTGRES, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError as exc:
            _unreachable.append(f"{POSTGRES} cannot be reached ({' '.join(str(exc).split())})")
    message = f"PostgreSQL tests need a server: {_unreachable[0]}; {_HOW}"
    if postgres_required():
        pytest.fail(message)
    pytest.skip(message)


def with_schema(url: str, schema: str) -> str:
    """``url`` with the tables in ``schema`` (libpq's ``options``)."""
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"


class Backend:
    """One kind of journal, as the behavioural suite needs it: new handles on the same
    journal (as another process would have), and raw SQL to damage it with."""

    def __init__(
        self,
        name: str,
        open_: Callable[[], Journal],
        sql: Callable[[str, tuple[Any, ...]], None],
        table: Callable[[str], str],
    ) -> None:
        self.name = name
        self._open = open_
        self._sql = sql
        self._table = table
        self.opened: list[Journal] = []

    def open(self) -> Journal:
        journal = self._open()
        self.opened.append(journal)
        return journal

    def execute(self, sql: str, *params: Any) -> None:
        """Run SQL on the journal's database behind its back; ``{intents}``-style names."""
        names = {t: self._table(t) for t in ("intents", "requests", "results")}
        self._sql(sql.format(**names), params)


WORKER = Path(__file__).with_name("fleet_worker.py")


class Worker:
    """A ``fleet_worker.py`` process: ``SHARED`` questions every worker asks, ``OWN`` of its
    own, through ``journal``; ``result()`` is what it printed last (its answers checked)."""

    def __init__(
        self,
        url: str,
        journal: str,
        shared: int,
        own: int,
        tag: int,
        lease: float | None = None,
        *,
        env: dict[str, str] | None = None,
    ) -> None:
        args = [sys.executable, str(WORKER), url, journal, str(shared), str(own), str(tag)]
        if lease is not None:
            args.append(str(lease))
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.shared, self.own = shared, own

    @property
    def pid(self) -> int:
        return self.process.pid

    def result(self, timeout: float = 300) -> dict[str, Any]:
        out, err = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, err[-3000:]
        self.stderr = err
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return result

    def assert_answered(self, timeout: float = 300) -> dict[str, Any]:
        """Every question answered, and answered right."""
        result = self.result(timeout)
        assert result["answers"] == self.shared + self.own
        assert result["wrong"] == []
        return result
