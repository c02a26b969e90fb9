"""Small helpers for driving provider SDKs without depending on their private layout."""

from __future__ import annotations

import functools
import json
import os
import ssl
import sys
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

from .._gc import gc_paused

__all__ = ["http_module_of", "iter_json_chunks", "shared_ssl_context"]


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """One TLS context for every SDK client this process builds.

    Building a context (loading the CA bundle) costs about 30 ms, and SDK clients each build
    their own; one client per event loop and provider would pay it again and again.
    """
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or _ca_bundle())


def _ca_bundle() -> str | None:
    try:
        import certifi
    except ImportError:  # the system's default trust store then
        return None
    return str(certifi.where())


def http_module_of(client: Any) -> ModuleType:
    """The HTTP library (``httpx`` or ``httpx2``) an SDK client is built on.

    SDK releases moved from ``httpx`` to ``httpx2``; errors must be built from the same
    library's ``Response`` the SDK itself would have used, so ask the client rather than guess.
    """
    inner = getattr(client, "_client", None)
    module_name = type(inner).__module__.split(".", 1)[0] if inner is not None else "httpx"
    module = sys.modules.get(module_name)
    if module is None or not hasattr(module, "Response"):
        import httpx

        return httpx
    return module


async def iter_json_chunks(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
    """Parse a JSONL byte stream as it arrives: one list of decoded lines per network chunk.

    Lines are decoded as they arrive, so a result file is never held whole in memory next to
    its parsed form. Each chunk's lines are decoded in one call, as one JSON array, with the
    cyclic GC paused (see ``_gc``): the decoder then shares one string per distinct key across
    all lines, which takes a result file's parsed form down by about 45 % and its parsing time
    by about a third, compared with decoding line by line.
    """
    rest = b""
    async for chunk in chunks:
        if not chunk:
            continue
        buf = rest + chunk if rest else chunk
        lines = buf.split(b"\n")
        rest = lines.pop()
        if lines:
            yield _decode_lines(lines)
    if rest.strip():
        yield _decode_lines([rest])


def _decode_lines(lines: list[bytes]) -> list[Any]:
    lines = [line for line in lines if line and not line.isspace()]
    with gc_paused():
        try:
            decoded = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:  # one bad line: decode one by one so the error names it
            decoded = [json.loads(line) for line in lines]
    return decoded if isinstance(decoded, list) else [decoded]
