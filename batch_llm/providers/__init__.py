"""Provider adapters and the registry that turns a name like ``"openai"`` into one.

Built in: ``openai``, ``anthropic``, ``gemini`` (alias ``google_genai``; needs the ``[gemini]``
extra), and the OpenAI-compatible presets ``groq``, ``doubleword`` and ``azure``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from .._errors import UnknownProviderError
from ._base import (
    CAPABILITIES,
    BatchState,
    BatchStatus,
    Capability,
    Limits,
    Line,
    Outcome,
    Provider,
    Usage,
    encode_body,
)

if TYPE_CHECKING:  # at run time, each adapter loads when first named or resolved (__getattr__)
    from ._anthropic import AnthropicProvider
    from ._fake import FakeProvider, FakeStatusError
    from ._gemini import GeminiProvider
    from ._openai import OpenAIProvider
    from ._presets import PRESETS, OpenAICompatibleProvider, Preset

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
    "Line",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Outcome",
    "Preset",
    "Provider",
    "Usage",
    "encode_body",
    "known_providers",
    "register_provider",
    "resolve_provider",
]

# An adapter module costs 3-7 ms to import (Gemini's most) and a run uses one or two of them, so
# the modules load on first use.
_ADAPTERS = {
    "AnthropicProvider": "._anthropic",
    "FakeProvider": "._fake",
    "FakeStatusError": "._fake",
    "GeminiProvider": "._gemini",
    "OpenAIProvider": "._openai",
    "OpenAICompatibleProvider": "._presets",
    "PRESETS": "._presets",
    "Preset": "._presets",
}

if not TYPE_CHECKING:  # hidden from type checkers, so a misspelt name is still an error there

    def __getattr__(name: str) -> Any:
        if name == "Prepared":  # its old name said how it was made, not what it is
            warnings.warn(
                "batch_llm.providers.Prepared is now batch_llm.providers.Line",
                DeprecationWarning,
                stacklevel=2,
            )
            return Line
        module = _ADAPTERS.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _lazy(attribute: str) -> Callable[..., Provider]:
    module = _ADAPTERS[attribute]

    def build(**options: Any) -> Provider:
        factory: Callable[..., Provider] = getattr(import_module(module, __name__), attribute)
        return factory(**options)

    return build


def _preset(name: str) -> Callable[..., Provider]:
    def build(**options: Any) -> Provider:
        from ._presets import preset_class

        return preset_class(name)(**options)

    return build


# The presets' names, without importing the OpenAI adapter their classes derive from (a test
# holds this list and ``PRESETS`` together).
_PRESET_NAMES = ("groq", "doubleword", "azure")

_factories: dict[str, Callable[..., Provider]] = {
    "openai": _lazy("OpenAIProvider"),
    "anthropic": _lazy("AnthropicProvider"),
    "gemini": _lazy("GeminiProvider"),
    "google_genai": _lazy("GeminiProvider"),  # LangChain's name for the provider
    "fake": _lazy("FakeProvider"),
    **{name: _preset(name) for name in _PRESET_NAMES},
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
