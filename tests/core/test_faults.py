"""Faults in what a provider sends back fail only the requests they touch, over real sockets.

- A result line that does not parse fails its own caller (named by the id left in the line),
  or, naming nobody, leaves its caller to be reported missing; every other caller is answered,
  live and when a re-run replays the journal's copy of the results.
- An embeddings answer with more or fewer vectors than its request had inputs is never handed
  out: its caller gets a clear error, every other vector is delivered, right and in order.
- A body that cannot be encoded (a lone surrogate) is refused for that request alone.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import openai
import pytest

import batch_llm
from batch_llm import (
    AnthropicProvider,
    GeminiProvider,
    InvalidRequestError,
    MalformedResultError,
    MissingResultError,
    OpenAIProvider,
    Scheduler,
)
from batch_llm.emulator import Emulator

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
EMBEDDER = "text-embedding-3-small"
FLASH = "gemini-2.5-flash"
GEMINI_EMBEDDER = "gemini-embedding-001"
# The emulator damages result lines by input position: ``index % N == N - 1``.
LINE_NUMBER = re.compile(r"line (\d+) of ")


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def run(
    scheduler: Scheduler, provider: Any, bodies: list[dict[str, Any]], endpoint: str = CHAT
) -> list[Any]:
    futures = scheduler.submit_many(provider, endpoint, bodies)
    return batch_llm.wait(futures, return_exceptions=True, timeout=120)


def failed_at(results: list[Any]) -> list[int]:
    return [i for i, r in enumerate(results) if isinstance(r, BaseException)]


def fast_scheduler() -> Scheduler:
    return Scheduler(poll_interval=0.02, poll_max=0.2, progress=False)


# --------------------------------------------------------------------------- malformed lines


def test_five_malformed_lines_in_5000_fail_exactly_those_five(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.malformed_line_every = 1000
    bodies = [chat(f"question {i}") for i in range(5000)]
    with fast_scheduler() as scheduler:
        first = run(scheduler, openai_provider, bodies)
        (record,) = scheduler.batches
    assert emulator.stats.lines_malformed == 5
    assert failed_at(first) == [999, 1999, 2999, 3999, 4999]
    for index in failed_at(first):
        error = first[index]
        assert isinstance(error, MalformedResultError)
        assert error.batch_id == record.batch_id and record.batch_id in str(error)
        assert error.line is not None and f"line {error.line} of " in str(error)
        assert error.stream is not None and error.stream.startswith("file-")
    answered = [r for r in first if isinstance(r, dict)]
    assert len(answered) == 4995

    # A re-run replays the journal's raw results: the same five fail, nobody else, no new batch.
    with fast_scheduler() as scheduler:
        again = run(scheduler, openai_provider, bodies)
        assert [b.resumed for b in scheduler.batches] == [True]
    assert failed_at(again) == failed_at(first)
    assert all(isinstance(again[i], MalformedResultError) for i in failed_at(again))
    assert [r for r in again if isinstance(r, dict)] == answered
    assert emulator.stats.batches_created == 1


def test_answers_are_their_own_callers(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    """Around damaged lines, each answer still goes to the request it answers."""
    emulator.knobs.malformed_line_every = 3
    bodies = [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"What is {i} + 1?"}]}
        for i in range(30)
    ]
    results = run(scheduler, openai_provider, bodies)
    assert failed_at(results) == list(range(2, 30, 3))
    realtime = openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
    for i in (0, 1, 3, 28):
        expected = realtime.chat.completions.create(**bodies[i]).choices[0].message.content
        assert results[i]["choices"][0]["message"]["content"] == expected


def test_garbage_line_naming_nobody_leaves_its_caller_missing(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.malformed_line_every = 5
    emulator.knobs.malformed_line_kind = "garbage"
    results = run(scheduler, openai_provider, [chat(f"g {i}") for i in range(20)])
    assert failed_at(results) == [4, 9, 14, 19]
    assert all(isinstance(results[i], MissingResultError) for i in failed_at(results))
    assert sum(isinstance(r, dict) for r in results) == 16


def test_damaged_error_file_lines_fail_alone(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.line_error_every = 2  # odd positions fail, in the error file
    emulator.knobs.malformed_line_every = 3  # damaged in whichever file holds them
    results = run(scheduler, openai_provider, [chat(f"e {i}") for i in range(12)])
    kinds = [type(r).__name__ for r in results]
    for index, kind in enumerate(kinds):
        if (index + 1) % 3 == 0:
            assert kind == "MalformedResultError"
        elif (index + 1) % 2 == 0:
            assert kind == "InternalServerError"  # the line's own error, as the SDK raises it
        else:
            assert kind == "dict"


def test_lines_split_across_network_chunks(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.download_chunk_bytes = 7  # every line arrives in many pieces
    emulator.knobs.malformed_line_every = 4
    results = run(scheduler, openai_provider, [chat(f"c {i}") for i in range(16)])
    assert failed_at(results) == [3, 7, 11, 15]
    lines = sorted(int(LINE_NUMBER.search(str(results[i])).group(1)) for i in failed_at(results))  # type: ignore[union-attr]
    assert lines == [4, 8, 12, 16]  # the output file keeps input order


def test_anthropic_malformed_lines_fail_alone(scheduler: Scheduler, emulator: Emulator) -> None:
    provider = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="a", max_retries=0)
    emulator.knobs.malformed_line_every = 3
    emulator.knobs.download_chunk_bytes = 256
    bodies = [
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": f"hi {i}"}],
        }
        for i in range(30)
    ]
    results = run(scheduler, provider, bodies, "/v1/messages")
    assert failed_at(results) == list(range(2, 30, 3))
    assert all(isinstance(results[i], MalformedResultError) for i in failed_at(results))
    assert all(results[i].stream == "results" for i in failed_at(results))
    assert all(r["type"] == "message" for r in results if isinstance(r, dict))


@pytest.mark.parametrize("inline_limit", [20_000_000, 1_000], ids=["inline", "file"])
def test_gemini_malformed_results_fail_alone(
    scheduler: Scheduler, emulator: Emulator, inline_limit: int
) -> None:
    provider = GeminiProvider(
        base_url=emulator.gemini_base_url, api_key="g", max_retries=0, inline_limit=inline_limit
    )
    emulator.knobs.malformed_line_every = 4
    bodies = [{"model": FLASH, "contents": f"hi {i}"} for i in range(20)]
    results = run(scheduler, provider, bodies, "generateContent")
    assert failed_at(results) == [3, 7, 11, 15, 19]
    errors = [results[i] for i in failed_at(results)]
    assert all(isinstance(e, MalformedResultError) for e in errors)
    if inline_limit < 20_000_000:
        assert emulator.stats.files_uploaded == 1
        assert all(e.stream.startswith("files/") for e in errors)
    else:
        assert all(
            "entry" in str(e) and "neither a response nor an error" in str(e) for e in errors
        )
    assert all(r["candidates"] for r in results if isinstance(r, dict))


# --------------------------------------------------------------------------- embeddings counts


def _floats(item: dict[str, Any]) -> list[float]:
    import array

    values = array.array("f")
    values.frombytes(base64.b64decode(item["embedding"]))
    return values.tolist()


def test_short_embeddings_answer_fails_its_request_only(
    openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    texts = [f"passage {i} about {('cats', 'dogs', 'stocks')[i % 3]}" for i in range(5000)]
    bodies = [
        {
            "model": EMBEDDER,
            "input": texts[i : i + 2048],
            "encoding_format": "base64",
            "dimensions": 8,
        }
        for i in range(0, 5000, 2048)
    ]
    realtime = openai.OpenAI(base_url=emulator.openai_base_url, api_key="k", max_retries=0)
    expected = [
        [
            e.embedding
            for e in realtime.embeddings.create(model=EMBEDDER, input=b["input"], dimensions=8).data
        ]
        for b in bodies
    ]
    emulator.reset()
    emulator.knobs.short_embeddings_every = 2
    with fast_scheduler() as scheduler:
        first = run(scheduler, openai_provider, bodies, EMBEDDINGS)
    assert emulator.stats.embeddings_shortened == 1
    assert failed_at(first) == [1]
    error = first[1]
    assert isinstance(error, MalformedResultError)
    assert "2047 embedding vectors for its 2048 input(s)" in str(error)
    for index in (0, 2):
        vectors = [_floats(item) for item in sorted(first[index]["data"], key=lambda d: d["index"])]
        assert len(vectors) == len(bodies[index]["input"])
        assert vectors == expected[index]  # each text its own vector, in order

    # Replayed from the journal, the short answer is checked again, never handed out.
    with fast_scheduler() as scheduler:
        again = run(scheduler, openai_provider, bodies, EMBEDDINGS)
    assert failed_at(again) == [1] and isinstance(again[1], MalformedResultError)
    assert again[0] == first[0] and again[2] == first[2]
    assert emulator.stats.batches_created == 1


def test_realtime_embeddings_with_the_wrong_count_raise(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    emulator.knobs.short_embeddings_every = 2
    body = {"model": EMBEDDER, "input": ["one", "two", "three"]}
    assert len(scheduler.realtime(openai_provider, EMBEDDINGS, body).result(30)["data"]) == 3
    with pytest.raises(MalformedResultError, match="2 embedding vectors for its 3 input"):
        scheduler.realtime(openai_provider, EMBEDDINGS, body).result(30)


@pytest.mark.parametrize("inline_limit", [20_000_000, 1_000], ids=["inline", "file"])
def test_gemini_embeddings_without_their_vector_fail_alone(
    scheduler: Scheduler, emulator: Emulator, inline_limit: int
) -> None:
    provider = GeminiProvider(
        base_url=emulator.gemini_base_url, api_key="g", max_retries=0, inline_limit=inline_limit
    )
    emulator.knobs.short_embeddings_every = 3
    bodies = [{"model": GEMINI_EMBEDDER, "contents": f"text {i}"} for i in range(9)]
    results = run(scheduler, provider, bodies, "embedContent")
    assert failed_at(results) == [2, 5, 8]
    assert all("0 embedding vectors" in str(results[i]) for i in failed_at(results))
    assert all(len(r["embeddings"][0]["values"]) == 3072 for r in results if isinstance(r, dict))

    emulator.knobs.short_embeddings_every = 1
    with pytest.raises(MalformedResultError, match="0 embedding vectors"):
        scheduler.realtime(provider, "embedContent", bodies[0]).result(30)


# --------------------------------------------------------------------------- unencodable input


def test_lone_surrogate_fails_only_its_request(
    scheduler: Scheduler, openai_provider: OpenAIProvider, emulator: Emulator
) -> None:
    bodies = [chat("fine"), chat("broken \ud800 text"), chat("also fine")]
    futures = scheduler.submit_many(openai_provider, CHAT, bodies, return_exceptions=True)
    results = batch_llm.wait(futures, return_exceptions=True, timeout=60)
    assert failed_at(results) == [1]
    assert isinstance(results[1], InvalidRequestError)
    assert "\\ud800" in str(results[1]) and "not valid Unicode" in str(results[1])
    assert emulator.stats.lines_submitted == 2

    with pytest.raises(InvalidRequestError, match=r"request 1: .*not valid Unicode"):
        scheduler.submit_many(openai_provider, CHAT, bodies)


@pytest.mark.parametrize("provider_name", ["anthropic", "gemini"])
def test_lone_surrogate_is_refused_by_every_adapter(emulator: Emulator, provider_name: str) -> None:
    provider: Any
    if provider_name == "anthropic":
        provider = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="a")
        endpoint, body = (
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "\udfff"}],
            },
        )
    else:
        provider = GeminiProvider(base_url=emulator.gemini_base_url, api_key="g")
        endpoint, body = "generateContent", {"model": FLASH, "contents": "x \ud83d y"}
    with pytest.raises(InvalidRequestError, match="not valid Unicode"):
        provider.prepare(endpoint, body)
