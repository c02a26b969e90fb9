"""LangChain models that run through the providers' Batch APIs, at batch price.

from langchain_batch_llm import BatchChatModel
llm = BatchChatModel(model="openai:gpt-4o-mini", temperature=0)
answers = (prompt | llm | parser).batch(questions)   # one provider batch

For fan-outs LangChain runs itself (RunnableParallel, LangGraph, agents), run them with
``langchain_batch_llm.batch(runnable, inputs)``: one batch per round of model calls.

A provider of your own is a codec registered with ``batch_llm.register_codec`` under
``ChatCodec.kind`` or ``EmbeddingsCodec.kind``.
"""

from ._chat import BatchChatModel
from ._codec import ChatCodec, EmbeddingsCodec, EmbeddingsSettings
from ._embeddings import BatchEmbeddings
from ._rounds import abatch, asweep, batch, sweep
from ._slot import ModelSlot

__all__ = [
    "BatchChatModel",
    "BatchEmbeddings",
    "ChatCodec",
    "EmbeddingsCodec",
    "EmbeddingsSettings",
    "ModelSlot",
    "abatch",
    "asweep",
    "batch",
    "sweep",
]
