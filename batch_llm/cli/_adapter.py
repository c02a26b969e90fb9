"""The adapter a ``batch-llm`` command talks through: the one that reaches a journaled batch
again, and the loop its calls run on.

The journal keeps no credentials. An entry records the adapter's name and base URL; the key
comes from the environment the command runs in (``OPENAI_API_KEY``...) or from the variable
``--api-key-env`` names.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .._errors import BatchLLMError
from .._journal import Intent
from .._redact import redact
from ..providers import Provider, resolve_provider
from ._errors import CLIError

__all__ = ["adapter_for", "run_async"]

# Where each provider's batches live when the journal says "the provider's own API": given
# explicitly, so that a base URL in this shell's environment (an emulator, a proxy) does not
# send the command to another server than the one that holds the batch.
_DEFAULT_URLS = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "google_genai": "https://generativelanguage.googleapis.com",
}
# Parsing stored results builds an SDK client (errors are built from its classes) but sends
# nothing: it needs a key-shaped value, not a key.
_OFFLINE_KEY = "batch-llm-offline-replay"

T = TypeVar("T")


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run ``work`` to its end on a loop of its own: ``asyncio.run``, or, when this thread
    already runs a loop (``main([...])`` called from a notebook), on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    with ThreadPoolExecutor(1, thread_name_prefix="batch-llm-cli") as pool:
        return pool.submit(asyncio.run, work).result()


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
