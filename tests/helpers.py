"""Request bodies every test package builds, and waiting on what another thread or process
does (imported by name: ``tests/conftest.py`` puts this folder on the path).

Each test says what it asks: its model and any parameter that changes how the library treats
the request (``temperature=0`` makes identical requests share a line).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CHAT = "/v1/chat/completions"


def chat(prompt: str | int, model: str = "gpt-4o", **params: Any) -> dict[str, Any]:
    """A Chat Completions body with one user message: ``prompt``, or for a number ``i`` the
    question "What is i + 1?" (which the emulator answers, the mini models mostly right)."""
    content = prompt if isinstance(prompt, str) else f"What is {prompt} + 1?"
    return {"model": model, "messages": [{"role": "user", "content": content}], **params}


MESSAGES = "/v1/messages"


def claude(
    prompt: str | int, model: str = "claude-haiku-4-5", max_tokens: int = 64, **params: Any
) -> dict[str, Any]:
    """An Anthropic Messages body with one user message, as ``chat`` builds it (Anthropic
    requires ``max_tokens``)."""
    content = prompt if isinstance(prompt, str) else f"What is {prompt} + 1?"
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": content}],
        **params,
    }


def wait_for(condition: Callable[[], object], timeout: float = 30) -> None:
    """Return once ``condition()`` is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)
