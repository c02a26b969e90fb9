"""Damage the emulator does to answers on request: result lines that do not parse, and
embeddings answers a vector short (``Knobs.malformed_line_every``, ``short_embeddings_every``).

Provider-neutral: each provider decides where its lines and vectors are, these helpers how
they are damaged, so the three providers damage them alike.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Protocol

from ._knobs import Knobs
from ._outcome import Outcome
from ._server import dumps
from ._stats import StatsRecorder


class _Job(Protocol):
    """What damaging a job's lines needs of it (the store's ``BatchJob``)."""

    knobs: Knobs
    malformed: int


__all__ = ["LineDamage", "shorten_realtime", "without_last_vector"]

# Counts realtime embeddings calls since the last reset (StatsRecorder forgets it then).
_REALTIME_EMBEDDINGS = "realtime_embedding_calls"


class LineDamage:
    """Which result lines of one job to damage, and how (``malformed_line_kind``).

    Call it for every line a result file (or stream) gets; it returns the line as written.
    The damaged lines are counted on the job, for the stats.
    """

    def __init__(self, job: _Job) -> None:
        self._job = job
        self._every = job.knobs.malformed_line_every or 0
        self._garbage = job.knobs.malformed_line_kind == "garbage"

    def __bool__(self) -> bool:
        return self._every > 0

    def hits(self, index: int) -> bool:
        """Whether the line of input position ``index`` (0-based) is damaged."""
        return self._every > 0 and (index + 1) % self._every == 0

    def __call__(self, index: int, line: bytes, keep: int) -> bytes:
        """``line`` (ending in a newline) as written: damaged if its turn has come.

        Args:
            index: the line's input position (0-based).
            line: the line's bytes.
            keep: how many leading bytes hold the line's id; a truncated line keeps them.
        """
        if not self.hits(index):
            return line
        self._job.malformed += 1
        if self._garbage:
            # Not JSON, and no id in it: nothing tells a client whose answer this was.
            return b"#<batch-llm emulator: result line %d lost its bytes>\n" % (index + 1)
        # A strict prefix of a JSON object never parses: its braces cannot balance. Cut after
        # the id (so the line's owner can still be named) and before the closing brace.
        cut = min(max(keep, len(line) // 2), len(line) - 2)
        return line[:cut] + b"\n"

    def lose_entry(self, metadata: Any) -> tuple[bytes, Any]:
        """What is left of an inline result entry (Gemini's inline results are one JSON
        document, which a broken line would break whole): no answer, and with garbage no
        metadata either. Counted like a damaged line."""
        self._job.malformed += 1
        return b"", None if self._garbage else metadata


def without_last_vector(outcome: Outcome) -> Outcome:
    """An embeddings answer with one vector too few; any other answer as it is.

    OpenAI's ``data`` and Gemini's ``embeddings`` lose their last item; a Gemini answer with
    one ``embedding`` loses it.
    """
    if not outcome.ok:
        return outcome
    body: Any = json.loads(outcome.body)
    if not isinstance(body, dict):
        return outcome
    if body.get("object") == "list" and isinstance(body.get("data"), list) and body["data"]:
        body["data"].pop()
    elif isinstance(body.get("embeddings"), list) and body["embeddings"]:
        body["embeddings"].pop()
    elif "embedding" in body:
        del body["embedding"]
    else:
        return outcome
    return dataclasses.replace(outcome, body=dumps(body))


def shorten_realtime(outcome: Outcome, knobs: Knobs, stats: StatsRecorder) -> Outcome:
    """A realtime embeddings call's answer, a vector short if it is the Nth such call."""
    every = knobs.short_embeddings_every
    count = stats.tick(_REALTIME_EMBEDDINGS)
    if not every or count % every:
        return outcome
    shortened = without_last_vector(outcome)
    if shortened is not outcome:
        stats.add("embeddings_shortened")
    return shortened
