"""The Anthropic adapter through the scheduler: the official anthropic SDK inside, the emulator on
127.0.0.1 behind it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import pytest
from helpers import claude

import batch_llm
from batch_llm import (
    AnthropicProvider,
    BatchCancelledError,
    BatchExpiredError,
    InvalidRequestError,
    MissingResultError,
    Scheduler,
    UnsupportedEndpointError,
    resolve_provider,
)
from batch_llm.emulator import Emulator
from batch_llm.providers._anthropic import ERROR_STATUS

HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"


@pytest.fixture
def provider(emulator: Emulator) -> AnthropicProvider:
    """An adapter on the emulator whose SDK does not retry, so injected faults show."""
    return AnthropicProvider(
        base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0
    )


def text_of(body: dict[str, Any]) -> str:
    return str(body["content"][0]["text"])


def run(
    scheduler: Scheduler, provider: AnthropicProvider, bodies: list[dict[str, Any]]
) -> list[Any]:
    futures = scheduler.submit_many(provider, "/v1/messages", bodies)
    return batch_llm.wait(futures, return_exceptions=True, timeout=30)


def test_two_models_share_one_batch(
    scheduler: Scheduler, provider: AnthropicProvider, emulator: Emulator
) -> None:
    bodies = [claude(f"tag-{i}", HAIKU if i % 2 else SONNET) for i in range(40)]
    futures = scheduler.submit_many(provider, "messages", bodies)
    results = batch_llm.wait(futures, timeout=30)
    assert [text_of(r) for r in results] == [
        f"{HAIKU if i % 2 else SONNET} says: tag-{i}" for i in range(40)
    ]
    assert emulator.stats.batches_created == 1
    (record,) = scheduler.batches
    assert record.provider == provider.describe()
    assert (record.status, record.outcome) == ("ended", "completed")
    assert record.counts == {"total": 40, "succeeded": 40, "failed": 0}
    assert emulator.stats.batches[0]["models"] == [SONNET, HAIKU]
    assert {f.provider for f in futures} == {"anthropic"}
    assert {f.batch_id for f in futures} == {record.batch_id}


def test_batched_message_equals_the_realtime_one(
    scheduler: Scheduler, provider: AnthropicProvider, emulator: Emulator
) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    bodies = [
        claude("Tell me a story"),
        claude("weather in Paris", tools=tools),
        claude("one two three", stop_sequences=["two"]),
        claude("one two three four five six", max_tokens=2),
    ]
    batched = run(scheduler, provider, bodies)
    with anthropic.Anthropic(
        base_url=emulator.anthropic_base_url, api_key="k", max_retries=0
    ) as client:
        for body, result in zip(bodies, batched, strict=True):
            realtime = client.messages.with_raw_response.create(**body).http_response.json()
            assert result == realtime
    assert [r["stop_reason"] for r in batched] == [
        "end_turn",
        "tool_use",
        "stop_sequence",
        "max_tokens",
    ]


def test_line_errors_reach_only_their_caller_as_sdk_errors(
    scheduler: Scheduler, provider: AnthropicProvider
) -> None:
    bodies = [claude(f"ok-{i}") for i in range(6)]
    bodies[1] = claude("[[emulator:error 400 this prompt is not allowed]]")
    bodies[4] = claude("[[emulator:error 529 overloaded right now]]")
    bodies[5] = claude("[[emulator:error 429 too many tokens]]")
    results = run(scheduler, provider, bodies)
    assert [type(r) for r in results] == [
        dict,
        anthropic.BadRequestError,
        dict,
        dict,
        anthropic.OverloadedError,
        anthropic.RateLimitError,
    ]
    bad = results[1]
    assert bad.status_code == 400
    assert bad.body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "this prompt is not allowed"},
    }
    assert "this prompt is not allowed" in str(bad)
    # The realtime call raises the same class with the same body.
    with (
        anthropic.Anthropic(base_url=str(provider._base_url), api_key="k", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as realtime,
    ):
        client.messages.create(**bodies[1])
    assert realtime.value.body == bad.body


def test_expired_results_reach_their_callers(
    provider: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, poll_max=0.2, on_expiry="fail") as scheduler:
        bodies = [claude(f"e-{i}") for i in range(10)]
        futures = scheduler.submit_many(provider, "messages", bodies)
        results = batch_llm.wait(futures, return_exceptions=True, timeout=30)
    assert [type(r) for r in results] == [dict] * 5 + [BatchExpiredError] * 5
    batch_id = scheduler.batches[0].batch_id
    assert batch_id is not None
    for future, error in zip(futures[5:], results[5:], strict=True):
        assert (error.batch_id, error.custom_id) == (batch_id, future.custom_id)
        assert batch_id in str(error)
    assert scheduler.batches[0].outcome == "expired"


def test_expired_requests_can_escalate_to_realtime(
    provider: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.knobs.expire_after_fraction = 0.5
    with Scheduler(poll_interval=0.02, poll_max=0.2, on_expiry="realtime") as scheduler:
        bodies = [claude(f"e-{i}") for i in range(6)]
        results = batch_llm.wait(scheduler.submit_many(provider, "messages", bodies), timeout=30)
    assert [text_of(r) for r in results] == [f"{HAIKU} says: e-{i}" for i in range(6)]
    assert emulator.stats.realtime_calls == 3  # through AnthropicProvider.realtime


def test_canceled_results_reach_their_callers(
    scheduler: Scheduler, provider: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.knobs.cancel_after_fraction = 0.25
    emulator.knobs.reverse_output = True  # Anthropic's result order is not the input order
    results = run(scheduler, provider, [claude(f"c-{i}") for i in range(8)])
    assert [type(r) for r in results] == [dict] * 2 + [BatchCancelledError] * 6
    assert [text_of(r) for r in results[:2]] == [f"{HAIKU} says: c-{i}" for i in range(2)]
    assert scheduler.batches[0].outcome == "cancelled"


def test_dropped_lines_and_failed_submissions(
    scheduler: Scheduler, provider: AnthropicProvider, emulator: Emulator
) -> None:
    emulator.knobs.drop_line_every = 3
    results = run(scheduler, provider, [claude(f"d-{i}") for i in range(6)])
    assert [type(r) for r in results] == [dict, dict, MissingResultError] * 2

    emulator.knobs.reset()
    emulator.knobs.fail_validation = "batch quota exceeded"
    results = run(scheduler, provider, [claude("q-1"), claude("q-2")])
    assert all(isinstance(r, anthropic.BadRequestError) for r in results)
    assert "batch quota exceeded" in str(results[0])
    assert scheduler.batches[-1].status == "submit_failed"


def test_cancel(provider: AnthropicProvider, emulator: Emulator) -> None:
    emulator.knobs.processing_delay = 5

    async def scenario() -> tuple[Any, list[Any]]:
        lines = [provider.prepare("/v1/messages", claude(f"x-{i}")) for i in range(10)]
        for i, line in enumerate(lines):
            line.custom_id = f"{i:032x}"
        status = await provider.submit(provider_key, lines, {})
        cancelling = await provider.cancel(status)
        assert cancelling.state == "cancelling"
        while not status.ended:
            status = await provider.poll(status)
        outcomes = [o for chunk in [c async for c in provider.results(status)] for o in chunk]
        await provider.aclose()
        return status, outcomes

    provider_key = "/v1/messages"
    status, outcomes = asyncio.run(scenario())
    assert (status.state, status.outcome, status.raw_status) == ("ended", "cancelled", "ended")
    assert len(outcomes) == 10
    assert any(isinstance(o, BatchCancelledError) for _, o in outcomes)
    assert {cid for cid, _ in outcomes} == {f"{i:032x}" for i in range(10)}


def test_submit_sends_the_encoded_bodies_as_they_are(
    provider: AnthropicProvider, emulator: Emulator
) -> None:
    # Key order and non-ASCII text survive: the payload is built from Line.data bytes.
    body = {"max_tokens": 20, "model": HAIKU, "messages": [{"role": "user", "content": "héllo ✓"}]}
    prepared = provider.prepare("messages", body)
    assert prepared.data == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    async def scenario() -> Any:
        prepared.custom_id = "abc-1"
        status = await provider.submit("/v1/messages", [prepared], {"run": "x"})
        while not status.ended:
            status = await provider.poll(status)
        chunks = [c async for c in provider.results(status)]
        await provider.aclose()
        return chunks

    ((custom_id, answer),) = [o for chunk in asyncio.run(scenario()) for o in chunk]
    assert custom_id == "abc-1"
    assert text_of(answer) == f"{HAIKU} says: héllo ✓"


def test_submit_checks_custom_ids(provider: AnthropicProvider) -> None:
    line = provider.prepare("/v1/messages", claude("x"))
    line.custom_id = "not allowed!"
    with pytest.raises(InvalidRequestError, match="custom_id"):
        asyncio.run(provider.submit("/v1/messages", [line], {}))


@pytest.mark.parametrize(
    ("endpoint", "body", "error", "match"),
    [
        ("/v1/complete", claude("x"), UnsupportedEndpointError, "batches /v1/messages"),
        ("/v1/messages", ["not", "a", "mapping"], InvalidRequestError, "mapping"),
        ("/v1/messages", {**claude("x"), "bad": object()}, InvalidRequestError, "JSON"),
        ("/v1/messages", {"max_tokens": 5, "messages": []}, InvalidRequestError, "model"),
        ("/v1/messages", {"model": HAIKU, "messages": []}, InvalidRequestError, "max_tokens"),
        ("/v1/messages", claude("x", max_tokens=0), InvalidRequestError, "max_tokens"),
        ("/v1/messages", claude("x", stream=True), InvalidRequestError, "stream"),
    ],
)
def test_prepare_rejects_bad_input(
    provider: AnthropicProvider, endpoint: str, body: Any, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        provider.prepare(endpoint, body)


def test_prepare_endpoint_spellings_and_grouping(provider: AnthropicProvider) -> None:
    keys = {provider.prepare(e, claude("x")).key for e in ("messages", "/messages", "/v1/messages")}
    assert keys == {"/v1/messages"}
    assert provider.prepare("messages", claude("x", SONNET)).key == "/v1/messages"
    limits = provider.limits("/v1/messages")
    assert limits.max_requests == 100_000
    assert 255_000_000 < limits.max_bytes <= 256_000_000


def test_settings_equality_and_secrets(emulator: Emulator) -> None:
    one = AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-secret")
    assert one == AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-secret")
    assert hash(one) == hash(
        AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="sk-ant-secret")
    )
    assert one != AnthropicProvider(base_url=emulator.anthropic_base_url, api_key="other")
    assert one != AnthropicProvider(
        base_url=emulator.anthropic_base_url, api_key="sk-ant-secret", max_retries=0
    )
    for text in (repr(one), one.describe(), str(one._identity)):
        assert "sk-ant-secret" not in text
    assert ERROR_STATUS["overloaded_error"] == 529


def test_environment_defaults(scheduler: Scheduler, batch_llm_anthropic_env: Emulator) -> None:
    provider = resolve_provider("anthropic", max_retries=0)
    assert isinstance(provider, AnthropicProvider)
    assert resolve_provider("anthropic", max_retries=0) is provider
    (result,) = batch_llm.wait(scheduler.submit_many(provider, "messages", [claude("env")]))
    assert text_of(result) == f"{HAIKU} says: env"
    assert batch_llm_anthropic_env.stats.batches_created == 1


def test_submission_http_failure_reaches_every_caller(
    scheduler: Scheduler, provider: AnthropicProvider, emulator: Emulator
) -> None:
    # A permanent failure (a transient one is retried by the scheduler).
    emulator.knobs.http_error_every = 1
    emulator.knobs.http_error_status = 403
    emulator.knobs.http_error_routes = {"POST /v1/messages/batches"}
    results = run(scheduler, provider, [claude("a"), claude("b")])
    assert all(isinstance(r, anthropic.PermissionDeniedError) for r in results)
    assert scheduler.batches[0].status == "submit_failed"


def test_realtime_replay_and_identity(provider: AnthropicProvider, emulator: Emulator) -> None:
    bodies = [claude("journal me"), claude("[[emulator:error 400 refused]]")]

    async def scenario() -> tuple[list[Any], list[Any], Any]:
        lines = [provider.prepare("messages", body) for body in bodies]
        for i, line in enumerate(lines):
            line.custom_id = f"r-{i}"
        created: list[str] = []

        async def before_create() -> None:
            created.append("intent written")

        status = await provider.submit("/v1/messages", lines, {}, before_create=before_create)
        assert created == ["intent written"]
        while not status.ended:
            status = await provider.poll(status)
        kept: list[tuple[str, bytes]] = []
        live = [o for c in [c async for c in provider.results(status, sink=_keep(kept))] for o in c]
        # A later run re-parses the kept bytes with nothing but the batch id.
        probe = type(status)(status.batch_id, "ended", "ended", endpoint=status.endpoint)
        replayed = [o for c in [c async for c in provider.replay(probe, kept)] for o in c]
        realtime = await provider.realtime(lines[0])
        await provider.aclose()
        return live, replayed, realtime

    live, replayed, realtime = asyncio.run(scenario())
    assert [cid for cid, _ in live] == [cid for cid, _ in replayed] == ["r-0", "r-1"]
    assert live[0][1] == replayed[0][1] == realtime
    assert isinstance(replayed[1][1], anthropic.BadRequestError)
    assert replayed[1][1].body == live[1][1].body
    assert (
        provider.identity()
        == AnthropicProvider(
            base_url=emulator.anthropic_base_url, api_key="sk-ant-test", max_retries=0
        ).identity()
    )
    assert provider.identity() != AnthropicProvider(api_key="sk-ant-test").identity()


def _keep(kept: list[tuple[str, bytes]]) -> Any:
    return lambda name, chunk: kept.append((name, chunk))
