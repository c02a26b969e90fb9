"""How the ``batch-llm`` command prints: rich tables on a terminal when ``rich`` is installed,
plain aligned text otherwise (pipes, files, captured output), JSON on request.

rich is optional (not a dependency): a terminal without it gets the plain text too. Plain text
is also what scripts and tests see, so its columns are stable: one row per line, two spaces
between columns.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from .._cost import format_table

__all__ = ["Output", "iso_time", "local_time"]


def local_time(seconds: float | None) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM:SS`` ("" for None or 0)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def iso_time(seconds: float | None) -> str | None:
    """A Unix time as ISO 8601 in UTC, for JSON (None for None or 0)."""
    if not seconds:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _rich_console(stream: TextIO) -> Any:
    """A rich console on ``stream`` if rich is importable and ``stream`` is a terminal."""
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        return None
    try:
        from rich.console import Console
    except ImportError:
        return None
    return Console(file=stream, highlight=False)


class Output:
    """Where a command prints, and in which style.

    Args:
        stream: the output (stdout by default).
        rich: force rich on or off; by default on for a terminal when rich is importable.
    """

    def __init__(self, stream: TextIO | None = None, *, rich: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        if rich is False:
            self._console = None
        elif rich is True:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        else:
            self._console = _rich_console(self.stream)

    @property
    def rich(self) -> bool:
        """Whether this output draws with rich."""
        return self._console is not None

    def line(self, text: str = "") -> None:
        """One line of text (rich markup is not interpreted)."""
        if self._console is not None:
            self._console.print(text, markup=False)
        else:
            self.stream.write(text + "\n")

    def table(
        self,
        headers: Sequence[str],
        rows: Iterable[Sequence[str]],
        *,
        title: str | None = None,
        right: Iterable[int] = (),
    ) -> None:
        """Rows under headers; ``right``: the columns of numbers, aligned right."""
        body = [list(row) for row in rows]
        aligned = set(right)
        if self._console is not None:
            from rich import box
            from rich.table import Table

            table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
            for i, header in enumerate(headers):
                # Ids are copied from here: the first column is never cut or wrapped; on a
                # narrow terminal the others fold rather than end in an ellipsis.
                width = max((len(row[i]) for row in body), default=0) if i == 0 else None
                table.add_column(
                    header,
                    justify="right" if i in aligned else "left",
                    no_wrap=i == 0,
                    min_width=width,
                    overflow="fold",
                )
            for row in body:
                table.add_row(*row)
            self._console.print(table)
            return
        if title:
            self.line(title)
        self.line(format_table(list(headers), body, right=aligned))

    def fields(self, pairs: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
        """``name  value`` lines (a two-column table on rich)."""
        if self._console is not None:
            from rich import box
            from rich.table import Table

            table = Table(title=title, box=box.SIMPLE, show_header=False, title_justify="left")
            table.add_column(style="bold", no_wrap=True)
            table.add_column(overflow="fold")
            for name, value in pairs:
                table.add_row(name, value)
            self._console.print(table)
            return
        if title:
            self.line(title)
        width = max((len(name) for name, _ in pairs), default=0)
        for name, value in pairs:
            self.line(f"  {name.ljust(width)}  {value}".rstrip())

    def json(self, data: Any) -> None:
        """``data`` as indented JSON (never through rich, so it stays parseable)."""
        self.stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
