"""Gemini (Developer API) shapes: REST requests to neutral conversations, generations to
``GenerateContentResponse`` JSON, embeddings, and errors in both Google shapes.

These functions produce the body of every Gemini answer, realtime or batched, so both paths give
byte-identical results. Ids derive from a hash of the request, never the clock.

Errors come in two shapes: a realtime call answers ``{"error": {"code": <HTTP status>,
"message", "status": "INVALID_ARGUMENT"}}``; a batch item carries a ``google.rpc.Status``,
``{"code": <gRPC code>, "message"}`` (unconfirmed: Google documents the type, not examples).
"""

from __future__ import annotations

import json
from typing import Any

from ._model import (
    Conversation,
    EmulatedError,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Turn,
    count_words,
    embed,
    find_error_marker,
    generate,
)
from ._openai_shapes import request_hash
from ._server import dumps
from ._store import Outcome

__all__ = [
    "GRPC_CODES",
    "HTTP_STATUS_NAMES",
    "batch_embed_contents",
    "count_tokens",
    "embed_content",
    "error_body",
    "error_outcome",
    "generate_content",
    "model_id",
    "rpc_status",
    "stream_generate_content",
]

# HTTP status -> the canonical status name Google sends with it, and its gRPC code.
HTTP_STATUS_NAMES: dict[int, tuple[str, int]] = {
    400: ("INVALID_ARGUMENT", 3),
    401: ("UNAUTHENTICATED", 16),
    403: ("PERMISSION_DENIED", 7),
    404: ("NOT_FOUND", 5),
    409: ("ABORTED", 10),
    429: ("RESOURCE_EXHAUSTED", 8),
    499: ("CANCELLED", 1),
    500: ("INTERNAL", 13),
    501: ("UNIMPLEMENTED", 12),
    503: ("UNAVAILABLE", 14),
    504: ("DEADLINE_EXCEEDED", 4),
}
GRPC_CODES = {code: name for name, code in HTTP_STATUS_NAMES.values()}


def _status_name(status: int) -> tuple[str, int]:
    known = HTTP_STATUS_NAMES.get(status)
    if known is not None:
        return known
    return ("INTERNAL", 13) if status >= 500 else ("FAILED_PRECONDITION", 9)


def error_body(status: int, message: str) -> dict[str, Any]:
    """A realtime error body."""
    return {"error": {"code": status, "message": message, "status": _status_name(status)[0]}}


def error_outcome(status: int, message: str) -> Outcome:
    """An error answer in the realtime shape (batch rendering converts it to ``rpc_status``)."""
    return Outcome(status, dumps(error_body(status, message)))


def rpc_status(outcome: Outcome) -> dict[str, Any]:
    """The ``google.rpc.Status`` a batch item carries for an error answer."""
    try:
        message = json.loads(outcome.body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = "Internal error."
    return {"code": _status_name(outcome.status)[1], "message": message}


def _bad(message: str) -> EmulatedError:
    return EmulatedError(400, message)


def model_id(model: str) -> str:
    """``models/gemini-2.5-flash`` or ``gemini-2.5-flash`` -> ``gemini-2.5-flash``."""
    return model.split("/", 1)[1] if model.startswith("models/") else model


def _check_model(model: str, method: str) -> None:
    if model.startswith("unknown-"):
        raise EmulatedError(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for "
            f"{method}. Call ListModels to see the list of available models and their "
            "supported methods.",
        )


def _field(obj: dict[str, Any], camel: str) -> Any:
    """A field by its JSON name or its proto name (``generationConfig``/``generation_config``):
    Google's JSON parser accepts both, and the SDK sends some proto names."""
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake)


