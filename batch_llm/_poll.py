"""How long to wait between polls of a running batch.

A batch may finish in seconds (the emulator, small batches) or in 24 hours, and every poll is a
request to the provider. The wait is chosen from what the provider says about the batch:

- **Its age**, counted from when the provider created it, so a batch a later run picks up is
  polled for the age it has, not from the first interval again.
- **Its pace**, while its request counts move steadily: far from the end that pace foretells,
  a wait covers half the time left (and at most half the age, should the pace quicken); near it
  the poll lands on it, and from then on polls come within 2 % of the age (30 s under 25
  minutes, 30 % of the age for a batch of a few seconds).
- **Its results being written**, once every request is counted: that takes a small part of
  what processing took, so the next poll comes after 2 % of the processing time, then the
  waits double (never longer than its age allows). A batch of seconds whose results take a
  tenth of a second is noticed one first interval after it ends, not a third of its age.
- **Its age alone**, when the counts say nothing (Gemini's stay 0 until the end, Anthropic's
  stay ``processing``, bursts make no pace): polls come within 8 % of the age (2 minutes under
  25 minutes). That is about the tightest bound that keeps such a 24 h batch under 100 polls.
- **Its expiry**, when the provider gives one: a batch ends by then at the latest.

Every wait lies between ``initial`` (1 s) and ``cap`` (1 h, which takes a day-long batch with
silent counts from 8 % to about 4 %), and jitter only ever shortens it.

Measured by ``benchmarks/poll.py`` (simulated clock, counts moving steadily / in bursts / not
at all, the worst of 40 runs; in brackets the policy this replaced, which waited 5 % of the
time since this process started following, from 1 s to 300 s): a 24 h batch costs 55 / 92 /
92 polls (405) and is noticed within 1.6 % / 4.0 % / 4.3 % of its run time (0.4 %); picked up
again at 12 h, 16 / 13 / 13 more polls (261). An hour-long batch: 33 / 45 / 45 polls (128),
noticed within 1.1 / 3.1 / 4.4 minutes (3.1). Five minutes: 20 / 22 / 22 polls (76), within
5 s / 72 s / 78 s (14 s). Five seconds: 6 polls, within 0.9 s / 1.3 s / 1.4 s (1.0 s).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .providers import BatchStatus

__all__ = ["PollPolicy", "PollWatch"]


# Paces that differ by less than this factor agree: the batch is working through its requests
# steadily, and its pace foretells its end. Counts that move in bursts, or only now and then,
# disagree; their batches are polled by age alone.
_STEADY = 1.5


@dataclass(frozen=True)
class PollPolicy:
    """When to poll a running batch, from its age and the progress it reports.

    One policy serves every batch; ``watch`` starts the record of one batch's polls, whose
    ``next_delay(status)`` is the wait before the next poll.

    Attributes:
        initial: the shortest wait, used for the first polls (``BATCH_LLM_POLL_INTERVAL``).
        cap: the longest wait (``BATCH_LLM_POLL_MAX``).
        lateness: how late, as a fraction of its age, a batch whose end its progress foretells
            may be noticed...
        slack: ...or this many seconds, if more.
        blind_lateness: the same for a batch whose progress does not foretell its end...
        blind_slack: ...or this many seconds, if more.
        young: a batch younger than ``slack / young`` is noticed within this fraction of its
            age instead (a 5 s batch within 1.5 s).
        approach: the fraction of the expected time left that one wait may cover.
        reach: the longest wait as a fraction of the age, however far the expected end: the
            most a pace that suddenly quickens can make the end noticed late.
        jitter: waits are shortened by a random fraction up to this, so many batches do not
            poll in step (shortened only, so the bounds above still hold).
        rng: the source of jitter.
        clock: the time now as Unix seconds, the providers' timestamps being Unix seconds.
    """

    initial: float = 1.0
    cap: float = 3600.0
    lateness: float = 0.02
    slack: float = 30.0
    blind_lateness: float = 0.08
    blind_slack: float = 120.0
    young: float = 0.3
    approach: float = 0.5
    reach: float = 0.5
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)

    def watch(self, created: float | None = None) -> PollWatch:
        """Start following one batch.

        Args:
            created: when the batch was asked for as Unix seconds (the journal's intent time);
                its age counts from here if the provider does not say when it created it.
        """
        return PollWatch(self, created)

    def delay(self, age: float) -> float:
        """Seconds to wait before polling a batch ``age`` seconds old whose end cannot be
        foreseen."""
        return self._finish(self._within(age, self.blind_lateness, self.blind_slack))

    def _within(self, age: float, fraction: float, slack: float) -> float:
        """The longest wait that still notices an end within ``fraction`` of the age or
        ``slack`` seconds, whichever is more (young batches held to ``young`` of their age)."""
        return max(fraction * age, min(self.young * age, slack))

    def _wait(self, age: float, remaining: float | None) -> float:
        if remaining is None:
            return self.delay(age)
        near = self._within(age, self.lateness, self.slack)
        if 0.0 < remaining <= near:
            # Close: look when it should end (unjittered, as ends are not in step anyway).
            return min(max(remaining, self.initial), self.cap)
        far = max(near, self.reach * age)
        return self._finish(min(max(near, self.approach * remaining), far))

    def _finish(self, wait: float) -> float:
        wait = min(max(wait, self.initial), self.cap)
        if self.jitter:
            wait *= 1.0 - self.rng.uniform(0.0, self.jitter)
        return max(0.0, wait)


class PollWatch:
    """One batch's polls: what its provider reported, and when.

    Attributes:
        policy: the policy that chooses the waits.
        created: when the batch was created, on the policy's clock (Unix seconds).
        started: when the provider started processing it, if it says.
        expires: when the provider gives up on it, if it says.
        samples: ``(when, fraction of requests finished)`` at each poll, oldest first.
    """

    def __init__(self, policy: PollPolicy, created: float | None = None) -> None:
        self.policy = policy
        self._asked = created or None
        self.created: float | None = None
        self.started: float | None = None
        self.expires: float | None = None
        self.samples: list[tuple[float, float]] = []

    @property
    def age(self) -> float:
        """Seconds from the batch's creation to the latest poll."""
        if not self.samples or self.created is None:
            return 0.0
        return max(0.0, self.samples[-1][0] - self.created)

    def observe(self, status: BatchStatus) -> None:
        """Record a status the provider just returned."""
        now = self.policy.clock()
        times = status.times
        if self.created is None:
            known = [t for t in (times.get("created"), self._asked) if t]
            # The later of the two: a provider clock running behind ours would otherwise make
            # a new batch look old, and polled slowly. A clock running ahead only makes it look
            # younger, and polled a little more than needed.
            self.created = min(max(known), now) if known else now
        if self.started is None and "in_progress" in times:
            self.started = min(max(times["in_progress"], self.created), now)
        self.expires = times.get("expires", self.expires)
        done = status.succeeded + status.failed
        self.samples.append((now, min(1.0, done / status.total) if status.total else 0.0))

    def expected_end(self) -> float | None:
        """When the batch should end, on the policy's clock; None unless its progress
        foretells it.

        It does once every request is counted (only the results are being written), or while
        three paces agree: over the last two polls, over the two before, and since processing
        began (the provider's word, else the last poll before the counts moved, else the
        batch's creation). The end is then reckoned at the fastest of them, as an end sooner
        than expected is the one noticed late.
        """
        if len(self.samples) < 3:
            return self.samples[-1][0] if self.samples and self.samples[-1][1] >= 1.0 else None
        now, done = self.samples[-1]
        if done >= 1.0:
            return now
        first = self.samples[0][1]
        still = max(i for i, (_, d) in enumerate(self.samples) if d <= first)
        if self.started is not None:
            since = (self.started, 0.0)
        elif still < len(self.samples) - 1:
            since = self.samples[still]
        else:
            since = (self.created or now, 0.0)
        paces = [
            _pace(since, self.samples[-1]),
            _pace(self.samples[-2], self.samples[-1]),
            _pace(self.samples[-3], self.samples[-2]),
        ]
        if min(paces) <= 0.0 or max(paces) > _STEADY * min(paces):
            return None
        return now + (1.0 - done) / max(paces)

    def writing_wait(self) -> float | None:
        """Once every request is counted, the batch is only writing its results, which takes
        a small part of what processing them took: the wait is ``lateness`` of that
        processing time, or the time since the counts filled up if longer (so the waits
        double while the writing lasts), never more than the age allows (2 % of it, or
        30 s...). None while requests are still to be counted.

        A 24 h batch is then polled as before (2 % of its processing time is about 2 % of
        its age); a batch of seconds, whose results the emulator writes in a tenth of a
        second, is noticed a tenth of a second after, not a third of its age.
        """
        if not self.samples or self.samples[-1][1] < 1.0:
            return None
        now = self.samples[-1][0]
        full = now
        for when, done in reversed(self.samples):
            if done < 1.0:
                break
            full = when
        begun = self.started if self.started is not None else (self.created or full)
        policy = self.policy
        wait = max(policy.lateness * max(0.0, full - begun), now - full)
        return min(wait, policy._within(self.age, policy.lateness, policy.slack))

    def next_delay(self, status: BatchStatus) -> float:
        """Record ``status`` and return the seconds to wait before polling again."""
        self.observe(status)
        now = self.samples[-1][0]
        writing = self.writing_wait()
        if writing is not None:
            wait = self.policy._finish(writing)
        else:
            end = self.expected_end()
            wait = self.policy._wait(self.age, None if end is None else end - now)
        if self.expires is not None and now < self.expires:
            # A batch ends by its expiry at the latest: look right after it.
            wait = min(wait, self.expires - now + self.policy.initial)
        return wait


def _pace(earlier: tuple[float, float], later: tuple[float, float]) -> float:
    """The fraction of the batch finished per second between two samples (0 if none)."""
    (then, was), (now, done) = earlier, later
    return (done - was) / (now - then) if now > then else 0.0
