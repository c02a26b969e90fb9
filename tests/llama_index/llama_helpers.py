"""Helpers shared by the LlamaIndex wrapper tests."""

from __future__ import annotations

import json
from typing import Any

import httpx


class Wire:
    """The JSON bodies a realtime client sent, in order."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def record(self, request: httpx.Request) -> None:
        self.bodies.append(json.loads(request.content))

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.record]})


def corpus(count: int) -> list[str]:
    """``count`` distinct short documents, some with newlines (which OpenAIEmbedding flattens)."""
    topics = ("rivers", "mountains", "harbours", "forests", "deserts", "glaciers", "islands")
    return [
        f"Document {i} describes {topics[i % len(topics)]}.\nSection {i % 13} lists item {i}."
        for i in range(count)
    ]
