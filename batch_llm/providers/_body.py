"""Upload bodies made from a batch's encoded lines as they are sent, never whole in memory.

A batch of 50,000 lines can be 200 MB. Each line's JSON is in memory once already (its
``Line.data``, kept until the batch ends so that expired lines can be sent again). Joining
the lines into one upload would hold them a second time, and handing the socket one 200 MB
object a third: asyncio copies into its buffer whatever the socket does not take at once. A
``Body`` writes the upload as it is read instead, about ``CHUNK`` bytes at a time, and knows its
size beforehand, so the request still carries a ``Content-Length`` (no chunked encoding, which
not every server takes for an upload).

``Body.file()`` is a read-only file object (what the SDKs' multipart uploads take: OpenAI's
Files API, Gemini's resumable upload), ``Body.stream()`` an async iterator of chunks (what an
HTTP client takes as a streamed request body: Anthropic's batch create). Either can be read
again from the start, as an SDK does when it retries the call.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._base import Line

__all__ = ["CHUNK", "Body", "BodyFile", "encoded_len", "jsonl_body", "spans"]

#: About how many bytes of the upload are made at a time.
CHUNK = 256 * 1024

T = TypeVar("T")


class Body:
    """An upload of ``size`` bytes, made by ``chunks()`` (called again for every read from the
    start) as it is read."""

    def __init__(self, chunks: Callable[[], Iterator[bytes]], size: int) -> None:
        self._chunks = chunks
        self.size = size

    def file(self) -> BodyFile:
        """The upload as a file object, read from the start."""
        return BodyFile(self)

    async def stream(self) -> AsyncIterator[bytes]:
        """The upload as an async iterator of chunks (send ``size`` as its length)."""
        sent = 0
        for chunk in self._chunks():
            sent += len(chunk)
            yield chunk
        _check_size(sent, self.size)

    def chunks(self) -> Iterator[bytes]:
        """The upload's chunks, from the start."""
        return self._chunks()

    def close(self) -> None:
        """Let go of what the upload is made from, once it is sent: the HTTP client's request
        objects, which refer to the body, may wait for the cyclic collector, and the lines
        must not wait with them."""
        self._chunks = _closed

    def __enter__(self) -> Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BodyFile(io.RawIOBase):
    """A ``Body`` read as a file: sequential reads, a ``seek`` to the start (to read it again)
    or to the end (how HTTP clients measure a file object), and ``tell``."""

    def __init__(self, body: Body) -> None:
        super().__init__()
        self._body = body
        self._rewind()

    def _rewind(self) -> None:
        self._chunks: Iterator[bytes] | None = None
        self._chunk = b""
        self._offset = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        size = self._body.size
        target = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: size}[whence] + offset
        if target == self._pos:
            return target
        if target == 0:
            self._rewind()
        elif target == size:
            self._chunks, self._chunk, self._offset, self._pos = _DONE, b"", 0, size
        else:
            raise io.UnsupportedOperation("an upload body seeks only to its start or its end")
        return target

    def read(self, size: int | None = -1) -> bytes:
        want = self._body.size - self._pos if size is None or size < 0 else size
        if self._chunks is None:
            self._chunks = self._body.chunks()
        out: list[bytes] = []
        while want > 0:
            chunk, offset = self._chunk, self._offset
            if offset < len(chunk):
                whole = offset == 0 and len(chunk) <= want
                piece = chunk if whole else chunk[offset : offset + want]
                self._offset = offset + len(piece)
                out.append(piece)
                want -= len(piece)
                continue
            nxt = next(self._chunks, None)
            if nxt is None:
                _check_size(self._pos + sum(map(len, out)), self._body.size)
                break
            self._chunk, self._offset = nxt, 0
        data = out[0] if len(out) == 1 else b"".join(out)
        self._pos += len(data)
        if self._pos >= self._body.size and self._chunks is not _DONE:
            # Read to the end: whatever is left must be nothing, and nothing is held on to.
            rest = len(self._chunk) - self._offset + sum(map(len, self._chunks))
            self._chunks, self._chunk, self._offset = _DONE, b"", 0
            _check_size(self._pos + rest, self._body.size)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


# The chunks of a body read to its end.
_DONE: Iterator[bytes] = iter(())


def _closed() -> Iterator[bytes]:
    raise ValueError("this upload body was closed")


def spans(items: Sequence[T], nbytes: int, target: int = CHUNK) -> Iterator[Sequence[T]]:
    """``items`` (``nbytes`` in all) in slices of about ``target`` bytes each, by their
    average size: how many lines go into one chunk of an upload."""
    step = max(1, target * len(items) // max(nbytes, 1))
    for start in range(0, len(items), step):
        yield items[start : start + step]


def jsonl_body(lines: Sequence[Line], head: bytes, middle: bytes) -> Body:
    """A JSONL input file of one object per line, ``head + custom_id + middle + data + "}"``:
    each provider's framing of a line (its id's key before, the body's key after), made as
    the upload reads it."""
    frame = len(head) + len(middle) + len(b"}\n")
    size = sum(encoded_len(line.custom_id) + len(line.data) for line in lines)
    size += frame * len(lines)

    def chunks() -> Iterator[bytes]:
        for span in spans(lines, size):
            parts: list[bytes] = []
            for line in span:
                parts += (head, line.custom_id.encode(), middle, line.data, b"}\n")
            yield b"".join(parts)

    return Body(chunks, size)


def encoded_len(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (an id is ASCII: counted without encoding it)."""
    return len(text) if text.isascii() else len(text.encode())


def _check_size(made: int, size: int) -> None:
    if made != size:
        # A bug, never the caller's: the server would be sent a body cut short or overlong.
        raise RuntimeError(f"an upload body made {made:,} bytes where it announced {size:,}")
