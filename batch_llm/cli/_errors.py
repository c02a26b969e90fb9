"""How a ``batch-llm`` command fails: one line on stderr, an exit status, and no key in it."""

from __future__ import annotations

import os

from ..providers import PRESETS

__all__ = ["CLIError", "redact"]

# Environment variables that may hold a key, whose values never reach the output.
_KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    *(preset.api_key_env for preset in PRESETS.values()),
)


class CLIError(Exception):
    """A failure the command reports in one line, with its exit status (2: bad input)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with the value of every key variable in the environment replaced by ``***``."""
    secrets = [os.environ.get(name) for name in (*_KEY_VARIABLES, *extra)]
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
