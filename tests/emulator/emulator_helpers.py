"""Helpers shared by the emulator tests: build JSONL input, submit, wait, read results."""

from __future__ import annotations

import json
import time
from typing import Any

import openai

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def chat_line(
    custom_id: str, content: str, model: str = "gpt-4o-mini", **body: Any
) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def chat_lines(count: int, model: str = "gpt-4o-mini") -> list[dict[str, Any]]:
    return [chat_line(f"req-{i}", f"hello number {i}", model) for i in range(count)]


def submit(
    client: openai.OpenAI,
    lines: list[dict[str, Any]] | bytes,
    endpoint: str = "/v1/chat/completions",
    **kwargs: Any,
) -> Any:
    data = lines if isinstance(lines, bytes) else jsonl(lines)
    uploaded = client.files.create(file=("input.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
        **kwargs,
    )


def wait(client: openai.OpenAI, batch_id: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout}s")
        time.sleep(0.005)


def read_jsonl(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    raw = client.files.content(file_id).content
    assert raw == b"" or raw.endswith(b"\n")
    assert b"\n\n" not in raw, "no blank lines"
    return [json.loads(line) for line in raw.splitlines()]


def run_batch(
    client: openai.OpenAI,
    lines: list[dict[str, Any]] | bytes,
    endpoint: str = "/v1/chat/completions",
) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    batch = wait(client, submit(client, lines, endpoint).id)
    return batch, read_jsonl(client, batch.output_file_id), read_jsonl(client, batch.error_file_id)
