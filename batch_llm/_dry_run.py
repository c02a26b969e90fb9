"""Dry runs: everything up to submission (checking, queueing, cutting into batches by the
providers' limits), then a plan instead of a provider call.

A scheduler built with ``dry_run=True`` (or under ``BATCH_LLM_DRY_RUN=1``) keeps no journal and
calls no provider. Each batch it would have submitted is recorded as a ``PlannedBatch`` and
every request in it fails with ``DryRunError``, so a chain run with ``return_exceptions=True``
goes through to the end. ``dry_run()`` does this for the wrappers' default scheduler::

    with batch_llm.dry_run() as plan:
        chain.batch(inputs, return_exceptions=True)
    print(plan)                     # batches, requests, estimated tokens and cost

Estimates are deliberately cheap: input tokens are the characters of the request's text (every
string in the body but ids, roles, types and the model name) divided by 4; output tokens are
the request's own cap (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``,
``generationConfig.maxOutputTokens``) times the number of choices asked for, else
``DEFAULT_OUTPUT_TOKENS`` per choice; embeddings have none. A cap is an upper bound, so the
estimate leans high.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._batch import Batch, BatchRecord
from ._cost import PriceTable, format_money, format_table, get_prices, model_from_key
from ._errors import DryRunError
from ._futures import RequestFuture
from ._inflight import InFlight
from ._waiters import each, fail_all, settle
from .providers import Line, Provider

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_OUTPUT_TOKENS",
    "DryRunPlanner",
    "DryRunReport",
    "PlannedBatch",
    "estimate",
    "plan_batch",
]

logger = logging.getLogger("batch_llm")

#: The guess of a request's output tokens when it sets no cap.
DEFAULT_OUTPUT_TOKENS = 256
#: Characters per token of the input estimate.
CHARS_PER_TOKEN = 4

# Keys whose strings are not text the model reads as tokens of the prompt.
_NOT_TEXT = frozenset(
    {"model", "role", "type", "id", "tool_call_id", "encoding_format", "mimeType", "mime_type"}
)
_CAPS = ("max_completion_tokens", "max_output_tokens", "max_tokens")


def _text_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k not in _NOT_TEXT)
    if isinstance(value, list):
        return sum(_text_chars(v) for v in value)
    return 0


def estimate(prepared: Line, key: Hashable = None) -> tuple[str, int, int]:
    """``(model, input tokens, output tokens)`` of one request, estimated (module docstring)."""
    try:
        body = json.loads(prepared.data)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    model = body.get("model")
    model = model if isinstance(model, str) and model else model_from_key(key)
    input_tokens = max(1, math.ceil(_text_chars(body) / CHARS_PER_TOKEN))
    if "embed" in prepared.endpoint.lower():
        return model, input_tokens, 0
    config = body.get("generationConfig")
    config = config if isinstance(config, dict) else {}
    cap = next((body[k] for k in _CAPS if isinstance(body.get(k), int)), None)
    if cap is None and isinstance(config.get("maxOutputTokens"), int):
        cap = config["maxOutputTokens"]
    choices = body.get("n") if isinstance(body.get("n"), int) else config.get("candidateCount")
    choices = choices if isinstance(choices, int) and choices > 0 else 1
    return model, input_tokens, (cap if cap is not None else DEFAULT_OUTPUT_TOKENS) * choices


@dataclass(frozen=True, slots=True)
class PlannedBatch:
    """A batch a dry run would have submitted.

    Attributes:
        number: its place in the dry run (1-based); ``DryRunError.batch`` names it.
        provider: the adapter's name.
        endpoint: the endpoint of its lines.
        models: lines per model (Anthropic batches may mix models).
        lines: lines it would hold (identical requests share one).
        requests: callers it would answer.
        bytes: its payload size, envelopes included.
        input_tokens, output_tokens: the estimates (module docstring).
        cost: the estimated batch price in USD; None if a model has no price.
        realtime_cost: the same work at realtime price; None if a model has no price.
    """

    number: int
    provider: str
    endpoint: str
    models: dict[str, int]
    lines: int
    requests: int
    bytes: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    realtime_cost: float | None

    @property
    def model(self) -> str:
        """The model, or ``mixed``."""
        return next(iter(self.models)) if len(self.models) == 1 else "mixed"

    def to_dict(self) -> dict[str, Any]:
        """The batch as plain data."""
        return {**asdict(self), "model": self.model}


def plan_batch(
    number: int,
    provider: str,
    key: Hashable,
    lines: Sequence[Line],
    requests: int,
    prices: PriceTable | None = None,
) -> PlannedBatch:
    """Estimate one batch that is about to be not submitted."""
    table = prices or get_prices()
    per_model: dict[str, list[int]] = {}
    for line in lines:
        model, tokens_in, tokens_out = estimate(line, key)
        entry = per_model.setdefault(model, [0, 0, 0])
        entry[0] += 1
        entry[1] += tokens_in
        entry[2] += tokens_out
    cost: float | None = 0.0
    realtime: float | None = 0.0
    for model, (_, tokens_in, tokens_out) in per_model.items():
        price = table.lookup(provider, model)
        if price is None or cost is None or realtime is None:
            cost = realtime = None
            continue
        cost += price.cost(tokens_in, tokens_out, batch=True)
        realtime += price.cost(tokens_in, tokens_out, batch=False)
    return PlannedBatch(
        number=number,
        provider=provider,
        endpoint=lines[0].endpoint if lines else "",
        models={model: entry[0] for model, entry in per_model.items()},
        lines=len(lines),
        requests=requests,
        bytes=sum(line.nbytes for line in lines),
        input_tokens=sum(entry[1] for entry in per_model.values()),
        output_tokens=sum(entry[2] for entry in per_model.values()),
        cost=cost,
        realtime_cost=realtime,
    )


@dataclass(slots=True)
class DryRunReport:
    """What a dry run would have submitted: its batches, and totals over them.

    Live: a dry-run scheduler adds to it as it plans batches. ``str(report)`` is a table,
    ``to_rows()`` suits ``pandas.DataFrame``, ``to_dict()`` suits JSON.
    """

    batches: list[PlannedBatch] = field(default_factory=list)
    prices_as_of: str = "unknown"
    currency: str = "USD"

    @property
    def requests(self) -> int:
        """Callers the batches would answer."""
        return sum(b.requests for b in self.batches)

    @property
    def lines(self) -> int:
        """Lines the batches would hold."""
        return sum(b.lines for b in self.batches)

    @property
    def bytes(self) -> int:
        """Payload the batches would upload."""
        return sum(b.bytes for b in self.batches)

    @property
    def input_tokens(self) -> int:
        """Estimated input tokens."""
        return sum(b.input_tokens for b in self.batches)

    @property
    def output_tokens(self) -> int:
        """Estimated output tokens (an upper bound where requests cap them)."""
        return sum(b.output_tokens for b in self.batches)

    @property
    def cost(self) -> float:
        """Estimated batch cost in USD, over the batches with prices."""
        return sum(b.cost for b in self.batches if b.cost is not None)

    @property
    def realtime_cost(self) -> float:
        """The same work at realtime price, over the batches with prices."""
        return sum(b.realtime_cost for b in self.batches if b.realtime_cost is not None)

    @property
    def saving(self) -> float:
        """``realtime_cost - cost``."""
        return self.realtime_cost - self.cost

    @property
    def unpriced(self) -> list[int]:
        """Numbers of the batches with a model the price table does not know."""
        return [b.number for b in self.batches if b.cost is None]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per planned batch."""
        return [b.to_dict() for b in list(self.batches)]

    def to_dict(self) -> dict[str, Any]:
        """Batches and totals as plain data."""
        return {
            "currency": self.currency,
            "prices_as_of": self.prices_as_of,
            "batches": self.to_rows(),
            "totals": {
                "batches": len(self.batches),
                "requests": self.requests,
                "lines": self.lines,
                "bytes": self.bytes,
                "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens,
                "cost": self.cost,
                "realtime_cost": self.realtime_cost,
                "saving": self.saving,
                "unpriced": self.unpriced,
            },
            "estimates": {
                "chars_per_token": CHARS_PER_TOKEN,
                "default_output_tokens": DEFAULT_OUTPUT_TOKENS,
            },
        }

    def __str__(self) -> str:
        batches = list(self.batches)
        if not batches:
            return "batch-llm dry run: no batches planned"
        headers = ["#", "provider", "endpoint", "model", "requests", "lines", "MB"]
        headers += ["~input", "~output", "~cost", "~realtime"]
        rows = [
            [
                str(b.number),
                b.provider,
                b.endpoint,
                b.model,
                f"{b.requests:,}",
                f"{b.lines:,}",
                f"{b.bytes / 1e6:,.1f}",
                f"{b.input_tokens:,}",
                f"{b.output_tokens:,}",
                format_money(b.cost),
                format_money(b.realtime_cost),
            ]
            for b in batches
        ]
        rows.append(
            [
                "",
                "total",
                "",
                "",
                f"{self.requests:,}",
                f"{self.lines:,}",
                f"{self.bytes / 1e6:,.1f}",
                f"{self.input_tokens:,}",
                f"{self.output_tokens:,}",
                format_money(self.cost),
                format_money(self.realtime_cost),
            ]
        )
        lines = [
            f"batch-llm dry run: {len(batches)} batch(es), nothing submitted "
            f"({self.currency}, prices as of {self.prices_as_of})",
            format_table(headers, rows, right=[0, *range(4, len(headers))]),
            f"estimates: input = text characters / {CHARS_PER_TOKEN}; output = the request's "
            f"max tokens, else {DEFAULT_OUTPUT_TOKENS}",
        ]
        if self.unpriced:
            lines.append(
                "unknown price (left out of the totals): batch "
                + ", ".join(str(n) for n in self.unpriced)
            )
        return "\n".join(lines)


