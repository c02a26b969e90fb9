"""The fault knobs that damage what a client gets back, through the official SDKs: lost create
replies, malformed result lines, embeddings a vector short, slow uploads and slow downloads."""

from __future__ import annotations

import io
import json
import time
import warnings
from typing import Any

import anthropic
import httpx
import openai
import pytest
from emulator_helpers import chat_lines, jsonl, submit, wait
from google import genai
from google.genai import types
from test_emulator_control import call

from batch_llm.emulator import Emulator, Knobs

FLASH = "gemini-2.5-flash"
EMBEDDER = "gemini-embedding-001"
CLAUDE = "claude-haiku-4-5"
GEMINI_DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


def claude_requests(count: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"req-{i}",
            "params": {
                "model": CLAUDE,
                "max_tokens": 32,
                "messages": [{"role": "user", "content": f"hello number {i}"}],
            },
        }
        for i in range(count)
    ]


def gemini_inline(count: int) -> list[dict[str, Any]]:
    return [
        {
            "contents": [{"role": "user", "parts": [{"text": f"hi {i}"}]}],
            "metadata": {"key": f"k{i}"},
        }
        for i in range(count)
    ]


def gemini_wait(client: genai.Client, name: str, timeout: float = 10.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.state is not None and job.state.name in GEMINI_DONE:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.005)


def anthropic_wait(client: anthropic.Anthropic, batch_id: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while (batch := client.messages.batches.retrieve(batch_id)).processing_status != "ended":
        assert time.monotonic() < deadline, f"{batch_id} still {batch.processing_status}"
        time.sleep(0.005)
    return batch


def anthropic_results_bytes(client: anthropic.Anthropic, batch_id: str) -> bytes:
    with client.messages.batches.with_streaming_response.results(batch_id) as response:
        return response.read()


def embedding_lines(count: int, inputs: int) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"emb-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {
                "model": "text-embedding-3-small",
                "input": [f"text {i}.{j}" for j in range(inputs)],
                "dimensions": 4,
            },
        }
        for i in range(count)
    ]


# --------------------------------------------------------------------------- the knobs


def test_new_knobs_over_http(emu: Emulator) -> None:
    status, knobs = call(
        emu,
        "POST",
        "/_emulator/knobs",
        {
            "lose_create_reply": 2,
            "malformed_line_every": 3,
            "malformed_line_kind": "garbage",
            "short_embeddings_every": 4,
            "upload_delay": 0.5,
            "download_chunk_delay": 0.1,
            "download_chunk_bytes": 128,
        },
    )
    assert status == 200
    assert knobs["lose_create_reply"] == 2 and knobs["malformed_line_kind"] == "garbage"
    assert (emu.knobs.malformed_line_every, emu.knobs.short_embeddings_every) == (3, 4)
    assert (emu.knobs.upload_delay, emu.knobs.download_chunk_delay) == (0.5, 0.1)
    assert emu.knobs.download_chunking() == (128, 0.1)
    emu.knobs.download_chunk_bytes = None
    assert emu.knobs.download_chunking() == (64 * 1024, 0.1)  # a delay alone chunks too
    emu.knobs.download_chunk_delay = 0.0
    assert emu.knobs.download_chunking() == (0, 0.0)  # one write, as without the knobs


@pytest.mark.parametrize(
    "payload",
    [
        {"lose_create_reply": -1},
        {"lose_create_reply": True},
        {"lose_create_reply": None},
        {"malformed_line_every": 0},
        {"malformed_line_kind": "shredded"},
        {"short_embeddings_every": "2"},
        {"upload_delay": -0.1},
        {"download_chunk_delay": None},
        {"download_chunk_bytes": 0},
    ],
)
def test_bad_new_knobs_are_rejected(emu: Emulator, payload: dict[str, Any]) -> None:
    status, body = call(emu, "POST", "/_emulator/knobs", payload)
    assert status == 400, body
    assert emu.knobs == Knobs()


# --------------------------------------------------------------------------- lost create replies


