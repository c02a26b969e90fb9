"""batch-llm: run LLM and embedding calls through the providers' Batch APIs at batch price.

The framework wrappers (``langchain_batch_llm``, ``llama_index.llms.batch_llm``,
``llama_index.embeddings.batch_llm``) are what most users touch. This package is the
framework-agnostic core they share: the scheduler that turns many requests into few provider
batches, the provider adapters, and the offline emulator (``batch_llm.emulator``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._codecs import BatchRequest, CodecEntry, codec_entries, find_codec, register_codec
from ._config import Config
from ._cost import CostReport, CostRow, PriceTable, get_prices, set_prices
from ._default import cost_report, dry_run, get_scheduler, set_scheduler
from ._dry_run import DryRunReport, PlannedBatch
from ._errors import (
    BatchCancelledError,
    BatchError,
    BatchExpiredError,
    BatchFailedError,
    BatchLLMError,
    BatchLLMWarning,
    DryRunError,
    InvalidRequestError,
    JournalError,
    MalformedResultError,
    MissingResultError,
    RequestTooLargeError,
    SchedulerClosedError,
    UnknownProviderError,
    UnsupportedEndpointError,
)
from ._events import JsonlEvents
from ._futures import RequestFuture
from ._journal import PostgresJournal, SQLiteJournal
from ._poll import PollPolicy
from ._progress import track_progress
from ._rounds import Round
from ._scheduler import BatchRecord, Scheduler
from ._waiting import gather, wait
from .providers import (
    AnthropicProvider,
    FakeProvider,
    GeminiProvider,
    OpenAIProvider,
    Provider,
    resolve_provider,
)

try:
    __version__ = version("batch-llm")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "AnthropicProvider",
    "BatchCancelledError",
    "BatchError",
    "BatchExpiredError",
    "BatchFailedError",
    "BatchLLMError",
    "BatchLLMWarning",
    "BatchRecord",
    "BatchRequest",
    "CodecEntry",
    "Config",
    "CostReport",
    "CostRow",
    "DryRunError",
    "DryRunReport",
    "FakeProvider",
    "GeminiProvider",
    "InvalidRequestError",
    "JournalError",
    "JsonlEvents",
    "MalformedResultError",
    "MissingResultError",
    "OpenAIProvider",
    "PlannedBatch",
    "PollPolicy",
    "PostgresJournal",
    "PriceTable",
    "Provider",
    "RequestFuture",
    "RequestTooLargeError",
    "Round",
    "SQLiteJournal",
    "Scheduler",
    "SchedulerClosedError",
    "UnknownProviderError",
    "UnsupportedEndpointError",
    "__version__",
    "codec_entries",
    "cost_report",
    "dry_run",
    "find_codec",
    "gather",
    "get_prices",
    "get_scheduler",
    "register_codec",
    "resolve_provider",
    "set_prices",
    "set_scheduler",
    "track_progress",
    "wait",
]
