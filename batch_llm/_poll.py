"""How long to wait between polls of a running batch.

A batch may finish in seconds (the emulator, small batches) or in 24 hours. Polling at a fixed
interval is either slow to notice fast batches or wasteful on slow ones, so the wait grows with
the time the batch has already taken: never more than ``growth`` of the elapsed time late, with
a floor and a cap. With the defaults (1 s floor, 5 %, 300 s cap) a 24 h batch costs about 400
polls, an hour-long batch is noticed within three minutes of finishing, and one that takes 5 s
within a second.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["PollPolicy"]


@dataclass(frozen=True)
class PollPolicy:
    """Adaptive poll intervals with jitter.

    Attributes:
        initial: the shortest wait, used for the first polls.
        cap: the longest wait.
        growth: the wait as a fraction of the time elapsed since submission.
        jitter: a random spread of +/- this fraction, so many batches do not poll in step.
    """

    initial: float = 1.0
    cap: float = 300.0
    growth: float = 0.05
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, elapsed: float) -> float:
        """Seconds to wait before the next poll of a batch submitted ``elapsed`` seconds ago."""
        base = min(max(self.initial, self.growth * elapsed), self.cap)
        if self.jitter:
            base *= 1.0 + self.rng.uniform(-self.jitter, self.jitter)
        return max(0.0, base)
