"""Keeping credentials out of everything the library prints or keeps.

A base URL may carry a credential in its user info (``https://user:key@host/v1``) or in its
query string (``?api_key=...``), and an error message may quote such a URL or a key. So:

- an adapter keeps its URL's user info apart (``split_userinfo``) and hands its SDK a URL
  without it, so no SDK log line or error can quote it;
- what describes an adapter (``Provider.describe``, the journal's base URL) is built from
  ``public_url``;
- free text that may quote one (error messages, event reasons, every record of the
  ``batch_llm`` logger, the command line's output) goes through ``redact``.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["RedactingFilter", "public_url", "redact", "split_userinfo"]

MASK = "***"

# ``scheme://user:password@``: user info may hold any character but a slash, so the match runs
# to the last ``@`` before the host.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s'\"<>]*@")
# ``?name=value`` or ``&name=value``, anywhere in a text.
_PARAMETER = re.compile(r"(?P<lead>[?&;](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&#;\s'\"<>]*)")
# Parameter names that carry a credential: key, api_key, apiKey, access_token, X-Amz-Signature...
_SECRET_NAME = re.compile(
    r"(?:^|[_.-])(?:key|token|secret|password|passwd|pwd|sig|signature|auth|authorization"
    r"|credentials?)$|apikey|accesstoken",
    re.IGNORECASE,
)
# Environment variables whose values are credentials (OPENAI_API_KEY, GROQ_API_KEY,
# HF_TOKEN...): their values never reach the output either.
_SECRET_VARIABLE = re.compile(r"(?:KEY|TOKEN|SECRET|PASSWORD)$", re.IGNORECASE)
# Shorter values are words ("none", "true") more likely than keys, and replacing every
# occurrence of a word would garble the text.
_MIN_SECRET = 8


def public_url(url: str | None) -> str | None:
    """A base URL fit to print or keep: user info, query string and fragment dropped (a
    credential may hide in any of them; a base URL needs none of them to be recognised)."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0].split("#", 1)[0]
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def split_userinfo(url: str | None) -> tuple[str | None, tuple[str, str] | None]:
    """``url`` without its user info, and the user info as ``(username, password)`` (None
    when there is none); everything else in the URL is kept as given."""
    if not url:
        return url, None
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(username), unquote(password))


def _mask_parameter(match: re.Match[str]) -> str:
    if _SECRET_NAME.search(match["name"]) and match["value"]:
        return match["lead"] + MASK
    return match[0]


def _environment_secrets() -> list[str]:
    # Read on every call: keys are set and unset while a process runs (notebooks, tests).
    return [
        value
        for name, value in os.environ.items()
        if len(value) >= _MIN_SECRET and _SECRET_VARIABLE.search(name)
    ]


def redact(text: str) -> str:
    """``text`` with what may be a credential masked: the user info of every URL in it,
    the values of secret-looking query parameters (``key``, ``api_key``, ``token``...), and
    the value of every environment variable named like a credential (``*_API_KEY``,
    ``*_TOKEN``, ``*_SECRET``...)."""
    if "@" in text:
        text = _USERINFO.sub(r"\g<scheme>", text)
    if "=" in text:
        text = _PARAMETER.sub(_mask_parameter, text)
    for secret in _environment_secrets():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record through ``redact``: its message, and the
    traceback of an exception logged with it (an SDK error may quote a URL or a key).

    Installed on the ``batch_llm`` logger, it covers every module that logs there, whatever
    they log, including exceptions the library did not raise itself.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call: leave it for the handler to report as usual
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatted here, once, so that no handler formats the raw one; handlers use a
            # record's ``exc_text`` when it has one.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
