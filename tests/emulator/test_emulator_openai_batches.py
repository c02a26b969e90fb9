"""OpenAI Files and Batches through the official SDK: lifecycle, knobs, validation, limits."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

import openai
import pytest
from emulator_helpers import (
    TERMINAL,
    chat_line,
    chat_lines,
    jsonl,
    read_jsonl,
    run_batch,
    submit,
    wait,
)
from openai.types import Batch
from openai.types.chat import ChatCompletion

from batch_llm.emulator import Emulator, _openai
from batch_llm.emulator._openai import MAX_BATCH_INPUT_BYTES


def custom_ids(lines: list[dict[str, Any]]) -> list[str]:
    return [line["custom_id"] for line in lines]


# --------------------------------------------------------------------------- lifecycle


def test_upload_create_poll_download(client: openai.OpenAI, emu: Emulator) -> None:
    lines = chat_lines(3)
    uploaded = client.files.create(file=("input.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.id.startswith("file-")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        len(jsonl(lines)),
        "input.jsonl",
        "batch",
    )
    assert uploaded.status == "processed"

    created = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"run": "lifecycle"},
    )
    assert created.id.startswith("batch_")
    assert created.status == "validating"
    assert created.metadata == {"run": "lifecycle"}
    assert created.expires_at == created.created_at + 86_400

    batch = wait(client, created.id)
    assert batch.status == "completed"
    assert batch.model == "gpt-4o-mini"
    assert batch.request_counts is not None
    assert (
        batch.request_counts.total,
        batch.request_counts.completed,
        batch.request_counts.failed,
    ) == (3, 3, 0)
    assert batch.error_file_id is None
    assert batch.errors is None
    assert (
        batch.created_at
        <= batch.in_progress_at
        <= batch.finalizing_at  # type: ignore[operator]
        <= batch.completed_at
    )
    assert batch.failed_at is batch.expired_at is batch.cancelled_at is None

    output = read_jsonl(client, batch.output_file_id)
    assert custom_ids(output) == ["req-0", "req-1", "req-2"]
    for line in output:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        assert line["response"]["request_id"].startswith("req_")
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.choices[0].message.content is not None
    assert len({line["id"] for line in output}) == 3

    body = output[1]["response"]["body"]
    assert body["choices"][0]["message"]["content"] == "gpt-4o-mini says: hello number 1"
    usage = batch.usage
    assert usage is not None
    assert usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in output
    )
    assert usage.output_tokens == sum(
        line["response"]["body"]["usage"]["completion_tokens"] for line in output
    )
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens

    output_file = client.files.retrieve(batch.output_file_id)  # type: ignore[arg-type]
    assert output_file.purpose == "batch_output"
    assert output_file.filename == f"{batch.id}_output.jsonl"
    assert [b.id for b in client.batches.list()] == [batch.id]

    stats = emu.stats
    assert (stats.batches_created, stats.lines_submitted, stats.files_uploaded) == (1, 3, 1)
    assert stats.batches == [
        {
            "id": batch.id,
            "provider": "openai",
            "endpoint": "/v1/chat/completions",
            "models": ["gpt-4o-mini"],
            "lines": 3,
            "status": "completed",
        }
    ]


async def test_async_sdk_lifecycle(aclient: openai.AsyncOpenAI) -> None:
    lines = chat_lines(4)
    uploaded = await aclient.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    batch = await aclient.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 10
    while batch.status not in TERMINAL:
        assert time.monotonic() < deadline
        batch = await aclient.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert batch.output_file_id is not None
    content = await aclient.files.content(batch.output_file_id)
    rows = [json.loads(line) for line in content.content.splitlines()]
    assert sorted(custom_ids(rows)) == ["req-0", "req-1", "req-2", "req-3"]
    listed = [b.id async for b in aclient.batches.list()]
    assert listed == [batch.id]


def test_upload_from_an_open_file(client: openai.OpenAI, tmp_path: Any) -> None:
    path = tmp_path / "requests.jsonl"
    path.write_bytes(jsonl(chat_lines(2)))
    with path.open("rb") as handle:
        uploaded = client.files.create(file=handle, purpose="batch")
    assert uploaded.filename == "requests.jsonl"
    assert client.files.content(uploaded.id).content == path.read_bytes()


def test_embeddings_and_responses_batches(client: openai.OpenAI) -> None:
    embedding_lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {
                "model": "text-embedding-3-small",
                "input": [f"text {i}", "more"],
                "dimensions": 8,
            },
        }
        for i in range(3)
    ]
    batch, output, errors = run_batch(client, embedding_lines, "/v1/embeddings")
    assert batch.status == "completed"
    assert batch.model == "text-embedding-3-small"
    assert not errors
    assert [len(row["response"]["body"]["data"]) for row in output] == [2, 2, 2]
    assert len(output[0]["response"]["body"]["data"][0]["embedding"]) == 8

    response_lines = [
        {
            "custom_id": "r1",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": "gpt-4.1", "input": "What is 2 + 2?"},
        },
    ]
    batch, output, _ = run_batch(client, response_lines, "/v1/responses")
    assert batch.status == "completed"
    assert output[0]["response"]["body"]["output"][0]["content"][0]["text"] == "4"


# --------------------------------------------------------------------------- timing knobs


def test_delays_move_through_every_status_with_gradual_progress(
    client: openai.OpenAI, emu: Emulator
) -> None:
    emu.knobs.validating_delay = 0.05
    emu.knobs.processing_delay = 0.4
    emu.knobs.finalizing_delay = 0.05
    created = submit(client, chat_lines(40))
    statuses: list[str] = []
    completed_counts: list[int] = []
    deadline = time.monotonic() + 10
    batch = created
    while batch.status not in TERMINAL:
        assert time.monotonic() < deadline
        batch = client.batches.retrieve(created.id)
        if not statuses or statuses[-1] != batch.status:
            statuses.append(batch.status)
        if batch.status == "in_progress":
            completed_counts.append(batch.request_counts.completed)
        time.sleep(0.01)
    assert statuses[0] == "validating"
    assert statuses[-3:] == ["in_progress", "finalizing", "completed"]
    assert completed_counts == sorted(completed_counts)
    assert any(0 < count < 40 for count in completed_counts), completed_counts
    elapsed = batch.completed_at - batch.created_at
    assert 0 <= elapsed <= 2


def test_knobs_apply_to_new_batches_only(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.processing_delay = 0.3
    slow = submit(client, chat_lines(5))
    emu.knobs.processing_delay = 0.0
    emu.knobs.line_error_every = 1
    assert wait(client, slow.id).request_counts.failed == 0


# --------------------------------------------------------------------------- line faults


def test_line_errors_go_to_the_error_file(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.line_error_every = 3
    batch, output, errors = run_batch(client, chat_lines(10))
    assert batch.status == "completed"
    assert (batch.request_counts.completed, batch.request_counts.failed) == (7, 3)
    assert custom_ids(errors) == ["req-2", "req-5", "req-8"]
    assert len(output) == 7
    for line in errors:
        assert line["error"] is None
        assert line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 500
        assert line["response"]["request_id"].startswith("req_")
        assert line["response"]["body"] == {
            "error": {
                "message": (
                    "The server had an error while processing your request. Sorry about that!"
                ),
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }


def test_line_error_status_and_message(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.line_error_every = 2
    emu.knobs.line_error_status = 429
    emu.knobs.line_error_message = "slow down"
    _, _, errors = run_batch(client, chat_lines(4))
    assert [e["response"]["status_code"] for e in errors] == [429, 429]
    assert errors[0]["response"]["body"]["error"]["type"] == "invalid_request_error"
    assert errors[0]["response"]["body"]["error"]["message"] == "slow down"


def test_all_lines_failing_still_completes(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.line_error_every = 1
    batch, output, errors = run_batch(client, chat_lines(3))
    assert batch.status == "completed"
    assert batch.output_file_id is None
    assert batch.error_file_id is not None
    assert (output, len(errors)) == ([], 3)


def test_per_request_errors_match_realtime(client: openai.OpenAI) -> None:
    lines = [
        chat_line("ok", "fine"),
        chat_line("marker", "please [[emulator:error 422 no thanks]]"),
        {
            "custom_id": "no-messages",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini"},
        },
    ]
    batch, output, errors = run_batch(client, lines)
    assert batch.status == "completed"
    assert custom_ids(output) == ["ok"]
    by_id = {e["custom_id"]: e["response"] for e in errors}
    assert by_id["marker"]["status_code"] == 422
    assert by_id["marker"]["body"]["error"]["message"] == "no thanks"
    assert by_id["no-messages"]["status_code"] == 400
    assert by_id["no-messages"]["body"]["error"] == {
        "message": "Missing required parameter: 'messages'.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "missing_required_parameter",
    }


def test_reverse_output(client: openai.OpenAI, emu: Emulator) -> None:
    _, output, _ = run_batch(client, chat_lines(5))
    assert custom_ids(output) == [f"req-{i}" for i in range(5)]
    emu.knobs.reverse_output = True
    emu.knobs.line_error_every = 2
    _, output, errors = run_batch(client, chat_lines(5))
    assert custom_ids(output) == ["req-4", "req-2", "req-0"]
    assert custom_ids(errors) == ["req-3", "req-1"]


def test_dropped_lines_are_missing_from_both_files(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.drop_line_every = 2
    batch, output, errors = run_batch(client, chat_lines(6))
    assert batch.status == "completed"
    assert custom_ids(output) == ["req-0", "req-2", "req-4"]
    assert errors == []
    # The provider believes every line ran; that is what makes the bug nasty.
    assert batch.request_counts.completed == 6


# --------------------------------------------------------------------------- expiry and cancel


def test_expiry_keeps_processed_lines(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.expire_after_fraction = 0.5
    emu.knobs.line_error_every = 4
    batch, output, errors = run_batch(client, chat_lines(10))
    assert batch.status == "expired"
    assert batch.expired_at is not None
    assert batch.completed_at is None
    assert custom_ids(output) == ["req-0", "req-1", "req-2", "req-4"]
    assert errors[0]["custom_id"] == "req-3"
    assert errors[0]["response"]["status_code"] == 500
    expired = errors[1:]
    assert custom_ids(expired) == [f"req-{i}" for i in range(5, 10)]
    for line in expired:
        assert line["response"] is None
        assert line["error"] == {
            "code": "batch_expired",
            "message": "This request could not be executed before the completion window expired.",
        }
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 1)


def test_cancel_after_fraction(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.cancel_after_fraction = 0.3
    emu.knobs.finalizing_delay = 0.15
    created = submit(client, chat_lines(10))
    seen = set()
    batch = created
    while batch.status not in TERMINAL:
        batch = client.batches.retrieve(created.id)
        seen.add(batch.status)
        time.sleep(0.01)
    assert "cancelling" in seen
    assert batch.status == "cancelled"
    assert batch.cancelling_at is not None and batch.cancelled_at is not None
    output = read_jsonl(client, batch.output_file_id)
    errors = read_jsonl(client, batch.error_file_id)
    assert custom_ids(output) == ["req-0", "req-1", "req-2"]
    assert custom_ids(errors) == [f"req-{i}" for i in range(3, 10)]
    assert all(e["response"] is None and e["error"]["code"] == "batch_cancelled" for e in errors)


def test_cancel_through_the_api(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.processing_delay = 5.0
    emu.knobs.finalizing_delay = 0.3  # how long "cancelling" lasts
    created = submit(client, chat_lines(50))
    while client.batches.retrieve(created.id).status == "validating":
        time.sleep(0.005)
    time.sleep(0.2)
    started = time.monotonic()
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    assert client.batches.cancel(created.id).status == "cancelling"  # idempotent meanwhile
    batch = wait(client, created.id)
    assert batch.status == "cancelled"
    assert time.monotonic() - started < 2, "cancel cuts the processing delay short"
    output = read_jsonl(client, batch.output_file_id)
    errors = read_jsonl(client, batch.error_file_id)
    assert 0 < len(output) < 50
    assert sorted(custom_ids(output + errors)) == sorted(f"req-{i}" for i in range(50))

    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status"):
        client.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_missing")


def test_cancel_while_validating(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.validating_delay = 5.0
    created = submit(client, chat_lines(3))
    assert client.batches.cancel(created.id).status == "cancelling"
    batch = wait(client, created.id, timeout=3)
    assert batch.status == "cancelled"
    assert batch.in_progress_at is None
    assert batch.output_file_id is None
    assert len(read_jsonl(client, batch.error_file_id)) == 3


# --------------------------------------------------------------------------- validation


def test_fail_validation_knob(client: openai.OpenAI, emu: Emulator) -> None:
    emu.knobs.fail_validation = "Token limit exceeded for this organization."
    batch = wait(client, submit(client, chat_lines(2)).id)
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.in_progress_at is None
    assert batch.output_file_id is None and batch.error_file_id is None
    assert batch.errors is not None and batch.errors.data is not None
    error = batch.errors.data[0]
    assert (error.code, error.message, error.param, error.line) == (
        "invalid_request",
        "Token limit exceeded for this organization.",
        None,
        None,
    )


def _bad_input(kind: str) -> bytes:
    good = [chat_line("a", "x"), chat_line("b", "y")]
    if kind == "invalid_json_line":
        return jsonl(good[:1]) + b"{not json\n"
    if kind == "missing_required_parameter":
        line = chat_line("b", "y")
        del line["custom_id"]
        return jsonl([good[0], line])
    if kind == "duplicate_custom_id":
        return jsonl([good[0], chat_line("a", "again")])
    if kind == "url_mismatch":
        line = chat_line("b", "y")
        line["url"] = "/v1/embeddings"
        return jsonl([good[0], line])
    if kind == "model_mismatch":
        return jsonl([good[0], chat_line("b", "y", model="gpt-4o")])
    if kind == "empty_file":
        return b"\n"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("invalid_json_line", 2),
        ("missing_required_parameter", 2),
        ("duplicate_custom_id", 2),
        ("url_mismatch", 2),
        ("model_mismatch", 2),
        ("empty_file", None),
    ],
)
def test_invalid_input_fails_validation(client: openai.OpenAI, kind: str, line: int | None) -> None:
    batch = wait(client, submit(client, _bad_input(kind)).id)
    assert batch.status == "failed"
    assert batch.errors is not None and batch.errors.data
    assert (batch.errors.data[0].code, batch.errors.data[0].line) == (kind, line)
    assert batch.output_file_id is None


def test_missing_input_file_fails_validation(client: openai.OpenAI) -> None:
    created = client.batches.create(
        input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = wait(client, created.id)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "file_not_found"  # type: ignore[union-attr,index]


def test_input_must_have_batch_purpose(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("x.jsonl", jsonl(chat_lines(1))), purpose="user_data")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert wait(client, batch.id).errors.data[0].code == "invalid_file_purpose"  # type: ignore


def test_more_than_50000_requests_fails(client: openai.OpenAI) -> None:
    line = b'{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{}}\n'
    data = b"".join(line % i for i in range(50_001))
    batch = wait(client, submit(client, data).id)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "too_many_tasks"  # type: ignore[union-attr,index]


def test_more_than_50000_embedding_inputs_fails(client: openai.OpenAI) -> None:
    lines = [
        {
            "custom_id": f"e{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "text-embedding-3-small", "input": ["a"] * 25_001},
        }
        for i in range(2)
    ]
    batch = wait(client, submit(client, lines, "/v1/embeddings").id)
    assert batch.status == "failed"
    assert batch.errors.data[0].code == "too_many_embedding_inputs"  # type: ignore


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"endpoint": "/v1/images/generations"}, "endpoint"),
        ({"completion_window": "48h"}, "completion_window"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"metadata": {"k" * 65: "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 10}}, "output_expires_after"),
    ],
)
def test_create_rejects_bad_parameters(
    client: openai.OpenAI, changes: dict[str, Any], param: str
) -> None:
    uploaded = client.files.create(file=("x.jsonl", jsonl(chat_lines(1))), purpose="batch")
    params: dict[str, Any] = {
        "input_file_id": uploaded.id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        **changes,
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.batches.create(**params)
    assert caught.value.param == param


def test_create_accepts_limits_and_one_hour_window(client: openai.OpenAI) -> None:
    uploaded = client.files.create(file=("x.jsonl", jsonl(chat_lines(1))), purpose="batch")
    metadata = {f"k{i:02d}" + "k" * 60: "v" * 512 for i in range(16)}
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="1h",  # type: ignore[arg-type]
        metadata=metadata,
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert batch.completion_window == "1h"
    assert batch.expires_at == batch.created_at + 3600
    assert batch.metadata == metadata


def test_batch_upload_over_200_mb_is_rejected(emu: Emulator) -> None:
    # Raw HTTP: the SDK's multipart encoder takes seconds for 200 MB; the emulator does not.
    url = urlsplit(emu.url)
    payload = b"x" * (MAX_BATCH_INPUT_BYTES + 1)
    head = (
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; '
        b'filename="big.jsonl"\r\n\r\n'
    )
    tail = b"\r\n--BOUNDARY--\r\n"
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("POST", "/v1/files")
    conn.putheader("Authorization", "Bearer k")
    conn.putheader("Content-Type", "multipart/form-data; boundary=BOUNDARY")
    conn.putheader("Content-Length", str(len(head) + len(payload) + len(tail)))
    conn.endheaders()
    for piece in (head, payload, tail):
        conn.send(piece)
    response = conn.getresponse()
    assert response.status == 400
    assert json.loads(response.read())["error"]["param"] == "file"
    conn.close()
    assert MAX_BATCH_INPUT_BYTES == 209_715_200  # the limit OpenAI states in its own error


def test_batch_create_rejects_a_file_over_the_limit(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Files of other purposes may be bigger; using one as batch input fails at create time.
    # The limit is lowered so the test need not move 200 MB twice.
    uploaded = client.files.create(file=("x.jsonl", b"y" * 101), purpose="user_data")
    monkeypatch.setattr(_openai, "MAX_BATCH_INPUT_BYTES", 100)
    with pytest.raises(openai.BadRequestError, match="larger than the 100 maximum") as caught:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert caught.value.param == "input_file_id"


# --------------------------------------------------------------------------- listing and files


def test_list_batches_newest_first_with_pagination(client: openai.OpenAI) -> None:
    ids = [submit(client, chat_lines(1)).id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == [ids[2], ids[1]]
    assert first.has_more is True
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]  # auto-pagination
    second = client.batches.list(limit=2, after=ids[1])
    assert [b.id for b in second.data] == [ids[0]]
    assert second.has_more is False
    for batch in client.batches.list():
        assert isinstance(batch, Batch)
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)


def test_files_list_retrieve_delete(client: openai.OpenAI) -> None:
    a = client.files.create(file=("a.jsonl", b'{"x": 1}\n'), purpose="batch")
    b = client.files.create(file=("b.jsonl", b'{"x": 2}\n'), purpose="user_data")
    assert [f.id for f in client.files.list()] == [b.id, a.id]
    assert [f.id for f in client.files.list(order="asc")] == [a.id, b.id]
    assert [f.id for f in client.files.list(purpose="batch")] == [a.id]
    assert client.files.retrieve(a.id).bytes == 9
    assert client.files.content(b.id).content == b'{"x": 2}\n'
    deleted = client.files.delete(a.id)
    assert (deleted.id, deleted.deleted) == (a.id, True)
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.files.retrieve(a.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(a.id)
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_upload_errors(client: openai.OpenAI, emu: Emulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.files.create(file=("a.jsonl", b"{}"), purpose="nonsense")  # type: ignore[arg-type]
    assert caught.value.param == "purpose"
    url = urlsplit(emu.url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.request(
        "POST",
        "/v1/files",
        body=b"{}",
        headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
    )
    assert conn.getresponse().status == 400
    conn.close()


def test_chunked_multipart_upload(emu: Emulator, client: openai.OpenAI) -> None:
    data = jsonl(chat_lines(20))
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="c.jsonl"\r\n'
        b"Content-Type: application/jsonl\r\n\r\n" + data + b"\r\n--XyZ--\r\n"
    )
    url = urlsplit(emu.url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    pieces = (body[i : i + 1000] for i in range(0, len(body), 1000))
    conn.request(
        "POST",
        "/v1/files",
        body=pieces,
        encode_chunked=True,
        headers={
            "Authorization": "Bearer k",
            "Content-Type": "multipart/form-data; boundary=XyZ",
            "Transfer-Encoding": "chunked",
        },
    )
    response = conn.getresponse()
    assert response.status == 200
    file_id = json.loads(response.read())["id"]
    conn.close()
    assert client.files.content(file_id).content == data
