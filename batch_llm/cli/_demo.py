"""``batch-llm demo``: a fan-out through a Batch API, offline, against the built-in emulator.

It asks a few hundred arithmetic questions of an emulated ``gpt-4o-mini`` in one OpenAI batch,
shows the batch moving, then grades the answers. The emulated mini model slips on about one
question in five, so the summary reads like a small eval.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from .._cost import format_money
from .._scheduler import Scheduler
from .._waiting import wait
from ..providers import OpenAIProvider

__all__ = ["run_demo"]

MODEL = "gpt-4o-mini"


def _questions(count: int) -> list[tuple[str, int]]:
    rng = random.Random(2026)
    out = []
    for _ in range(count):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("+-*")
        value = a + b if op == "+" else a - b if op == "-" else a * b
        out.append((f"What is {a} {op} {b}?", value))
    return out


class _Progress:
    """One status line that redraws on a terminal and prints changes elsewhere."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.last = ""
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        # Identical questions share one line, so the batch may hold fewer lines than questions.
        total = int(event.get("total") or 0) or int(event.get("requests") or 0) or self.total
        done = int(event.get("succeeded") or 0) + int(event.get("failed") or 0)
        status = event["event"].removeprefix("batch_")
        if status in ("progress", "submitted"):
            status = event.get("status") or status
        width = 30
        filled = int(width * done / total) if total else width
        line = (
            f"  {event.get('batch_id') or '':<24} [{'#' * filled}{'.' * (width - filled)}] "
            f"{done:>6,}/{total:,} lines  {status:<12} {time.monotonic() - self.started:5.1f}s"
        )
        with self.lock:
            if self.tty:
                self.stream.write("\r" + line)
                if event["event"] in ("batch_completed", "batch_failed", "batch_expired"):
                    self.stream.write("\n")
            elif status != self.last:
                self.stream.write(line + "\n")
            self.last = status
            self.stream.flush()


def run_demo(*, requests: int = 1000, delay: float = 3.0, out: TextIO | None = None) -> int:
    """Run the demo; returns the process exit code."""
    from ..emulator import Emulator

    stream = out or sys.stdout
    print_: Callable[[str], None] = lambda text: print(text, file=stream, flush=True)  # noqa: E731
    questions = _questions(requests)
    with Emulator() as emulator:
        emulator.knobs.validating_delay = min(0.5, delay / 4)
        emulator.knobs.processing_delay = delay
        emulator.knobs.finalizing_delay = min(0.5, delay / 4)
        provider = OpenAIProvider(base_url=emulator.openai_base_url, api_key="sk-demo")
        print_(
            f"batch-llm demo: {requests:,} questions to {MODEL}, as one OpenAI batch "
            f"on the built-in emulator ({emulator.openai_base_url})"
        )
        progress = _Progress(requests, stream)
        started = time.monotonic()
        # The emulator is new each time, so the demo keeps no journal: a second run would
        # otherwise take the first run's answers from disk and make no batch at all.
        with Scheduler(
            poll_interval=0.1, poll_max=1.0, listeners=[progress], journal="off"
        ) as scheduler:
            bodies = [
                {"model": MODEL, "temperature": 0, "messages": [{"role": "user", "content": q}]}
                for q, _ in questions
            ]
            futures = scheduler.submit_many(provider, "/v1/chat/completions", bodies)
            # The demo draws its own status line (from the events) instead of a tqdm bar.
            results = wait(futures, return_exceptions=True, progress=False)
            batches = len(scheduler.batches)
            cost = scheduler.cost()
        elapsed = time.monotonic() - started
        stats = emulator.stats

    answered = [r for r in results if isinstance(r, dict)]
    errors = len(results) - len(answered)
    correct = 0
    tokens_in = tokens_out = 0
    for (_question, expected), result in zip(questions, results, strict=True):
        if not isinstance(result, dict):
            continue
        tokens_in += result["usage"]["prompt_tokens"]
        tokens_out += result["usage"]["completion_tokens"]
        if str(result["choices"][0]["message"]["content"]).strip() == str(expected):
            correct += 1
    print_("")
    print_(f"Summary ({elapsed:.1f} s):")
    print_(
        f"  requests        {requests:,} in {batches} batch(es) of {stats.lines_submitted:,} "
        "lines (identical questions share a line)"
    )
    print_(
        f"  emulator saw    {stats.batches_created} batch(es), "
        f"{stats.realtime_calls} realtime call(s)"
    )
    print_(f"  answered        {len(answered):,}, errors {errors:,}")
    print_(
        f"  graded correct  {correct:,} of {len(answered):,} "
        f"({100 * correct / max(1, len(answered)):.1f}%)"
    )
    print_(f"  tokens          {tokens_in:,} in, {tokens_out:,} out")
    if cost.realtime_cost:
        print_(
            f"  cost            {format_money(cost.cost)} at batch price instead of "
            f"{format_money(cost.realtime_cost)} realtime "
            f"(saved {100 * cost.saving / cost.realtime_cost:.0f}%; prices as of "
            f"{cost.prices_as_of})"
        )
    print_("  sample answers:")
    for (question, expected), result in list(zip(questions, results, strict=True))[:3]:
        text = result["choices"][0]["message"]["content"] if isinstance(result, dict) else result
        print_(f"    {question:<20} -> {text!s:<8} (expected {expected})")
    return 0 if errors == 0 and batches == 1 else 1