# --------------------------------------------------------------------------- requests


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schemas say ``"OBJECT"``; the model reads JSON Schema types."""
    if isinstance(schema, dict):
        result = {key: _lower_types(value) for key, value in schema.items()}
        kind = result.get("type")
        if isinstance(kind, str):
            result["type"] = kind.lower()
        if result.get("nullable") is True and isinstance(result.get("type"), str):
            result["type"] = [result["type"], "null"]
        return result
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    return schema


def _part_text(part: Any, param: str) -> tuple[str, ToolCall | None, Turn | None]:
    """(text, function call, function response turn) of one part."""
    if not isinstance(part, dict):
        raise _bad(f"Invalid JSON payload received. Unknown name at '{param}': not an object.")
    if "text" in part:
        if part.get("thought"):
            return "", None, None
        return str(part["text"]), None, None
    call = _field(part, "functionCall")
    if isinstance(call, dict):
        args = call.get("args") or {}
        return (
            "",
            ToolCall(str(call.get("id") or ""), str(call.get("name", "")), json.dumps(args)),
            None,
        )
    result = _field(part, "functionResponse")
    if isinstance(result, dict):
        turn = Turn("tool", json.dumps(result.get("response", {})), tool_call_id=result.get("id"))
        return "", None, turn
    if _field(part, "inlineData") is not None:
        return "[image]", None, None
    if _field(part, "fileData") is not None:
        return "[file]", None, None
    code = _field(part, "executableCode")
    if isinstance(code, dict):
        return str(code.get("code", "")), None, None
    output = _field(part, "codeExecutionResult")
    if isinstance(output, dict):
        return str(output.get("output", "")), None, None
    return "", None, None


def _turns(contents: Any) -> list[Turn]:
    if contents is None or contents == []:
        raise _bad("* GenerateContentRequest.contents: contents is not specified\n")
    if not isinstance(contents, list):
        raise _bad("Invalid JSON payload received. 'contents' must be a list.")
    turns: list[Turn] = []
    for i, content in enumerate(contents):
        param = f"contents[{i}]"
        if not isinstance(content, dict):
            raise _bad(f"Invalid JSON payload received. '{param}' must be an object.")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise _bad(
                f"* GenerateContentRequest.{param}.role: Please use a valid role: user, model.\n"
            )
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise _bad(
                f"* GenerateContentRequest.{param}.parts: contents.parts must not be empty.\n"
            )
        texts: list[str] = []
        calls: list[ToolCall] = []
        for j, part in enumerate(parts):
            text, call, tool_turn = _part_text(part, f"{param}.parts[{j}]")
            if text:
                texts.append(text)
            if call is not None:
                calls.append(call)
            if tool_turn is not None:
                turns.append(tool_turn)
        text = "\n".join(texts)
        if role == "model":
            turns.append(Turn("assistant", text, calls))
        elif text or not (turns and turns[-1].role == "tool"):
            turns.append(Turn("user", text))
    return turns


def _system(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        parts = value.get("parts") or []
        return "\n".join(_part_text(p, "system_instruction.parts")[0] for p in parts)
    raise _bad("Invalid JSON payload received. 'system_instruction' must be a Content object.")


def _tools(body: dict[str, Any]) -> tuple[list[ToolSpec], ToolChoice, str | None]:
    tools: list[ToolSpec] = []
    raw_tools = body.get("tools") or []
    if not isinstance(raw_tools, list):
        raise _bad("Invalid JSON payload received. 'tools' must be a list.")
    for tool in raw_tools:
        if not isinstance(tool, dict):
            continue
        for declaration in _field(tool, "functionDeclarations") or []:
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise _bad(
                    "* GenerateContentRequest.tools[0].function_declarations[0].name: "
                    "Name is required.\n"
                )
            schema = _field(declaration, "parametersJsonSchema")
            if not isinstance(schema, dict):
                schema = _lower_types(declaration.get("parameters") or {"type": "object"})
            tools.append(
                ToolSpec(declaration["name"], str(declaration.get("description") or ""), schema)
            )
    config = _field(body, "toolConfig") or {}
    calling = _field(config, "functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict):
        return tools, "auto", None
    mode = str(calling.get("mode") or "AUTO").upper()
    allowed = _field(calling, "allowedFunctionNames") or []
    if mode == "NONE":
        return tools, "none", None
    if mode == "ANY":
        if len(allowed) == 1:
            return tools, "function", str(allowed[0])
        if allowed:
            tools = [t for t in tools if t.name in allowed]
        return tools, "required", None
    return tools, "auto", None


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config = _field(body, "generationConfig") or {}
    if not isinstance(config, dict):
        raise _bad("Invalid JSON payload received. 'generation_config' must be an object.")
    return config


def _conversation(model: str, body: dict[str, Any], digest: str) -> tuple[Conversation, int]:
    config = _generation_config(body)
    temperature = config.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise _bad(
            "* GenerateContentRequest.generation_config.temperature: temperature must be in "
            "the range [0.0, 2.0]\n"
        )
    max_tokens = _field(config, "maxOutputTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _bad(
            "* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens "
            "must be positive.\n"
        )
    count = _field(config, "candidateCount") or 1
    stop = _field(config, "stopSequences") or []
    schema = _field(config, "responseJsonSchema")
    if schema is None:
        schema = _field(config, "_responseJsonSchema")
    if schema is None and _field(config, "responseSchema") is not None:
        schema = _lower_types(_field(config, "responseSchema"))
    json_mode = _field(config, "responseMimeType") == "application/json"
    tools, choice, forced = _tools(body)
    conv = Conversation(
        model=model,
        system=_system(_field(body, "systemInstruction")),
        turns=_turns(body.get("contents")),
        tools=tools,
        tool_choice=choice,
        forced_tool=forced,
        response_schema=schema if isinstance(schema, dict) else None,
        json_mode=json_mode and schema is None,
        max_tokens=max_tokens,
        stop=tuple(s for s in stop if isinstance(s, str)),
        seed=digest,
    )
    return conv, int(count)


# --------------------------------------------------------------------------- answers

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}


def _generate_payload(model: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, int]:
    model = model_id(model)
    _check_model(model, "generateContent")
    # A batch item may name its model; the realtime body never does (it is in the URL). The
    # hash leaves it out so both paths derive the same ids.
    # Empty fields are left out too: the SDK sends "generationConfig": {} for any config at all.
    meaningful = {k: v for k, v in body.items() if k != "model" and v not in (None, {}, [])}
    digest = request_hash({**meaningful, "model": model})
    conv, count = _conversation(model, body, digest)
    gen = generate(conv)
    parts: list[dict[str, Any]] = []
    if gen.text is not None:
        parts.append({"text": gen.text})
    for call in gen.tool_calls:
        parts.append({"functionCall": {"name": call.name, "args": json.loads(call.arguments)}})
    candidates = [
        {
            "content": {"parts": parts, "role": "model"},
            "finishReason": _FINISH[gen.finish_reason],
            "index": index,
        }
        for index in range(count)
    ]
    output_tokens = gen.output_tokens * count
    payload = {
        "candidates": candidates,
        "usageMetadata": {
            "promptTokenCount": gen.input_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": gen.input_tokens + output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": gen.input_tokens}],
        },
        "modelVersion": model,
        "responseId": digest[:22],
    }
    return payload, gen.input_tokens, output_tokens


def generate_content(model: str, body: Any) -> Outcome:
    """The answer to ``models/{model}:generateContent`` (realtime, or one batch item)."""
    if not isinstance(body, dict):
        return error_outcome(400, "Invalid JSON payload received. Expected an object.")
    try:
        payload, prompt_tokens, output_tokens = _generate_payload(model, body)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    return Outcome(200, dumps(payload), prompt_tokens, output_tokens)


def count_tokens(model: str, body: Any) -> Outcome:
    """The answer to ``models/{model}:countTokens``: the prompt tokens generateContent would
    count for the same ``contents`` (or the whole ``generateContentRequest``)."""
    if not isinstance(body, dict):
        return error_outcome(400, "Invalid JSON payload received. Expected an object.")
    request = _field(body, "generateContentRequest")
    if not isinstance(request, dict):
        request = {"contents": body.get("contents")}
    try:
        _, prompt_tokens, _ = _generate_payload(model, request)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    details = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
    return Outcome(200, dumps({"totalTokens": prompt_tokens, "promptTokensDetails": details}))


def stream_generate_content(model: str, body: dict[str, Any]) -> bytes:
    """``streamGenerateContent?alt=sse``: the whole answer as one server-sent event.

    Raises:
        EmulatedError: the request is invalid (sent as an ordinary HTTP error instead).
    """
    payload, _, _ = _generate_payload(model, body)
    return b"data: " + dumps(payload) + b"\r\n\r\n"


def _dimensions(model: str, request: dict[str, Any]) -> int:
    wanted = _field(request, "outputDimensionality")
    native = 3072 if "gemini-embedding" in model else 768
    if wanted is None:
        return native
    if not isinstance(wanted, int) or not 1 <= wanted <= native:
        raise _bad(f"* EmbedContentRequest.output_dimensionality: must be in [1, {native}].\n")
    return wanted


def _embedding(model: str, request: Any) -> tuple[dict[str, Any], int]:
    if not isinstance(request, dict):
        raise _bad("Invalid JSON payload received. Expected an object.")
    content = request.get("content")
    if not isinstance(content, dict) or not content.get("parts"):
        raise _bad("* EmbedContentRequest.content: content is not specified\n")
    text = "\n".join(_part_text(p, "content.parts")[0] for p in content["parts"])
    marker = find_error_marker([text])
    if marker is not None:
        raise marker
    values = embed(model, text, _dimensions(model, request))
    return {"values": values}, count_words(text)


def embed_content(model: str, body: Any) -> Outcome:
    """The answer to ``models/{model}:embedContent`` (realtime, or one batch item)."""
    model = model_id(model)
    try:
        _check_model(model, "embedContent")
        embedding, tokens = _embedding(model, body)
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    return Outcome(200, dumps({"embedding": embedding}), tokens, 0)


def batch_embed_contents(model: str, body: Any) -> Outcome:
    """The answer to ``models/{model}:batchEmbedContents`` (what the SDK's embed_content calls)."""
    model = model_id(model)
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return error_outcome(400, "* BatchEmbedContentsRequest.requests: requests is empty\n")
    embeddings = []
    tokens = 0
    try:
        _check_model(model, "batchEmbedContents")
        for request in requests:
            embedding, used = _embedding(model, request)
            embeddings.append(embedding)
            tokens += used
    except EmulatedError as exc:
        return error_outcome(exc.status, exc.message)
    return Outcome(200, dumps({"embeddings": embeddings}), tokens, 0)
