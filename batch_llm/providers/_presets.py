"""OpenAI-compatible services, as presets of the OpenAI adapter.

Each preset is one row of data: where the service lives, which environment variable holds its
key, and how it differs from OpenAI. ``resolve_provider("groq")`` builds an adapter from it;
``base_url`` (and every ``OpenAIProvider`` option) can still be overridden.

What was checked against the services' public docs (2025/2026):

* **groq**: the OpenAI Batch API under ``https://api.groq.com/openai/v1``; uploads use
  ``purpose="batch"``; key in ``GROQ_API_KEY``. Groq also accepts completion windows from
  ``24h`` up to ``7d``.
* **doubleword**: "fully compatible with OpenAI's Batch API" at
  ``https://api.doubleword.ai/v1``; key in ``DOUBLEWORD_API_KEY``. Shorter windows (``"1h"``)
  are accepted at a higher price than the default ``"24h"`` (unconfirmed beyond its docs'
  pricing tiers); pass ``completion_window="1h"`` to use one.
* **azure** (unverified end to end): Azure OpenAI's v1 API,
  ``{AZURE_OPENAI_ENDPOINT}/openai/v1`` with the key in ``AZURE_OPENAI_API_KEY``; the
  ``model`` of each request is the name of a *global batch* deployment.

Not a preset: **Together**. Its batch API is not OpenAI's on the wire (``purpose="batch-api"``
uploads go through a presigned URL; creating a batch answers ``{"job": {...}}`` with upper-case
statuses such as ``IN_PROGRESS``), so the OpenAI SDK cannot drive it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .._errors import InvalidRequestError
from ._openai import OpenAIProvider

__all__ = ["PRESETS", "OpenAICompatibleProvider", "Preset", "preset_class"]


@dataclass(frozen=True, slots=True)
class Preset:
    """An OpenAI-compatible service.

    Attributes:
        name: the provider name ``resolve_provider`` takes.
        api_key_env: the environment variable holding the key.
        base_url: the service's base URL (including ``/v1``), if it is fixed.
        base_url_env: an environment variable whose value, plus ``base_url_suffix``, is the
            base URL (Azure: the resource endpoint); it wins over ``base_url``.
        base_url_suffix: appended to ``base_url_env``'s value.
        completion_window: the default batch window.
        file_purpose: the upload ``purpose`` for batch input.
    """

    name: str
    api_key_env: str
    base_url: str | None = None
    base_url_env: str | None = None
    base_url_suffix: str = ""
    completion_window: str = "24h"
    file_purpose: str = "batch"


PRESETS: Mapping[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("groq", "GROQ_API_KEY", base_url="https://api.groq.com/openai/v1"),
        Preset("doubleword", "DOUBLEWORD_API_KEY", base_url="https://api.doubleword.ai/v1"),
        Preset(
            "azure",
            "AZURE_OPENAI_API_KEY",
            base_url_env="AZURE_OPENAI_ENDPOINT",
            base_url_suffix="/openai/v1",
        ),
    )
}


class OpenAICompatibleProvider(OpenAIProvider):
    """The OpenAI adapter for one OpenAI-compatible service (a subclass per preset).

    Args:
        api_key: defaults to the preset's environment variable (never ``OPENAI_API_KEY``: an
            OpenAI key is not sent to another service).
        base_url: defaults to the preset's.
        **options: any other ``OpenAIProvider`` option (``completion_window``, ``timeout``...).

    Raises:
        InvalidRequestError: no key, or (Azure) no endpoint, was given or found.
    """

    name = "openai-compatible"
    preset: ClassVar[Preset]

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, **options: Any
    ) -> None:
        preset = self.preset
        if api_key is None:
            api_key = os.environ.get(preset.api_key_env)
        if not api_key:
            raise InvalidRequestError(
                f"{preset.name} needs an API key: pass api_key= or set {preset.api_key_env}"
            )
        if base_url is None and preset.base_url_env:
            root = os.environ.get(preset.base_url_env)
            base_url = root.rstrip("/") + preset.base_url_suffix if root else None
        base_url = base_url or preset.base_url
        if not base_url:
            raise InvalidRequestError(
                f"{preset.name} needs a base URL: pass base_url= or set {preset.base_url_env}"
            )
        options.setdefault("completion_window", preset.completion_window)
        options.setdefault("file_purpose", preset.file_purpose)
        super().__init__(api_key=api_key, base_url=base_url, **options)


def _class_for(preset: Preset) -> type[OpenAICompatibleProvider]:
    title = "".join(part.capitalize() for part in preset.name.replace("-", "_").split("_"))
    return type(
        f"{title}Provider",
        (OpenAICompatibleProvider,),
        {
            "name": preset.name,
            "preset": preset,
            "__doc__": f"The OpenAI Batch API at {preset.name} (see ``batch_llm.providers``).",
            "__module__": __name__,
        },
    )


# Made once: every adapter of a preset is an instance of one class.
_classes = {name: _class_for(preset) for name, preset in PRESETS.items()}


def preset_class(name: str) -> type[OpenAICompatibleProvider]:
    """The adapter class of the preset named ``name``."""
    return _classes[name]
