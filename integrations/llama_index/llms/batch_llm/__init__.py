"""LlamaIndex LLMs that run through the providers' Batch APIs, at batch price.

from llama_index.core import Settings
from llama_index.llms.batch_llm import BatchLLM

Settings.llm = BatchLLM(model="openai:gpt-4o-mini")

Another provider's LlamaIndex LLM class is taught with a ``ChatCodec`` subclass, registered as
``batch_llm.register_codec("llama_index.llm", provider, "module:Class", codec, package=...)``;
``llama_index.llms.batch_llm.shared`` holds the helpers the built-in codecs use.
"""

from ._codecs import ChatCodec, StructuredCall
from ._eval import arun_eval_sweep, batch_eval_runner, run_eval_sweep
from ._staging import gather_in_batches
from .base import BatchLLM

__all__ = [
    "BatchLLM",
    "ChatCodec",
    "StructuredCall",
    "arun_eval_sweep",
    "batch_eval_runner",
    "gather_in_batches",
    "run_eval_sweep",
]
