"""How a ``batch-llm`` command fails: one line on stderr and an exit status. What the line
quotes (an SDK error's message) goes through ``batch_llm._redact.redact`` first."""

from __future__ import annotations

__all__ = ["CLIError"]


class CLIError(Exception):
    """A failure the command reports in one line, with its exit status (2: bad input)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status
