"""A short script that raises after its fan-out, while the results are still being read.

python exit_worker.py URL N   (the journal is BATCH_LLM_JOURNAL)

It uses the process-wide scheduler, as the framework wrappers do, and never closes it: the
interpreter's exit does (``atexit``), while the batch's results are downloading.
"""

import sys
import time

import batch_llm


def main() -> None:
    url, n = sys.argv[1], int(sys.argv[2])
    provider = batch_llm.OpenAIProvider(base_url=url, api_key="sk-exit", max_retries=0)
    bodies = [
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
            "temperature": 0,
        }
        for i in range(n)
    ]
    scheduler = batch_llm.get_scheduler()
    scheduler.submit_many(provider, "/v1/chat/completions", bodies)
    while not (scheduler.batches and scheduler.batches[0].state == "ended"):
        time.sleep(0.01)
    raise RuntimeError("the script's own bug, after its fan-out")


if __name__ == "__main__":
    main()
