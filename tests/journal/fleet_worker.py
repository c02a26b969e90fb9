"""One worker of a fleet sharing a journal, for the cross-process tests and benchmarks.

python fleet_worker.py URL JOURNAL SHARED OWN TAG [LEASE]

Asks ``SHARED`` questions every worker asks and ``OWN`` of its own (numbered from
``TAG * 1_000_000``) in one fan-out, checks every answer, and prints one JSON line:
``{"answers": n, "wrong": [...], "digest": ...}`` (the digest covers the shared answers, so
workers can be compared). It prints ``{"submitted": true}`` once its fan-out is queued.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import batch_llm


def main() -> None:
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
    print(json.dumps({"answers": len(texts), "wrong": wrong[:10], "digest": digest}), flush=True)


if __name__ == "__main__":
    main()