def test_openai_create_reply_lost_but_batch_made(emu: Emulator, client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("in.jsonl", jsonl(chat_lines(3))), purpose="batch")
    emu.knobs.lose_create_reply = 1
    with pytest.raises(openai.APIConnectionError):
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    (made,) = client.batches.list()
    assert made.input_file_id == uploaded.id
    assert wait(client, made.id).status == "completed"  # it runs like any batch
    assert emu.knobs.lose_create_reply == 0
    assert (emu.stats.create_replies_lost, emu.stats.batches_created) == (1, 1)
    # Spent: the next create is answered.
    assert submit(client, chat_lines(1)).status == "validating"


def test_a_client_that_retries_blindly_makes_two(emu: Emulator) -> None:
    emu.knobs.lose_create_reply = 1
    with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=1) as retrying:
        batch = submit(retrying, chat_lines(2))
        assert batch.status == "validating"
        assert len(list(retrying.batches.list())) == 2
    assert emu.stats.batches_created == 2


def test_anthropic_create_reply_lost_but_batch_made(
    emu: Emulator, anthropic_client: anthropic.Anthropic
) -> None:
    emu.knobs.lose_create_reply = 2
    for _ in range(2):
        with pytest.raises(anthropic.APIConnectionError):
            anthropic_client.messages.batches.create(requests=claude_requests(2))  # type: ignore[arg-type]
    made = list(anthropic_client.messages.batches.list())
    assert len(made) == 2
    assert all(sum(dict(b.request_counts).values()) == 2 for b in made)
    assert emu.stats.create_replies_lost == 2
    assert anthropic_client.messages.batches.create(requests=claude_requests(1)).id  # type: ignore[arg-type]


def test_gemini_create_reply_lost_but_batch_made(emu: Emulator, genai_client: genai.Client) -> None:
    emu.knobs.lose_create_reply = 2
    with pytest.raises(httpx.RemoteProtocolError):
        genai_client.batches.create(model=FLASH, src=gemini_inline(2))  # type: ignore[arg-type]
    with pytest.raises(httpx.RemoteProtocolError), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_embeddings is marked experimental
        genai_client.batches.create_embeddings(
            model=EMBEDDER, src={"inlined_requests": {"contents": ["a", "b"]}}
        )
    made = list(genai_client.batches.list())
    assert len(made) == 2
    assert {b["endpoint"] for b in emu.stats.batches} == {
        "batchGenerateContent",
        "asyncBatchEmbedContent",
    }
    assert emu.stats.create_replies_lost == 2


# --------------------------------------------------------------------------- malformed lines


def test_openai_truncated_lines_keep_their_custom_id(emu: Emulator, client: openai.OpenAI) -> None:
    emu.knobs.malformed_line_every = 3
    emu.knobs.line_error_every = 4  # damage reaches the error file as well
    batch = wait(client, submit(client, chat_lines(12)).id)
    output = client.files.content(batch.output_file_id or "").content.splitlines()
    errors = client.files.content(batch.error_file_id or "").content.splitlines()
    damaged: list[str] = []
    for raw in output + errors:
        try:
            json.loads(raw)
        except ValueError:
            assert raw.startswith(b'{"id":"batch_req_')
            damaged.append(raw.split(b'"custom_id":"', 1)[1].split(b'"', 1)[0].decode())
    assert sorted(damaged) == ["req-11", "req-2", "req-5", "req-8"]
    assert len(output) + len(errors) == 12  # damaged, not dropped
    assert emu.stats.lines_malformed == 4


def test_openai_garbage_lines_name_no_request(emu: Emulator, client: openai.OpenAI) -> None:
    emu.knobs.malformed_line_every = 2
    emu.knobs.malformed_line_kind = "garbage"
    batch = wait(client, submit(client, chat_lines(4)).id)
    lines = client.files.content(batch.output_file_id or "").content.splitlines()
    parsed = [json.loads(line)["custom_id"] for line in lines if line.startswith(b"{")]
    garbage = [line for line in lines if not line.startswith(b"{")]
    assert parsed == ["req-0", "req-2"]
    assert len(garbage) == 2 and not any(b"req-" in line for line in garbage)


