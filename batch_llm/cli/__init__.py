"""The ``batch-llm`` command.

- ``batch-llm batches``: the journal's batches (``--remote``: the provider's), and
  ``batches show|cancel|results ID`` for one of them;
- ``batch-llm cost``: what the journal's batches cost, batch price against realtime;
- ``batch-llm emulator``: the offline provider emulator;
- ``batch-llm demo``: a batched fan-out against the emulator.

Tables are drawn with rich on a terminal when it is installed, as plain aligned text otherwise;
``--json`` prints JSON. Credentials come from the environment, never from the journal.

The command's entry point is ``main`` (the ``batch-llm`` console script, ``python -m batch_llm``);
each command lives in a module of its own: ``_batches``, ``_cost``, ``_demo``, with what they
share in ``_journal`` (the journal they read), ``_adapter`` (the provider they reach),
``_errors`` and ``_output``.
"""

from __future__ import annotations

from ._main import build_parser, main

__all__ = ["build_parser", "main"]
