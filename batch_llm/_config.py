"""Settings read from constructor arguments first, then ``BATCH_LLM_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Config", "ProgressOption"]

#: ``progress=``: None (the default policy), True/False (force), or a tqdm-like factory.
ProgressOption = bool | Callable[..., Any] | None

_DEFAULT_WINDOW = 3.0
_DEFAULT_POLL_INTERVAL = 1.0
_DEFAULT_POLL_MAX = 3600.0
_DEFAULT_LEASE = 30.0


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {raw!r}")
    return value


def _env_bool(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0, got {raw!r}")


@dataclass(frozen=True, slots=True)
class Config:
    """Scheduler settings.

    Attributes:
        window: seconds without a new single call after which a queue of them is submitted,
            at most ten windows after its first (``BATCH_LLM_WINDOW``). Fan-outs flush
            explicitly and never wait for it.
        poll_interval: the first poll interval in seconds (``BATCH_LLM_POLL_INTERVAL``).
        poll_max: the longest poll interval in seconds (``BATCH_LLM_POLL_MAX``).
        journal: where the journal lives (``BATCH_LLM_JOURNAL``); reserved.
        dry_run: plan batches instead of submitting them (``BATCH_LLM_DRY_RUN=1``).
        lease: seconds a scheduler's claim on a batch holds in a shared journal unless it
            renews it (``BATCH_LLM_LEASE``): how long others wait before taking over the
            batches of a scheduler that died.
        events: a JSON-lines file every scheduler writes its events to
            (``BATCH_LLM_EVENTS``).
    """

    window: float = _DEFAULT_WINDOW
    poll_interval: float = _DEFAULT_POLL_INTERVAL
    poll_max: float = _DEFAULT_POLL_MAX
    journal: str | None = None
    dry_run: bool = False
    events: str | None = None
    lease: float = _DEFAULT_LEASE

    @classmethod
    def from_env(
        cls,
        *,
        window: float | None = None,
        poll_interval: float | None = None,
        poll_max: float | None = None,
        journal: str | None = None,
        dry_run: bool | None = None,
        lease: float | None = None,
    ) -> Config:
        """Build a config where explicit arguments win over the environment."""
        return cls(
            window=window
            if window is not None
            else _env_float("BATCH_LLM_WINDOW", _DEFAULT_WINDOW),
            poll_interval=(
                poll_interval
                if poll_interval is not None
                else _env_float("BATCH_LLM_POLL_INTERVAL", _DEFAULT_POLL_INTERVAL)
            ),
            poll_max=(
                poll_max
                if poll_max is not None
                else _env_float("BATCH_LLM_POLL_MAX", _DEFAULT_POLL_MAX)
            ),
            journal=journal if journal is not None else os.environ.get("BATCH_LLM_JOURNAL"),
            dry_run=dry_run if dry_run is not None else _env_bool("BATCH_LLM_DRY_RUN"),
            events=os.environ.get("BATCH_LLM_EVENTS") or None,
            lease=lease if lease is not None else _env_float("BATCH_LLM_LEASE", _DEFAULT_LEASE),
        )
