"""An offline emulator of the providers' Batch and realtime APIs.

It is a real HTTP server on 127.0.0.1 that the official SDKs talk to unchanged: upload a JSONL
file, create a batch, poll it, download results; or call chat completions, embeddings and
responses directly. Answers come from a deterministic model, so batched and realtime calls give
byte-identical bodies, and :class:`Knobs` make the provider slow, flaky or broken on demand.

Example::

    from batch_llm.emulator import Emulator

    with Emulator() as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="anything")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
"""

from ._emulator import Emulator
from ._knobs import Knobs
from ._stats import EmulatorStats

__all__ = ["Emulator", "EmulatorStats", "Knobs"]