class DryRunPlanner:
    """A dry run's runner: each batch the scheduler cuts is planned instead of submitted, and
    its callers fail with ``DryRunError`` naming the planned batch."""

    def __init__(self, plan: DryRunReport, inflight: InFlight) -> None:
        self.plan = plan
        self.inflight = inflight
        # Nothing is submitted, so nothing is ever on record.
        self.records: list[BatchRecord] = []

    def launch(self, batch: Batch) -> None:
        """Plan a freshly cut batch."""
        self._plan(batch)

    def resume(self, batch: Batch) -> None:
        """A dry run keeps no journal, so nothing is picked up; plan it like a new batch."""
        self._plan(batch)

    def unsent(self, batches: list[Batch]) -> None:
        """What was still queued at close is part of the plan too."""
        for batch in batches:
            self._plan(batch)

    def realtime(self, provider: Provider, line: Line, future: RequestFuture) -> None:
        """Nothing is sent in a dry run, realtime included."""
        settle(
            future,
            DryRunError(
                f"dry run: nothing was sent; this request would have gone to "
                f"{provider.name} realtime, at full price"
            ),
        )

    async def shutdown(self, cancel: bool) -> dict[str, list[str]]:
        """Nothing runs upstream."""
        return {"cancelled": [], "left_running": [], "left_unread": []}

    def _plan(self, batch: Batch) -> None:
        plan = self.plan
        batch.finished = True
        lines = batch.take_lines()
        self.inflight.untrack(batch)
        if not lines:
            return
        requests = sum(len(each(w)) for w in batch.pending.values())
        try:
            planned = plan_batch(
                len(plan.batches) + 1, batch.provider.name, batch.key, lines, requests
            )
        except Exception as exc:  # an estimate must not leave callers waiting
            logger.exception("planning a dry-run batch failed")
            fail_all(batch.pending, exc)
            return
        plan.batches.append(planned)
        logger.info(
            "dry run: would submit batch %d to %s: %d requests in %d lines (%s)",
            planned.number,
            batch.provider.describe(),
            requests,
            planned.lines,
            planned.model,
        )
        error = DryRunError(
            f"dry run: nothing was sent; this request was planned into batch {planned.number} "
            f"({planned.provider} {planned.endpoint} {planned.model}, {planned.lines:,} lines)",
            batch=planned.number,
        )
        fail_all(batch.pending, error)
