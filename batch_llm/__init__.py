"""batch-llm: run LLM and embedding calls through the providers' Batch APIs at batch price.

The framework wrappers (``langchain_batch_llm``, ``llama_index.llms.batch_llm``,
``llama_index.embeddings.batch_llm``) are what most users touch. This package is the
framework-agnostic core they share: the scheduler that turns many requests into few provider
batches, the provider adapters, and the offline emulator (``batch_llm.emulator``).

``import batch_llm`` loads nothing but this file (a millisecond or two): each public name is
imported from its module the first time it is used (PEP 562), so a CLI, a worker or a test
that needs one error class does not pay for asyncio, the SDK adapters and tenacity.
"""

# Not typing.TYPE_CHECKING: importing typing would cost more than the rest of this file.
TYPE_CHECKING = False

# Kept in step with pyproject.toml's version by a test; read from package metadata it cost
# 35 ms of importlib.metadata on every import.
__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, __getattr__ below
    from ._batch import BatchRecord
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
    from ._scheduler import Scheduler
    from ._waiting import gather, wait
    from .providers import (
        AnthropicProvider,
        FakeProvider,
        GeminiProvider,
        OpenAIProvider,
        Provider,
        resolve_provider,
    )

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

# The module each public name lives in; the TYPE_CHECKING block above says the same (a test
# holds the two, and __all__, together).
_MODULES = {
    name: module
    for module, names in {
        "._batch": "BatchRecord",
        "._codecs": "BatchRequest CodecEntry codec_entries find_codec register_codec",
        "._config": "Config",
        "._cost": "CostReport CostRow PriceTable get_prices set_prices",
        "._default": "cost_report dry_run get_scheduler set_scheduler",
        "._dry_run": "DryRunReport PlannedBatch",
        "._errors": "BatchCancelledError BatchError BatchExpiredError BatchFailedError"
        " BatchLLMError BatchLLMWarning DryRunError InvalidRequestError JournalError"
        " MalformedResultError MissingResultError RequestTooLargeError SchedulerClosedError"
        " UnknownProviderError UnsupportedEndpointError",
        "._events": "JsonlEvents",
        "._futures": "RequestFuture",
        "._journal": "PostgresJournal SQLiteJournal",
        "._poll": "PollPolicy",
        "._progress": "track_progress",
        "._rounds": "Round",
        "._scheduler": "Scheduler",
        "._waiting": "gather wait",
        ".providers": "AnthropicProvider FakeProvider GeminiProvider OpenAIProvider Provider"
        " resolve_provider",
    }.items()
    for name in names.split()
}

if not TYPE_CHECKING:  # hidden from type checkers, so a misspelt name is still an error there

    def __getattr__(name: str) -> object:
        from importlib import import_module

        if name == "providers":  # the subpackage, which `import batch_llm` used to bind too
            return import_module(".providers", __name__)
        module = _MODULES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(import_module(module, __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
