"""What a run cost: token usage read from the answers, priced from a table kept as data.

The price table ships as ``prices.json`` (realtime prices per 1M tokens and each provider's
batch discount) and is merged with the user's overrides: ``BATCH_LLM_PRICES=/path.json`` and
``set_prices(...)``. Models the table does not know cost "unknown", never 0.

Usage is counted as answers are handed out (see ``_lifecycle``): one small list of integers per
(provider, model, kind), where kind says how the answer was obtained:

- ``batch``: read from a provider batch this run (billed at the batch price);
- ``realtime``: sent realtime by an expiry or deadline escalation (billed at full price);
- ``replayed``: taken from the journal, fetched and paid for by an earlier run. Reported on
  their own rows (``billed=False``) and left out of the totals: this run paid nothing for them.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time, importing the providers here would load every adapter
    from .providers import Usage

__all__ = [
    "CostReport",
    "CostRow",
    "ModelPrice",
    "PriceTable",
    "UsageMeter",
    "format_money",
    "format_table",
    "get_prices",
    "model_from_key",
    "set_prices",
]

_MILLION = 1_000_000
# Dated snapshots and aliases of a model price like the model: gpt-4o-mini-2024-07-18,
# claude-3-5-haiku-20241022, claude-3-5-sonnet@20240620 (Vertex), gemini-2.0-flash-001, -latest.
_SNAPSHOT = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@\d{8}|-\d{3}|-latest)$")

KINDS = ("batch", "realtime", "replayed")
# Fields of one meter entry, in order.
_ANSWERS, _UNMETERED, _INPUT, _CACHED, _WRITTEN, _OUTPUT = range(6)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model's realtime prices (USD per 1M tokens) and its batch discounts.

    Attributes:
        input: uncached prompt tokens.
        output: answer tokens (reasoning included).
        cached_input: prompt tokens read from the prompt cache.
        cache_write: prompt tokens written to the prompt cache (Anthropic).
        batch_discount: the share of the price a batch saves (0.5: half price).
        cached_batch_discount: the same for cached prompt tokens (Gemini bills those in batch
            at the non-batch cached rate: 0).
        model: the table's name for the model (the snapshot's family).
    """

    input: float
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None
    batch_discount: float = 0.5
    cached_batch_discount: float = 0.5
    model: str = ""

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        *,
        batch: bool,
    ) -> float:
        """USD for these tokens, at the batch price or the realtime one."""
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        plain = max(0, input_tokens - cached_input_tokens - cache_write_tokens)
        keep = 1.0 - self.batch_discount if batch else 1.0
        keep_cached = 1.0 - self.cached_batch_discount if batch else 1.0
        total = (
            plain * self.input * keep
            + cache_write_tokens * write_price * keep
            + output_tokens * self.output * keep
            + cached_input_tokens * cached_price * keep_cached
        )
        return total / _MILLION


