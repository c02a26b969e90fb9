"""Gemini batch mode through google-genai: inline and file batches, embeddings, the resumable
upload, results in input order, cancel/delete/list, and the knobs."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
import warnings
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from batch_llm.emulator import Emulator
from batch_llm.emulator._gemini import MAX_INLINE_BYTES

FLASH = "gemini-2.5-flash"
EMBEDDER = "gemini-embedding-001"
DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def inline(count: int, prefix: str = "hi") -> list[dict[str, Any]]:
    return [
        {
            "contents": [{"role": "user", "parts": [{"text": f"{prefix} {i}"}]}],
            "metadata": {"key": f"k{i}"},
        }
        for i in range(count)
    ]


def wait(client: genai.Client, name: str, timeout: float = 10.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.state is not None and job.state.name in DONE:
            return job
        assert time.monotonic() < deadline, f"{name} still {job.state}"
        time.sleep(0.005)


def operation(emu: Emulator, name: str) -> tuple[dict[str, Any], bytes]:
    request = urllib.request.Request(f"{emu.url}/v1beta/{name}", headers={"x-goog-api-key": "k"})
    with urllib.request.urlopen(request) as response:
        data: bytes = response.read()
    return json.loads(data), data


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: genai.Client, data: bytes) -> types.File:
    return client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/jsonl", "display_name": "input"}
    )


def embed_batch(client: genai.Client, src: Any) -> types.BatchJob:
    with warnings.catch_warnings():  # create_embeddings is marked experimental
        warnings.simplefilter("ignore")
        return client.batches.create_embeddings(model=EMBEDDER, src=src)


# --------------------------------------------------------------------------- inline


def test_inline_batch_lifecycle(genai_client: genai.Client, emu: Emulator) -> None:
    created = genai_client.batches.create(
        model=FLASH,
        src=inline(3),
        config={"display_name": "nightly"},  # type: ignore[arg-type]
    )
    assert created.name is not None and created.name.startswith("batches/")
    assert created.state == types.JobState.JOB_STATE_PENDING
    assert (created.display_name, created.model) == ("nightly", f"models/{FLASH}")
    job = wait(genai_client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.end_time is not None
    responses = job.dest.inlined_responses  # type: ignore[union-attr]
    assert [r.metadata for r in responses or []] == [{"key": f"k{i}"} for i in range(3)]
    assert [r.response.text for r in responses or []] == [  # type: ignore[union-attr]
        f"{FLASH} says: hi {i}" for i in range(3)
    ]
    raw, _ = operation(emu, created.name)
    assert raw["done"] is True
    assert raw["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert raw["metadata"]["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "3",
        "failedRequestCount": "0",
        "pendingRequestCount": "0",
    }
    assert raw["response"]["inlinedResponses"] == raw["metadata"]["output"]["inlinedResponses"]
    assert raw["response"]["@type"].endswith("GenerateContentBatchOutput")
    stats = emu.stats
    assert (stats.batches_created, stats.lines_submitted, stats.realtime_calls) == (1, 3, 0)
    assert stats.batches[0]["provider"] == "gemini"
    assert stats.batches[0]["models"] == [FLASH]
    assert stats.batches[0]["endpoint"] == "batchGenerateContent"


def test_batched_answers_are_byte_identical_to_realtime(
    genai_client: genai.Client, emu: Emulator
) -> None:
    requests = [
        {"contents": [{"role": "user", "parts": [{"text": "weather in Paris"}]}]},
        {
            "contents": [{"role": "user", "parts": [{"text": "Extract: Ada is 36"}]}],
            "config": {
                "response_mime_type": "application/json",
                "response_schema": {"type": "OBJECT", "properties": {"age": {"type": "INTEGER"}}},
            },
        },
    ]
    job = wait(genai_client, genai_client.batches.create(model=FLASH, src=requests).name or "")  # type: ignore[arg-type]
    _, raw = operation(emu, job.name or "")
    for request in requests:
        realtime = genai_client.models.generate_content(
            model=FLASH,
            contents=request["contents"],
            config={**request.get("config", {}), "should_return_http_response": True},
        )
        body = realtime.sdk_http_response.body  # type: ignore[union-attr]
        assert body is not None
        assert b'{"response":' + body.encode() + b"}" in raw


def test_item_errors_are_rpc_statuses(genai_client: genai.Client, emu: Emulator) -> None:
    src = [
        *inline(2),
        {"contents": [{"parts": [{"text": "[[emulator:error 400 bad input]]"}]}]},
        {"contents": [{"parts": [{"text": "[[emulator:error 503 try later]]"}]}]},
    ]
    job = wait(genai_client, genai_client.batches.create(model=FLASH, src=src).name or "")  # type: ignore[arg-type]
    raw, _ = operation(emu, job.name or "")
    entries = raw["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    # gRPC codes, as google.rpc.Status carries them (3 INVALID_ARGUMENT, 14 UNAVAILABLE).
    assert [e.get("error") for e in entries[2:]] == [
        {"code": 3, "message": "bad input"},
        {"code": 14, "message": "try later"},
    ]
    assert "metadata" not in entries[2]  # none was sent
    assert raw["metadata"]["batchStats"]["failedRequestCount"] == "2"


def test_list_cancel_delete(genai_client: genai.Client, emu: Emulator) -> None:
    names = [genai_client.batches.create(model=FLASH, src=inline(1)).name for _ in range(3)]  # type: ignore[arg-type]
    listed = [j.name for j in genai_client.batches.list(config={"page_size": 2})]
    assert listed == list(reversed(names))
    emu.knobs.processing_delay = 5
    slow = genai_client.batches.create(model=FLASH, src=inline(20))  # type: ignore[arg-type]
    genai_client.batches.cancel(name=slow.name or "")
    job = wait(genai_client, slow.name or "")
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    finished = job.dest.inlined_responses if job.dest else None
    assert len(finished or []) < 20  # only what ran before the cancel
    with pytest.raises(errors.ClientError, match="already finished"):
        genai_client.batches.cancel(name=slow.name or "")
    genai_client.batches.delete(name=slow.name or "")
    with pytest.raises(errors.ClientError) as caught:
        genai_client.batches.get(name=slow.name or "")
    assert caught.value.code == 404


def test_inline_size_limit(emu: Emulator) -> None:
    big = {
        "batch": {
            "inputConfig": {"requests": {"requests": [{"request": {"x": "y" * MAX_INLINE_BYTES}}]}}
        }
    }
    request = urllib.request.Request(
        f"{emu.url}/v1beta/models/{FLASH}:batchGenerateContent",
        data=json.dumps(big).encode(),
        headers={"x-goog-api-key": "k", "Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 400
    assert "payload size exceeds" in json.loads(caught.value.read())["error"]["message"]
    assert emu.stats.batches_created == 0


# --------------------------------------------------------------------------- files


def test_file_batch_and_resumable_upload(genai_client: genai.Client, emu: Emulator) -> None:
    lines = [
        {"key": f"f{i}", "request": {"contents": [{"parts": [{"text": f"file {i}"}]}]}}
        for i in range(3)
    ]
    # Padding past 8 MB makes the SDK upload in two chunks (upload, then upload+finalize).
    padding = {"key": "pad", "request": {"contents": [{"parts": [{"text": "x " * 4_500_000}]}]}}
    data = jsonl([*lines, padding])
    uploaded = upload(genai_client, data)
    assert uploaded.name is not None and uploaded.name.startswith("files/")
    assert (uploaded.size_bytes, uploaded.mime_type) == (len(data), "application/jsonl")
    assert uploaded.source == types.FileSource.UPLOADED
    assert emu.stats.calls_by_route["POST /upload/v1beta/files"] == 3  # start + two chunks
    assert emu.stats.bytes_uploaded == len(data)

    job = wait(genai_client, genai_client.batches.create(model=FLASH, src=uploaded.name).name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.file_name is not None
    output = genai_client.files.download(file=job.dest.file_name)
    rows = [json.loads(line) for line in output.splitlines()]
    assert [r["key"] for r in rows] == ["f0", "f1", "f2", "pad"]  # input order
    assert rows[1]["response"]["candidates"][0]["content"]["parts"][0]["text"] == (
        f"{FLASH} says: file 1"
    )
    meta = genai_client.files.get(name=job.dest.file_name)
    assert meta.source == types.FileSource.GENERATED
    with pytest.raises(errors.ClientError, match="Only generated files"):
        genai_client.files.download(file=uploaded.name)
    assert {f.name for f in genai_client.files.list()} == {uploaded.name, job.dest.file_name}
    genai_client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError):
        genai_client.files.get(name=uploaded.name)


def test_file_batch_input_errors(genai_client: genai.Client, emu: Emulator) -> None:
    with pytest.raises(errors.ClientError) as caught:
        genai_client.batches.create(model=FLASH, src="files/nope")
    assert caught.value.code == 404
    broken = upload(genai_client, b'{"key": "a", "request": {"contents": []}}\nnot json\n')
    job = wait(
        genai_client, genai_client.batches.create(model=FLASH, src=broken.name or "").name or ""
    )
    assert job.state == types.JobState.JOB_STATE_FAILED
    raw, _ = operation(emu, job.name or "")
    assert raw["error"] == {"code": 3, "message": "Line 2 of the input file is not valid JSON."}


def test_upload_url_is_absolute_and_authorizes_its_chunks(emu: Emulator) -> None:
    start = urllib.request.Request(
        f"{emu.url}/upload/v1beta/files",
        data=b'{"file": {"displayName": "x"}}',
        method="POST",
        headers={
            "x-goog-api-key": "k",
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": "3",
            "X-Goog-Upload-Header-Content-Type": "application/jsonl",
        },
    )
    with urllib.request.urlopen(start) as response:
        url = response.headers["x-goog-upload-url"]
        assert response.headers["x-goog-upload-status"] == "active"
    assert url.startswith(emu.url + "/upload/v1beta/files?upload_id=")
    finish = urllib.request.Request(
        url,
        data=b"{}\n",
        method="POST",
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"},
    )
    with urllib.request.urlopen(finish) as response:
        assert response.headers["x-goog-upload-status"] == "final"
        assert json.loads(response.read())["file"]["sizeBytes"] == "3"


def test_upload_errors_are_final(emu: Emulator) -> None:
    # Without x-goog-upload-status: final the SDK sleeps and sends the chunk again.
    chunk = urllib.request.Request(
        f"{emu.url}/upload/v1beta/files?upload_id=gone&upload_protocol=resumable",
        data=b"{}\n",
        method="POST",
        headers={"x-goog-api-key": "k", "X-Goog-Upload-Command": "upload, finalize"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(chunk)
    assert caught.value.code == 404
    assert caught.value.headers["x-goog-upload-status"] == "final"


# --------------------------------------------------------------------------- embeddings


def test_embedding_batches_inline_and_file(genai_client: genai.Client, emu: Emulator) -> None:
    job = embed_batch(
        genai_client,
        {
            "inlined_requests": {
                "contents": ["the cat", "the dog"],
                "config": {"output_dimensionality": 4},
            }
        },
    )
    done = wait(genai_client, job.name or "")
    vectors = [r.response.embedding.values for r in done.dest.inlined_embed_content_responses or []]  # type: ignore[union-attr]
    realtime = genai_client.models.embed_content(
        model=EMBEDDER, contents=["the cat", "the dog"], config={"output_dimensionality": 4}
    )
    assert vectors == [e.values for e in realtime.embeddings or []]

    # The SDK names the file "file_name" (the proto name) here; Google's JSON takes both.
    lines = [{"key": "e0", "request": {"content": {"parts": [{"text": "the cat"}]}}}]
    uploaded = upload(genai_client, jsonl(lines))
    done = wait(genai_client, embed_batch(genai_client, {"file_name": uploaded.name}).name or "")
    rows = [
        json.loads(r) for r in genai_client.files.download(file=done.dest.file_name).splitlines()
    ]  # type: ignore[union-attr, arg-type]
    assert rows[0]["key"] == "e0" and len(rows[0]["response"]["embedding"]["values"]) == 3072
    assert emu.stats.batches[-1]["endpoint"] == "asyncBatchEmbedContent"


# --------------------------------------------------------------------------- knobs


def test_knobs(genai_client: genai.Client, emu: Emulator) -> None:
    emu.knobs.line_error_every = 2
    emu.knobs.line_error_status = 429
    emu.knobs.drop_line_every = 3
    emu.knobs.reverse_output = True  # Gemini keeps input order regardless
    job = wait(genai_client, genai_client.batches.create(model=FLASH, src=inline(6)).name or "")  # type: ignore[arg-type]
    raw, _ = operation(emu, job.name or "")
    entries = raw["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert [e["metadata"]["key"] for e in entries] == ["k0", "k1", "k3", "k4"]
    assert [e.get("error", {}).get("code") for e in entries] == [None, 8, 8, None]

    emu.knobs.reset()
    emu.knobs.expire_after_fraction = 0.5
    expired = wait(genai_client, genai_client.batches.create(model=FLASH, src=inline(4)).name or "")  # type: ignore[arg-type]
    assert expired.state == types.JobState.JOB_STATE_EXPIRED
    assert expired.dest is None  # an expired batch returns no results

    emu.knobs.reset()
    emu.knobs.fail_validation = "quota exceeded"
    failed = wait(genai_client, genai_client.batches.create(model=FLASH, src=inline(1)).name or "")  # type: ignore[arg-type]
    assert failed.state == types.JobState.JOB_STATE_FAILED
    assert operation(emu, failed.name or "")[0]["error"]["message"] == "quota exceeded"

    emu.knobs.reset()
    emu.knobs.http_error_every = 1
    emu.knobs.http_error_status = 500
    emu.knobs.http_error_routes = {"GET /v1beta/batches/{name}"}
    with pytest.raises(errors.ServerError):
        genai_client.batches.get(name=failed.name or "")
    assert genai_client.models.generate_content(model=FLASH, contents="hi").text
