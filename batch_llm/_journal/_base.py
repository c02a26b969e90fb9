"""What the journal records and the interface every journal keeps (SQLite, PostgreSQL, off).

Many processes may share one journal (two notebook cells, a fleet of workers). What keeps them
from paying twice is in the interface, not in the callers:

- **claim**: one transaction records a submission (an *intent*) and takes for it every request
  no other intent holds; the requests another intent holds are returned, to be followed.
- **ownership**: an intent has an owner (the scheduler working on it) and a lease the owner
  renews while it lives. Only the owner polls the provider and stores the results; the others
  read the journal until the results are stored. A lease that lapses (its owner died) lets one
  of them take the intent over (``acquire``).
- **fencing**: result writes name their owner, and fail with ``LeaseLostError`` once someone
  else owns the intent, so two processes never store one batch's results into each other.
- **integrity**: results are marked stored only when every chunk is in (counted, summed and
  checksummed); a copy found short or damaged on reading raises ``DamagedResultsError``, and
  the reader fetches the results from the provider again.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._errors import JournalError

__all__ = [
    "Counts",
    "DamagedResultsError",
    "Intent",
    "Journal",
    "LeaseLostError",
    "NullJournal",
]


@dataclass(slots=True)
class Intent:
    """One submission as the journal knows it.

    Attributes:
        intent_id: our id for the submission, also stamped on the batch's metadata.
        provider: the adapter's description (no secrets).
        provider_id: a digest identifying the adapter's settings (credentials hashed).
        endpoint: the endpoint every line of the batch calls.
        requests: lines in the batch.
        created_at: when the intent was written (Unix time).
        batch_id: the provider's id, once the batch exists.
        status: the provider's latest status word (``intent`` until the batch exists).
        outcome: how the batch ended, once it has.
        results_stored: whether the batch's result files are in the journal.
        provider_name: the adapter's registry name (``openai``, ``anthropic``, ``gemini``,
            a preset's name), so a tool can build the adapter again from the environment's
            credentials.
        base_url: where the adapter sends its calls, when not the provider's default (no
            credentials: user info and query strings are dropped).
        model: the model every line asks for, where one batch holds one model ("" otherwise).
        total, succeeded, failed: the provider's request counts at the latest status (None
            until reported).
        owner: the scheduler working on it (``host:pid:nonce``), None once nobody needs to
            (its results are stored, it was abandoned, or its owner let it go).
        lease_until: until when (Unix time, by the journal's clock) the owner's claim holds
            unless renewed.
    """

    intent_id: str
    provider: str
    provider_id: str
    endpoint: str
    requests: int
    created_at: float = 0.0
    batch_id: str | None = None
    status: str = "intent"
    outcome: str | None = None
    results_stored: bool = False
    provider_name: str = ""
    base_url: str | None = None
    model: str = ""
    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    owner: str | None = None
    lease_until: float | None = None

    @property
    def dropped(self) -> bool:
        """True once the intent holds no request any more (its submission failed, or it was
        abandoned): whoever waited on it must ask again."""
        return self.status in ("submit_failed", "abandoned")


#: The request counts ``record_status`` may carry: ``total``, ``succeeded``, ``failed``.
Counts = Mapping[str, int]


class LeaseLostError(JournalError):
    """A fenced write named an owner that no longer owns the intent: another scheduler took
    it over (this one's lease had lapsed). Nothing was written."""


class DamagedResultsError(JournalError):
    """The journal's copy of a batch's results is short or damaged; fetch them again."""


class Journal(abc.ABC):
    """Where submissions, their requests and their results are recorded (module docstring).

    Every method is one transaction: it happened whole, or not at all. ``lease`` arguments
    are seconds from now, by the journal's clock (the database server's, for a shared one).
    """

    #: True when every process using the journal runs on this machine (a local file), so an
    #: owner whose process is gone is known dead without waiting for its lease.
    local: bool = False

    def describe(self) -> str:
        """Where the journal is, fit to print (no credentials)."""
        return type(self).__name__

    # -- claims and ownership -------------------------------------------------------------------

    @abc.abstractmethod
    def claim(self, intent: Intent, custom_ids: Sequence[str], lease: float) -> dict[str, Intent]:
        """Record ``intent`` (owned by ``intent.owner`` for ``lease`` seconds) and take for it
        each of ``custom_ids`` that no other intent holds, atomically.

        Returns the requests other intents hold, with those intents; the intent is recorded
        with ``requests`` set to what it took (``intent.requests`` and ``created_at`` are
        updated), or not at all if it took nothing. Requests the same intent already holds
        count as taken: a claim retried after a lost reply is harmless.
        """

    @abc.abstractmethod
    def acquire(
        self, intent_id: str, owner: str, lease: float, *, steal_from: str | None = None
    ) -> Intent | None:
        """Become the intent's owner for ``lease`` seconds if nobody else holds it (no owner,
        a lapsed lease, ``owner`` itself, or ``steal_from``: an owner known to be dead).
        Returns the intent as it is now, or None if someone else holds it or it was dropped
        (abandoned: its requests may be another intent's by now)."""

    @abc.abstractmethod
    def renew(self, owner: str, lease: float) -> list[str]:
        """Extend the lease of every intent ``owner`` holds; returns their ids."""

    @abc.abstractmethod
    def release(self, owner: str, intent_ids: Sequence[str] | None = None) -> None:
        """``owner`` stops working on these intents (all of its intents with None): another
        scheduler may take them over at once instead of waiting for the lease to lapse."""

    @abc.abstractmethod
    def get(self, intent_id: str) -> Intent | None:
        """The intent as it is now (what a scheduler following another's batch reads)."""

    # -- the batch's life -----------------------------------------------------------------------

    @abc.abstractmethod
    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        """After submitting: the provider's id for the batch."""

    @abc.abstractmethod
    def record_status(
        self,
        intent_id: str,
        status: str,
        outcome: str | None = None,
        counts: Counts | None = None,
    ) -> None:
        """The batch's latest status (and outcome, once it ended; and the provider's request
        counts, when known)."""

    @abc.abstractmethod
    def abandon(self, intent_id: str, status: str) -> None:
        """The intent will never answer its requests (its submission failed, or its batch is
        unknown upstream): record ``status``, let go of every request it holds and of its
        owner, so that whoever asks for them again claims them afresh."""

    @abc.abstractmethod
    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        """These requests got no answer from this batch: a later run must submit them again."""

    # -- results --------------------------------------------------------------------------------

    @abc.abstractmethod
    def clear_results(self, intent_id: str, owner: str) -> None:
        """Fenced: drop the batch's stored result bytes and mark them not stored (a read that
        starts over). Raises ``LeaseLostError`` if ``owner`` does not hold the intent."""

    @abc.abstractmethod
    def append_results(
        self, intent_id: str, owner: str, seq: int, stream: str, data: bytes
    ) -> None:
        """Fenced: chunk number ``seq`` (from 0, in reading order) of one of the batch's
        result streams. Writing a chunk number twice keeps the first (a retried write)."""

    @abc.abstractmethod
    def finish_results(
        self, intent_id: str, owner: str, chunks: int, nbytes: int, crc: int
    ) -> None:
        """Fenced: every result chunk is written (``chunks`` of them, ``nbytes`` in all, their
        CRC-32 ``crc``); mark the results stored and release the intent. Raises
        ``JournalError`` (marking nothing) if fewer are in the journal."""

    @abc.abstractmethod
    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        """The stored result streams of a batch: ``(stream, bytes)`` in the order stored.
        Raises ``DamagedResultsError`` if they do not add up to what was marked stored."""

    # -- reading --------------------------------------------------------------------------------

    @abc.abstractmethod
    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        """The submission holding each of these requests, where there is one. A shortcut
        made from callers' threads (the claim decides): where the journal cannot be reached
        at once it raises ``JournalError`` at once instead of waiting for it."""

    @abc.abstractmethod
    def intents(self, *, limit: int = 100) -> list[Intent]:
        """The most recent submissions, newest first."""

    def find(self, ident: str) -> list[Intent]:
        """The submissions a batch id, an intent id or an intent id's prefix names (several
        when a prefix is ambiguous). Scans the recent ones; journals can do better."""
        if not ident:
            return []
        recent = self.intents(limit=10_000)
        exact = [i for i in recent if ident in (i.batch_id, i.intent_id)]
        return exact or [i for i in recent if i.intent_id.startswith(ident)]

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Release the journal's resources."""


class NullJournal(Journal):
    """The journal turned off: nothing is recorded, nothing is resumed, nobody else shares
    it, so every claim succeeds and every intent is its claimer's."""

    def describe(self) -> str:
        return "no journal"

    def claim(self, intent: Intent, custom_ids: Sequence[str], lease: float) -> dict[str, Intent]:
        return {}

    def acquire(
        self, intent_id: str, owner: str, lease: float, *, steal_from: str | None = None
    ) -> Intent | None:
        return None

    def renew(self, owner: str, lease: float) -> list[str]:
        return []

    def release(self, owner: str, intent_ids: Sequence[str] | None = None) -> None:
        pass

    def get(self, intent_id: str) -> Intent | None:
        return None

    def record_batch(self, intent_id: str, batch_id: str, status: str) -> None:
        pass

    def record_status(
        self,
        intent_id: str,
        status: str,
        outcome: str | None = None,
        counts: Counts | None = None,
    ) -> None:
        pass

    def abandon(self, intent_id: str, status: str) -> None:
        pass

    def forget_requests(self, intent_id: str, custom_ids: Iterable[str]) -> None:
        pass

    def clear_results(self, intent_id: str, owner: str) -> None:
        pass

    def append_results(
        self, intent_id: str, owner: str, seq: int, stream: str, data: bytes
    ) -> None:
        pass

    def finish_results(
        self, intent_id: str, owner: str, chunks: int, nbytes: int, crc: int
    ) -> None:
        pass

    def load_results(self, intent_id: str) -> list[tuple[str, bytes]]:
        return []

    def lookup(self, provider_id: str, custom_ids: Sequence[str]) -> dict[str, Intent]:
        return {}

    def intents(self, *, limit: int = 100) -> list[Intent]:
        return []
