"""The batches a scheduler follows, and which of them holds each request.

Shared by the scheduler (which cuts batches and lets identical requests join one already in
flight) and its runner (which lets a batch go once it is over). One lock guards it together
with the scheduler's queues, so that cutting a queue and indexing its batch are one step; it
is held only for dictionary work, never across I/O.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from ._batch import Batch
from ._journal import Intent

__all__ = ["InFlight"]

# Finished batches whose answers the journal keeps, remembered for callers that joined them
# as they finished (the most recent ones; the window is a single loop step).
_ANSWERED_KEPT = 64


class InFlight:
    """Batches in flight by intent id, and the batch holding each ``(provider, request)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._batches: dict[str, Batch] = {}
        # provider id -> custom id -> intent id: by provider first, so that no key tuple is
        # built and kept per request in flight.
        self._holding: dict[str, dict[str, str]] = {}
        # The most requests each provider's map held since it was last built: a dict never
        # shrinks as entries go, so one emptied to a quarter of that is built again.
        self._sized: dict[str, int] = {}
        self._answered: OrderedDict[str, Intent] = OrderedDict()

    # -- under ``lock`` -----------------------------------------------------------------------

    def track(self, batch: Batch) -> None:
        """Follow ``batch``; its waiting requests are held by it from now on. Lock held."""
        self._batches[batch.intent_id] = batch
        provider_id, intent_id = batch.intent.provider_id, batch.intent_id
        holding = self._holding.get(provider_id)
        if holding is None:
            holding = self._holding[provider_id] = {}
        for custom_id in batch.pending:
            holding[custom_id] = intent_id
        self._sized[provider_id] = max(self._sized.get(provider_id, 0), len(holding))

    def holder(self, provider_id: str, custom_id: str) -> str | None:
        """The intent id of the batch holding this request, if one does. Lock held."""
        holding = self._holding.get(provider_id) if self._holding else None
        return holding.get(custom_id) if holding else None

    # -- on the scheduler's loop --------------------------------------------------------------

    def get(self, intent_id: str) -> Batch | None:
        """The batch followed under ``intent_id``."""
        return self._batches.get(intent_id)

    def follow(self, batch: Batch) -> None:
        """Follow a batch picked up from the journal (its requests are not indexed: they
        joined it knowingly)."""
        self._batches[batch.intent_id] = batch

    def release(self, batch: Batch, custom_ids: Iterable[str]) -> None:
        """These requests left ``batch`` (another intent holds them): a later caller asking
        for one looks for it anew."""
        with self.lock:
            self._let_go(batch, custom_ids)

    def untrack(self, batch: Batch) -> None:
        """Stop following ``batch``; requests it held are free to go elsewhere."""
        with self.lock:
            if self._batches.get(batch.intent_id) is batch:
                del self._batches[batch.intent_id]
            self._let_go(batch, batch.by_id or batch.pending)

    def _let_go(self, batch: Batch, custom_ids: Iterable[str]) -> None:
        """The batch no longer holds these requests. Lock held."""
        provider_id, intent_id = batch.intent.provider_id, batch.intent_id
        holding = self._holding.get(provider_id)
        if holding is None:
            return
        for custom_id in custom_ids:
            if holding.get(custom_id) == intent_id:
                del holding[custom_id]
        if not holding:
            # Emptied, a dict keeps the table it grew to (2.6 MB after 50,000 requests):
            # dropped, nothing of the requests that ended stays behind.
            del self._holding[provider_id]
            del self._sized[provider_id]
        elif len(holding) * 4 < self._sized[provider_id]:
            self._holding[provider_id] = dict(holding)
            self._sized[provider_id] = len(holding)

    def batches(self) -> list[Batch]:
        """Every batch followed now."""
        return list(self._batches.values())

    def remember_answered(self, intent: Intent) -> None:
        """A finished batch whose answers the journal keeps: a caller that joined it just as
        it finished finds it here."""
        answered = self._answered
        answered[intent.intent_id] = intent
        while len(answered) > _ANSWERED_KEPT:
            answered.popitem(last=False)

    def answered(self, intent_id: str) -> Intent | None:
        """A recently finished batch's intent, if remembered."""
        return self._answered.get(intent_id)
