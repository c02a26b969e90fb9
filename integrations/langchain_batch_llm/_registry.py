"""The LangChain codecs in batch-llm's registry: the built-ins registered, and found again.

This is the one module that imports the built-in codecs, so that none of them imports it back
(the codec shapes are in ``_codec``). Registering imports no provider package: an entry names
its LangChain class as ``"module:Class"``, imported only when a model is built from
``"provider:model"``, and a wrapped model is matched only against classes already imported.
"""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel

from batch_llm import CodecEntry, codec_entries, find_codec, register_codec

from ._anthropic import AnthropicChatCodec
from ._codec import ChatCodec, EmbeddingsCodec, EmbeddingsSettings
from ._gemini import GeminiChatCodec, GeminiEmbeddingsCodec
from ._openai import OpenAIChatCodec, OpenAIEmbeddingsCodec

__all__ = [
    "build_embeddings_codec",
    "build_inner_model",
    "codec_for",
    "embeddings_codec_for",
    "split_model_id",
]

CHAT = ChatCodec.kind
EMBEDDINGS = EmbeddingsCodec.kind

# OpenAI-compatible models (BaseChatOpenAI subclasses) speak OpenAI's batch API too. Registered
# before ChatOpenAI, which "openai" then names: the latest registration wins a provider name.
register_codec(
    CHAT,
    "openai",
    "langchain_openai.chat_models.base:BaseChatOpenAI",
    OpenAIChatCodec,
    package="langchain-openai",
)
register_codec(
    CHAT, "openai", "langchain_openai:ChatOpenAI", OpenAIChatCodec, package="langchain-openai"
)
register_codec(
    CHAT,
    "anthropic",
    "langchain_anthropic:ChatAnthropic",
    AnthropicChatCodec,
    package="langchain-anthropic",
)
register_codec(
    CHAT,
    "google_genai",
    "langchain_google_genai:ChatGoogleGenerativeAI",
    GeminiChatCodec,
    package="langchain-google-genai",
    aliases=("gemini",),
)
register_codec(
    EMBEDDINGS,
    "openai",
    "langchain_openai:OpenAIEmbeddings",
    OpenAIEmbeddingsCodec,
    package="langchain-openai",
)
register_codec(
    EMBEDDINGS,
    "google_genai",
    "langchain_google_genai:GoogleGenerativeAIEmbeddings",
    GeminiEmbeddingsCodec,
    package="langchain-google-genai",
    aliases=("gemini",),
)


def split_model_id(model: str, provider: str | None, kind: str = CHAT) -> tuple[str, str]:
    """``"openai:gpt-4o"`` -> ``("openai", "gpt-4o")``; an explicit ``provider`` wins."""
    if provider:
        return provider, model
    prefix, sep, name = model.partition(":")
    names = _provider_names(kind)
    if sep and prefix in names:
        return prefix, name
    raise ValueError(
        f"cannot tell the provider of model {model!r}: write it as 'provider:model' "
        f"(providers: {', '.join(names)}) or pass provider=..."
    )


def _provider_entry(kind: str, provider: str, wrapper: str) -> CodecEntry:
    """The codec registered for ``provider``; ``wrapper`` names who asks, for the error."""
    entry = find_codec(kind, provider=provider)
    if entry is None:
        raise ValueError(
            f"unknown provider {provider!r}; batch-llm's {wrapper} supports "
            f"{', '.join(_provider_names(kind))}"
        )
    return entry


def build_inner_model(provider: str, **params: Any) -> BaseChatModel:
    """The provider's own LangChain chat model, built from standard params."""
    cls = _provider_entry(CHAT, provider, "BatchChatModel").model_class()
    model: BaseChatModel = cls(**params)
    return model


def codec_for(inner: BaseChatModel) -> ChatCodec:
    """The codec that reads and writes for ``inner``'s provider."""
    entry = _model_entry(CHAT, inner, "BatchChatModel")
    codec: ChatCodec = _codec_class(entry, ChatCodec)(inner)
    return codec


def build_embeddings_codec(provider: str, settings: EmbeddingsSettings) -> EmbeddingsCodec:
    """The embeddings codec for ``provider``, built from ``BatchEmbeddings``' settings."""
    entry = _provider_entry(EMBEDDINGS, provider, "BatchEmbeddings")
    codec: EmbeddingsCodec = _codec_class(entry, EmbeddingsCodec).build(settings)
    return codec


def embeddings_codec_for(embeddings: Any, settings: EmbeddingsSettings) -> EmbeddingsCodec:
    """The embeddings codec for the provider's own embeddings model ``embeddings``."""
    entry = _model_entry(EMBEDDINGS, embeddings, "BatchEmbeddings")
    codec: EmbeddingsCodec = _codec_class(entry, EmbeddingsCodec).wrap(embeddings, settings)
    return codec


def _model_entry(kind: str, model: Any, wrapper: str) -> CodecEntry:
    entry = find_codec(kind, model=model)
    if entry is None:
        raise TypeError(
            f"{wrapper} cannot batch {type(model).__name__}: wrap {_classes(kind)}, "
            "or build one with model='provider:model'"
        )
    return entry


def _codec_class(entry: CodecEntry, base: type[Any]) -> type[Any]:
    """The entry's codec, checked to be of the shape its kind needs (``base``)."""
    codec = entry.codec
    if not issubclass(codec, base):
        raise TypeError(f"{codec.__name__}, registered for {entry.target}, is no {base.__name__}")
    return codec


def _provider_names(kind: str) -> list[str]:
    return sorted({name for entry in codec_entries(kind) for name in entry.names})


def _classes(kind: str) -> str:
    """The model classes registered for ``kind``, by name, as a user would write them."""
    names = dict.fromkeys(entry.target.partition(":")[2] for entry in codec_entries(kind))
    return ", ".join(reversed(names))
