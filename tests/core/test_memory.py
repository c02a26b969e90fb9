"""Memory bounded by what the caller keeps: uploads made as they are sent, and no per-request
bookkeeping left once requests end. Behaviour only: sizes and contents, never timings (those
live in ``benchmarks/``)."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import os
import socket
import subprocess
import sys
import tracemalloc
import urllib.request
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import CHAT, chat, claude, wait_for

import batch_llm
from batch_llm import AnthropicProvider, OpenAIProvider, RequestFuture, Scheduler, _scheduler
from batch_llm._batch import Queue
from batch_llm._inflight import InFlight
from batch_llm._trim import release_freed_memory
from batch_llm.emulator import Emulator
from batch_llm.providers import Line, Provider
from batch_llm.providers._body import Body, spans

# -- the upload body ----------------------------------------------------------------------------


def _body(parts: list[bytes], chunk: int = 4) -> Body:
    data = b"".join(parts)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), chunk):
            yield data[start : start + chunk]

    return Body(chunks, len(data))


def test_body_file_reads_exactly_what_is_asked_and_starts_over_on_seek() -> None:
    body = _body([b"0123456789", b"abcdefghij"], chunk=3)
    file = body.file()
    assert isinstance(file, io.IOBase) and file.readable() and file.seekable()
    # How HTTP clients measure a file object: tell, seek to the end, seek back.
    assert (file.tell(), file.seek(0, os.SEEK_END), file.tell()) == (0, 20, 20)
    assert file.read(5) == b""
    assert file.seek(0) == 0
    assert [file.read(7), file.read(7), file.read(7), file.read(7)] == [
        b"0123456",
        b"789abcd",
        b"efghij",
        b"",
    ]
    file.seek(0)  # an SDK retrying the upload reads it again from the start
    assert file.read() == b"0123456789abcdefghij"
    buffer = bytearray(8)
    file.seek(0)
    assert file.readinto(buffer) == 8 and bytes(buffer) == b"01234567"
    with pytest.raises(io.UnsupportedOperation):
        file.seek(3)


def test_body_that_makes_other_than_it_announced_fails_loudly() -> None:
    body = Body(lambda: iter([b"abc"]), 4)
    with pytest.raises(RuntimeError, match="announced"):
        body.file().read()
    with pytest.raises(RuntimeError, match="announced"):
        Body(lambda: iter([b"abcdef"]), 4).file().read(4)  # one byte too many

    async def drain() -> list[bytes]:
        return [chunk async for chunk in body.stream()]

    with pytest.raises(RuntimeError, match="announced"):
        asyncio.run(drain())


class _Lines(list[bytes]):
    """A list that can be referred to weakly."""


def test_a_closed_body_lets_go_of_what_it_was_made_from() -> None:
    # An HTTP client's request objects may outlive the upload (until the cyclic collector
    # runs): once sent, the body must not keep the batch's lines alive through them.
    def made() -> tuple[Body, weakref.ref[_Lines]]:
        lines = _Lines([b"line\n"] * 3)
        return Body(lambda: iter(lines), 15), weakref.ref(lines)

    body, lines = made()
    with body:
        file = body.file()
        assert file.read() == b"line\n" * 3
    assert lines() is None
    file.seek(0)
    with pytest.raises(ValueError, match="closed"):
        file.read()


def test_spans_cut_lines_into_chunks_of_about_the_target_size() -> None:
    lines = list(range(100))
    cut = list(spans(lines, 100 * 10, target=250))  # 10 bytes each: 25 a chunk
    assert [len(s) for s in cut] == [25, 25, 25, 25]
    assert [x for s in cut for x in s] == lines
    assert [len(s) for s in spans(lines, 10**9, target=10)] == [1] * 100


# -- uploads through the SDKs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    """An emulator in a process of its own (its base URL), so that what is traced here is the
    client's memory alone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_llm", "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url + "/_emulator/stats"))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def _lines(provider: Provider, bodies: list[dict[str, Any]]) -> list[Line]:
    lines = []
    for i, body in enumerate(bodies):
        line = provider.prepare(CHAT if isinstance(provider, OpenAIProvider) else "messages", body)
        line.custom_id = f"{i:032x}"
        lines.append(line)
    return lines


def _upload_peak(provider: Provider, lines: list[Line]) -> tuple[int, Any]:
    """Submit ``lines`` (after a warm-up submit that pays the SDK's lazy imports) and return
    the most memory traced while submitting, over what was traced before."""

    async def scenario() -> tuple[int, Any]:
        await provider.submit(lines[0].key, lines[:1], {})
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            status = await provider.submit(lines[0].key, lines, {})
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        while not status.ended:
            status = await provider.poll(status)
        answers = [answer async for chunk in provider.results(status) for answer in chunk]
        await provider.aclose()
        return peak, answers

    return asyncio.run(scenario())


# Requests of about 4 KB: 2,000 of them make an 8 MB upload.
PAD = " pad" * 1000


