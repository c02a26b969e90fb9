"""One emulated answer, as every provider's shapes produce it and the store keeps it, and the
error that stands for an answer the emulator refuses to give."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EmulatedError", "Outcome"]


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


class EmulatedError(Exception):
    """A request the emulator answers with an HTTP error, in the provider's shape: a body the
    provider would reject, a malformed HTTP request, a batch or file that does not exist, or
    an error a prompt asked for. Raised by the model, the shapes and the route handlers alike;
    whoever catches it renders it (an ``Outcome`` for a batch line, a response for a route).
    ``code`` and ``param`` are the details providers that have them (OpenAI) report."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
