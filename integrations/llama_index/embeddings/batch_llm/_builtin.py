"""The codecs batch-llm ships for LlamaIndex embeddings, registered with the core's registry
by class path (``"module:Class"``), so that no provider package loads before an embedding of
that provider is built or wrapped.
"""

from __future__ import annotations

import batch_llm

from ._codecs import KIND
from ._gemini import GeminiEmbeddingCodec
from ._openai import OpenAIEmbeddingCodec

__all__: list[str] = []

batch_llm.register_codec(
    KIND,
    OpenAIEmbeddingCodec.provider_name,
    "llama_index.embeddings.openai:OpenAIEmbedding",
    OpenAIEmbeddingCodec,
    package="llama-index-embeddings-openai",
)
batch_llm.register_codec(
    KIND,
    GeminiEmbeddingCodec.provider_name,
    "llama_index.embeddings.google_genai:GoogleGenAIEmbedding",
    GeminiEmbeddingCodec,
    package="llama-index-embeddings-google-genai",
    aliases=("gemini",),
)
