"""An offline emulator of the providers' Batch and realtime APIs.

It is a real HTTP server on 127.0.0.1 that the official SDKs talk to unchanged: OpenAI's Files
and Batches (plus chat completions, embeddings and responses), Anthropic's Message Batches (plus
Messages, streaming included), and Gemini's batch mode (inline or file input, the resumable
upload, plus generateContent and embeddings). Answers come from a deterministic model, so
batched and realtime calls give byte-identical bodies, and :class:`Knobs` make every provider
slow, flaky or broken on demand.

Example::

    from batch_llm.emulator import Emulator

    with Emulator() as emu:
        client = openai.OpenAI(base_url=emu.openai_base_url, api_key="anything")
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        claude = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="anything")
        gemini = genai.Client(api_key="anything", http_options={"base_url": emu.gemini_base_url})
"""

from ._emulator import Emulator
from ._knobs import Knobs
from ._stats import EmulatorStats

__all__ = ["Emulator", "EmulatorStats", "Knobs"]
