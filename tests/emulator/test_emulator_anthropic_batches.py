"""Anthropic Message Batches through the official SDK: lifecycle, results, knobs, validation."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

import anthropic
import pytest
from anthropic.types.messages import MessageBatch

from batch_llm.emulator import Emulator

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"


def params(text: str, model: str = HAIKU, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 50,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def requests(count: int, model: str = HAIKU) -> list[dict[str, Any]]:
    return [
        {"custom_id": f"req-{i}", "params": params(f"hello number {i}", model)}
        for i in range(count)
    ]


def wait(client: anthropic.Anthropic, batch_id: str, timeout: float = 10.0) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} still {batch.processing_status}"
        time.sleep(0.005)


def results(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


def raw_results(batch: MessageBatch) -> bytes:
    assert batch.results_url is not None
    request = urllib.request.Request(
        batch.results_url, headers={"x-api-key": "k", "anthropic-version": "2023-06-01"}
    )
    with urllib.request.urlopen(request) as response:
        data: bytes = response.read()
    return data


# --------------------------------------------------------------------------- lifecycle


def test_create_poll_and_read_results(anthropic_client: anthropic.Anthropic, emu: Emulator) -> None:
    items = [*requests(2), {"custom_id": "sonnet", "params": params("hi there", SONNET)}]
    created = anthropic_client.messages.batches.create(requests=items)  # type: ignore[arg-type]
    assert created.id.startswith("msgbatch_")
    assert (created.type, created.processing_status) == ("message_batch", "in_progress")
    assert created.request_counts.processing == 3
    assert created.results_url is None and created.ended_at is None
    assert (created.expires_at - created.created_at).total_seconds() == 86_400

    batch = wait(anthropic_client, created.id)
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 3, 0)
    assert (counts.canceled, counts.expired) == (0, 0)
    assert batch.ended_at is not None and batch.cancel_initiated_at is None
    # The SDK fetches results_url exactly as given: absolute, and pointing back at the emulator.
    assert batch.results_url == f"{emu.url}/v1/messages/batches/{batch.id}/results"

    by_id = results(anthropic_client, batch.id)
    assert set(by_id) == {"req-0", "req-1", "sonnet"}
    assert by_id["req-1"].type == "succeeded"
    assert by_id["req-1"].message.content[0].text == f"{HAIKU} says: hello number 1"
    assert by_id["sonnet"].message.model == SONNET

    raw = raw_results(batch)
    assert raw.endswith(b"\n") and b"\n\n" not in raw  # a blank line breaks the SDK's decoder
    stats = emu.stats
    assert (stats.batches_created, stats.lines_submitted, stats.realtime_calls) == (1, 3, 0)
    assert stats.batches == [
        {
            "id": batch.id,
            "provider": "anthropic",
            "endpoint": "/v1/messages",
            "models": [HAIKU, SONNET],
            "lines": 3,
            "status": "completed",
        }
    ]


async def test_async_sdk_lifecycle(anthropic_aclient: anthropic.AsyncAnthropic) -> None:
    created = await anthropic_aclient.messages.batches.create(requests=requests(2))  # type: ignore[arg-type]
    while (await anthropic_aclient.messages.batches.retrieve(created.id)).processing_status != (
        "ended"
    ):
        pass
    decoder = await anthropic_aclient.messages.batches.results(created.id)
    seen = {r.custom_id: r.result.type async for r in decoder}
    assert seen == {"req-0": "succeeded", "req-1": "succeeded"}


def test_batched_message_is_byte_identical_to_realtime(
    anthropic_client: anthropic.Anthropic,
) -> None:
    tools = [{"name": "get_weather", "description": "weather", "input_schema": {"type": "object"}}]
    cases = {
        "plain": params("Tell me about Paris"),
        "tools": params("weather in Paris", tools=tools),
        "stop": params("one two three", stop_sequences=["two"]),
    }
    batch = anthropic_client.messages.batches.create(
        requests=[{"custom_id": k, "params": v} for k, v in cases.items()]  # type: ignore[misc]
    )
    raw = raw_results(wait(anthropic_client, batch.id))
    for custom_id, body in cases.items():
        realtime = anthropic_client.messages.with_raw_response.create(**body).http_response.content
        line = b'{"custom_id":"%s","result":{"type":"succeeded","message":%s}}\n' % (
            custom_id.encode(),
            realtime,
        )
        assert line in raw


def test_errored_results_carry_the_realtime_error(anthropic_client: anthropic.Anthropic) -> None:
    items = [
        {"custom_id": "ok", "params": params("fine")},
        {"custom_id": "bad", "params": params("[[emulator:error 400 no such thing]]")},
        {"custom_id": "limit", "params": params("[[emulator:error 429 slow down]]")},
        {"custom_id": "invalid", "params": {"model": HAIKU, "messages": []}},
        {"custom_id": "stream", "params": params("hi", stream=True)},
    ]
    batch = wait(
        anthropic_client,
        anthropic_client.messages.batches.create(requests=items).id,  # type: ignore[arg-type]
    )
    assert (batch.request_counts.succeeded, batch.request_counts.errored) == (1, 4)
    by_id = results(anthropic_client, batch.id)
    assert by_id["bad"].type == "errored"
    assert by_id["bad"].error.model_dump(exclude_none=True) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "no such thing"},
    }
    assert by_id["limit"].error.error.type == "rate_limit_error"
    assert by_id["invalid"].error.error.message == "max_tokens: Field required"
    assert "Streaming is not supported" in by_id["stream"].error.error.message
    with pytest.raises(anthropic.BadRequestError, match="no such thing") as caught:
        anthropic_client.messages.create(**items[1]["params"])  # type: ignore[arg-type]
    assert caught.value.body == by_id["bad"].error.model_dump(exclude_none=True)


def test_list_pages_newest_first(anthropic_client: anthropic.Anthropic) -> None:
    ids = [anthropic_client.messages.batches.create(requests=requests(1)).id for _ in range(5)]
    newest_first = list(reversed(ids))
    page = anthropic_client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert (page.has_more, page.first_id, page.last_id) == (True, ids[4], ids[3])
    assert [b.id for b in anthropic_client.messages.batches.list(limit=2)] == newest_first
    after = anthropic_client.messages.batches.list(after_id=ids[3], limit=2)
    assert [b.id for b in after.data] == [ids[2], ids[1]]
    before = anthropic_client.messages.batches.list(before_id=ids[1], limit=2)
    assert [b.id for b in before.data] == [ids[3], ids[2]]
    assert before.has_more is True
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.batches.list(limit=0)


def test_cancel_then_delete(anthropic_client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.knobs.processing_delay = 5
    batch = anthropic_client.messages.batches.create(requests=requests(20))
    with pytest.raises(anthropic.BadRequestError, match="still processing"):
        anthropic_client.messages.batches.delete(batch.id)
    canceling = anthropic_client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    ended = wait(anthropic_client, batch.id)
    counts = ended.request_counts
    assert counts.canceled > 0 and counts.succeeded + counts.canceled == 20
    assert {r.type for r in results(anthropic_client, batch.id).values()} <= {
        "succeeded",
        "canceled",
    }
    with pytest.raises(anthropic.BadRequestError, match="already ended"):
        anthropic_client.messages.batches.cancel(batch.id)
    deleted = anthropic_client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        anthropic_client.messages.batches.retrieve(batch.id)


def test_results_before_the_end_are_refused(
    anthropic_client: anthropic.Anthropic, emu: Emulator
) -> None:
    emu.knobs.validating_delay = 5
    batch = anthropic_client.messages.batches.create(requests=requests(1))
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        list(anthropic_client.messages.batches.results(batch.id))
    with pytest.raises(anthropic.BadRequestError, match="not finished"):
        anthropic_client.get(
            f"/v1/messages/batches/{batch.id}/results", cast_to=anthropic.types.Message
        )


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least 1 item"),
        ([{"custom_id": "has space", "params": params("x")}], "custom_id"),
        ([{"custom_id": "x" * 65, "params": params("x")}], "custom_id"),
        ([{"custom_id": "a", "params": params("x")}] * 2, "Duplicate custom_id"),
        ([{"custom_id": "a", "params": "nope"}], "params"),
    ],
)
def test_create_rejects_bad_batches(
    anthropic_client: anthropic.Anthropic, emu: Emulator, items: list[Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=message):
        anthropic_client.messages.batches.create(requests=items)
    assert emu.stats.batches_created == 0


# --------------------------------------------------------------------------- knobs


def test_line_errors_expiry_and_order_knobs(
    anthropic_client: anthropic.Anthropic, emu: Emulator
) -> None:
    emu.knobs.line_error_every = 3
    emu.knobs.line_error_status = 529
    emu.knobs.line_error_message = "Overloaded"
    emu.knobs.expire_after_fraction = 0.6
    emu.knobs.reverse_output = True
    batch = wait(
        anthropic_client, anthropic_client.messages.batches.create(requests=requests(10)).id
    )
    counts = batch.request_counts
    assert (counts.succeeded, counts.errored, counts.expired, counts.canceled) == (4, 2, 4, 0)
    lines = list(anthropic_client.messages.batches.results(batch.id))
    assert [r.custom_id for r in lines] == [f"req-{i}" for i in reversed(range(10))]
    kinds = {r.custom_id: r.result.type for r in lines}
    assert [kinds[f"req-{i}"] for i in range(10)] == (
        ["succeeded", "succeeded", "errored"] * 2 + ["expired"] * 4
    )
    errored = next(r.result for r in lines if r.custom_id == "req-2")
    assert (errored.error.error.type, errored.error.error.message) == (  # type: ignore[union-attr]
        "overloaded_error",
        "Overloaded",
    )


def test_cancel_and_drop_knobs(anthropic_client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.knobs.cancel_after_fraction = 0.5
    emu.knobs.drop_line_every = 2
    batch = wait(
        anthropic_client, anthropic_client.messages.batches.create(requests=requests(8)).id
    )
    assert batch.cancel_initiated_at is not None
    counts = batch.request_counts
    # Dropped lines were processed and count as succeeded; they are missing from the file.
    assert (counts.succeeded, counts.canceled) == (4, 4)
    by_id = results(anthropic_client, batch.id)
    assert sorted(by_id) == ["req-0", "req-2", "req-4", "req-5", "req-6", "req-7"]
    assert [by_id[f"req-{i}"].type for i in (4, 5, 6, 7)] == ["canceled"] * 4


def test_fail_validation_rejects_at_create(
    anthropic_client: anthropic.Anthropic, emu: Emulator
) -> None:
    emu.knobs.fail_validation = "batch token quota exceeded"
    with pytest.raises(anthropic.BadRequestError, match="batch token quota exceeded"):
        anthropic_client.messages.batches.create(requests=requests(2))
    assert emu.stats.batches_created == 0


def test_http_faults_per_route(anthropic_client: anthropic.Anthropic, emu: Emulator) -> None:
    batch = anthropic_client.messages.batches.create(requests=requests(1))
    emu.knobs.http_error_every = 2
    emu.knobs.http_error_status = 529
    emu.knobs.http_error_routes = {"GET /v1/messages/batches/{id}"}
    anthropic_client.messages.batches.retrieve(batch.id)  # first call of the route
    with pytest.raises(anthropic.OverloadedError) as caught:
        anthropic_client.messages.batches.retrieve(batch.id)
    assert caught.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert caught.value.response.headers["retry-after-ms"] == "1"
    anthropic_client.messages.create(**params("other routes are fine"))
    assert emu.stats.http_errors_injected == 1
    assert emu.stats.calls_by_route["GET /v1/messages/batches/{id}"] == 2


def test_progress_is_in_progress_until_ended(
    anthropic_client: anthropic.Anthropic, emu: Emulator
) -> None:
    emu.knobs.processing_delay = 0.2
    emu.knobs.finalizing_delay = 0.05
    batch = anthropic_client.messages.batches.create(requests=requests(4))
    seen = set()
    while batch.processing_status != "ended":
        seen.add(batch.processing_status)
        # Per-request counts stay in "processing" until the whole batch ends.
        assert batch.request_counts.processing == 4
        batch = anthropic_client.messages.batches.retrieve(batch.id)
    assert seen == {"in_progress"}
    assert batch.request_counts.succeeded == 4