def test_anthropic_malformed_results_line(
    emu: Emulator, anthropic_client: anthropic.Anthropic
) -> None:
    emu.knobs.malformed_line_every = 2
    batch = anthropic_client.messages.batches.create(requests=claude_requests(4))  # type: ignore[arg-type]
    ended = anthropic_wait(anthropic_client, batch.id)
    assert ended.request_counts.succeeded == 4  # the provider believes it sent four answers
    lines = anthropic_results_bytes(anthropic_client, batch.id).splitlines()
    assert json.loads(lines[0])["custom_id"] == "req-0"
    assert lines[1].startswith(b'{"custom_id":"req-1"')
    with pytest.raises(ValueError):
        json.loads(lines[1])
    # The SDK's own JSONL decoder stops at the damaged line.
    results = anthropic_client.messages.batches.results(batch.id)
    with pytest.raises(ValueError):
        list(results)


def test_gemini_malformed_responses_file_lines(emu: Emulator, genai_client: genai.Client) -> None:
    lines = [
        {"key": f"k{i}", "request": {"contents": [{"parts": [{"text": f"hi {i}"}]}]}}
        for i in range(4)
    ]
    uploaded = genai_client.files.upload(
        file=io.BytesIO(jsonl(lines)), config={"mime_type": "application/jsonl"}
    )
    emu.knobs.malformed_line_every = 2
    job = gemini_wait(
        genai_client, genai_client.batches.create(model=FLASH, src=uploaded.name).name or ""
    )  # type: ignore[arg-type]
    rows = genai_client.files.download(file=job.dest.file_name).splitlines()  # type: ignore[union-attr, arg-type]
    assert [json.loads(rows[i])["key"] for i in (0, 2)] == ["k0", "k2"]
    for i in (1, 3):
        assert rows[i].startswith(b'{"key":"k%d"' % i)
        with pytest.raises(ValueError):
            json.loads(rows[i])


def test_gemini_inline_entries_lose_their_answer(emu: Emulator, genai_client: genai.Client) -> None:
    emu.knobs.malformed_line_every = 2
    job = gemini_wait(
        genai_client, genai_client.batches.create(model=FLASH, src=gemini_inline(4)).name or ""
    )  # type: ignore[arg-type]
    entries = job.dest.inlined_responses or []  # type: ignore[union-attr]
    assert [e.metadata for e in entries] == [{"key": f"k{i}"} for i in range(4)]
    assert [e.response is not None for e in entries] == [True, False, True, False]
    assert [e.error for e in entries] == [None] * 4

    emu.knobs.malformed_line_kind = "garbage"  # the key goes too
    job = gemini_wait(
        genai_client, genai_client.batches.create(model=FLASH, src=gemini_inline(2)).name or ""
    )  # type: ignore[arg-type]
    entries = job.dest.inlined_responses or []  # type: ignore[union-attr]
    assert [(e.metadata, e.response is None) for e in entries] == [
        ({"key": "k0"}, False),
        (None, True),
    ]
    assert emu.stats.lines_malformed == 3


# --------------------------------------------------------------------------- short embeddings


def test_openai_embeddings_a_vector_short(emu: Emulator, loose_client: openai.OpenAI) -> None:
    emu.knobs.short_embeddings_every = 2
    batch = wait(loose_client, submit(loose_client, embedding_lines(4, 3), "/v1/embeddings").id)
    rows = [
        json.loads(r)
        for r in loose_client.files.content(batch.output_file_id or "").content.splitlines()
    ]
    counts = {r["custom_id"]: len(r["response"]["body"]["data"]) for r in rows}
    assert counts == {"emb-0": 3, "emb-1": 2, "emb-2": 3, "emb-3": 2}

    texts = ["one", "two", "three"]
    answers = [
        loose_client.embeddings.create(model="text-embedding-3-small", input=texts)
        for _ in range(4)
    ]
    assert [len(a.data) for a in answers] == [3, 2, 3, 2]
    assert [d.index for d in answers[1].data] == [0, 1]  # the last one is the one missing
    assert emu.stats.embeddings_shortened == 4


