"""Provider adapters and the registry that turns a name like ``"openai"`` into one.

Built in: ``openai``, ``anthropic``, ``gemini`` (alias ``google_genai``; needs the ``[gemini]``
extra), and the OpenAI-compatible presets ``groq``, ``doubleword`` and ``azure``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._errors import UnknownProviderError
from ._anthropic import AnthropicProvider
from ._base import (
    CAPABILITIES,
    BatchState,
    BatchStatus,
    Capability,
    Limits,
    Outcome,
    Prepared,
    Provider,
    Usage,
    encode_body,
)
from ._fake import FakeProvider, FakeStatusError
from ._gemini import GeminiProvider
from ._openai import OpenAIProvider
from ._presets import PRESETS, OpenAICompatibleProvider, Preset, preset_classes

__all__ = [
    "CAPABILITIES",
    "PRESETS",
    "AnthropicProvider",
    "BatchState",
    "BatchStatus",
    "Capability",
    "FakeProvider",
    "FakeStatusError",
    "GeminiProvider",
    "Limits",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Outcome",
    "Prepared",
    "Preset",
    "Provider",
    "Usage",
    "encode_body",
    "known_providers",
    "register_provider",
    "resolve_provider",
]

_factories: dict[str, Callable[..., Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
    "gemini": GeminiProvider,
    "google_genai": GeminiProvider,  # LangChain's name for the provider
    "fake": FakeProvider,
    **preset_classes(),
}
_interned: dict[Provider, Provider] = {}
_lock = threading.Lock()


def register_provider(name: str, factory: Callable[..., Provider]) -> None:
    """Make ``resolve_provider(name, **options)`` build adapters with ``factory(**options)``.

    The factory takes at least the keywords ``base_url`` and ``api_key`` (None: the provider's
    own default and environment): the CLI reaches a journaled batch again through them.
    """
    with _lock:
        _factories[name] = factory


def known_providers() -> list[str]:
    """The provider names ``resolve_provider`` accepts."""
    return sorted(_factories)


def resolve_provider(spec: str | Provider, **options: Any) -> Provider:
    """Turn a provider name (plus client options) or an adapter into an adapter.

    Adapters with equal settings are interned, so every caller with the same credentials and
    endpoint reuses one SDK client and feeds the same queues.
    """
    if isinstance(spec, Provider):
        return spec
    factory = _factories.get(spec) if isinstance(spec, str) else None
    if factory is None:
        raise UnknownProviderError(
            f"unknown provider {spec!r}; known providers: {', '.join(known_providers())}"
        )
    provider = factory(**options)
    with _lock:
        return _interned.setdefault(provider, provider)
