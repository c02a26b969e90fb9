"""Anthropic Messages shapes: requests to neutral conversations, generations to messages.

These functions produce the body of every Anthropic answer, realtime or batched, so both paths
give byte-identical results. Ids derive from a hash of the request, never the clock.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ._model import (
    Conversation,
    EmulatedError,
    Generation,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
    generate,
)
from ._openai_shapes import request_hash
from ._server import dumps
from ._store import Outcome

__all__ = [
    "ERROR_TYPES",
    "count_tokens",
    "error_body",
    "error_outcome",
    "error_type",
    "message_stream",
    "respond",
]

# The error ``type`` Anthropic sends with each HTTP status.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """The Anthropic error ``type`` for an HTTP status."""
    known = ERROR_TYPES.get(status)
    if known is not None:
        return known
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, message: str) -> dict[str, Any]:
    """Anthropic's error body, as realtime sends it and as an errored batch result carries it."""
    return {"type": "error", "error": {"type": error_type(status), "message": message}}


def error_outcome(status: int, message: str) -> Outcome:
    """An error answer in Anthropic's shape."""
    return Outcome(status, dumps(error_body(status, message)))


def _bad(message: str) -> EmulatedError:
    return EmulatedError(400, message)


# --------------------------------------------------------------------------- requests


def _block_text(block: Any, param: str) -> str:
    if isinstance(block, str):
        return block
    if not isinstance(block, dict):
        raise _bad(f"{param}: Input should be a valid dictionary or object")
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise _bad(f"{param}.text: Input should be a valid string")
        return text
    if kind == "image":
        return "[image]"
    if kind == "document":
        return "[document]"
    if kind == "search_result":
        return " ".join(_block_text(b, f"{param}.content") for b in block.get("content") or [])
    # Thinking and server tool blocks carry nothing the deterministic model reads.
    return ""


def _content_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (_block_text(block, f"{param}.{i}") for i, block in enumerate(content))
        return "\n".join(t for t in texts if t)
    raise _bad(f"{param}: Input should be a valid string or list")


def _system(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_block_text(b, f"system.{i}") for i, b in enumerate(value))
    raise _bad("system: Input should be a valid string or list")


