"""The journal's behaviour, written once and run on every journal the library ships (SQLite and
PostgreSQL): claims, ownership and leases, fenced and verified result storage, and reading."""

from __future__ import annotations

import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from journal_helpers import Backend

from batch_llm import JournalError
from batch_llm._journal import (
    DamagedResultsError,
    Intent,
    Journal,
    LeaseLostError,
    SQLiteJournal,
)

PROVIDER = "provider-digest"


def intent(intent_id: str, owner: str = "me", **fields: object) -> Intent:
    return Intent(
        intent_id, "openai(test)", PROVIDER, "/v1/chat/completions", 0, owner=owner, **fields
    )  # type: ignore[arg-type]


def store(journal: Journal, intent_id: str, owner: str, chunks: list[bytes]) -> None:
    """Store result chunks the way a batch's owner does, and mark them stored."""
    journal.clear_results(intent_id, owner)
    crc = 0
    for seq, chunk in enumerate(chunks):
        journal.append_results(intent_id, owner, seq, "output", chunk)
        crc = zlib.crc32(chunk, crc)
    journal.finish_results(intent_id, owner, len(chunks), sum(map(len, chunks)), crc)


# -- claims ---------------------------------------------------------------------------------------


def test_a_claim_takes_free_requests_and_names_the_holder_of_the_rest(journal: Journal) -> None:
    first = intent("first")
    assert journal.claim(first, ["a", "b", "c"], lease=30) == {}
    assert first.requests == 3 and first.created_at > 0
    second = intent("second", owner="you")
    held = journal.claim(second, ["b", "c", "d"], lease=30)
    assert sorted(held) == ["b", "c"]
    assert {i.intent_id for i in held.values()} == {"first"}
    assert held["b"].owner == "me"
    assert second.requests == 1
    assert journal.get("second") is not None and journal.get("second").requests == 1  # type: ignore[union-attr]
    assert {cid: i.intent_id for cid, i in journal.lookup(PROVIDER, ["a", "d", "z"]).items()} == {
        "a": "first",
        "d": "second",
    }


def test_a_claim_that_takes_nothing_records_nothing(journal: Journal) -> None:
    journal.claim(intent("first"), ["a", "b"], lease=30)
    late = intent("late", owner="you")
    assert sorted(journal.claim(late, ["a", "b"], lease=30)) == ["a", "b"]
    assert late.requests == 0
    assert journal.get("late") is None
    assert [i.intent_id for i in journal.intents()] == ["first"]


def test_a_claim_retried_after_a_lost_reply_finds_its_own_requests_taken(
    journal: Journal,
) -> None:
    again = intent("mine")
    journal.claim(again, ["a", "b"], lease=30)
    assert journal.claim(intent("mine"), ["a", "b"], lease=30) == {}
    assert journal.get("mine").requests == 2  # type: ignore[union-attr]


def test_requests_are_keyed_by_provider(journal: Journal) -> None:
    journal.claim(intent("one"), ["a"], lease=30)
    other = Intent("two", "other", "another-digest", "/v1/embeddings", 0, owner="me")
    assert journal.claim(other, ["a"], lease=30) == {}
    assert journal.lookup("another-digest", ["a"])["a"].intent_id == "two"


def test_concurrent_claims_take_each_request_exactly_once(backend: Backend) -> None:
    """Eight claimers (each with its own handle, as processes have) claim overlapping sets at
    once: every request is taken by exactly one of them, and none waits forever."""
    handles = [backend.open() for _ in range(8)]
    ids = [f"r{i:04d}" for i in range(400)]
    start = threading.Barrier(len(handles))

    def claim(n: int) -> tuple[int, dict[str, Intent]]:
        mine = intent(f"claimer-{n}", owner=f"owner-{n}")
        wanted = ids[n * 25 :] + ids[: n * 25]  # the same ids, each from its own end
        start.wait()
        held = handles[n].claim(mine, wanted[: 300 + n * 10], lease=30)
        return mine.requests, held

    with ThreadPoolExecutor(len(handles)) as pool:
        results = list(pool.map(claim, range(len(handles))))
    found = handles[0].lookup(PROVIDER, ids)
    asked = {
        cid for n in range(len(handles)) for cid in (ids[n * 25 :] + ids[: n * 25])[: 300 + n * 10]
    }
    assert set(found) == asked
    per_intent: dict[str, int] = {}
    for holder in found.values():
        per_intent[holder.intent_id] = per_intent.get(holder.intent_id, 0) + 1
    assert sum(taken for taken, _ in results) == len(asked)
    for n, (taken, held) in enumerate(results):
        assert per_intent.get(f"claimer-{n}", 0) == taken
        assert all(h.intent_id != f"claimer-{n}" for h in held.values())


