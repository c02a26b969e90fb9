"""The emulator's deterministic "model": provider-neutral conversations in, generations out.

Every answer is a pure function of the request, so a batched call and a realtime call give the
same result, tests can assert on exact text, and eval sweeps are reproducible. The behaviour is
chosen to be useful in demos: arithmetic questions get (mostly) right answers, RAG prompts get the
context sentence that best matches the question, tools get called with schema-valid arguments, and
embeddings are feature-hashed so that similar texts get similar vectors.
"""

from __future__ import annotations

import array
import ast
import hashlib
import json
import math
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal

from ._outcome import EmulatedError

__all__ = [
    "Conversation",
    "EmulatedError",
    "Generation",
    "ToolCall",
    "ToolSpec",
    "Turn",
    "count_words",
    "embed",
    "embed_bytes",
    "find_error_marker",
    "generate",
    "native_dimensions",
    "stable_hash",
]

FinishReason = Literal["stop", "length", "tool_calls"]
ToolChoice = Literal["auto", "none", "required", "function"]


@dataclass(slots=True)
class ToolCall:
    """A function call the assistant made (or makes); ``arguments`` is JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ToolSpec:
    """A function the model may call, with its JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Turn:
    """One message of the conversation after the system prompt."""

    role: Literal["user", "assistant", "tool"]
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass(slots=True)
class Conversation:
    """A provider-neutral request.

    ``seed`` is a hash of the provider request; ids the model invents (tool call ids) derive from
    it so that identical requests give byte-identical answers.
    """

    model: str
    system: str = ""
    turns: list[Turn] = field(default_factory=list)
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: ToolChoice = "auto"
    forced_tool: str | None = None
    response_schema: dict[str, Any] | None = None
    json_mode: bool = False
    max_tokens: int | None = None
    stop: Sequence[str] = ()
    seed: str = ""


@dataclass(slots=True)
class Generation:
    """What the model produced: text or tool calls, why it stopped, and token counts.

    ``stop_sequence`` is the stop sequence the text was cut at, for providers that report it
    (Anthropic); it is None when no stop sequence ended the text.
    """

    text: str | None
    tool_calls: list[ToolCall]
    finish_reason: FinishReason
    input_tokens: int
    output_tokens: int
    stop_sequence: str | None = None


# --------------------------------------------------------------------------- helpers


