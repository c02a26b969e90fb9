"""A fan-out in its own process, for the tests that kill one mid-batch and run it again.

python resume_worker.py URL JOURNAL N  -> prints the answers as JSON, one per line
"""

import json
import sys

import batch_llm


def main() -> None:
    url, journal, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    flavour = sys.argv[4] if len(sys.argv) > 4 else "openai"
    questions = [{"role": "user", "content": f"What is {i} + 1?"} for i in range(n)]
    provider: batch_llm.Provider
    if flavour == "anthropic":
        provider = batch_llm.AnthropicProvider(
            base_url=url, api_key="sk-worker-secret", max_retries=0
        )
        endpoint = "/v1/messages"
        bodies = [
            {"model": "claude-sonnet-4-5", "max_tokens": 20, "temperature": 0, "messages": [q]}
            for q in questions
        ]
    else:
        provider = batch_llm.OpenAIProvider(base_url=url, api_key="sk-worker-secret", max_retries=0)
        endpoint = "/v1/chat/completions"
        bodies = [{"model": "gpt-4o", "temperature": 0, "messages": [q]} for q in questions]
    with batch_llm.Scheduler(journal=journal, poll_interval=0.02, poll_max=0.1) as scheduler:
        futures = scheduler.submit_many(provider, endpoint, bodies)
        print("submitted", flush=True)
        answers = batch_llm.wait(futures, timeout=120)
    for body in answers:
        text = (
            body["content"][0]["text"]
            if flavour == "anthropic"
            else body["choices"][0]["message"]["content"]
        )
        print(json.dumps(text), flush=True)


if __name__ == "__main__":
    main()