def test_openai_input_file_streams_to_the_upload(remote: str) -> None:
    provider = OpenAIProvider(base_url=remote + "/v1", api_key="sk-test")
    lines = _lines(provider, [chat(f"tag-{i}{PAD}", model="gpt-4o-mini") for i in range(2000)])
    size = sum(len(line.data) for line in lines)
    peak, answers = _upload_peak(provider, lines)
    # Joined, the file alone would be `size` (and asyncio's socket buffer most of it again).
    assert peak < size / 4, (peak, size)
    assert sorted(cid for cid, _ in answers) == sorted(line.custom_id for line in lines)
    by_id = dict(answers)
    assert all(f"tag-{i}" in json.dumps(by_id[f"{i:032x}"]) for i in range(2000))


def test_anthropic_batch_body_streams_to_the_create(remote: str) -> None:
    provider = AnthropicProvider(base_url=remote, api_key="sk-ant-test")
    lines = _lines(provider, [claude(f"tag-{i}{PAD}") for i in range(2000)])
    size = sum(len(line.data) for line in lines)
    peak, answers = _upload_peak(provider, lines)
    assert peak < size / 4, (peak, size)
    assert sorted(cid for cid, _ in answers) == sorted(line.custom_id for line in lines)


# -- bookkeeping ---------------------------------------------------------------------------------


def test_a_finished_fan_out_leaves_no_bookkeeping_behind(
    scheduler: Scheduler, openai_provider: OpenAIProvider
) -> None:
    futures = scheduler.submit_many(
        openai_provider, CHAT, [chat(i, temperature=0) for i in range(300)]
    )
    batch_llm.wait(futures)
    wait_for(lambda: not scheduler._runner._tasks)  # type: ignore[attr-defined]
    inflight = scheduler._inflight
    assert inflight.batches() == []
    assert inflight._holding == {}
    assert all(not q.lines and not q.waiters for q in scheduler._queues.values())
    assert scheduler._occurrences == {}  # deduplicated requests are never counted


def test_repeats_are_counted_within_a_bound_and_a_rerun_names_them_alike(
    openai_provider: OpenAIProvider, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scheduler, "_OCCURRENCES_KEPT", 3)
    # Sampled (no temperature): every ask is a sample of its own, repeats included.
    asks = [chat(f"joke {i % 5}") for i in range(12)] + [chat("joke 0")] * 3

    def run() -> tuple[list[str], list[Any]]:
        with Scheduler(poll_interval=0.02, poll_max=0.2) as sched:
            futures = []
            for start in range(0, len(asks), 4):  # fan-outs one after another
                futures += sched.submit_many(openai_provider, CHAT, asks[start : start + 4])
                assert len(sched._occurrences) <= 3
            results = batch_llm.wait(futures)
        return [str(f.custom_id) for f in futures], results

    ids, results = run()
    assert len(set(ids)) == len(asks)  # no two asks share a line
    assert emulator.stats.lines_submitted == len(asks)
    rerun_ids, rerun_results = run()  # the same journal: a re-run finds what it paid for
    assert rerun_ids == ids
    assert rerun_results == results
    assert emulator.stats.lines_submitted == len(asks)


def test_a_request_body_is_let_go_as_its_answer_is_handed_out(
    scheduler: Scheduler, openai_provider: OpenAIProvider
) -> None:
    # The batch is still being read when the first callers wake: their lines' bodies (the
    # batch keeps them until then, to send them again) are already gone.
    # Prompts no other test asks: a line of theirs left for the collector is not counted.
    futures = scheduler.submit_many(
        openai_provider, CHAT, [chat(f"let-go-{i}", temperature=0) for i in range(200)]
    )
    alive: list[int] = []
    first = futures[0]

    def count(done: Any) -> None:
        alive.append(
            sum(isinstance(o, Line) and o.custom_id == done.custom_id for o in gc.get_objects())
        )

    first.add_done_callback(count)
    batch_llm.wait(futures)
    assert alive == [0]


def test_the_index_of_requests_in_flight_shrinks_as_they_end(
    openai_provider: OpenAIProvider,
) -> None:
    # A dict keeps the table it grew to: the index is built again once a quarter is left.
    queue = Queue(openai_provider, ("k", "m"), openai_provider.limits(("k", "m")))
    for i in range(1000):
        line = openai_provider.prepare(CHAT, chat(i, temperature=0))
        line.custom_id = f"{i:032x}"
        queue.add(line, RequestFuture())
    batch = queue.cut()
    inflight = InFlight()
    with inflight.lock:
        inflight.track(batch)
    (table,) = inflight._holding.values()
    inflight.release(batch, [f"{i:032x}" for i in range(700)])
    assert inflight._holding[batch.intent.provider_id] is table  # 300 left: kept
    inflight.release(batch, [f"{i:032x}" for i in range(700, 800)])
    rebuilt = inflight._holding[batch.intent.provider_id]
    assert rebuilt is not table and len(rebuilt) == 200
    assert inflight.holder(batch.intent.provider_id, f"{999:032x}") == batch.intent_id
    inflight.untrack(batch)
    assert inflight._holding == {}


def test_freed_memory_can_be_handed_back_wherever_this_runs() -> None:
    release_freed_memory()  # glibc: malloc_trim; elsewhere nothing, and never an error
