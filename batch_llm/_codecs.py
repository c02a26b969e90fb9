"""One registry of codecs for every framework integration.

A codec is what lets a framework's model run through a batch: it asks the provider's own
framework class (``ChatOpenAI``, LlamaIndex's ``OpenAI``...) for the request its realtime call
would send, and reads the batch's answer back as that call would. Each integration defines one
base shape per kind of model (LangChain chat models and embeddings, LlamaIndex LLMs and
embeddings); this module only remembers which codec serves which framework class, so that all
four kinds are registered, and found, the same way::

    register_codec("langchain.chat", "openai", "langchain_openai:ChatOpenAI", OpenAIChatCodec,
                   package="langchain-openai")

A codec is found for a model by the model's class, never by its name: the registered class
is looked up among modules already imported (an object cannot be an instance of a class whose
module was never imported), so finding a codec imports no provider package. Building a model
from ``"provider:model"`` imports its class, with an install hint when it is missing.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BatchRequest", "CodecEntry", "codec_entries", "find_codec", "register_codec"]


@dataclass(slots=True)
class BatchRequest:
    """One request a codec built: where it goes, its body, and what reading its answer needs
    (``context``, the codec's own)."""

    endpoint: str
    body: dict[str, Any]
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CodecEntry:
    """One registered codec.

    Attributes:
        kind: the kind of model, such as ``"langchain.chat"`` or ``"llama_index.llm"``.
        provider: the provider name users write before the colon in ``"openai:gpt-4o-mini"``.
        target: the framework class the codec serves, as ``"module:Class"``.
        codec: the codec class.
        package: what to ``pip install`` for ``target``.
        aliases: other provider names that mean this one (``"gemini"`` for
            ``"google_genai"``).
    """

    kind: str
    provider: str
    target: str
    codec: type[Any]
    package: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The provider name and its aliases."""
        return (self.provider, *self.aliases)

    def loaded_class(self) -> type[Any] | None:
        """The target class if its module is imported already (else nothing can be one)."""
        module_name, _, class_name = self.target.partition(":")
        module = sys.modules.get(module_name)
        found = getattr(module, class_name, None) if module is not None else None
        return found if isinstance(found, type) else None

    def model_class(self) -> type[Any]:
        """The target class, imported now; ``ImportError`` says what to install."""
        module_name, _, class_name = self.target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            raise ImportError(
                f"{self.provider} models need {class_name} from {module_name}: "
                f"pip install {self.package}"
            ) from None
        if not isinstance(found, type):
            raise ImportError(f"{self.target} is not a class")
        return found


_entries: list[CodecEntry] = []
_lock = threading.Lock()


def register_codec(
    kind: str,
    provider: str,
    target: str,
    codec: type[Any],
    *,
    package: str,
    aliases: Iterable[str] = (),
) -> CodecEntry:
    """Register ``codec`` as the way ``kind`` models of class ``target`` (``"module:Class"``)
    run through batches, for ``provider`` (and its ``aliases``). A later registration for the
    same kind and target replaces the earlier one, so an application can override a built-in
    codec."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    entry = CodecEntry(kind, provider, target, codec, package, tuple(aliases))
    with _lock:
        _entries[:] = [e for e in _entries if (e.kind, e.target) != (kind, target)]
        _entries.append(entry)
    return entry


def codec_entries(kind: str) -> list[CodecEntry]:
    """The codecs registered for ``kind``, latest first."""
    with _lock:
        return [e for e in reversed(_entries) if e.kind == kind]


def find_codec(kind: str, model: Any = None, *, provider: str | None = None) -> CodecEntry | None:
    """The codec for ``model`` (by its class, the most specific registration winning), or for
    ``provider`` by name; None if none is registered."""
    entries = codec_entries(kind)
    if model is not None:
        best: tuple[int, CodecEntry] | None = None
        for entry in entries:
            cls = entry.loaded_class()
            if cls is not None and isinstance(model, cls):
                depth = len(cls.__mro__)
                if best is None or depth > best[0]:
                    best = (depth, entry)
        return best[1] if best is not None else None
    if provider is not None:
        return next((e for e in entries if provider in e.names), None)
    return None
