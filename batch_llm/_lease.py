"""Who works on a batch: a scheduler's owner id, how long its claims hold, and whether another
owner is known to be dead.

Every scheduler is one *owner* (``host:pid:nonce``). The batches it claims or takes over are
leased to it in the journal, and it renews those leases while it lives (every third of the
lease). Others that want the same answers read the journal instead of the provider; when a
lease lapses (its owner died or hung for a whole lease), one of them takes the batch over.

The lease is a trade-off. Longer: a stalled owner (a laptop asleep, a stop-the-world pause)
is less likely to be taken over while it still works, which costs only a second download.
Shorter: after a ``kill -9`` the others wait less before taking over. 30 s by default; a
journal every user shares on one machine (SQLite) does not wait at all for an owner whose
process is gone.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_LEASE", "Heartbeat", "Leases", "dead_here", "new_owner", "retire"]

logger = logging.getLogger("batch_llm")

#: Seconds a claim holds unless its owner renews it.
DEFAULT_LEASE = 30.0

_HOST = socket.gethostname()
# Owners of this process whose schedulers have closed: gone, even if letting go of their
# claims failed (a full disk), so a later scheduler of this process takes those over at once.
_retired: set[str] = set()


def new_owner() -> str:
    """A new owner id: this host, this process, and a nonce (two schedulers in one process
    are two owners)."""
    return f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retire(owner: str) -> None:
    """``owner``'s scheduler has closed: it works on nothing any more."""
    _retired.add(owner)


def dead_here(owner: str) -> bool:
    """True if ``owner`` ran on this host in a process that is gone (a crash, ``kill -9``),
    or in this process by a scheduler that has closed. A process alive under the same id (a
    pid reused) counts as alive: the lease decides."""
    if owner in _retired:
        return True
    parts = owner.split(":")
    if len(parts) < 3:
        return False
    host, pid_text = ":".join(parts[:-2]), parts[-2]
    if host != _HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


@dataclass(frozen=True)
class Leases:
    """How a scheduler holds and follows batches.

    Attributes:
        length: seconds a claim holds unless renewed (``BATCH_LLM_LEASE``).
        follow_initial: the first wait between reads of the journal while another owner works
            on a batch this scheduler waits for.
        follow_max: the longest such wait (a reader notices stored results within it).
    """

    length: float = DEFAULT_LEASE
    follow_initial: float = 0.2
    follow_max: float = 5.0

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: three chances before the lease lapses."""
        return self.length / 3


class Heartbeat:
    """Renews an owner's leases every ``every`` seconds from a thread of its own, not from the
    scheduler's loop: a loop kept busy (encoding a 20,000-line batch, a long pause) must not
    let a live owner's leases lapse. ``held`` gets the intent ids the owner still holds after
    each renewal (an intent missing from it was taken over while this owner stalled).
    """

    def __init__(
        self,
        renew: Callable[[], Sequence[str]],
        every: float,
        held: Callable[[Sequence[str]], object],
    ) -> None:
        self._renew = renew
        self._every = every
        self._held = held
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="batch-llm-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                held = self._renew()
            except Exception as exc:  # the next beat tries again; fenced writes stay safe
                logger.warning("renewing this scheduler's claims in the journal failed: %s", exc)
                continue
            self._held(held)

    def stop(self) -> None:
        """Stop renewing (the owner lets its claims go, or they lapse)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(self._every + 5)