def test_gemini_embeddings_a_vector_short(emu: Emulator, genai_client: genai.Client) -> None:
    emu.knobs.short_embeddings_every = 2
    realtime = [
        genai_client.models.embed_content(model=EMBEDDER, contents=["a", "b"]) for _ in range(2)
    ]
    assert [len(r.embeddings or []) for r in realtime] == [2, 1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # create_embeddings is marked experimental
        job = genai_client.batches.create_embeddings(
            model=EMBEDDER, src={"inlined_requests": {"contents": ["a", "b", "c", "d"]}}
        )
    done = gemini_wait(genai_client, job.name or "")
    responses = done.dest.inlined_embed_content_responses or []  # type: ignore[union-attr]
    assert [r.response.embedding is not None for r in responses] == [True, False, True, False]  # type: ignore[union-attr]
    assert emu.stats.embeddings_shortened == 3


# --------------------------------------------------------------------------- slow transfers


def test_upload_delay(emu: Emulator, client: openai.OpenAI, genai_client: genai.Client) -> None:
    emu.knobs.upload_delay = 0.2
    started = time.monotonic()
    client.files.create(file=("in.jsonl", jsonl(chat_lines(1))), purpose="batch")
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    genai_client.files.upload(file=io.BytesIO(b"{}\n"), config={"mime_type": "application/jsonl"})
    assert time.monotonic() - started >= 0.2
    assert emu.stats.files_uploaded == 2


def _arrivals(chunks: Any) -> tuple[bytes, list[float]]:
    data, times = b"", []
    for chunk in chunks:
        data += chunk
        times.append(time.monotonic())
    return data, times


def test_openai_download_arrives_in_slow_chunks(emu: Emulator, client: openai.OpenAI) -> None:
    batch = wait(client, submit(client, chat_lines(3)).id)
    whole = client.files.content(batch.output_file_id or "").content
    emu.knobs.download_chunk_bytes = len(whole) // 4 + 1  # four pieces
    emu.knobs.download_chunk_delay = 0.05
    with client.files.with_streaming_response.content(batch.output_file_id or "") as response:
        data, times = _arrivals(response.iter_bytes())
    assert data == whole
    assert len(times) >= 4
    assert times[-1] - times[0] >= 3 * 0.05 * 0.9


def test_anthropic_results_arrive_in_slow_chunks(
    emu: Emulator, anthropic_client: anthropic.Anthropic
) -> None:
    batch = anthropic_client.messages.batches.create(requests=claude_requests(3))  # type: ignore[arg-type]
    anthropic_wait(anthropic_client, batch.id)
    whole = anthropic_results_bytes(anthropic_client, batch.id)
    emu.knobs.download_chunk_bytes = 50
    emu.knobs.download_chunk_delay = 0.02
    results = anthropic_client.messages.batches.with_streaming_response.results
    with results(batch.id) as response:
        data, times = _arrivals(response.iter_bytes())
    pieces = -(-len(whole) // 50)
    assert data == whole and len(times) >= pieces
    assert times[-1] - times[0] >= (pieces - 1) * 0.02 * 0.9
    # The SDK's decoder reassembles lines split across pieces.
    assert [r.custom_id for r in anthropic_client.messages.batches.results(batch.id)] == [
        "req-0",
        "req-1",
        "req-2",
    ]


def test_gemini_download_is_slow(emu: Emulator, genai_client: genai.Client) -> None:
    lines = [{"key": "k0", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}]
    uploaded = genai_client.files.upload(
        file=io.BytesIO(jsonl(lines)), config={"mime_type": "application/jsonl"}
    )
    job = gemini_wait(
        genai_client, genai_client.batches.create(model=FLASH, src=uploaded.name).name or ""
    )  # type: ignore[arg-type]
    name = job.dest.file_name  # type: ignore[union-attr]
    whole = genai_client.files.download(file=name)  # type: ignore[arg-type]
    emu.knobs.download_chunk_bytes = len(whole) // 3 + 1  # three pieces
    emu.knobs.download_chunk_delay = 0.1
    started = time.monotonic()
    assert genai_client.files.download(file=name) == whole  # type: ignore[arg-type]
    assert time.monotonic() - started >= 2 * 0.1 * 0.9
