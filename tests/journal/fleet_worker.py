"""One worker of a fleet sharing a journal, for the cross-process tests and benchmarks.

python fleet_worker.py URL JOURNAL SHARED OWN TAG [LEASE]

Asks ``SHARED`` questions every worker asks and ``OWN`` of its own (numbered from
``TAG * 1_000_000``) in one fan-out, checks every answer, and prints one JSON line:
``{"answers": n, "wrong": [...], "digest": ..., "polls": {batch_id: n}}`` (the digest covers
the shared answers, so workers can be compared; ``polls`` counts this worker's polls of each
batch, read from the HTTP client's log). It prints ``{"submitted": true}`` once its fan-out is
queued.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import re
import sys

import batch_llm


class _CountPolls(logging.Handler):
    """Counts ``GET .../batches/{id}`` requests in the HTTP client's log."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"GET \S+/batches/([\w-]+) ", record.getMessage())
        if found:
            self.polls[found[1]] += 1


def main() -> None:
    counter = _CountPolls()
    http_log = logging.getLogger("httpx")
    http_log.addHandler(counter)
    http_log.setLevel(logging.INFO)
    url, journal, shared, own, tag = sys.argv[1:6]
    lease = float(sys.argv[6]) if len(sys.argv) > 6 else None
    numbers = list(range(int(shared))) + [int(tag) * 1_000_000 + i for i in range(int(own))]
    bodies = [
        {
            "model": "gpt-4o",
            "temperature": 0,
            "messages": [{"role": "user", "content": f"What is {n} + 1?"}],
        }
        for n in numbers
    ]
    provider = batch_llm.OpenAIProvider(base_url=url, api_key="sk-fleet-secret", max_retries=0)
    options = {} if lease is None else {"lease": lease}
    with batch_llm.Scheduler(
        journal=journal, poll_interval=0.05, poll_max=0.2, progress=False, **options
    ) as scheduler:
        futures = scheduler.submit_many(provider, "/v1/chat/completions", bodies)
        print(json.dumps({"submitted": True, "pid": os.getpid()}), flush=True)
        answers = batch_llm.wait(futures, timeout=600)
    texts = [body["choices"][0]["message"]["content"] for body in answers]
    wrong = [n for n, text in zip(numbers, texts, strict=True) if text != str(n + 1)]
    digest = hashlib.sha256(json.dumps(answers[: int(shared)]).encode()).hexdigest()
    summary = {"answers": len(texts), "wrong": wrong[:10], "digest": digest}
    print(json.dumps({**summary, "polls": dict(counter.polls)}), flush=True)


if __name__ == "__main__":
    main()