# -- ownership ------------------------------------------------------------------------------------


def test_an_owner_alive_keeps_its_intent_and_a_lapsed_lease_lets_another_take_over(
    journal: Journal,
) -> None:
    journal.claim(intent("busy"), ["a"], lease=30)
    assert journal.acquire("busy", "you", lease=30) is None
    assert journal.acquire("busy", "me", lease=30) is not None  # its own owner: renewed
    journal.claim(intent("lapsed"), ["b"], lease=-1)  # a lease already over
    taken = journal.acquire("lapsed", "you", lease=30)
    assert taken is not None and taken.owner == "you"
    assert journal.acquire("lapsed", "me", lease=30) is None  # and now it is yours


def test_an_owner_known_dead_is_taken_over_at_once(journal: Journal) -> None:
    journal.claim(intent("orphan", owner="dead-owner"), ["a"], lease=30)
    assert journal.acquire("orphan", "you", lease=30, steal_from="someone-else") is None
    taken = journal.acquire("orphan", "you", lease=30, steal_from="dead-owner")
    assert taken is not None and taken.owner == "you"


def test_renewing_keeps_only_the_owners_intents_and_releasing_frees_them(
    journal: Journal,
) -> None:
    journal.claim(intent("one"), ["a"], lease=-1)
    journal.claim(intent("two"), ["b"], lease=-1)
    journal.claim(intent("theirs", owner="you"), ["c"], lease=-1)
    assert sorted(journal.renew("me", lease=30)) == ["one", "two"]
    assert journal.acquire("one", "you", lease=30) is None  # renewed: held again
    assert journal.acquire("theirs", "me", lease=30) is not None  # not renewed: lapsed
    journal.release("me", ["one"])
    assert journal.get("one").owner is None  # type: ignore[union-attr]
    assert journal.acquire("one", "you", lease=30) is not None
    journal.release("me")
    assert journal.acquire("two", "you", lease=30) is not None
    assert journal.renew("me", lease=30) == []


def test_abandoning_lets_go_of_every_request_for_a_fresh_claim(journal: Journal) -> None:
    journal.claim(intent("failed"), ["a", "b"], lease=30)
    journal.abandon("failed", "submit_failed")
    gone = journal.get("failed")
    assert gone is not None and gone.dropped and gone.outcome == "failed" and gone.owner is None
    assert journal.lookup(PROVIDER, ["a", "b"]) == {}
    assert journal.claim(intent("again"), ["a", "b"], lease=30) == {}
    # Nobody may take it over now: creating its batch would pay for "again"'s requests twice.
    assert journal.acquire("failed", "me", lease=30) is None


def test_forgetting_requests_lets_go_of_those_only_and_only_for_that_intent(
    journal: Journal,
) -> None:
    journal.claim(intent("one"), ["a", "b", "c"], lease=30)
    journal.forget_requests("one", ["a", "b"])
    journal.forget_requests("someone-else", ["c"])
    assert sorted(journal.lookup(PROVIDER, ["a", "b", "c"])) == ["c"]


# -- results --------------------------------------------------------------------------------------


def test_results_are_stored_whole_marked_and_read_back_in_order(journal: Journal) -> None:
    journal.claim(intent("done"), ["a"], lease=30)
    store(journal, "done", "me", [b"first line\n", b"second ", b"line\n"])
    stored = journal.get("done")
    assert stored is not None and stored.results_stored and stored.owner is None
    assert journal.load_results("done") == [
        ("output", b"first line\n"),
        ("output", b"second "),
        ("output", b"line\n"),
    ]


def test_result_writes_are_fenced_by_owner(journal: Journal) -> None:
    journal.claim(intent("fenced"), ["a"], lease=-1)
    journal.clear_results("fenced", "me")
    journal.append_results("fenced", "me", 0, "output", b"mine\n")
    assert journal.acquire("fenced", "you", lease=30) is not None  # the lease had lapsed
    with pytest.raises(LeaseLostError, match="you"):
        journal.append_results("fenced", "me", 1, "output", b"interleaved\n")
    with pytest.raises(LeaseLostError):
        journal.clear_results("fenced", "me")
    with pytest.raises(LeaseLostError):
        journal.finish_results("fenced", "me", 1, 5, zlib.crc32(b"mine\n"))
    store(journal, "fenced", "you", [b"yours\n"])
    assert journal.load_results("fenced") == [("output", b"yours\n")]


def test_a_chunk_written_twice_is_kept_once(journal: Journal) -> None:
    journal.claim(intent("twice"), ["a"], lease=30)
    journal.clear_results("twice", "me")
    journal.append_results("twice", "me", 0, "output", b"once\n")
    journal.append_results("twice", "me", 0, "output", b"once\n")  # a retry after a lost reply
    journal.finish_results("twice", "me", 1, 5, zlib.crc32(b"once\n"))
    journal.finish_results("twice", "me", 1, 5, zlib.crc32(b"once\n"))  # so is this
    assert journal.load_results("twice") == [("output", b"once\n")]


