"""One emulated answer, as every provider's shapes produce it and the store keeps it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """The answer to one request: an HTTP status, the encoded JSON body, and its token usage.

    The body is encoded once, by the same function for realtime and batch calls, which is what
    makes the two paths byte-identical.
    """

    status: int
    body: bytes
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def ok(self) -> bool:
        """Whether the request succeeded."""
        return self.status < 400
