"""Scale benchmark: a million chat requests (20 OpenAI batches of 50,000) through the scheduler
vs the bare openai SDK doing the same batches by hand, both against the emulator.

    python benchmarks/scale.py                      # 1,000,000 requests, once each side
    python benchmarks/scale.py --requests 200000 --repeat 3

Both sides are handed the requests as a generator, so neither holds them all as dicts: what
stays is what each side keeps for its answers. The floor (``_harness.floor_batches``) keeps
every response body and nothing else (each batch's JSONL only until it is uploaded); the
project side submits the generator in one ``submit_many``, keeps every answer (``wait``, and
the futures it returns) and checks that each one is right: request ``i`` asks what ``i + 1``
is, and its answer must say exactly that (the emulator answers arithmetic; ``gpt-4o`` gets it
right every time).

Each run reports ``held``, the peak RSS over the RSS before the first request, per request
(bytes), and ``cpu``. The last line is ``ratio=<wall, project/floor> rss_ratio=<peak RSS,
project/floor>``. The project side is expected to take longer: it journals every request and
every result (about 0.5 GB at this scale) on the way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

POLL = 0.05
CHAT = "/v1/chat/completions"
MODEL = "gpt-4o"


def bodies(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"Question {i}: what is {i} + 1?"}],
            "temperature": 0,
        }


def check(results: list[Any], n: int) -> None:
    if len(results) != n:
        raise AssertionError(f"{len(results)} answers for {n} requests")
    for i, body in enumerate(results):
        if body["choices"][0]["message"]["content"] != str(i + 1):
            raise AssertionError(f"answer {i} is wrong: {body}")


def _report(n: int, base: float, cpu: float, start: float) -> None:
    wall, cpu = time.perf_counter() - start, _harness.cpu_seconds() - cpu
    rss = _harness.peak_rss_mb()
    held = (rss - base) * 2**20 / n
    print(json.dumps({"wall": wall, "rss": rss, "cpu": cpu, "held": held, "base": base}))


def floor_side(url: str, n: int) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    base, cpu, start = _harness.rss_mb(), _harness.cpu_seconds(), time.perf_counter()
    results = _harness.floor_batches(url, CHAT, bodies(n), poll=POLL)
    check(results, n)
    _report(n, base, cpu, start)


def project_side(url: str, n: int) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    import batch_llm

    provider = batch_llm.OpenAIProvider(base_url=url + "/v1", api_key="sk-bench")
    with batch_llm.Scheduler(poll_interval=POLL) as scheduler:
        base, cpu, start = _harness.rss_mb(), _harness.cpu_seconds(), time.perf_counter()
        futures = scheduler.submit_many(provider, CHAT, bodies(n))
        results = batch_llm.wait(futures)
        check(results, n)
        _report(n, base, cpu, start)


def main() -> None:
    _harness.main(
        __file__,
        __doc__,
        {"floor": floor_side, "project": project_side},
        lambda n: f"scale benchmark: {n} chat requests, batches of {_harness.BATCH_LIMIT}",
        repeat=1,
        requests=1_000_000,
    )


if __name__ == "__main__":
    main()
