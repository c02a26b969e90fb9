"""Control routes over HTTP, per-route HTTP fault injection, and the public API's lifecycle."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from emulator_helpers import chat_lines, jsonl, submit, wait

import batch_llm.emulator
from batch_llm.emulator import Emulator, EmulatorStats, Knobs


def call(emu: Emulator, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        emu.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_public_names() -> None:
    assert batch_llm.emulator.__all__ == ["Emulator", "EmulatorStats", "Knobs"]


# --------------------------------------------------------------------------- control routes


def test_knobs_over_http(emu: Emulator) -> None:
    status, knobs = call(emu, "GET", "/_emulator/knobs")
    assert status == 200
    assert knobs == Knobs().to_json()
    assert knobs["http_error_routes"] is None

    status, knobs = call(
        emu,
        "POST",
        "/_emulator/knobs",
        {
            "line_error_every": 4,
            "processing_delay": 1,
            "http_error_routes": ["POST /v1/files"],
            "fail_validation": "nope",
        },
    )
    assert status == 200
    assert knobs["line_error_every"] == 4
    assert knobs["http_error_routes"] == ["POST /v1/files"]
    assert emu.knobs.line_error_every == 4
    assert emu.knobs.processing_delay == 1.0
    assert emu.knobs.http_error_routes == {"POST /v1/files"}
    assert emu.knobs.fail_validation == "nope"


@pytest.mark.parametrize(
    "payload",
    [
        {"no_such_knob": 1},
        {"line_error_every": "3"},
        {"line_error_every": 0},
        {"reverse_output": 1},
        {"processing_delay": -1},
        {"line_error_status": None},
        [1, 2],
    ],
)
def test_bad_knobs_are_rejected_and_change_nothing(emu: Emulator, payload: Any) -> None:
    status, body = call(
        emu,
        "POST",
        "/_emulator/knobs",
        {"drop_line_every": 3} | payload if isinstance(payload, dict) else payload,
    )
    assert status == 400
    assert body["error"]["message"]
    assert emu.knobs == Knobs()


def test_stats_and_reset_over_http(emu: Emulator, client: openai.OpenAI) -> None:
    wait(client, submit(client, chat_lines(3)).id)
    client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    emu.knobs.reverse_output = True

    status, stats = call(emu, "GET", "/_emulator/stats")
    assert status == 200
    assert stats["batches_created"] == 1
    assert stats["lines_submitted"] == 3
    assert stats["files_uploaded"] == 1
    assert stats["realtime_calls"] == 1
    assert stats["calls_by_route"]["POST /v1/batches"] == 1
    assert stats["calls_by_route"]["POST /v1/chat/completions"] == 1
    assert "GET /_emulator/stats" not in stats["calls_by_route"]
    assert stats["batches"][0]["status"] == "completed"

    assert call(emu, "POST", "/_emulator/reset") == (200, {"ok": True})
    assert emu.knobs == Knobs()
    assert emu.stats == EmulatorStats()
    assert list(client.files.list()) == []
    assert list(client.batches.list()) == []


def test_stats_snapshot_is_a_copy(emu: Emulator, client: openai.OpenAI) -> None:
    client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
    snapshot = emu.stats
    snapshot.calls_by_route.clear()
    snapshot.files_uploaded = 99
    assert emu.stats.files_uploaded == 1
    assert emu.stats.calls_by_route == {"POST /v1/files": 1}


def test_calls_are_counted_per_path_so_each_batch_has_its_own_polls(
    emu: Emulator, client: openai.OpenAI
) -> None:
    emu.knobs.processing_delay = 5
    first, second = submit(client, chat_lines(1)), submit(client, chat_lines(1))
    for _ in range(3):
        client.batches.retrieve(first.id)
    client.batches.retrieve(second.id)
    paths = emu.stats.calls_by_path
    assert paths[f"GET /v1/batches/{first.id}"] == 3
    assert paths[f"GET /v1/batches/{second.id}"] == 1
    assert emu.stats.calls_by_route["GET /v1/batches/{id}"] == 4


def test_reset_stops_running_batches(emu: Emulator, client: openai.OpenAI) -> None:
    emu.knobs.processing_delay = 5
    created = submit(client, chat_lines(5))
    emu.reset()
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve(created.id)
    time.sleep(0.05)
    assert list(client.files.list()) == []


# --------------------------------------------------------------------------- HTTP faults


def test_http_errors_every_nth_call_per_route(emu: Emulator, client: openai.OpenAI) -> None:
    emu.knobs.http_error_every = 2
    client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")  # POST /v1/files #1
    with pytest.raises(openai.InternalServerError) as caught:
        client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")  # #2
    assert caught.value.type == "server_error"
    assert caught.value.response.headers["x-request-id"].startswith("req_")
    client.files.list()  # GET /v1/files #1: counted separately
    client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")  # #3
    stats = emu.stats
    assert stats.calls_by_route == {"POST /v1/files": 3, "GET /v1/files": 1}
    assert stats.http_errors_injected == 1
    assert stats.files_uploaded == 2


def test_http_errors_on_chosen_routes_with_429(
    emu: Emulator, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    created = submit(client, chat_lines(2))
    emu.knobs.http_error_every = 1
    emu.knobs.http_error_status = 429
    emu.knobs.http_error_routes = {"GET /v1/batches/{id}"}
    with pytest.raises(openai.RateLimitError) as caught:
        client.batches.retrieve(created.id)
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("0", "1")
    assert client.batches.list().data[0].id == created.id  # another route: fine
    emu.knobs.http_error_every = 2
    # The SDK's own retry honours Retry-After: 0, so a retrying client gets through at once.
    with (
        openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=2) as retrying,
        caplog.at_level(logging.INFO, logger="openai._base_client"),
    ):
        assert retrying.batches.retrieve(created.id).id == created.id
        assert retrying.batches.retrieve(created.id).id == created.id
    # The SDK logs each backoff it sleeps; its own would be 0.4 s or more.
    waits = [float(r.getMessage().split(" in ")[-1].split()[0]) for r in caplog.records]
    assert len(waits) == 2 and max(waits) <= 0.001  # one retry per retrieve


def test_http_fault_in_the_error_shape_of_the_route(emu: Emulator) -> None:
    emu.knobs.http_error_every = 1
    emu.knobs.http_error_status = 503
    request = urllib.request.Request(
        emu.openai_base_url + "/models", headers={"Authorization": "Bearer k"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 503
    body = json.loads(caught.value.read())
    assert body["error"]["type"] == "server_error"
    # Control routes never misbehave.
    assert call(emu, "GET", "/_emulator/health") == (200, {"ok": True})


# --------------------------------------------------------------------------- lifecycle


# Its own emulator, not the fixture's, so pytest-socket needs telling.
@pytest.mark.enable_socket
def test_emulator_lifecycle() -> None:
    emulator = Emulator()
    # Bound at construction: the URL (with the port the OS picked) is known before serving.
    url = emulator.url
    assert url.startswith("http://127.0.0.1:")
    assert emulator.openai_base_url == url + "/v1"
    port = int(url.rsplit(":", 1)[1])
    with emulator as running:
        assert running is emulator
        with openai.OpenAI(base_url=emulator.openai_base_url, api_key="k") as client:
            # A keep-alive connection stays open across calls; stop() must still return.
            client.models.list()
            client.models.list()
            with pytest.raises(RuntimeError):
                emulator.start()
    emulator.stop()  # idempotent
    with pytest.raises(RuntimeError):
        _ = emulator.url
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with emulator:  # started again, on the same port
        assert emulator.url == url
        with urllib.request.urlopen(url + "/_emulator/health") as response:
            assert response.status == 200


# Its own emulator, not the fixture's, so pytest-socket needs telling.
@pytest.mark.enable_socket
def test_unstarted_emulator_releases_its_port() -> None:
    emulator = Emulator()
    port = int(emulator.url.rsplit(":", 1)[1])
    emulator.stop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))


# Its own emulator, not the fixture's, so pytest-socket needs telling.
@pytest.mark.enable_socket
def test_serve_forever_stops_from_another_thread() -> None:
    emulator = Emulator()
    thread = threading.Thread(target=emulator.serve_forever, daemon=True)
    thread.start()
    with urllib.request.urlopen(emulator.url + "/_emulator/health", timeout=5) as response:
        assert response.status == 200
    emulator.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_knobs_setter_and_defaults(emu: Emulator) -> None:
    knobs = emu.knobs
    emu.knobs = Knobs(line_error_every=7, http_error_routes={"POST /v1/files"})
    assert emu.knobs is knobs  # updated in place, so holders of the old object see it
    assert knobs.line_error_every == 7
    with pytest.raises(TypeError):
        Knobs(0.5)  # type: ignore[misc]
    defaults = Knobs()
    assert (
        defaults.validating_delay,
        defaults.line_error_status,
        defaults.http_error_status,
        defaults.reverse_output,
    ) == (0.0, 500, 500, False)


def test_concurrent_batches_and_calls(emu: Emulator, client: openai.OpenAI) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with openai.OpenAI(base_url=emu.openai_base_url, api_key="k", max_retries=0) as c:
                batch = wait(c, submit(c, jsonl(chat_lines(20))).id)
                assert batch.request_counts.completed == 20
                c.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": str(index)}]
                )
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stats = emu.stats
    assert (stats.batches_created, stats.lines_submitted, stats.realtime_calls) == (8, 160, 8)
