"""The public surface is what `__all__` says, no more, no less."""

import pytest

import batch_llm
import batch_llm.emulator
import batch_llm.providers


def test_core_public_names_are_pinned() -> None:
    assert sorted(batch_llm.__all__) == sorted(
        [
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
    )
    for name in batch_llm.__all__:
        assert hasattr(batch_llm, name), name


def test_every_exported_name_exists_in_subpackages() -> None:
    for module in (batch_llm.providers, batch_llm.emulator):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
        private = [n for n in module.__all__ if n.startswith("_")]
        assert private == []


def test_a_line_of_a_batch_keeps_its_old_name_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="Prepared is now batch_llm.providers.Line"):
        old = batch_llm.providers.Prepared  # type: ignore[attr-defined]
    assert old is batch_llm.providers.Line
    assert "Prepared" not in batch_llm.providers.__all__
