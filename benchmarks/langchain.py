"""LangChain benchmark: N prompts through ``BatchChatModel.abatch`` against the LangChain
floor, both against the emulator.

    python benchmarks/langchain.py --requests 10000

The LangChain floor is the least any faithful wrapper must do: ``ChatOpenAI._get_request_payload``
builds each body, the bare openai SDK runs one batch by hand (JSONL, upload, create, poll,
download), and ``ChatOpenAI._create_chat_result`` turns each line, as it is read, into the
AIMessage the realtime call returns (its response metadata merged as ``BaseChatModel`` merges
them); nothing else (no callbacks, scheduler or journal). The project side pays on top for what
LangChain does per input (messages, callback runs and the message ids they give), and for
batch-llm's queueing, journal and result matching.

The last line is ``ratio=<wall, project/floor> rss_ratio=<peak RSS, project/floor>``; the line
before it compares the project with the bare SDK alone (``sdk``: plain dict bodies in, response
bodies out, no LangChain at all). Imports (LangChain's and the SDK's lazily imported modules)
happen before the clock on every side.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness

POLL = 0.05
MODEL = "gpt-4o-mini"
CHAT = "/v1/chat/completions"


def prompts(n: int) -> list[str]:
    return [f"Question {i}: what is {i} + 1?" for i in range(n)]


def chat_openai(url: str) -> Any:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=MODEL, temperature=0, api_key="sk-bench", base_url=url + "/v1")


def floor_side(url: str, n: int) -> None:
    """The LangChain floor: ChatOpenAI's own builder and parser around a hand-run batch."""
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock
    from langchain_core.language_models.chat_models import _gen_info_and_msg_metadata
    from openai.types.chat import ChatCompletion

    model = chat_openai(url)

    def message(body: Any) -> Any:
        # What ChatOpenAI makes of the realtime answer (the SDK's ChatCompletion of it), with
        # its response metadata merged as BaseChatModel merges them for the realtime message.
        result = model._create_chat_result(ChatCompletion.model_validate(body))
        (generation,) = result.generations
        message = generation.message
        message.response_metadata = {**result.llm_output, **_gen_info_and_msg_metadata(generation)}
        return message

    start, cpu = time.perf_counter(), time.process_time()
    bodies = [model._get_request_payload(text) for text in prompts(n)]
    messages = _harness.floor_batches(url, CHAT, bodies, poll=POLL, read=message)
    answers = [m.content for m in messages]
    assert len(answers) == n and all(answers)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu  # every thread's, not the emulator's
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": _harness.peak_rss_mb()}))


def sdk_side(url: str, n: int) -> None:
    """The bare SDK alone: plain bodies in, response bodies out."""
    import openai.resources  # noqa: F401 - the SDK's lazy import, before the clock

    start, cpu = time.perf_counter(), time.process_time()
    bodies = [
        {
            "model": MODEL,
            "stream": False,
            "temperature": 0.0,
            "messages": [{"content": text, "role": "user"}],
        }
        for text in prompts(n)
    ]
    results = _harness.floor_batches(url, CHAT, bodies, poll=POLL)
    answers = [body["choices"][0]["message"]["content"] for body in results]
    assert len(answers) == n and all(answers)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": _harness.peak_rss_mb()}))


def project_side(url: str, n: int) -> None:
    # The SDK's lazy import, before the clock, and what else loads on first use: httpx's
    # async stack under the scheduler's client, batch-llm's OpenAI adapter, and the tracers
    # LangChain's callback manager imports when it is first configured.
    import anyio._backends._asyncio
    import anyio.streams.tls  # noqa: F401
    import openai.resources  # noqa: F401
    from langchain_core.callbacks import CallbackManager

    import batch_llm
    import batch_llm.providers._openai
    from langchain_batch_llm import BatchChatModel

    CallbackManager.configure()

    with batch_llm.Scheduler(poll_interval=POLL) as scheduler:
        llm = BatchChatModel(
            model=f"openai:{MODEL}",
            temperature=0,
            api_key="sk-bench",
            base_url=url + "/v1",
            scheduler=scheduler,
        )
        start, cpu = time.perf_counter(), time.process_time()
        messages = asyncio.run(llm.abatch(prompts(n)))  # type: ignore[arg-type]
        answers = [m.content for m in messages]
        assert len(answers) == n and all(answers)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "rss": _harness.peak_rss_mb()}))


def main() -> None:
    _harness.main(
        __file__,
        __doc__,
        {"floor": floor_side, "project": project_side, "sdk": sdk_side},
        lambda n: f"langchain benchmark: {n} prompts through BatchChatModel.abatch",
        repeat=5,
    )


if __name__ == "__main__":
    main()
