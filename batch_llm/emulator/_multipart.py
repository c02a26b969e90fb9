"""A small multipart/form-data parser (the stdlib's ``cgi`` is gone in Python 3.13).

Uploads can be 200 MB, so the parser finds part boundaries with ``bytearray.find`` and hands the
largest part back as the request buffer itself, trimmed in place, rather than as a copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

__all__ = ["MultipartError", "Part", "boundary_of", "parse_multipart"]


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


@dataclass(slots=True)
class Part:
    """One form field: its name, the filename if it is a file, its type and its bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes | bytearray


_PARAM = re.compile(r';\s*([\w*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        # HTML5 form encoding (what httpx sends) escapes a quote as %22.
        params[name] = raw.replace("%22", '"')
    return main.strip().lower(), params


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` Content-Type, or None if it is not one."""
    if not content_type:
        return None
    kind, params = _header_params(content_type)
    boundary = params.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return None
    return boundary.encode("latin-1")


def parse_multipart(body: bytearray, boundary: bytes) -> list[Part]:
    """Split a multipart body into its parts.

    The largest part's data *is* ``body``, trimmed in place (``del`` at the front of a bytearray
    only moves a start offset), so a 200 MB file is never copied. Do not use ``body`` afterwards.

    Raises:
        MultipartError: the body is malformed.
    """
    delimiter = b"--" + boundary
    spans: list[tuple[str, str | None, str | None, int, int]] = []
    pos = body.find(delimiter)
    if pos < 0:
        raise MultipartError("The multipart body has no boundary.")
    pos += len(delimiter)
    while True:
        if body[pos : pos + 2] == b"--":
            break
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            raise MultipartError("The multipart body ended early.")
        pos = line_end + 2
        if body[pos : pos + 2] == b"\r\n":
            headers_end, data_start = pos, pos + 2
        else:
            headers_end = body.find(b"\r\n\r\n", pos)
            if headers_end < 0:
                raise MultipartError("A multipart part has no end of headers.")
            data_start = headers_end + 4
        name, filename, content_type = _part_headers(bytes(body[pos:headers_end]))
        data_end = body.find(b"\r\n" + delimiter, data_start)
        if data_end < 0:
            raise MultipartError("A multipart part has no closing boundary.")
        spans.append((name, filename, content_type, data_start, data_end))
        pos = data_end + 2 + len(delimiter)
    if not spans:
        return []
    largest = max(range(len(spans)), key=lambda i: spans[i][4] - spans[i][3])
    parts = [
        Part(name, filename, content_type, bytes(body[start:end]) if i != largest else b"")
        for i, (name, filename, content_type, start, end) in enumerate(spans)
    ]
    _, _, _, start, end = spans[largest]
    del body[end:]
    del body[:start]
    parts[largest].data = body
    return parts


def _part_headers(raw: bytes) -> tuple[str, str | None, str | None]:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "content-disposition":
            _, params = _header_params(value)
            name = params.get("name")
            filename = params.get("filename")
            if "filename*" in params:
                encoded = params["filename*"]
                filename = unquote(encoded.split("''", 1)[-1]) if "''" in encoded else encoded
        elif key == "content-type":
            content_type = value.strip()
    if name is None:
        raise MultipartError("A multipart part has no Content-Disposition name.")
    return name, filename, content_type
