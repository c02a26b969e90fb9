"""LangChain models that run through the providers' Batch APIs, at batch price.

from langchain_batch_llm import BatchChatModel
llm = BatchChatModel(model="openai:gpt-4o-mini", temperature=0)
answers = (prompt | llm | parser).batch(questions)   # one provider batch
"""

from ._chat import BatchChatModel
from ._embeddings import BatchEmbeddings

__all__ = ["BatchChatModel", "BatchEmbeddings"]
