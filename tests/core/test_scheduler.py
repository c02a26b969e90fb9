"""The scheduler over real sockets: the official openai SDK inside the adapter, the emulator
on 127.0.0.1 behind it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from helpers import CHAT, chat

import batch_llm
from batch_llm import OpenAIProvider, Scheduler
from batch_llm.emulator import Emulator


def answer(body: dict[str, Any]) -> str:
    return str(body["choices"][0]["message"]["content"])


def test_fan_out_becomes_one_batch_and_answers_match_each_caller(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    futures = scheduler.submit_many(openai_provider, CHAT, [chat(f"tag-{i}") for i in range(300)])
    results = batch_llm.wait(futures)
    assert [f"tag-{i}" in answer(r) for i, r in enumerate(results)] == [True] * 300
    assert emulator.stats.batches_created == 1
    assert emulator.stats.realtime_calls == 0
    assert {f.batch_id for f in futures} == {scheduler.batches[0].batch_id}


def test_ten_thousand_concurrent_single_calls_share_one_batch(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    # The window is quiet time: 0.5 s without a new call, however long the 10,000 take.
    with Scheduler(window=0.5, poll_interval=0.05, poll_max=0.2) as sched:

        async def ask(i: int) -> Any:
            (result,) = await batch_llm.gather(
                [sched.submit(openai_provider, CHAT, chat(f"tag-{i}"))]
            )
            return result

        async def main() -> list[Any]:
            return await asyncio.gather(*(ask(i) for i in range(10_000)))

        results = asyncio.run(main())
    assert all(f"tag-{i}" in answer(r) for i, r in enumerate(results))
    assert emulator.stats.batches_created == 1
    assert emulator.stats.lines_submitted == 10_000


def test_request_count_limit_splits_120k_into_three_batches(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    bodies = [chat(f"n{i}", max_tokens=4) for i in range(120_000)]
    results = batch_llm.wait(scheduler.submit_many(openai_provider, CHAT, bodies))
    assert len(results) == 120_000
    assert all(f"n{i}" in answer(r) for i, r in enumerate(results))
    assert sorted(r.requests for r in scheduler.batches) == [20_000, 50_000, 50_000]
    assert emulator.stats.batches_created == 3


def test_requests_over_200_mb_are_split_by_bytes(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    # 210 bodies of about 1 MB: more than one 200 MB batch can hold, far fewer than 50,000.
    pad = "x" * 1_000_000
    bodies = [chat(f"big-{i}", metadata={"pad": pad}) for i in range(210)]
    results = batch_llm.wait(scheduler.submit_many(openai_provider, CHAT, bodies))
    assert all(f"big-{i}" in answer(r) for i, r in enumerate(results))
    sizes = sorted(r.requests for r in scheduler.batches)
    assert len(sizes) == 2 and sum(sizes) == 210
    assert emulator.stats.batches_created == 2


def test_two_models_or_two_endpoints_go_to_separate_batches(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    a = scheduler.submit_many(openai_provider, CHAT, [chat("a", model="gpt-4o")], flush=False)
    b = scheduler.submit_many(openai_provider, CHAT, [chat("b", model="gpt-4.1")], flush=False)
    c = scheduler.submit_many(
        openai_provider,
        "/v1/embeddings",
        [{"model": "text-embedding-3-small", "input": "c"}],
        flush=False,
    )
    scheduler.flush()
    batch_llm.wait(a + b + c)
    batches = emulator.stats.batches
    assert len(batches) == 3
    assert sorted((x["endpoint"], tuple(x["models"])) for x in batches) == [
        ("/v1/chat/completions", ("gpt-4.1",)),
        ("/v1/chat/completions", ("gpt-4o",)),
        ("/v1/embeddings", ("text-embedding-3-small",)),
    ]


def test_per_line_error_reaches_only_its_caller_with_status_and_message(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    bodies = [chat(f"ok-{i}") for i in range(20)]
    bodies[7] = chat("[[emulator:error 400 this prompt is not allowed]]")
    futures = scheduler.submit_many(openai_provider, CHAT, bodies)
    results = batch_llm.wait(futures, return_exceptions=True)
    error = results[7]
    assert isinstance(error, openai.BadRequestError)
    assert error.status_code == 400
    assert "this prompt is not allowed" in str(error)
    assert all(f"ok-{i}" in answer(r) for i, r in enumerate(results) if i != 7)
    assert emulator.stats.batches_created == 1


def test_line_errors_keep_the_providers_status_class(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.line_error_every = 5
    emulator.knobs.line_error_status = 500
    results = batch_llm.wait(
        scheduler.submit_many(openai_provider, CHAT, [chat(f"q{i}") for i in range(20)]),
        return_exceptions=True,
    )
    failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
    assert len(failed) == 4
    assert all(isinstance(results[i], openai.InternalServerError) for i in failed)
    assert all(isinstance(r, dict) for i, r in enumerate(results) if i not in failed)


def test_output_in_reverse_order_still_maps_every_result(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.reverse_output = True
    results = batch_llm.wait(
        scheduler.submit_many(openai_provider, CHAT, [chat(f"rev-{i}") for i in range(500)])
    )
    assert all(f"rev-{i}" in answer(r) for i, r in enumerate(results))


def test_batched_body_equals_the_realtime_body(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    body = chat("What is 6 * 7?", temperature=0, max_tokens=50, stop=["\n"])
    (batched,) = batch_llm.wait(scheduler.submit_many(openai_provider, CHAT, [body]))
    realtime = openai.OpenAI(base_url=emulator.openai_base_url, api_key="sk-test").with_raw_response
    raw = realtime.chat.completions.create(**body)
    assert batched == raw.http_response.json()


def test_thread_and_running_event_loop_submitters_both_resolve(
    scheduler: Scheduler, openai_provider: OpenAIProvider
) -> None:
    from_thread: list[Any] = []

    def in_thread() -> None:
        from_thread.append(scheduler.submit(openai_provider, CHAT, chat("from-thread")).result(30))

    async def in_loop() -> tuple[Any, Any]:
        # Blocking inside a running loop is what a sync call in a Jupyter cell does.
        blocking = scheduler.submit(openai_provider, CHAT, chat("blocking-in-loop")).result(30)
        (awaited,) = await batch_llm.gather(
            [scheduler.submit(openai_provider, CHAT, chat("awaited"))]
        )
        return blocking, awaited

    thread = threading.Thread(target=in_thread)
    thread.start()
    blocking, awaited = asyncio.run(in_loop())
    thread.join(30)
    assert "from-thread" in answer(from_thread[0])
    assert "blocking-in-loop" in answer(blocking)
    assert "awaited" in answer(awaited)


def test_window_collects_single_calls_without_explicit_flush(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    with Scheduler(window=0.3, poll_interval=0.02) as sched:
        futures = [sched.submit(openai_provider, CHAT, chat(f"w{i}")) for i in range(5)]
        assert not any(f.done() for f in futures)
        results = batch_llm.wait(futures, timeout=30)
    assert all(f"w{i}" in answer(r) for i, r in enumerate(results))
    assert emulator.stats.batches_created == 1


def test_identical_requests_share_one_line(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    same = chat("same", temperature=0)
    futures = scheduler.submit_many(
        openai_provider, CHAT, [same] * 3 + [chat("other", temperature=0)]
    )
    results = batch_llm.wait(futures)
    assert results[0] == results[1] == results[2]
    assert emulator.stats.lines_submitted == 2


def test_repeats_of_a_sampled_request_stay_separate_samples(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    # No temperature: OpenAI samples at 1, so three asks are three samples, three lines.
    futures = scheduler.submit_many(openai_provider, CHAT, [chat("sample me")] * 3)
    batch_llm.wait(futures)
    assert len({f.custom_id for f in futures}) == 3
    assert emulator.stats.lines_submitted == 3


def test_embedding_inputs_are_capped_per_batch(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    # 26 requests of 2,000 inputs: 52,000 inputs, over the 50,000 a batch may hold in total.
    bodies = [
        {
            "model": "text-embedding-3-small",
            "input": [f"t{k}-{i}" for i in range(2_000)],
            "dimensions": 4,
        }
        for k in range(26)
    ]
    results = batch_llm.wait(scheduler.submit_many(openai_provider, "/v1/embeddings", bodies))
    assert [len(r["data"]) for r in results] == [2_000] * 26
    assert sorted(r.requests for r in scheduler.batches) == [1, 25]


def test_env_credentials_are_used_by_provider_name(
    batch_llm_openai_env: Emulator, scheduler: Scheduler
) -> None:
    (result,) = batch_llm.wait(scheduler.submit_many("openai", CHAT, [chat("by-name")]))
    assert "by-name" in answer(result)
    assert batch_llm_openai_env.stats.batches_created == 1


def test_realtime_sends_one_request_now_with_the_batch_answer(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    body = chat("What is 20 + 22?", temperature=0)
    realtime = scheduler.realtime(openai_provider, CHAT, body).result(30)
    (batched,) = batch_llm.wait(scheduler.submit_many(openai_provider, CHAT, [body]))
    assert realtime == batched
    assert emulator.stats.realtime_calls == 1
    bad = scheduler.realtime(openai_provider, CHAT, chat("[[emulator:error 400 nope]]"))
    with pytest.raises(openai.BadRequestError, match="nope"):
        bad.result(30)
    (row,) = [r for r in scheduler.cost().rows if r.kind == "realtime"]
    assert row.requests == 1


def test_concurrent_fan_outs_of_the_same_prompts_share_their_lines(
    emulator: Emulator, openai_provider: OpenAIProvider
) -> None:
    """20 threads each fan out the same 500 temperature-0 prompts at once: 500 lines in all,
    whichever thread's batch each prompt lands in, and every thread gets every answer."""
    bodies = [chat(i, temperature=0) for i in range(500)]
    with Scheduler(journal="off", poll_interval=0.02, poll_max=0.2) as sched:
        start = threading.Barrier(20)

        def one() -> list[Any]:
            start.wait()
            return batch_llm.wait(sched.submit_many(openai_provider, CHAT, bodies), timeout=60)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: one(), range(20)))
    assert emulator.stats.lines_submitted == 500
    assert all(a == answers[0] for a in answers)
