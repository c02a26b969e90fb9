"""The deterministic model on its own: answers, tools, schemas, errors, embeddings."""

from __future__ import annotations

import json
import math

import pytest

from batch_llm.emulator._model import (
    Conversation,
    EmulatedError,
    ToolCall,
    ToolSpec,
    Turn,
    embed,
    embed_bytes,
    find_error_marker,
    generate,
)


def answer(text: str, model: str = "gpt-4o", **kwargs: object) -> str | None:
    return generate(Conversation(model=model, turns=[Turn("user", text)], **kwargs)).text  # type: ignore[arg-type]


def test_echo_and_token_counts() -> None:
    gen = generate(Conversation(model="m", system="two words", turns=[Turn("user", "a b c")]))
    assert gen.text == "m says: a b c"
    assert (gen.input_tokens, gen.output_tokens, gen.finish_reason) == (5, 5, "stop")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2+2", "4"),
        ("What is 3 * (4 + 1)?", "15"),
        ("compute 9 / 3", "3"),
        ("Q: what's 1.5 + 1.25? Reply briefly.", "2.75"),
        ("What is 2 ** 3?", None),
        ("In 2023-2024 we grew", None),
        ("__import__('os') + 1", None),
    ],
)
def test_arithmetic(text: str, expected: str | None) -> None:
    result = answer(text)
    if expected is None:
        assert result == f"gpt-4o says: {text}"
    else:
        assert result == expected


def test_small_model_mistakes_are_deterministic() -> None:
    questions = [f"What is {i} + {i}?" for i in range(100)]
    first = [answer(q, "claude-haiku") for q in questions]
    assert first == [answer(q, "claude-haiku") for q in questions]
    wrong = [q for q, a, i in zip(questions, first, range(100), strict=True) if a != str(2 * i)]
    assert 5 <= len(wrong) <= 40
    assert [answer(q, "gemini-2.5-flash") for q in wrong] == [
        answer(q, "claude-haiku") for q in wrong
    ]


def test_rag_prefers_the_overlapping_sentence() -> None:
    gen = generate(
        Conversation(
            model="m",
            system="Use the context to answer.\nContext: Rust was first released in 2015. "
            "Python was created by Guido van Rossum. Go was designed at Google.",
            turns=[Turn("user", "Who created Python?")],
        )
    )
    assert gen.text == "Python was created by Guido van Rossum."
    # Without any context, the same question is echoed.
    assert answer("Who created Python?") == "gpt-4o says: Who created Python?"


def test_truncation_and_stop() -> None:
    gen = generate(Conversation(model="m", turns=[Turn("user", "a  b\tc")], max_tokens=2))
    assert (gen.text, gen.finish_reason, gen.output_tokens) == ("m says:", "length", 2)
    gen = generate(Conversation(model="m", turns=[Turn("user", "a b c")], max_tokens=5))
    assert gen.finish_reason == "stop"
    gen = generate(Conversation(model="m", turns=[Turn("user", "x STOP y")], stop=("zz", "STOP")))
    assert gen.text == "m says: x "
    # The earliest occurrence of any stop sequence wins, even inside the model's prefix.
    gen = generate(Conversation(model="m", turns=[Turn("user", "x STOP y")], stop=("STOP", "y")))
    assert gen.text == "m sa"


def test_error_markers() -> None:
    assert find_error_marker(["nothing"]) is None
    assert find_error_marker(["[[emulator:error 200]]"]) is None  # not an error status
    marker = find_error_marker(["a", "x [[emulator:error 503  try later ]] y"])
    assert marker is not None
    assert (marker.status, marker.message) == (503, "try later")
    with pytest.raises(EmulatedError) as caught:
        generate(
            Conversation(model="m", system="[[emulator:error 401]]", turns=[Turn("user", "hi")])
        )
    assert caught.value.status == 401


SCHEMA = {
    "type": "object",
    "$defs": {
        "Item": {
            "type": "object",
            "properties": {
                "sku": {"type": "string", "minLength": 8},
                "qty": {"type": "integer", "minimum": 1},
                "price": {"type": "number", "maximum": 5},
            },
        }
    },
    "properties": {
        "customer": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "when": {"type": "string", "format": "date"},
        "status": {"enum": ["open", "closed"]},
        "kind": {"const": "order"},
        "priority": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
        "urgent": {"type": "boolean"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 2},
        "note": {"type": ["string", "null"], "maxLength": 3},
    },
    "required": ["customer"],
}


def test_schema_answers_satisfy_the_schema() -> None:
    gen = generate(
        Conversation(
            model="m",
            turns=[Turn("user", "Order from Ada: 3 lamps at 9.5")],
            response_schema=SCHEMA,
        )
    )
    value = json.loads(gen.text or "")
    assert value["customer"] == "Ada"
    assert value["email"] == "user@example.com"
    assert value["when"] == "2024-01-01"
    assert (value["status"], value["kind"], value["urgent"]) == ("open", "order", True)
    assert value["priority"] == 3
    assert len(value["items"]) == 2
    assert all(
        len(item["sku"]) >= 8 and item["qty"] >= 1 and item["price"] <= 5 for item in value["items"]
    )
    assert len(value["note"]) <= 3
    assert gen.output_tokens == len((gen.text or "").split())


def test_tool_selection_and_ids() -> None:
    tools = [
        ToolSpec("search_web", "Search the internet"),
        ToolSpec("getWeather", "", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ]
    gen = generate(
        Conversation(
            model="m", turns=[Turn("user", "weather for Lisbon")], tools=tools, seed="abc123"
        )
    )
    assert gen.finish_reason == "tool_calls"
    assert gen.text is None
    assert [(c.id, c.name, json.loads(c.arguments)) for c in gen.tool_calls] == [
        ("call_abc123", "getWeather", {"city": "Lisbon"})
    ]
    # After an assistant turn the model answers instead of calling again.
    gen = generate(
        Conversation(
            model="m",
            tools=tools,
            turns=[
                Turn("user", "weather for Lisbon"),
                Turn("assistant", "", [ToolCall("call_1", "getWeather", "{}")]),
                Turn("tool", "sunny", tool_call_id="call_1"),
                Turn("tool", "22C", tool_call_id="call_1"),
            ],
        )
    )
    assert gen.text == "The tool returned: sunny; 22C"


def test_embeddings() -> None:
    vector = embed("text-embedding-3-small", "Hello world")
    assert len(vector) == 1536
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-6)
    assert len(embed("text-embedding-3-large", "Hello world")) == 3072
    assert len(embed("any", "Hello world", 10)) == 10
    assert embed("any", "Hello world") == vector
    assert len(embed_bytes("any", "Hello world", 10)) == 40
    punctuation_only = embed("any", "!!!", 4)
    assert punctuation_only == [1.0, 0.0, 0.0, 0.0]


def test_small_models_are_told_by_whole_name_parts() -> None:
    # "gemini" contains "mini", but Gemini Pro is not a small model.
    flawed = [i for i in range(50) if answer(f"What is {i} + {i}?", "gpt-4o-mini") != str(2 * i)]
    assert flawed
    assert all(answer(f"What is {i} + {i}?", "gemini-2.5-pro") == str(2 * i) for i in flawed)
    assert all(answer(f"What is {i} + {i}?", "gemini-2.5-flash") != str(2 * i) for i in flawed)
