"""What the ``batch-llm`` commands share: the journal they read, the adapter that reaches a
journaled batch again, the results kept in the journal, and errors worth a clear message.

The journal keeps no credentials. An entry records the adapter's name and base URL; the key
comes from the environment the command runs in (``OPENAI_API_KEY``...) or from the variable
``--api-key-env`` names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ._errors import BatchLLMError
from ._journal import Intent, Journal, SQLiteJournal, default_journal_path
from .providers import PRESETS, BatchStatus, Provider, resolve_provider

__all__ = [
    "CLIError",
    "adapter_for",
    "batch_key",
    "ended_status",
    "find_intent",
    "open_existing_journal",
    "probe",
    "redact",
    "run_async",
    "stored_results",
]

# Where each provider's batches live when the journal says "the provider's own API": given
# explicitly, so that a base URL in this shell's environment (an emulator, a proxy) does not
# send the command to another server than the one that holds the batch.
_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "google_genai": "https://generativelanguage.googleapis.com",
}
# Environment variables that may hold a key, whose values never reach the output.
_KEY_VARIABLES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    *(preset.api_key_env for preset in PRESETS.values()),
)
# Parsing stored results builds an SDK client (errors are built from its classes) but sends
# nothing: it needs a key-shaped value, not a key.
_OFFLINE_KEY = "batch-llm-offline-replay"
_OFF = {"", "0", "off", "false", "no", "none", "disabled"}

T = TypeVar("T")


class CLIError(Exception):
    """A failure the command reports in one line, with its exit status (2: bad input)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on a loop of its own: ``asyncio.run``, or, when this thread
    already runs a loop (``main([...])`` called from a notebook), on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1, thread_name_prefix="batch-llm-cli") as pool:
        return pool.submit(asyncio.run, work).result()


def redact(text: str, extra: tuple[str, ...] = ()) -> str:
    """``text`` with the value of every key variable in the environment replaced by ``***``."""
    secrets = [os.environ.get(name) for name in (*_KEY_VARIABLES, *extra)]
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def open_existing_journal(path: str | None) -> SQLiteJournal:
    """The journal at ``path``, else ``BATCH_LLM_JOURNAL``, else the default one; it must
    exist (reading a journal must not create an empty one)."""
    setting = path or os.environ.get("BATCH_LLM_JOURNAL")
    if setting is not None and setting.strip().lower() in _OFF:
        raise CLIError(
            "the journal is turned off (BATCH_LLM_JOURNAL=off); pass --journal PATH", status=2
        )
    where = Path(setting).expanduser() if setting else default_journal_path()
    if not where.is_file():
        raise CLIError(
            f"no journal at {where} (pass --journal PATH or set BATCH_LLM_JOURNAL)", status=2
        )
    return SQLiteJournal(where)


def find_intent(journal: Journal, ident: str) -> Intent | None:
    """The journal entry ``ident`` names (a batch id, an intent id or its prefix)."""
    found = journal.find(ident)
    if len(found) > 1 and len({i.intent_id for i in found}) > 1:
        names = ", ".join(i.batch_id or i.intent_id for i in found[:5])
        raise CLIError(f"{ident!r} names more than one journal entry: {names}", status=2)
    return found[0] if found else None


def _from_description(description: str) -> tuple[str, str | None]:
    """Name and base URL from an adapter's description, ``openai(http://host/v1)``: what
    entries written before the journal kept them separately have."""
    name, _, rest = description.partition("(")
    url = rest.removesuffix(")")
    return name.strip(), url if url.startswith(("http://", "https://")) else None


def adapter_for(
    intent: Intent | None,
    *,
    provider: str | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    offline: bool = False,
) -> Provider:
    """The adapter that reaches ``intent``'s batch (or, without one, the ``provider`` named).

    ``provider`` and ``base_url`` override the journal's; the key is ``$api_key_env`` if
    given, else what the adapter reads from the environment. ``offline``: the adapter only
    parses stored results, so a stand-in key will do.
    """
    name, url = provider, base_url
    if intent is not None:
        old_name, old_url = _from_description(intent.provider)
        name = name or intent.provider_name or old_name
        if url is None:
            url = intent.base_url or old_url
            if url is None and intent.provider_name:  # recorded as the provider's own API
                url = _DEFAULT_URLS.get(intent.provider_name)
    if not name:
        raise CLIError("which provider? pass --provider openai|anthropic|gemini", status=2)
    options: dict[str, Any] = {}
    if url:
        options["base_url"] = url
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise CLIError(f"--api-key-env {api_key_env}: that variable is not set", status=2)
        options["api_key"] = key
    elif offline:
        options["api_key"] = _OFFLINE_KEY
    try:
        return resolve_provider(name, **options)
    except (BatchLLMError, ImportError, ValueError, TypeError) as exc:
        raise CLIError(redact(str(exc)), status=2) from None


def probe(intent: Intent) -> BatchStatus:
    """A status holding what the provider needs to look the batch up."""
    if not intent.batch_id:
        raise CLIError(
            f"journal entry {intent.intent_id} never became a batch (status {intent.status}): "
            "there is nothing upstream",
            status=1,
        )
    return BatchStatus(intent.batch_id, "in_progress", intent.status, endpoint=intent.endpoint)


def ended_status(intent: Intent) -> BatchStatus:
    """The status a replay of ``intent``'s stored results parses against."""
    return BatchStatus(
        intent.batch_id or "",
        "ended",
        intent.status,
        outcome=intent.outcome,  # type: ignore[arg-type]
        endpoint=intent.endpoint,
    )


def batch_key(intent: Intent) -> Hashable:
    """The adapter's grouping key, as far as the journal knows it: usage falls back on its
    model when an answer does not name one."""
    return (intent.endpoint, intent.model) if intent.model else None


async def stored_results(
    journal: Journal, intent: Intent, adapter: Provider
) -> AsyncIterator[list[tuple[str, Any]]]:
    """The batch's results as kept in the journal, parsed as the scheduler parsed them."""
    streams = journal.load_results(intent.intent_id)
    async for rows in adapter.replay(ended_status(intent), streams):
        yield rows