def _turns(messages: Any) -> list[Turn]:
    if messages is None:
        raise _bad("messages: Field required")
    if not isinstance(messages, list):
        raise _bad("messages: Input should be a valid list")
    if not messages:
        raise _bad("messages: at least one message is required")
    turns: list[Turn] = []
    for i, message in enumerate(messages):
        param = f"messages.{i}"
        if not isinstance(message, dict):
            raise _bad(f"{param}: Input should be a valid dictionary")
        role = message.get("role")
        if role not in ("user", "assistant"):
            raise _bad(f"{param}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if content is None:
            raise _bad(f"{param}.content: Field required")
        if role == "assistant":
            calls: list[ToolCall] = []
            texts: list[str] = []
            for j, block in enumerate(content if isinstance(content, list) else [content]):
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    name = block.get("name")
                    if not isinstance(name, str):
                        raise _bad(f"{param}.content.{j}.tool_use.name: Field required")
                    calls.append(
                        ToolCall(str(block.get("id", "")), name, json.dumps(block.get("input", {})))
                    )
                else:
                    texts.append(_block_text(block, f"{param}.content.{j}"))
            turns.append(Turn("assistant", "\n".join(t for t in texts if t), calls))
            continue
        # A user turn may answer tool calls (tool_result blocks) and add text of its own.
        texts = []
        for j, block in enumerate(content if isinstance(content, list) else [content]):
            if isinstance(block, dict) and block.get("type") == "tool_result":
                result = block.get("content", "")
                text = _content_text(result, f"{param}.content.{j}.content") if result else ""
                turns.append(Turn("tool", text, tool_call_id=str(block.get("tool_use_id", ""))))
            else:
                texts.append(_block_text(block, f"{param}.content.{j}"))
        text = "\n".join(t for t in texts if t)
        if text or not (turns and turns[-1].role == "tool"):
            turns.append(Turn("user", text))
    return turns


def _tools(body: dict[str, Any]) -> tuple[list[ToolSpec], ToolChoice, str | None]:
    raw_tools = body.get("tools")
    tools: list[ToolSpec] = []
    if raw_tools is not None:
        if not isinstance(raw_tools, list):
            raise _bad("tools: Input should be a valid list")
        for i, raw in enumerate(raw_tools):
            if not isinstance(raw, dict):
                raise _bad(f"tools.{i}: Input should be a valid dictionary")
            if raw.get("type") not in (None, "custom"):
                continue  # server tools (web search, code execution) run on Anthropic's side
            name = raw.get("name")
            if not isinstance(name, str) or not name:
                raise _bad(f"tools.{i}.custom.name: Field required")
            schema = raw.get("input_schema")
            if not isinstance(schema, dict):
                raise _bad(f"tools.{i}.custom.input_schema: Field required")
            tools.append(ToolSpec(name, str(raw.get("description") or ""), schema))
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None
    if not isinstance(choice, dict):
        raise _bad("tool_choice: Input should be a valid dictionary")
    kind = choice.get("type")
    if kind == "auto":
        return tools, "auto", None
    if kind == "any":
        return tools, "required", None
    if kind == "none":
        return tools, "none", None
    if kind == "tool":
        name = choice.get("name")
        if all(t.name != name for t in tools):
            raise _bad(f"tool_choice.tool.name: Tool '{name}' not found in provided tools")
        return tools, "function", str(name)
    raise _bad(
        f"tool_choice.type: Input tag '{kind}' found using 'type' does not match any of the "
        "expected tags: 'auto', 'any', 'tool', 'none'"
    )


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")  # the structured-outputs beta spelling
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _bad("output_config.format: expected {'type': 'json_schema', 'schema': {...}}")
    return dict(fmt["schema"])


def _conversation(body: dict[str, Any], digest: str, *, batch: bool) -> Conversation:
    model = body.get("model")
    if model is None:
        raise _bad("model: Field required")
    if not isinstance(model, str) or not model:
        raise _bad("model: Input should be a valid string")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise _bad("max_tokens: Field required")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise _bad("max_tokens: Input should be a valid integer")
    if max_tokens < 1:
        raise _bad("max_tokens: Input should be greater than or equal to 1")
    if batch and body.get("stream"):
        raise _bad("stream: Streaming is not supported in the Message Batches API")
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise _bad("temperature: Input should be a valid number")
        if not 0 <= temperature <= 1:
            raise _bad("temperature: Input should be less than or equal to 1")
    stop = body.get("stop_sequences") or []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad("stop_sequences: Input should be a valid list of strings")
    tools, choice, forced = _tools(body)
    conv = Conversation(
        model=model,
        system=_system(body.get("system")),
        turns=_turns(body.get("messages")),
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        response_schema=_schema(body),
        max_tokens=max_tokens,
        stop=tuple(stop),
        seed=digest,
    )
    if model.startswith("unknown-"):
        raise EmulatedError(404, f"model: {model}")
    return conv


# --------------------------------------------------------------------------- answers

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _usage(gen: Generation) -> dict[str, Any]:
    return {
        "input_tokens": gen.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": gen.output_tokens,
        # Realtime and batched answers must stay byte-identical, so the batch tier is not
        # reported here even though the real API says "batch" in batch results.
        "service_tier": "standard",
    }


def _message(body: dict[str, Any], *, batch: bool) -> tuple[dict[str, Any], Generation]:
    # Streaming or not, a request gets the same message (and the same ids).
    digest = request_hash({k: v for k, v in body.items() if k != "stream"})
    conv = _conversation(body, digest, batch=batch)
    gen = generate(conv)
    content: list[dict[str, Any]] = []
    if gen.text is not None:
        content.append({"type": "text", "text": gen.text})
    for position, call in enumerate(gen.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": f"toolu_{digest[:22]}{position:02x}",
                "name": call.name,
                "input": json.loads(call.arguments),
            }
        )
    stop_reason = _STOP_REASONS[gen.finish_reason]
    if gen.stop_sequence is not None:
        stop_reason = "stop_sequence"
    message = {
        "id": f"msg_{digest[:24]}",
        "type": "message",
        "role": "assistant",
        "model": conv.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": gen.stop_sequence,
        "usage": _usage(gen),
    }
    return message, gen


def respond(body: Any, *, batch: bool = False) -> Outcome:
    """Answer one Messages request (realtime non-streaming, or a batch item); never raises."""
    if not isinstance(body, dict):
        return error_outcome(400, "params: Input should be a valid dictionary")
    try:
        message, gen = _message(body, batch=batch)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    return Outcome(200, dumps(message), gen.input_tokens, gen.output_tokens)


def count_tokens(body: Any) -> Outcome:
    """The answer to ``/v1/messages/count_tokens``: the request's input tokens."""
    if not isinstance(body, dict):
        return error_outcome(400, "Input should be a valid dictionary")
    probe = dict(body)
    probe.setdefault("max_tokens", 1)  # count_tokens takes no max_tokens
    try:
        _, gen = _message(probe, batch=False)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    return Outcome(200, dumps({"input_tokens": gen.input_tokens}))


_STREAM_PIECE = re.compile(r"\s*\S+|\s+$")


def message_stream(body: dict[str, Any]) -> bytes:
    """A streamed message as server-sent events (``message_start`` ... ``message_stop``).

    Raises:
        EmulatedError: the request is invalid (sent as an ordinary HTTP error instead).
    """
    message, gen = _message(body, batch=False)
    events: list[bytes] = []

    def emit(payload: dict[str, Any]) -> None:
        events.append(
            b"event: " + payload["type"].encode() + b"\ndata: " + dumps(payload) + b"\n\n"
        )

    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**message["usage"], "output_tokens": 1},
    }
    emit({"type": "message_start", "message": start})
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            emit(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                }
            )
            for piece in _STREAM_PIECE.findall(block["text"]):
                emit(
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": piece},
                    }
                )
        else:
            emit(
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {**block, "input": {}},
                }
            )
            emit(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                }
            )
        emit({"type": "content_block_stop", "index": index})
    emit(
        {
            "type": "message_delta",
            "delta": {"stop_reason": message["stop_reason"], "stop_sequence": gen.stop_sequence},
            "usage": {"output_tokens": gen.output_tokens},
        }
    )
    emit({"type": "message_stop"})
    return b"".join(events)
