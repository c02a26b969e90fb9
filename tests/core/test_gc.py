"""Bulk work pauses the cyclic collector and leaves its survivors in the oldest generation."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from batch_llm._gc import gc_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    gc.collect()
    yield
    gc.unfreeze()
    if not was:
        gc.disable()


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_collection_is_paused_inside_and_restored_after() -> None:
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():  # nested (another thread's block, say)
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()

    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()  # an application that turned it off keeps it off


def test_survivors_skip_the_young_generations_instead_of_being_scanned_at_the_end() -> None:
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(record)
    try:
        with gc_paused():
            kept = [[i] for i in range(50_000)]  # tracked containers, all still alive
            assert gc.get_count()[0] >= 50_000
        # Left in generation 0 they would cost one collection walking all of them at the
        # next allocation; moved unscanned to the oldest one they wait for a full collection.
        after = [[i] for i in range(100)]
    finally:
        gc.callbacks.remove(record)
    assert collections == []
    assert gc.get_count()[0] < 1_000
    assert len(kept) == 50_000 and len(after) == 100


def test_cycles_made_inside_are_still_collected() -> None:
    with gc_paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
    assert gone() is not None  # nothing collected it yet
    gc.collect()
    assert gone() is None


def test_an_applications_frozen_objects_stay_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.freeze()  # as a server does before forking
    assert gc.get_freeze_count() > 0
    unfrozen: list[bool] = []
    monkeypatch.setattr(gc, "unfreeze", lambda: unfrozen.append(True))
    with gc_paused():
        _ = [[i] for i in range(1_000)]
    assert unfrozen == []
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()


def test_threads_share_one_pause() -> None:
    inside = threading.Barrier(2)
    leave = threading.Event()

    def worker() -> None:
        with gc_paused():
            inside.wait()
            leave.wait()

    thread = threading.Thread(target=worker)
    thread.start()
    with gc_paused():
        inside.wait()
    assert not gc.isenabled()  # the worker's block is still open
    leave.set()
    thread.join()
    assert gc.isenabled()