def stable_hash(text: str) -> int:
    """A 64-bit hash that, unlike ``hash()``, is the same in every process."""
    return int.from_bytes(
        hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def count_words(text: str) -> int:
    """The emulator's token count: whitespace-separated words."""
    return len(text.split())


_MARKER = re.compile(r"\[\[emulator:error\s+(\d{3})(?:\s+([^\]]*?))?\s*\]\]")


def find_error_marker(texts: Iterable[str]) -> EmulatedError | None:
    """The error a ``[[emulator:error STATUS message]]`` marker in any text asks for, if any."""
    for text in texts:
        # The substring test keeps the regex off the hot path of ordinary prompts.
        if "[[emulator:" not in text:
            continue
        match = _MARKER.search(text)
        if match is None:
            continue
        status = int(match.group(1))
        if not 400 <= status <= 599:
            continue
        message = (match.group(2) or "").strip() or f"Emulated error {status}."
        return EmulatedError(status, message)
    return None


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'_-]*")
_STOPWORD_TEXT = """
    a an and are as at be been but by can could did do does for from had has have how i if in into
    is it its me my no not of on or our please should so than that the their them then there these
    they this to was we were what whats what's when where which who whom why will with would you
    your yours tell give show find get about use using answer question query context
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _content_words(text: str) -> list[str]:
    words = (m.lower() for m in _WORD.findall(text))
    return [w for w in words if len(w) > 2 and w not in _STOPWORDS]


# --------------------------------------------------------------------------- arithmetic

_NUM = r"\d+(?:\.\d+)?"
# Written as escapes: the multiplication and division signs look like letters in source.
_TIMES, _DIVIDE = "\u00d7", "\u00f7"
_EXPR = rf"[-(\s]*{_NUM}[)\s]*(?:[-+*/{_TIMES}{_DIVIDE}][-(\s]*{_NUM}[)\s]*)+"
_WHOLE_EXPR = re.compile(rf"^\s*({_EXPR})\s*[?=.!]*\s*$")
_ASKED_EXPR = re.compile(
    rf"(?i)\b(?:what\s+is|what's|whats|calculate|compute|evaluate|how\s+much\s+is)\s+({_EXPR})"
)
_ANY_EXPR = re.compile(rf"\d[)\s]*[-+*/{_TIMES}{_DIVIDE}][-(\s]*\d")
_SMALL_MODEL_HINTS = frozenset({"mini", "haiku", "flash"})
_NAME_PART = re.compile(r"[^a-z0-9]+")


def _eval_node(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _eval_node(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval_node(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left, right = _eval_node(node.left), _eval_node(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right  # ZeroDivisionError is handled by the caller
    raise ValueError("not simple arithmetic")


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"


def _arithmetic_answer(model: str, text: str) -> str | None:
    # The cheap test first: most prompts have no "number operator number" at all.
    if _ANY_EXPR.search(text) is None:
        return None
    match = _WHOLE_EXPR.match(text) or _ASKED_EXPR.search(text)
    if match is None:
        return None
    expr = match.group(1).replace(_TIMES, "*").replace(_DIVIDE, "/").strip()
    if len(expr) > 200:
        return None
    try:
        value = _eval_node(ast.parse(expr, mode="eval"))
    except ZeroDivisionError:
        return "undefined"
    except (SyntaxError, ValueError):
        return None
    # Whole name parts only: "gemini-2.5-pro" is not a "mini" model.
    parts = set(_NAME_PART.split(model.lower()))
    # Small models get one question in five wrong (chosen by the question, so every run and every
    # path agrees), which gives eval sweeps comparing models something to find.
    if not parts.isdisjoint(_SMALL_MODEL_HINTS) and stable_hash(expr) % 5 == 0:
        value += 1
    return _format_number(value)


# --------------------------------------------------------------------------- RAG

_QUESTION_LINE = re.compile(r"(?im)^\s*(?:question|query)\s*:\s*(.*)$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTEXT_WORD = re.compile(r"(?i)\bcontext\b")


def _rag_answer(system: str, user: str) -> str | None:
    """The context sentence that shares the most words with the question, for RAG prompts."""
    # Substring tests before the regex: this runs for every request without a context.
    if not any(("ontext" in t or "ONTEXT" in t) for t in (user, system)):
        return None
    if not (_CONTEXT_WORD.search(user) or _CONTEXT_WORD.search(system)):
        return None
    questions = _QUESTION_LINE.findall(user)
    if questions and questions[-1].strip():
        question = questions[-1].strip()
        context = system + "\n" + _QUESTION_LINE.sub("", user)
    else:
        question, context = user, system
    wanted = set(_content_words(question))
    if not wanted:
        return None
    best, best_score = None, 0
    for raw in _SENTENCE_SPLIT.split(context):
        sentence = raw.strip().strip("-").strip()
        # Instructions ("Use the context below ...") are not answers.
        if not sentence or _CONTEXT_WORD.search(sentence) or sentence == question:
            continue
        score = len(wanted.intersection(_content_words(sentence)))
        if score > best_score:
            best, best_score = sentence, score
    return best


# --------------------------------------------------------------------------- JSON schema


class _Filler:
    """Hands out values taken from the prompt, in order, for schema-shaped answers."""

    def __init__(self, text: str) -> None:
        words = [m for m in _WORD.findall(text) if m.lower() not in _STOPWORDS and len(m) > 1]
        # Capitalised words that are not sentence-initial are usually the entities a tool wants
        # ("weather in Paris" -> city="Paris"), so they go first.
        capitalised = [w for i, w in enumerate(words) if i > 0 and w[:1].isupper()]
        rest = [w for w in words if w not in capitalised and not w.replace(".", "").isdigit()]
        self.words: list[str] = capitalised + rest or ["example"]
        self.numbers = [Fraction(n) for n in re.findall(r"-?\d+(?:\.\d+)?", text)]
        self._w = 0
        self._n = 0

    def word(self) -> str:
        value = self.words[self._w % len(self.words)]
        self._w += 1
        return value

    def number(self) -> Fraction:
        if not self.numbers:
            return Fraction(0)
        value = self.numbers[self._n % len(self.numbers)]
        self._n += 1
        return value


_FORMAT_SAMPLES = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "00:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _resolve_ref(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    if not ref.startswith("#"):
        return {}
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node if isinstance(node, dict) else {}


def _sample(schema: Any, root: dict[str, Any], filler: _Filler, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "$ref" in schema:
        return _sample(_resolve_ref(str(schema["$ref"]), root), root, filler, depth + 1)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            # Prefer a non-null option: Optional[X] fields should still carry a value.
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            chosen = non_null[0] if non_null else options[0]
            return _sample(chosen, root, filler, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        merged: dict[str, Any] = {}
        for part in all_of:
            if isinstance(part, dict):
                merged.update(part if "$ref" not in part else _resolve_ref(str(part["$ref"]), root))
        return _sample(merged, root, filler, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        props = schema.get("properties")
        result: dict[str, Any] = {}
        if isinstance(props, dict):
            for name, sub in props.items():
                result[name] = _sample(sub, root, filler, depth + 1)
        return result
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1) or 1))
        return [_sample(schema.get("items", {}), root, filler, depth + 1) for _ in range(count)]
    if kind == "string":
        fmt = schema.get("format")
        value = _FORMAT_SAMPLES.get(fmt, "") if isinstance(fmt, str) else ""
        value = value or filler.word()
        min_len, max_len = schema.get("minLength"), schema.get("maxLength")
        if isinstance(min_len, int) and len(value) < min_len:
            value = value + "x" * (min_len - len(value))
        if isinstance(max_len, int) and len(value) > max_len:
            value = value[:max_len]
        return value
    if kind in ("integer", "number"):
        number = filler.number()
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, int | float) and number < Fraction(low):
            number = Fraction(low)
        if isinstance(high, int | float) and number > Fraction(high):
            number = Fraction(high)
        if kind == "integer":
            return math.floor(number)
        return int(number) if number.denominator == 1 else float(number)
    if kind == "boolean":
        return True
    return None


def _sample_json(schema: dict[str, Any], prompt: str) -> Any:
    return _sample(schema, schema, _Filler(prompt), 0)


# --------------------------------------------------------------------------- generation


def _tool_words(tool: ToolSpec) -> set[str]:
    name = re.sub(r"([a-z])([A-Z])", r"\1 \2", tool.name).replace("_", " ").replace("-", " ")
    return set(_content_words(name + " " + tool.description))


def _choose_tool(conv: Conversation, user_text: str) -> ToolSpec | None:
    if not conv.tools or conv.tool_choice == "none":
        return None
    if conv.tool_choice == "function":
        return next((t for t in conv.tools if t.name == conv.forced_tool), None)
    wanted = set(_content_words(user_text))
    for tool in conv.tools:
        if wanted & _tool_words(tool):
            return tool
    return conv.tools[0] if conv.tool_choice == "required" else None


def _truncate_words(text: str, limit: int) -> tuple[str, bool]:
    if len(text.split()) <= limit:
        return text, False
    for count, match in enumerate(re.finditer(r"\S+", text), 1):
        if count == limit:
            end = match.end()
            return text[:end], bool(text[end:].strip())
    return text, False


def _answer_text(conv: Conversation, user_text: str) -> str:
    if conv.turns and conv.turns[-1].role == "tool":
        results = []
        for turn in reversed(conv.turns):
            if turn.role != "tool":
                break
            results.append(turn.text)
        return "The tool returned: " + "; ".join(reversed(results))
    answer = _arithmetic_answer(conv.model, user_text)
    if answer is not None:
        return answer
    answer = _rag_answer(conv.system, user_text)
    if answer is not None:
        return answer
    return f"{conv.model} says: {user_text.strip() or 'hello'}"


def _input_tokens(conv: Conversation) -> int:
    total = count_words(conv.system)
    for turn in conv.turns:
        total += count_words(turn.text)
        for call in turn.tool_calls:
            total += 1 + count_words(call.arguments)
    if conv.tools:
        described = [[t.name, t.description, t.parameters] for t in conv.tools]
        total += count_words(json.dumps(described))
    if conv.response_schema is not None:
        total += count_words(json.dumps(conv.response_schema))
    return total


def generate(conv: Conversation) -> Generation:
    """Answer a conversation deterministically.

    Raises:
        EmulatedError: a ``[[emulator:error ...]]`` marker in the conversation asked for one.
    """
    marker = find_error_marker([conv.system, *(t.text for t in conv.turns)])
    if marker is not None:
        raise marker
    user_text = next((t.text for t in reversed(conv.turns) if t.role == "user"), "")
    input_tokens = _input_tokens(conv)
    last_is_user = bool(conv.turns) and conv.turns[-1].role == "user"

    tool = _choose_tool(conv, user_text) if last_is_user else None
    if tool is not None:
        arguments = json.dumps(_sample_json(tool.parameters or {"type": "object"}, user_text))
        call = ToolCall(id=f"call_{conv.seed[:24]}", name=tool.name, arguments=arguments)
        return Generation(None, [call], "tool_calls", input_tokens, count_words(arguments))

    if conv.response_schema is not None:
        text = json.dumps(_sample_json(conv.response_schema, user_text))
        return Generation(text, [], "stop", input_tokens, count_words(text))

    text = _answer_text(conv, user_text)
    finish: FinishReason = "stop"
    stopped_at: str | None = None
    for stop in conv.stop:
        if stop and stop in text:
            # Each cut is earlier than the last, so the final one is the sequence that ended it.
            text = text[: text.index(stop)]
            stopped_at = stop
    if conv.max_tokens is not None:
        text, cut = _truncate_words(text, conv.max_tokens)
        if cut:
            finish = "length"
            stopped_at = None
    if conv.json_mode:
        text = json.dumps({"answer": text})
    return Generation(text, [], finish, input_tokens, count_words(text), stopped_at)


# --------------------------------------------------------------------------- embeddings


def native_dimensions(model: str) -> int:
    """How many dimensions a model's embeddings have when the request does not say."""
    return 3072 if "large" in model.lower() else 1536


_TRIGRAM_WEIGHT = 0.35


@lru_cache(maxsize=8192)
def _embed_cached(text: str, dimensions: int) -> tuple[tuple[float, ...], bytes]:
    slots: dict[int, float] = {}
    for word in _WORD.findall(text.lower()):
        # Whole words carry the meaning; character trigrams make "cat" and "cats" neighbours.
        features = [(word, 1.0)]
        padded = f"#{word}#"
        features.extend((padded[i : i + 3], _TRIGRAM_WEIGHT) for i in range(len(padded) - 2))
        for feature, weight in features:
            h = zlib.crc32(feature.encode())
            slot = h % dimensions
            slots[slot] = slots.get(slot, 0.0) + (weight if h & 0x80000000 else -weight)
    norm = math.sqrt(sum(v * v for v in slots.values()))
    vector = array.array("f", bytes(4 * dimensions))
    if norm == 0.0:
        vector[0] = 1.0  # texts without words still get a valid unit vector
    else:
        for slot, value in slots.items():
            vector[slot] = value / norm
    if sys.byteorder == "big":
        vector.byteswap()
        raw = vector.tobytes()
        vector.byteswap()
    else:
        raw = vector.tobytes()
    # Rounding through float32 once, here, is what makes the float and base64 encodings agree.
    return tuple(vector.tolist()), raw


def embed(model: str, text: str, dimensions: int | None = None) -> list[float]:
    """A deterministic unit vector for ``text``, float32-rounded.

    Feature hashing of lowercased words and character trigrams: texts sharing words have a high
    cosine similarity, which is enough for retrieval demos to find the right passage.
    """
    return list(_embed_cached(text, dimensions or native_dimensions(model))[0])


def embed_bytes(model: str, text: str, dimensions: int | None = None) -> bytes:
    """The same vector as :func:`embed`, as little-endian float32 bytes (the base64 encoding)."""
    return _embed_cached(text, dimensions or native_dimensions(model))[1]
