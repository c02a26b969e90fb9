"""OpenAI request and response shapes: requests to neutral conversations, generations to bodies.

These functions produce the body of every OpenAI answer, realtime or batched, so both paths give
byte-identical results. Ids and timestamps derive from a hash of the request, never the clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from ._model import (
    Conversation,
    EmulatedError,
    Generation,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
    count_words,
    embed,
    embed_bytes,
    find_error_marker,
    generate,
    native_dimensions,
)
from ._server import dumps
from ._store import Outcome

__all__ = [
    "ENDPOINTS",
    "chat_stream",
    "error_outcome",
    "error_payload",
    "request_hash",
    "respond",
]

_FINGERPRINT = "fp_emulator"
_EPOCH = 1_700_000_000
_YEAR = 31_536_000
_ROLES = "'system', 'assistant', 'user', 'function', 'tool', and 'developer'"


# --------------------------------------------------------------------------- errors


def _error_type(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_request_error"


def error_payload(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body."""
    if code is None and status == 429:
        code = "rate_limit_exceeded"
    return {
        "error": {"message": message, "type": _error_type(status), "param": param, "code": code}
    }


def error_outcome(
    status: int, message: str, *, code: str | None = None, param: str | None = None
) -> Outcome:
    """An error answer, as realtime sends it and as a batch error line carries it."""
    return Outcome(status, dumps(error_payload(status, message, code=code, param=param)))