class PriceTable:
    """Prices by provider and model, as loaded from ``prices.json`` plus overrides.

    The data's shape (what ``set_prices`` and ``BATCH_LLM_PRICES`` take too; an override may
    leave out ``providers`` and name the providers at the top level)::

        {"as_of": "2025-11-01",
         "providers": {"openai": {"batch_discount": 0.5, "cached_batch_discount": 0.5,
                                  "models": {"gpt-4o-mini": {"input": 0.15,
                                                             "cached_input": 0.075,
                                                             "output": 0.6}}}}}

    A model entry may carry its own ``batch_discount``/``cached_batch_discount``.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data: dict[str, Any] = _normalize(data)
        self.as_of: str = str(self.data.get("as_of") or "unknown")
        self._cache: dict[tuple[str, str], ModelPrice | None] = {}

    def merged(self, override: Mapping[str, Any]) -> PriceTable:
        """A new table: this one with ``override`` laid over it (model entries field by
        field)."""
        mine, theirs = self.data, _normalize(override)
        merged: dict[str, Any] = {**mine, **{k: v for k, v in theirs.items() if k != "providers"}}
        providers = {name: dict(entry) for name, entry in mine["providers"].items()}
        for name, entry in theirs["providers"].items():
            current = providers.setdefault(name, {"models": {}})
            models = {m: dict(p) for m, p in (current.get("models") or {}).items()}
            for model, price in (entry.get("models") or {}).items():
                models[model.lower()] = {**models.get(model.lower(), {}), **price}
            current.update({k: v for k, v in entry.items() if k != "models"})
            current["models"] = models
        merged["providers"] = providers
        return PriceTable(merged)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """The price of ``model`` at ``provider``, its dated snapshots included; None if the
        table does not know it."""
        key = (provider, model)
        if key in self._cache:
            return self._cache[key]
        found = self._find(provider, model)
        self._cache[key] = found
        return found

    def _find(self, provider: str, model: str) -> ModelPrice | None:
        entry = self.data["providers"].get(provider)
        if not entry:
            return None
        models = entry.get("models") or {}
        for name in _candidates(model):
            price = models.get(name)
            if price is None:
                continue
            try:
                return ModelPrice(
                    input=float(price["input"]),
                    output=float(price.get("output", 0.0)),
                    cached_input=_maybe_float(price.get("cached_input")),
                    cache_write=_maybe_float(price.get("cache_write")),
                    batch_discount=float(
                        price.get("batch_discount", entry.get("batch_discount", 0.5))
                    ),
                    cached_batch_discount=float(
                        price.get(
                            "cached_batch_discount",
                            entry.get("cached_batch_discount", entry.get("batch_discount", 0.5)),
                        )
                    ),
                    model=name,
                )
            except (KeyError, TypeError, ValueError):  # a malformed override prices nothing
                return None
        return None

    def to_dict(self) -> dict[str, Any]:
        """The table as plain data (the shape of ``prices.json``)."""
        return json.loads(json.dumps(self.data))  # type: ignore[no-any-return]


def _candidates(model: str) -> Iterable[str]:
    name = model.strip().lower().removeprefix("models/")
    yield name
    while (match := _SNAPSHOT.search(name)) is not None:
        name = name[: match.start()]
        yield name


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _normalize(data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"prices must be a mapping, got {type(data).__name__}")
    if "providers" in data:
        out = dict(data)
        providers = data["providers"]
    else:  # the short form: providers at the top level
        out = {k: v for k, v in data.items() if k in ("as_of", "about", "currency")}
        providers = {k: v for k, v in data.items() if k not in out}
    if not isinstance(providers, Mapping):
        raise TypeError("prices: 'providers' must be a mapping of provider -> entry")
    normalized: dict[str, Any] = {}
    for name, entry in providers.items():
        if not isinstance(entry, Mapping):
            raise TypeError(f"prices: the entry of provider {name!r} must be a mapping")
        models = entry.get("models") or {}
        if not isinstance(models, Mapping):
            raise TypeError(f"prices: the models of provider {name!r} must be a mapping")
        normalized[name] = {
            **entry,
            "models": {str(m).lower(): dict(p) for m, p in models.items()},
        }
    out["providers"] = normalized
    return out


# -- the table in force ---------------------------------------------------------------------

_lock = threading.Lock()
_override: dict[str, Any] | None = None
_current: tuple[str | None, dict[str, Any] | None, PriceTable] | None = None


def _load(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    with open(source, encoding="utf-8") as file:
        data = json.load(file)
    if not isinstance(data, dict):
        raise TypeError(f"{source}: prices must be a JSON object")
    return data


def _defaults() -> PriceTable:
    from importlib import resources

    text = resources.files("batch_llm").joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable(json.loads(text))


def get_prices() -> PriceTable:
    """The price table in force: the shipped one, ``BATCH_LLM_PRICES`` over it, then whatever
    ``set_prices`` was given."""
    global _current
    env = os.environ.get("BATCH_LLM_PRICES") or None
    with _lock:
        if _current is not None and _current[0] == env and _current[1] is _override:
            return _current[2]
        table = _defaults()
        if env is not None:
            table = table.merged(_load(env))
        if _override is not None:
            table = table.merged(_override)
        _current = (env, _override, table)
        return table


def set_prices(
    prices: Mapping[str, Any] | str | os.PathLike[str] | None,
) -> PriceTable:
    """Override prices, from a dict or a JSON file, merged over the shipped table (and over
    ``BATCH_LLM_PRICES``); ``None`` drops the override. Returns the table now in force.

    ``set_prices({"openai": {"models": {"my-model": {"input": 1.0, "output": 2.0}}}})``
    prices one more model; the full shape is ``PriceTable``'s.
    """
    global _override
    data = None if prices is None else _normalize(_load(prices))
    with _lock:
        _override = data
    return get_prices()


# -- counting -------------------------------------------------------------------------------


def model_from_key(key: Hashable) -> str:
    """The model named by a provider's grouping key, when it names one (OpenAI and Gemini
    keys are ``(endpoint, model)``); ""."""
    if isinstance(key, tuple) and len(key) >= 2 and isinstance(key[-1], str):
        return key[-1].removeprefix("models/")
    return ""


class UsageMeter:
    """Token usage summed by (provider, model, kind); see the module docstring.

    Only the scheduler's loop adds to a meter; readers take a snapshot.
    """

    __slots__ = ("totals",)

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str], list[int]] = {}

    def add(self, provider: str, kind: str, usage: Usage | None, model: str = "") -> None:
        """Count one answer (``usage`` None: the answer reported none)."""
        name = usage.model if usage is not None and usage.model else model
        entry = self.totals.get((provider, name, kind))
        if entry is None:
            entry = self.totals[(provider, name, kind)] = [0, 0, 0, 0, 0, 0]
        entry[_ANSWERS] += 1
        if usage is None:
            entry[_UNMETERED] += 1
            return
        entry[_INPUT] += usage.input_tokens
        entry[_CACHED] += usage.cached_input_tokens
        entry[_WRITTEN] += usage.cache_write_tokens
        entry[_OUTPUT] += usage.output_tokens

    def counter(
        self,
        provider: str,
        kind: str,
        usage_of: Callable[[str, Any, Hashable], Usage | None],
        endpoint: str,
        key: Hashable,
        also: UsageMeter | None = None,
    ) -> Callable[[Any], None]:
        """``add`` for the answers of one batch, made cheap: called once per answer, it asks
        ``usage_of(endpoint, body, key)`` and adds a few integers (to this meter and to
        ``also``), allocating nothing once the model's entries exist."""
        totals = self.totals
        shared = (also if also is not None else UsageMeter()).totals
        fallback = model_from_key(key)
        entries: dict[str, tuple[list[int], list[int]]] = {}

        def count(body: Any) -> None:
            usage = usage_of(endpoint, body, key)
            if usage is None:
                model, tokens_in, tokens_out, cached, written = fallback, 0, 0, 0, 0
            else:
                model, tokens_in, tokens_out, cached, written = usage
                model = model or fallback
            pair = entries.get(model)
            if pair is None:
                at = (provider, model, kind)
                pair = entries[model] = (
                    totals.setdefault(at, [0, 0, 0, 0, 0, 0]),
                    shared.setdefault(at, [0, 0, 0, 0, 0, 0]),
                )
            mine, theirs = pair
            mine[_ANSWERS] += 1
            theirs[_ANSWERS] += 1
            if usage is None:
                mine[_UNMETERED] += 1
                theirs[_UNMETERED] += 1
                return
            mine[_INPUT] += tokens_in
            theirs[_INPUT] += tokens_in
            mine[_CACHED] += cached
            theirs[_CACHED] += cached
            mine[_WRITTEN] += written
            theirs[_WRITTEN] += written
            mine[_OUTPUT] += tokens_out
            theirs[_OUTPUT] += tokens_out

        return count

    def merge(self, other: UsageMeter, *, sign: int = 1) -> None:
        """Add ``other``'s counts to this meter (``sign=-1``: take them away again)."""
        for at, counts in list(other.totals.items()):
            entry = self.totals.get(at)
            if entry is None:
                entry = self.totals[at] = [0, 0, 0, 0, 0, 0]
            for i, value in enumerate(counts):
                entry[i] += sign * value

    def summary(self) -> dict[str, int]:
        """Answers and tokens over every entry."""
        totals = [0] * 6
        for counts in list(self.totals.values()):
            for i, value in enumerate(counts):
                totals[i] += value
        return {
            "answers": totals[_ANSWERS],
            "input_tokens": totals[_INPUT],
            "cached_input_tokens": totals[_CACHED],
            "cache_write_tokens": totals[_WRITTEN],
            "output_tokens": totals[_OUTPUT],
        }

    def report(self, prices: PriceTable | None = None) -> CostReport:
        """Price what was counted."""
        table = prices or get_prices()
        rows = []
        for (provider, model, kind), counts in sorted(dict(self.totals).items()):
            rows.append(_row(table, provider, model, kind, list(counts)))
        return CostReport(tuple(rows), table.as_of)


