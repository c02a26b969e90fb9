"""LangChain benchmark: N prompts through ``BatchChatModel.abatch`` vs the bare openai SDK doing
the same batch by hand, both against the emulator.

    python benchmarks/langchain.py --requests 10000

The project side pays for everything LangChain does per input (messages, callbacks, the wrapped
ChatOpenAI's payload builder and parser, AIMessages) on top of the batch itself. The last line is
``ratio=<wall, project/floor> rss_ratio=<peak RSS, project/floor>``. Imports (LangChain's and the
SDK's lazily imported modules) happen before the clock on both sides.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

POLL = 0.05
MODEL = "gpt-4o-mini"


def prompts(n: int) -> list[str]:
    return [f"Question {i}: what is {i} + 1?" for i in range(n)]


def floor_side(url: str, n: int) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    start = time.perf_counter()
    bodies = [
        {
            "model": MODEL,
            "stream": False,
            "temperature": 0.0,
            "messages": [{"content": text, "role": "user"}],
        }
        for text in prompts(n)
    ]
    results = _harness.floor_batch(url, "/v1/chat/completions", bodies, poll=POLL)
    answers = [body["choices"][0]["message"]["content"] for body in results]
    assert len(answers) == n and all(answers)
    wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "rss": _harness.peak_rss_mb()}))


def project_side(url: str, n: int) -> None:
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    import batch_llm
    from langchain_batch_llm import BatchChatModel

    with batch_llm.Scheduler(poll_interval=POLL) as scheduler:
        llm = BatchChatModel(
            model=f"openai:{MODEL}",
            temperature=0,
            api_key="sk-bench",
            base_url=url + "/v1",
            scheduler=scheduler,
        )
        start = time.perf_counter()
        messages = asyncio.run(llm.abatch(prompts(n)))  # type: ignore[arg-type]
        answers = [m.content for m in messages]
        assert len(answers) == n and all(answers)
        wall = time.perf_counter() - start
    print(json.dumps({"wall": wall, "rss": _harness.peak_rss_mb()}))


def main() -> None:
    _harness.main(
        __file__,
        __doc__,
        {"floor": floor_side, "project": project_side},
        lambda n: f"langchain benchmark: {n} prompts through BatchChatModel.abatch",
        repeat=5,
    )


if __name__ == "__main__":
    main()
