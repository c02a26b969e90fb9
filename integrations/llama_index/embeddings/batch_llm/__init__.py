"""LlamaIndex embeddings that run through the providers' Batch APIs, at batch price.

from llama_index.core import Settings
from llama_index.embeddings.batch_llm import BatchEmbedding

Settings.embed_model = BatchEmbedding(model="openai:text-embedding-3-small")

Another provider's LlamaIndex embedding class is taught with an ``EmbeddingCodec`` subclass,
registered as ``batch_llm.register_codec("llama_index.embedding", provider, "module:Class",
codec, package=...)``.
"""

from ._codecs import EmbeddingCodec
from .base import BatchEmbedding

__all__ = ["BatchEmbedding", "EmbeddingCodec"]