def _row(table: PriceTable, provider: str, model: str, kind: str, counts: list[int]) -> CostRow:
    answers, unmetered, input_tokens, cached, written, output = counts
    price = table.lookup(provider, model) if model else None
    cost = realtime = saving = None
    if price is not None and not unmetered:
        realtime = price.cost(input_tokens, output, cached, written, batch=False)
        cost = (
            realtime
            if kind == "realtime"
            else price.cost(input_tokens, output, cached, written, batch=True)
        )
        saving = realtime - cost
    return CostRow(
        provider=provider,
        model=model or "(unknown)",
        kind=kind,
        billed=kind != "replayed",
        requests=answers,
        input_tokens=input_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
        unmetered=unmetered,
        cost=cost,
        realtime_cost=realtime,
        saving=saving,
        priced_as=price.model if price is not None else None,
    )


# -- reporting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CostRow:
    """Usage and cost of one (provider, model, kind).

    Attributes:
        provider: the adapter's name (``openai``, ``anthropic``, ``gemini``...).
        model: the model the answers name.
        kind: ``batch``, ``realtime`` (escalated: full price) or ``replayed`` (from the
            journal: paid by an earlier run).
        billed: whether this run paid for it (False for replayed answers).
        requests: answers counted (one per batch line: identical requests share a line).
        input_tokens, cached_input_tokens, cache_write_tokens, output_tokens: as reported.
        unmetered: answers that reported no usage (their tokens are unknown).
        cost: USD paid (batch price; realtime price for escalated answers); None if unknown.
        realtime_cost: USD the same tokens cost realtime; None if unknown.
        saving: ``realtime_cost - cost``; None if unknown.
        priced_as: the price table's name for the model; None if it has no price.
    """

    provider: str
    model: str
    kind: str
    billed: bool
    requests: int
    input_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    output_tokens: int
    unmetered: int
    cost: float | None
    realtime_cost: float | None
    saving: float | None
    priced_as: str | None

    def to_dict(self) -> dict[str, Any]:
        """The row as plain data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class CostReport:
    """A run's usage and cost: one row per provider, model and kind, and totals.

    Totals cover what this run paid for (``billed`` rows); rows the table has no price for
    are left out of the money totals and listed in ``unpriced``. ``str(report)`` is a table;
    ``to_rows()`` suits ``pandas.DataFrame``; ``to_dict()`` suits JSON.
    """

    rows: tuple[CostRow, ...]
    prices_as_of: str = "unknown"
    currency: str = "USD"

    def _billed(self) -> list[CostRow]:
        return [r for r in self.rows if r.billed]

    @property
    def requests(self) -> int:
        """Answers this run paid for."""
        return sum(r.requests for r in self._billed())

    @property
    def input_tokens(self) -> int:
        """Prompt tokens this run paid for (cached ones included)."""
        return sum(r.input_tokens for r in self._billed())

    @property
    def cached_input_tokens(self) -> int:
        """Prompt tokens read from a cache."""
        return sum(r.cached_input_tokens for r in self._billed())

    @property
    def output_tokens(self) -> int:
        """Answer tokens this run paid for."""
        return sum(r.output_tokens for r in self._billed())

    @property
    def cost(self) -> float:
        """USD paid, over the priced rows."""
        return sum(r.cost for r in self._billed() if r.cost is not None)

    @property
    def realtime_cost(self) -> float:
        """USD the same work would have cost realtime, over the priced rows."""
        return sum(r.realtime_cost for r in self._billed() if r.realtime_cost is not None)

    @property
    def saving(self) -> float:
        """``realtime_cost - cost``."""
        return self.realtime_cost - self.cost

    @property
    def unpriced(self) -> list[tuple[str, str]]:
        """(provider, model) of billed rows whose cost is unknown."""
        return [(r.provider, r.model) for r in self._billed() if r.cost is None]

    @property
    def complete(self) -> bool:
        """True when every billed row is priced."""
        return not self.unpriced

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per row (``pandas.DataFrame(report.to_rows())``)."""
        return [row.to_dict() for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """Rows, totals and the price table's date, as plain data."""
        return {
            "currency": self.currency,
            "prices_as_of": self.prices_as_of,
            "rows": self.to_rows(),
            "totals": {
                "requests": self.requests,
                "input_tokens": self.input_tokens,
                "cached_input_tokens": self.cached_input_tokens,
                "output_tokens": self.output_tokens,
                "cost": self.cost,
                "realtime_cost": self.realtime_cost,
                "saving": self.saving,
                "complete": self.complete,
                "unpriced": [list(pair) for pair in self.unpriced],
            },
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headers and cells of the report's table (the rows, then the totals), as
        ``str(report)`` prints them; for other renderings of the same table."""
        headers = ["provider", "model", "kind", "requests", "input", "cached", "output"]
        headers += ["cost", "realtime", "saved"]
        body = []
        for r in self.rows:
            paid = format_money(r.cost)
            body.append(
                [
                    r.provider,
                    r.model,
                    r.kind if r.billed else "replayed*",
                    f"{r.requests:,}",
                    f"{r.input_tokens:,}" if not r.unmetered else "?",
                    f"{r.cached_input_tokens:,}" if not r.unmetered else "?",
                    f"{r.output_tokens:,}" if not r.unmetered else "?",
                    paid,
                    format_money(r.realtime_cost),
                    format_money(r.saving),
                ]
            )
        body.append(
            [
                "total",
                "",
                "",
                f"{self.requests:,}",
                f"{self.input_tokens:,}",
                f"{self.cached_input_tokens:,}",
                f"{self.output_tokens:,}",
                format_money(self.cost),
                format_money(self.realtime_cost),
                format_money(self.saving),
            ]
        )
        return headers, body

    def notes(self) -> list[str]:
        """The lines under the table: the saving, and what the totals leave out."""
        lines = []
        if self.realtime_cost:
            share = 100 * self.saving / self.realtime_cost
            lines.append(f"saved {format_money(self.saving)} ({share:.0f}%) against realtime")
        if any(not r.billed for r in self.rows):
            lines.append("* replayed: answers taken from the journal, paid for by an earlier run")
        if self.unpriced:
            names = ", ".join(f"{p}/{m}" for p, m in self.unpriced)
            lines.append(f"unknown price (left out of the totals): {names}")
        return lines

    def __str__(self) -> str:
        if not self.rows:
            return "batch-llm cost: no answers yet"
        headers, body = self.table()
        lines = [f"batch-llm cost ({self.currency}, prices as of {self.prices_as_of})"]
        lines.append(format_table(headers, body, right=range(3, len(headers))))
        lines += self.notes()
        return "\n".join(lines)


def format_money(value: float | None) -> str:
    """USD for a table cell; "unknown" for None."""
    if value is None:
        return "unknown"
    if value and abs(value) < 0.01:
        # Two significant digits: a small test run costs fractions of a cent, not "$0.0000".
        digits = min(12, 1 - math.floor(math.log10(abs(value))))
        return f"${value:,.{digits}f}"
    if value and abs(value) < 1:
        return f"${value:,.4f}"
    return f"${value:,.2f}"


def format_table(headers: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    """Rows as aligned plain-text columns (``right``: the columns aligned right)."""
    aligned = set(right)
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(widths[i]) if i in aligned else cell.ljust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])
