"""Poll benchmark: how many polls a batch costs and how late its end is noticed, for the
policy in ``batch_llm/_poll.py`` and the one it replaced, on a simulated clock.

    python benchmarks/poll.py --runs 40

Batches of 5 s, 5 min, 1 h and 24 h report progress that advances linearly (after a short
validation, as OpenAI's do), in a few bursts of uneven size, or not at all until they end
(Gemini's counts). Each run varies the run time by up to 10 % and the bursts, so ends fall at
every point between two polls; the table shows the most polls and the latest notice over the
runs, the latter also as a share of the run time (the goal: 2 %, or 30 s if more). The
``resumed`` rows pick a 24 h batch up at 12 h, as a later run does from the journal, and count
the polls from there. The last line sums up the 24 h batches, lateness as a share of run time:
``polls_24h=<worst new> old_polls_24h=<worst old> late_linear=<new> late_bursts=<new>
late_none=<new> old_late=<worst old>``. Nothing sleeps; it runs in about a second.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import dataclass

from batch_llm import PollPolicy
from batch_llm.providers import BatchStatus

EPOCH = 1_700_000_000.0  # the providers' timestamps are Unix seconds
TOTAL = 10_000
DURATIONS = {"5 s": 5.0, "5 min": 300.0, "1 h": 3600.0, "24 h": 86_400.0}
PROGRESS = ("linear", "bursts", "none")


@dataclass
class SimBatch:
    """A batch on the simulated clock: created at ``EPOCH``, ended ``run`` seconds later."""

    run: float
    progress: str
    rng: random.Random

    def __post_init__(self) -> None:
        # Validation takes a little, results a little more, at both ends of the processing.
        self.begin = min(0.01 * self.run, 60.0)
        self.finish = self.run - min(0.02 * self.run, 300.0)
        span = self.finish - self.begin
        cuts = sorted(self.rng.uniform(0.05, 0.95) for _ in range(self.rng.randint(3, 6)))
        self.bursts = [self.begin + span * c for c in cuts] + [self.finish]
        sizes = [self.rng.uniform(0.5, 2.0) for _ in self.bursts]
        total = sum(sizes)
        self.shares = [s / total for s in sizes]

    def done(self, t: float) -> float:
        if self.progress == "none" or t < self.begin:
            return 0.0
        if self.progress == "linear":
            return min(1.0, (t - self.begin) / (self.finish - self.begin))
        return sum(s for when, s in zip(self.bursts, self.shares, strict=True) if when <= t)

    def status(self, now: float) -> BatchStatus:
        t = now - EPOCH
        times = {"created": EPOCH}
        if self.progress != "none":  # as OpenAI's; Gemini-like batches say neither
            times["expires"] = EPOCH + 86_400.0
            if t >= self.begin:
                times["in_progress"] = EPOCH + self.begin
        if t >= self.run:
            return BatchStatus("b", "ended", "completed", TOTAL, TOTAL, 0, "completed", times=times)
        done = round(TOTAL * self.done(t))
        return BatchStatus("b", "in_progress", "in_progress", TOTAL, done, 0, times=times)


def old_delay(rng: random.Random) -> Callable[[float], float]:
    """The replaced policy: 5 % of the time since this process started following, 1-300 s."""

    def delay(elapsed: float) -> float:
        return min(max(1.0, 0.05 * elapsed), 300.0) * (1.0 + rng.uniform(-0.1, 0.1))

    return delay


def follow(batch: SimBatch, policy: str, seed: int, resume_at: float) -> tuple[int, float]:
    """Poll ``batch`` from ``resume_at`` seconds into its life to its end: (polls, lateness)."""
    now = EPOCH + resume_at
    rng = random.Random(seed)
    status = batch.status(now)
    polls = 0
    if policy == "old":
        delay, started = old_delay(rng), now
        while not status.ended:
            now += delay(now - started)
            status, polls = batch.status(now), polls + 1
    else:
        watch = PollPolicy(rng=rng, clock=lambda: now).watch(created=EPOCH)
        while not status.ended:
            now += watch.next_delay(status)
            status, polls = batch.status(now), polls + 1
    return polls, now - EPOCH - batch.run


def case(
    length: float, progress: str, runs: int, resumed: bool
) -> dict[str, tuple[int, float, float]]:
    """For each policy, over ``runs`` runs: the most polls, and the latest notice in seconds
    and as a share of the run time."""
    worst: dict[str, tuple[int, float, float]] = {}
    for policy in ("old", "new"):
        polls, late, share = [], [], []
        for seed in range(runs):
            rng = random.Random(seed)
            # Up to 10 % shorter: a batch does not outlive its 24 h window.
            batch = SimBatch(length * rng.uniform(0.9, 1.0), progress, rng)
            p, d = follow(batch, policy, seed, batch.run / 2 if resumed else 0.0)
            polls.append(p)
            late.append(d)
            share.append(d / batch.run)
        worst[policy] = (max(polls), max(late), max(share))
    return worst


def seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 60 else f"{value / 60:.1f}m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    rows = [(name, p, False) for name in DURATIONS for p in PROGRESS]
    rows += [("24 h", p, True) for p in PROGRESS]
    print(f"poll benchmark: worst of {args.runs} runs per case, simulated clock")
    print(f"{'batch':<18}{'progress':<9}{'polls old':>10}{'new':>6}{'late old':>20}{'new':>20}")
    summary: dict[str, float] = {"polls": 0, "old_polls": 0, "old": 0}
    for name, progress, resumed in rows:
        length = DURATIONS[name]
        worst = case(length, progress, args.runs, resumed)
        (old_polls, *_, old_late), (new_polls, *_, new_late) = worst["old"], worst["new"]
        label = f"{name}{', resumed' if resumed else ''}"
        late = [f"{seconds(w[1])} ({w[2]:.1%})" for w in (worst["old"], worst["new"])]
        print(f"{label:<18}{progress:<9}{old_polls:>10}{new_polls:>6}{late[0]:>20}{late[1]:>20}")
        if name == "24 h" and not resumed:
            summary["polls"] = max(summary["polls"], new_polls)
            summary["old_polls"] = max(summary["old_polls"], old_polls)
            summary["old"] = max(summary["old"], old_late)
            summary[progress] = new_late
    late = " ".join(f"late_{p}={summary[p]:.1%}" for p in PROGRESS)
    print(
        f"polls_24h={summary['polls']:.0f} old_polls_24h={summary['old_polls']:.0f} "
        f"{late} old_late={summary['old']:.1%}"
    )


if __name__ == "__main__":
    main()
