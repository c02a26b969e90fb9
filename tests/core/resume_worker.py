"""A fan-out in its own process, for the tests that kill one mid-batch and run it again.

python resume_worker.py URL JOURNAL N  -> prints the answers as JSON, one per line
"""

import json
import sys

import batch_llm


def main() -> None:
    url, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    provider = batch_llm.OpenAIProvider(base_url=url, api_key="sk-worker-secret", max_retries=0)
    bodies = [
        {
            "model": "gpt-4o",
            "temperature": 0,
            "messages": [{"role": "user", "content": f"What is {i} + 1?"}],
        }
        for i in range(n)
    ]
    with batch_llm.Scheduler(journal=journal, poll_interval=0.02, poll_max=0.1) as scheduler:
        futures = scheduler.submit_many(provider, "/v1/chat/completions", bodies)
        print("submitted", flush=True)
        answers = batch_llm.wait(futures, timeout=120)
    for body in answers:
        print(json.dumps(body["choices"][0]["message"]["content"]), flush=True)


if __name__ == "__main__":
    main()