def test_results_missing_a_chunk_are_never_marked_stored(journal: Journal) -> None:
    journal.claim(intent("short"), ["a"], lease=30)
    journal.clear_results("short", "me")
    journal.append_results("short", "me", 0, "output", b"one\n")
    with pytest.raises(JournalError, match="not marked stored"):
        journal.finish_results("short", "me", 2, 8, 0)
    short = journal.get("short")
    assert short is not None and not short.results_stored and short.owner == "me"


def test_a_stored_copy_damaged_behind_the_journals_back_is_refused(
    backend: Backend, journal: Journal
) -> None:
    journal.claim(intent("damaged"), ["a"], lease=30)
    store(journal, "damaged", "me", [b'{"custom_id": "a"}\n', b'{"custom_id": "b"}\n'])
    backend.execute("UPDATE {results} SET data = ? WHERE seq = 1", b'{"custom_id": "X"}\n')
    with pytest.raises(DamagedResultsError, match="damaged"):
        journal.load_results("damaged")
    backend.execute("DELETE FROM {results} WHERE seq = 1")
    with pytest.raises(DamagedResultsError):
        journal.load_results("damaged")


def test_starting_over_drops_what_an_earlier_read_stored(journal: Journal) -> None:
    journal.claim(intent("over"), ["a"], lease=30)
    store(journal, "over", "me", [b"old\n"])
    journal.acquire("over", "me", lease=30)
    journal.clear_results("over", "me")
    assert not journal.get("over").results_stored  # type: ignore[union-attr]
    assert journal.load_results("over") == []
    store(journal, "over", "me", [b"new\n"])
    assert journal.load_results("over") == [("output", b"new\n")]


# -- reading and lasting --------------------------------------------------------------------------


def test_status_batch_and_counts_are_recorded_and_found_by_any_id(journal: Journal) -> None:
    journal.claim(intent("0123456789abcdef"), ["a"], lease=30)
    journal.record_batch("0123456789abcdef", "batch_xyz", "validating")
    journal.record_status(
        "0123456789abcdef", "in_progress", counts={"total": 1, "succeeded": 0, "failed": 0}
    )
    journal.record_status("0123456789abcdef", "completed", "completed")
    (found,) = journal.find("batch_xyz")
    assert (found.status, found.outcome, found.total, found.succeeded) == (
        "completed",
        "completed",
        1,
        0,
    )
    assert journal.find("0123")[0].intent_id == "0123456789abcdef"
    assert journal.find("nope") == []


def test_intents_are_listed_newest_first(journal: Journal) -> None:
    for n in range(3):
        journal.claim(intent(f"i{n}", created_at=1_000.0 + n), [f"r{n}"], lease=30)
    assert [i.intent_id for i in journal.intents()] == ["i2", "i1", "i0"]
    assert [i.intent_id for i in journal.intents(limit=1)] == ["i2"]


def test_what_was_written_is_there_for_the_next_handle(backend: Backend) -> None:
    first = backend.open()
    first.claim(intent("lasting"), ["a"], lease=30)
    store(first, "lasting", "me", [b"answer\n"])
    first.close()
    backend.opened.remove(first)
    again = backend.open()
    assert again.lookup(PROVIDER, ["a"])["a"].results_stored
    assert again.load_results("lasting") == [("output", b"answer\n")]


def test_many_handles_opened_at_once_set_the_journal_up_once(backend: Backend) -> None:
    """Workers starting together: the schema is created (or migrated) once, by one of them."""
    start = threading.Barrier(6)

    def open_one(_: int) -> Journal:
        start.wait()
        return backend.open()

    with ThreadPoolExecutor(6) as pool:
        handles = list(pool.map(open_one, range(6)))
    handles[0].claim(intent("set-up"), ["a"], lease=30)
    assert all(h.lookup(PROVIDER, ["a"])["a"].intent_id == "set-up" for h in handles)


def test_a_new_sqlite_journal_opened_by_many_at_once_opens_for_all(tmp_path: Path) -> None:
    """Switching a new file to WAL takes it whole, and SQLite does not wait for that: eight
    openers at once used to fail now and then with "database is locked"."""

    def open_one(path: Path, start: threading.Barrier) -> None:
        start.wait()
        SQLiteJournal(path).close()

    for round_ in range(20):
        path, start = tmp_path / f"journal-{round_}.sqlite3", threading.Barrier(8, timeout=30)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: open_one(path, start), range(8)))  # noqa: B023 - joined here
