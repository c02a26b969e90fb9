"""The codecs batch-llm ships for LlamaIndex LLMs, registered with the core's registry.

Registering names each integration's class as ``"module:Class"``, so importing this module
imports no provider package: a codec is found for an instance only once its class is loaded,
and a class is imported only when ``BatchLLM`` builds one from ``"provider:model"``.
"""

from __future__ import annotations

import batch_llm

from ._anthropic import AnthropicChatCodec
from ._codecs import KIND
from ._gemini import GeminiChatCodec
from ._openai import OpenAIChatCodec

__all__: list[str] = []

batch_llm.register_codec(
    KIND,
    OpenAIChatCodec.provider_name,
    "llama_index.llms.openai:OpenAI",
    OpenAIChatCodec,
    package="llama-index-llms-openai",
)
batch_llm.register_codec(
    KIND,
    AnthropicChatCodec.provider_name,
    "llama_index.llms.anthropic:Anthropic",
    AnthropicChatCodec,
    package="llama-index-llms-anthropic",
)
batch_llm.register_codec(
    KIND,
    GeminiChatCodec.provider_name,
    "llama_index.llms.google_genai:GoogleGenAI",
    GeminiChatCodec,
    package="llama-index-llms-google-genai",
    aliases=("gemini",),
)
