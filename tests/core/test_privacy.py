"""What the library writes is its user's alone: the journal and the events file are mode 0600
in folders the library makes 0700.
"""

from __future__ import annotations

import stat
from pathlib import Path

from batch_llm import JsonlEvents
from batch_llm._journal import SQLiteJournal


def test_the_journal_and_events_files_are_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    journal = tmp_path / "a" / "b" / "journal.sqlite3"
    SQLiteJournal(journal).close()
    events_path = tmp_path / "c" / "d" / "events.jsonl"
    with JsonlEvents(events_path) as events:
        events({"event": "batch_submitted"})
    for folder in (
        journal.parent,
        journal.parent.parent,
        events_path.parent,
        events_path.parent.parent,
    ):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for path in (journal, events_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755  # not the library's folder

    # A file made by someone else is made private when the library opens it.
    shared = tmp_path / "shared.jsonl"
    shared.write_text("")
    shared.chmod(0o644)
    JsonlEvents(shared).close()
    assert stat.S_IMODE(shared.stat().st_mode) == 0o600
