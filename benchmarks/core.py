"""Core benchmark: N chat requests through the scheduler vs the bare openai SDK doing the same
batches by hand, both against the emulator.

    python benchmarks/core.py --requests 10000
    python benchmarks/core.py --requests 200000
    python benchmarks/core.py --requests 10000 --journal postgresql://postgres@127.0.0.1/test

The floor (``_harness.floor_batches``) is the least a faithful hand-written run does, and it
keeps every response body: batches of at most 50,000 (OpenAI's limit, so 200,000 requests are
4 batches) each built into JSONL, uploaded and created in turn; then polled, and each output
file read as a stream and parsed into the bodies. Both sides are handed the same list of
request bodies. The project side submits the list in one ``submit_many``, keeps every answer
(``wait``) and checks them.

The last line is ``ratio=<wall, project/floor> rss_ratio=<peak RSS, project/floor>``; each run
also shows ``cpu`` (seconds of CPU its process used in the timed part, all threads: steadier
than wall on a shared machine). Each side runs in its own process; wall time counts from the
first request body built to the last result checked, and both sides poll at the same first
interval. Imports, including the SDK's lazily imported resource modules (about half a second,
paid once per process), happen before the clock on both sides.

With ``--journal URL`` the floor is the project on its SQLite journal and the other side the
project on that PostgreSQL database (a schema of its own per run, dropped after it): the
ratio is what the shared journal costs against the local one.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

POLL = 0.05


def bodies(n: int) -> list[dict[str, Any]]:
    return [
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"Question {i}: what is {i} + 1?"}],
            "temperature": 0,
        }
        for i in range(n)
    ]


def check(results: list[dict[str, Any]]) -> None:
    for i, body in enumerate(results):
        if body["object"] != "chat.completion" or not body["choices"][0]["message"]["content"]:
            raise AssertionError(f"result {i} is wrong: {body}")


def floor_side(url: str, n: int) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    cpu, start = _harness.cpu_seconds(), time.perf_counter()
    results = _harness.floor_batches(url, "/v1/chat/completions", bodies(n), poll=POLL)
    check(results)
    wall, cpu = time.perf_counter() - start, _harness.cpu_seconds() - cpu
    print(json.dumps({"wall": wall, "rss": _harness.peak_rss_mb(), "cpu": cpu}))


def project_side(url: str, n: int, journal: str | None = None) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    import batch_llm

    provider = batch_llm.OpenAIProvider(base_url=url + "/v1", api_key="sk-bench")
    with batch_llm.Scheduler(poll_interval=POLL, journal=journal) as scheduler:
        cpu, start = _harness.cpu_seconds(), time.perf_counter()
        futures = scheduler.submit_many(provider, "/v1/chat/completions", bodies(n))
        results = batch_llm.wait(futures)
        check(results)
        wall, cpu = time.perf_counter() - start, _harness.cpu_seconds() - cpu
    print(json.dumps({"wall": wall, "rss": _harness.peak_rss_mb(), "cpu": cpu}))


# Where ``--journal`` hands its URL to the side processes.
_POSTGRES = "BATCH_LLM_BENCH_POSTGRES"


def postgres_side(url: str, n: int) -> None:
    """The project on a PostgreSQL journal, in a schema of this run's own."""
    import psycopg

    base = os.environ[_POSTGRES]
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        journal = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
        project_side(url, n, journal)
    finally:
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    argv = sys.argv[1:]
    if "--journal" in argv:
        at = argv.index("--journal")
        os.environ[_POSTGRES] = argv[at + 1]  # the side processes inherit it
        del argv[at : at + 2]
    sides: dict[str, Callable[[str, int], None]] = {"floor": floor_side, "project": project_side}
    what, names = f"poll interval {POLL}s", {"project": "project", "floor": "floor"}
    if os.environ.get(_POSTGRES):
        sides = {"sqlite": project_side, "postgres": postgres_side}
        what, names = (
            "PostgreSQL journal against SQLite",
            {"project": "postgres", "floor": "sqlite"},
        )
    _harness.main(
        __file__,
        __doc__,
        sides,
        lambda n: f"core benchmark: {n} chat requests, {what}",
        repeat=3,
        argv=argv,
        **names,
    )


if __name__ == "__main__":
    main()
