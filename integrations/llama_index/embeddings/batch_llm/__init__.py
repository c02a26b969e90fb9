"""LlamaIndex embeddings that run through the providers' Batch APIs, at batch price.

from llama_index.core import Settings
from llama_index.embeddings.batch_llm import BatchEmbedding

Settings.embed_model = BatchEmbedding(model="openai:text-embedding-3-small")
"""

from .base import BatchEmbedding

__all__ = ["BatchEmbedding"]