def _bad(message: str, param: str | None = None, code: str | None = None) -> EmulatedError:
    return EmulatedError(400, message, param=param, code=code)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _invalid_type(param: str, expected: str, value: Any) -> EmulatedError:
    return _bad(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> EmulatedError:
    return _bad(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


# --------------------------------------------------------------------------- common checks


def request_hash(body: Any) -> str:
    """A hex digest of the request that every derived id and timestamp comes from."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _created(digest: str) -> int:
    return _EPOCH + int(digest[32:40], 16) % _YEAR


def _model(body: dict[str, Any], *, required_message: bool = True) -> str:
    model = body.get("model")
    if model is None or model == "":
        if required_message:
            raise _bad("you must provide a model parameter")
        raise _missing("model")
    if not isinstance(model, str):
        raise _invalid_type("model", "a string", model)
    if model.startswith("unknown-"):
        raise EmulatedError(
            404,
            f"The model `{model}` does not exist or you do not have access to it.",
            code="model_not_found",
        )
    return model


def _positive_int(body: dict[str, Any], name: str, minimum: int = 1) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(name, "an integer", value)
    if value < minimum:
        raise _bad(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {minimum}, "
            f"but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    return value


def _check_temperature(body: dict[str, Any]) -> None:
    value = body.get("temperature")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_type("temperature", "a number", value)
    if value < 0 or value > 2:
        side, bound = ("below minimum", ">= 0") if value < 0 else ("above maximum", "<= 2")
        raise _bad(
            f"Invalid 'temperature': decimal {side} value. Expected a value {bound}, "
            f"but got {value} instead.",
            "temperature",
            "decimal_below_min_value" if value < 0 else "decimal_above_max_value",
        )


def _stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        return (stop,)
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if len(stop) > 4:
            raise _bad(
                f"Invalid 'stop': array too long. Expected an array with maximum length 4, "
                f"but got an array with length {len(stop)} instead.",
                "stop",
                "array_above_max_length",
            )
        return tuple(stop)
    raise _invalid_type("stop", "a string or an array of strings", stop)


# --------------------------------------------------------------------------- chat completions


def _part_text(part: Any, param: str) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        raise _invalid_type(param, "an object", part)
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text"):
        text = part.get("text")
        if not isinstance(text, str):
            raise _invalid_type(f"{param}.text", "a string", text)
        return text
    if kind == "refusal":
        return str(part.get("refusal") or "")
    if kind in ("image_url", "input_image"):
        return "[image]"
    if kind == "input_audio":
        return "[audio]"
    if kind in ("file", "input_file"):
        return "[file]"
    raise _bad(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
        f"'input_audio', 'refusal', and 'file'.",
        f"{param}.type",
        "invalid_value",
    )


def _content_text(content: Any, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_part_text(part, f"{param}[{i}]") for i, part in enumerate(content))
    raise _invalid_type(param, "one of a string or array of objects", content)


def _chat_turns(messages: Any) -> tuple[str, list[Turn]]:
    if messages is None:
        raise _missing("messages")
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise _bad(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    system: list[str] = []
    turns: list[Turn] = []
    call_ids: set[str] = set()
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _invalid_type(param, "an object", message)
        role = message.get("role")
        if role is None:
            raise _missing(f"{param}.role")
        text = _content_text(message.get("content"), f"{param}.content")
        if role in ("system", "developer"):
            system.append(text)
        elif role == "user":
            turns.append(Turn("user", text))
        elif role == "assistant":
            calls = []
            for j, raw in enumerate(message.get("tool_calls") or []):
                function = raw.get("function") if isinstance(raw, dict) else None
                if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                    raise _missing(f"{param}.tool_calls[{j}].function.name")
                call = ToolCall(
                    str(raw.get("id", "")), function["name"], str(function.get("arguments", ""))
                )
                call_ids.add(call.id)
                calls.append(call)
            turns.append(Turn("assistant", text, calls))
        elif role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            if role == "tool":
                if not isinstance(call_id, str):
                    raise _missing(f"{param}.tool_call_id")
                if call_id not in call_ids:
                    raise _bad(
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceeding message with 'tool_calls'.",
                        f"{param}.role",
                    )
            turns.append(
                Turn("tool", text, tool_call_id=call_id if isinstance(call_id, str) else None)
            )
        else:
            raise _bad(
                f"Invalid value: '{role}'. Supported values are: {_ROLES}.",
                f"{param}.role",
                "invalid_value",
            )
    return "\n".join(system), turns


def _tool_spec(function: dict[str, Any]) -> ToolSpec:
    """A function tool whose name is checked already: chat nests it under ``"function"``,
    Responses gives it flat, and both spell its fields alike."""
    parameters = function.get("parameters")
    return ToolSpec(
        function["name"],
        str(function.get("description") or ""),
        parameters if isinstance(parameters, dict) else {},
    )


def _chat_tools(body: dict[str, Any]) -> tuple[list[ToolSpec], ToolChoice, str | None]:
    raw_tools = body.get("tools")
    tools: list[ToolSpec] = []
    if raw_tools is not None:
        if not isinstance(raw_tools, list):
            raise _invalid_type("tools", "an array", raw_tools)
        for i, raw in enumerate(raw_tools):
            if not isinstance(raw, dict):
                raise _invalid_type(f"tools[{i}]", "an object", raw)
            if raw.get("type", "function") != "function":
                continue  # custom tools take free text; the emulator never calls them
            function = raw.get("function")
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise _missing(f"tools[{i}].function.name")
            tools.append(_tool_spec(function))
    choice = body.get("tool_choice")
    if choice is None:
        return tools, "auto", None
    if not tools and raw_tools is None:
        raise _bad(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
            "are specified.",
            "tool_choice",
        )
    if choice in ("auto", "none", "required"):
        return tools, choice, None
    if isinstance(choice, dict):
        if choice.get("type") == "allowed_tools":
            return tools, "auto", None
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else choice.get("name")
        if not isinstance(name, str):
            raise _missing("tool_choice.function.name")
        if all(t.name != name for t in tools):
            raise _bad(
                f"Invalid value for 'tool_choice': tool '{name}' not found in 'tools'.",
                "tool_choice",
            )
        return tools, "function", name
    raise _bad(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or an "
        "object naming a function.",
        "tool_choice",
        "invalid_value",
    )


def _response_format(fmt: Any, param: str) -> tuple[dict[str, Any] | None, bool]:
    """(JSON schema, json mode) from a chat ``response_format`` or a Responses ``text.format``."""
    if fmt is None:
        return None, False
    if not isinstance(fmt, dict):
        raise _invalid_type(param, "an object", fmt)
    kind = fmt.get("type")
    if kind == "text":
        return None, False
    if kind == "json_object":
        return None, True
    if kind == "json_schema":
        # Chat nests the schema under "json_schema"; Responses puts it on the format itself.
        spec = fmt.get("json_schema", fmt) if param == "response_format" else fmt
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            inner = ".json_schema" if param == "response_format" else ""
            raise _missing(f"{param}{inner}.name")
        schema = spec.get("schema")
        return (schema if isinstance(schema, dict) else {"type": "object"}), False
    raise _bad(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'json_object', and 'json_schema'.",
        f"{param}.type",
        "invalid_value",
    )


def _chat_conversation(body: dict[str, Any], digest: str) -> tuple[Conversation, int]:
    model = _model(body)
    system, turns = _chat_turns(body.get("messages"))
    tools, tool_choice, forced = _chat_tools(body)
    schema, json_mode = _response_format(body.get("response_format"), "response_format")
    max_tokens = _positive_int(body, "max_completion_tokens")
    legacy_max = _positive_int(body, "max_tokens")
    n = _positive_int(body, "n") or 1
    if n > 128:
        raise _bad(
            f"Invalid 'n': integer above maximum value. Expected a value <= 128, but got "
            f"{n} instead.",
            "n",
            "integer_above_max_value",
        )
    _check_temperature(body)
    conv = Conversation(
        model=model,
        system=system,
        turns=turns,
        tools=tools,
        tool_choice=tool_choice,
        forced_tool=forced,
        response_schema=schema,
        json_mode=json_mode,
        max_tokens=max_tokens if max_tokens is not None else legacy_max,
        stop=_stop(body),
        seed=digest,
    )
    return conv, n


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat(body: dict[str, Any], digest: str) -> tuple[dict[str, Any], Generation, int]:
    conv, n = _chat_conversation(body, digest)
    gen = generate(conv)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": gen.text,
        "refusal": None,
        "annotations": [],
    }
    if gen.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in gen.tool_calls
        ]
    payload = {
        "id": f"chatcmpl-{digest[:29]}",
        "object": "chat.completion",
        "created": _created(digest),
        "model": conv.model,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": gen.finish_reason}
            for i in range(n)
        ],
        "usage": _usage(gen.input_tokens, gen.output_tokens * n),
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    return payload, gen, n


def chat_completion(body: dict[str, Any]) -> Outcome:
    """The answer to a chat completion request (realtime, non-streaming, or batched)."""
    digest = request_hash(body)
    payload, gen, n = _chat(body, digest)
    return Outcome(200, dumps(payload), gen.input_tokens, gen.output_tokens * n)


_STREAM_PIECE = re.compile(r"\s*\S+|\s+$")


def chat_stream(body: dict[str, Any]) -> bytes:
    """A streamed chat completion as server-sent events, ending in ``data: [DONE]``.

    Raises:
        EmulatedError: the request is invalid (sent as an ordinary HTTP error instead).
    """
    digest = request_hash(body)
    payload, gen, n = _chat(body, digest)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    base = {
        "id": payload["id"],
        "object": "chat.completion.chunk",
        "created": payload["created"],
        "model": payload["model"],
        "service_tier": "default",
        "system_fingerprint": _FINGERPRINT,
    }
    events: list[bytes] = []

    def emit(choices: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> None:
        chunk = {**base, "choices": choices}
        if include_usage:
            chunk["usage"] = usage
        events.append(b"data: " + dumps(chunk) + b"\n\n")

    def delta(index: int, change: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": index, "delta": change, "logprobs": None, "finish_reason": finish}

    for index in range(n):
        first: dict[str, Any] = {
            "role": "assistant",
            "content": "" if gen.text is not None else None,
            "refusal": None,
        }
        emit([delta(index, first)])
        for piece in _STREAM_PIECE.findall(gen.text or ""):
            emit([delta(index, {"content": piece})])
        for position, call in enumerate(gen.tool_calls):
            emit(
                [
                    delta(
                        index,
                        {
                            "tool_calls": [
                                {
                                    "index": position,
                                    "id": call.id,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        },
                    )
                ]
            )
            emit(
                [
                    delta(
                        index,
                        {
                            "tool_calls": [
                                {
                                    "index": position,
                                    "function": {"arguments": call.arguments},
                                }
                            ]
                        },
                    )
                ]
            )
        emit([delta(index, {}, gen.finish_reason)])
    if include_usage:
        emit([], payload["usage"])
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)


# --------------------------------------------------------------------------- completions


def completion(body: dict[str, Any]) -> Outcome:
    """The answer to a legacy ``/v1/completions`` request."""
    digest = request_hash(body)
    model = _model(body)
    prompt = body.get("prompt", "<|endoftext|>")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        prompts = [" ".join(f"t{p}" for p in prompt)]
    elif isinstance(prompt, list) and prompt:
        prompts = [p if isinstance(p, str) else " ".join(f"t{t}" for t in p) for p in prompt]
    else:
        raise _invalid_type("prompt", "a string or an array", prompt)
    max_tokens = _positive_int(body, "max_tokens")
    n = _positive_int(body, "n") or 1
    _check_temperature(body)
    stop = _stop(body)
    choices = []
    prompt_tokens = completion_tokens = 0
    for p_index, text in enumerate(prompts):
        gen = generate(
            Conversation(
                model=model,
                turns=[Turn("user", text)],
                stop=stop,
                # The real endpoint's default is famously short.
                max_tokens=16 if max_tokens is None else max_tokens,
                seed=digest,
            )
        )
        prompt_tokens += gen.input_tokens
        for j in range(n):
            completion_tokens += gen.output_tokens
            choices.append(
                {
                    "text": gen.text or "",
                    "index": p_index * n + j,
                    "logprobs": None,
                    "finish_reason": gen.finish_reason,
                }
            )
    payload = {
        "id": f"cmpl-{digest[:29]}",
        "object": "text_completion",
        "created": _created(digest),
        "model": model,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": _FINGERPRINT,
    }
    return Outcome(200, dumps(payload), prompt_tokens, completion_tokens)


# --------------------------------------------------------------------------- embeddings

_INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)
_MAX_EMBEDDING_INPUTS = 2048


def embedding_inputs(value: Any) -> list[tuple[str, int]]:
    """``(text, tokens)`` per input of an embeddings request (token arrays become words)."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        items = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise _bad(_INVALID_INPUT)
    if not items or len(items) > _MAX_EMBEDDING_INPUTS:
        raise _bad(_INVALID_INPUT)
    result = []
    for item in items:
        if isinstance(item, str) and item:
            result.append((item, count_words(item)))
        elif (
            isinstance(item, list)
            and item
            and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        ):
            result.append((" ".join(f"t{t}" for t in item), len(item)))
        else:
            raise _bad(_INVALID_INPUT)
    return result


def embeddings(body: dict[str, Any]) -> Outcome:
    """The answer to an embeddings request."""
    model = _model(body)
    if "input" not in body:
        raise _missing("input")
    inputs = embedding_inputs(body["input"])
    marker = find_error_marker(text for text, _ in inputs)
    if marker is not None:
        raise marker
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _bad(
            f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
            "encoding_format",
            "invalid_value",
        )
    native = native_dimensions(model)
    dimensions = _positive_int(body, "dimensions")
    if dimensions is not None:
        if "ada" in model:
            raise _bad("This model does not support specifying dimensions.", "dimensions")
        if dimensions > native:
            raise _bad(
                f"Invalid 'dimensions': integer above maximum value. Expected a value <= "
                f"{native}, but got {dimensions} instead.",
                "dimensions",
                "integer_above_max_value",
            )
    size = dimensions or native
    data: list[dict[str, Any]] = []
    for index, (text, _) in enumerate(inputs):
        vector: Any
        if encoding == "base64":
            vector = base64.b64encode(embed_bytes(model, text, size)).decode("ascii")
        else:
            vector = embed(model, text, size)
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(t for _, t in inputs)
    payload = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Outcome(200, dumps(payload), tokens, 0)


# --------------------------------------------------------------------------- responses


def _responses_turns(value: Any, system: list[str]) -> list[Turn]:
    if isinstance(value, str):
        return [Turn("user", value)]
    if not isinstance(value, list):
        raise _invalid_type("input", "a string or an array", value)
    turns: list[Turn] = []
    for i, item in enumerate(value):
        param = f"input[{i}]"
        if not isinstance(item, dict):
            raise _invalid_type(param, "an object", item)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text = _content_text(item.get("content"), f"{param}.content")
            if role in ("system", "developer"):
                system.append(text)
            elif role in ("user", "assistant"):
                turns.append(Turn(role, text))
            else:
                raise _bad(
                    f"Invalid value: '{role}'. Supported values are: 'assistant', "
                    f"'system', 'developer', and 'user'.",
                    f"{param}.role",
                    "invalid_value",
                )
        elif kind == "function_call":
            call = ToolCall(
                str(item.get("call_id", "")),
                str(item.get("name", "")),
                str(item.get("arguments", "")),
            )
            if turns and turns[-1].role == "assistant":
                turns[-1].tool_calls.append(call)
            else:
                turns.append(Turn("assistant", "", [call]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _content_text(output, f"{param}.output")
            turns.append(Turn("tool", text, tool_call_id=str(item.get("call_id", ""))))
        # Reasoning items and item references carry nothing the deterministic model reads.
    return turns


def _responses_tools(body: dict[str, Any]) -> tuple[list[ToolSpec], ToolChoice, str | None]:
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise _invalid_type("tools", "an array", raw_tools)
    tools = []
    for i, raw in enumerate(raw_tools):
        if isinstance(raw, dict) and raw.get("type") == "function":
            if not isinstance(raw.get("name"), str):
                raise _missing(f"tools[{i}].name")
            tools.append(_tool_spec(raw))
    choice = body.get("tool_choice", "auto")
    if choice in ("auto", "none", "required"):
        return tools, choice, None
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if all(t.name != name for t in tools):
            raise _bad(f"Tool choice '{name}' not found in 'tools' parameter.", "tool_choice")
        return tools, "function", str(name)
    return tools, "auto", None


def _echo_tools(body: dict[str, Any]) -> list[Any]:
    echoed = []
    for raw in body.get("tools") or []:
        if isinstance(raw, dict) and raw.get("type") == "function":
            echoed.append(
                {
                    "type": "function",
                    "name": raw.get("name"),
                    "description": raw.get("description"),
                    "parameters": raw.get("parameters"),
                    "strict": raw.get("strict", True),
                }
            )
        else:
            echoed.append(raw)
    return echoed


def response(body: dict[str, Any]) -> Outcome:
    """The answer to a ``/v1/responses`` request."""
    digest = request_hash(body)
    model = _model(body, required_message=False)
    if body.get("previous_response_id") is not None:
        raise _bad(
            "The batch-llm emulator does not store responses; send the whole "
            "conversation instead of 'previous_response_id'.",
            "previous_response_id",
        )
    if "input" not in body:
        raise _missing("input")
    instructions = body.get("instructions")
    system = [instructions] if isinstance(instructions, str) else []
    turns = _responses_turns(body["input"], system)
    tools, tool_choice, forced = _responses_tools(body)
    raw_text = body.get("text")
    text_config: dict[str, Any] = raw_text if isinstance(raw_text, dict) else {}
    schema, json_mode = _response_format(text_config.get("format"), "text.format")
    max_output = _positive_int(body, "max_output_tokens", minimum=16)
    _check_temperature(body)
    gen = generate(
        Conversation(
            model=model,
            system="\n".join(system),
            turns=turns,
            tools=tools,
            tool_choice=tool_choice,
            forced_tool=forced,
            response_schema=schema,
            json_mode=json_mode,
            max_tokens=max_output,
            seed=digest,
        )
    )
    incomplete = gen.finish_reason == "length"
    output: list[dict[str, Any]] = []
    for position, call in enumerate(gen.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{digest[:40]}{position:x}",
                "call_id": call.id,
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    if gen.text is not None:
        output.append(
            {
                "type": "message",
                "id": f"msg_{digest[:48]}",
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": gen.text, "annotations": [], "logprobs": []}
                ],
            }
        )
    created = _created(digest)
    choice_echo: Any = body.get("tool_choice", "auto")
    payload = {
        "id": f"resp_{digest[:48]}",
        "object": "response",
        "created_at": created,
        "status": "incomplete" if incomplete else "completed",
        "background": False,
        "completed_at": None if incomplete else created + 1,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": instructions,
        "max_output_tokens": max_output,
        "max_tool_calls": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", True)),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": bool(body.get("store", True)),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": text_config.get("format") or {"type": "text"}, "verbosity": "medium"},
        "tool_choice": choice_echo,
        "tools": _echo_tools(body),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": gen.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": gen.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": gen.input_tokens + gen.output_tokens,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }
    return Outcome(200, dumps(payload), gen.input_tokens, gen.output_tokens)


# --------------------------------------------------------------------------- dispatch

ENDPOINTS: dict[str, Callable[[dict[str, Any]], Outcome]] = {
    "/v1/chat/completions": chat_completion,
    "/v1/embeddings": embeddings,
    "/v1/responses": response,
    "/v1/completions": completion,
}


def respond(endpoint: str, body: Any, *, batch: bool = False) -> Outcome:
    """Answer one request to ``endpoint`` with a body or an OpenAI error, never raising.

    ``batch`` is True for batch lines, which cannot stream.
    """
    if not isinstance(body, dict):
        return error_outcome(
            400,
            f"Invalid type for 'body': expected an object, but got {_json_type(body)} instead.",
            param="body",
            code="invalid_type",
        )
    try:
        if batch and body.get("stream"):
            raise _bad("Streaming is not supported in the batch API.", "stream")
        return ENDPOINTS[endpoint](body)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message, code=exc.code, param=exc.param)
