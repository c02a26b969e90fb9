"""What every provider's routes share: the store, knobs and stats they serve from, and the
answers all three give alike whatever their shapes (a batch-create reply lost on the way, a
download sent slowly)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from ._knobs import Knobs
from ._server import Response
from ._stats import StatsRecorder
from ._store import Store

__all__ = ["ProviderApi"]


class ProviderApi:
    """The base of one provider's routes (``OpenAIApi``, ``AnthropicApi``, ``GeminiApi``).

    A subclass names its ``provider`` (the store keeps each provider's batches apart) and keeps
    the ``Api`` protocol of ``_server``: ``authenticate`` and ``error``, in its provider's shape.
    """

    provider: ClassVar[str]

    def __init__(self, store: Store, knobs: Callable[[], Knobs], stats: StatsRecorder) -> None:
        self._store = store
        self._knobs = knobs
        self._stats = stats

    def _create_reply(self, reply: Response) -> Response:
        """``reply`` to a batch create, or no reply at all where ``Knobs.lose_create_reply``
        says so: the batch exists all the same, and the client cannot tell."""
        if not self._knobs().take_lost_create_reply():
            return reply
        self._stats.add("create_replies_lost")
        return Response.lost_reply()

    def _download_reply(self, data: bytes | bytearray, content_type: str) -> Response:
        """A file's bytes, sent in chunks as slowly as ``Knobs.download_chunking`` says."""
        size, delay = self._knobs().download_chunking()
        return Response(200, data, content_type, chunk_bytes=size, chunk_delay=delay)
