"""PII redaction reaches every field of a message and every string of a value, at any depth.

Each field carries a different piece of PII, so a leak names the field it came from.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

from langmem_prod.security import Redactor

# One piece of PII per field, each distinct.
LEAKS = {
    "content": "ada@example.com",
    "text block": "4111 1111 1111 1111",
    "image url": "bob@example.com",
    "tool_use input": "219-45-6789",
    "tool call args": "DE89 3704 0044 0532 0130 00",
    "invalid tool call args": "10.1.2.3",
    "openai arguments": "carol@example.com",
    "function_call arguments": "4155552671",
    "response_metadata": "203.0.113.9",
    "name": "dave@example.com",
    "tool content": "erin@example.com",
    "artifact": "+44 20 7946 0958",
    "key": "frank@example.com",
    "chunk args": "grace@example.com",
}
IMAGE = "data:image/png;base64," + "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4" * 8


def conversation() -> list[BaseMessage]:
    """Messages with PII in every field a message has."""
    openai_call = {
        "id": "call_1",
        "type": "function",
        # JSON text, with the address escaped: only a JSON-aware redactor sees it
        "function": {"name": "send", "arguments": '{"to": "carol\\u0040example.com"}'},
    }
    return [
        SystemMessage("Operator notes", id="s1"),
        HumanMessage(
            f"reach me at {LEAKS['content']}",
            id="h1",
            name=LEAKS["name"],
            additional_kwargs={"profile": {LEAKS["key"]: "primary"}},
        ),
        AIMessage(
            [
                {"type": "text", "text": f"card {LEAKS['text block']} on file"},
                {"type": "image_url", "image_url": {"url": f"https://x.test/{LEAKS['image url']}"}},
                {"type": "image", "source_type": "base64", "data": IMAGE[22:], "id": "img1"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "lookup",
                    "input": {"ssn": LEAKS["tool_use input"]},
                },
            ],
            id="a1",
            name="assistant",
            tool_calls=[
                {
                    "name": "pay",
                    "args": {"to": {"accounts": [{"iban": LEAKS["tool call args"]}]}},
                    "id": "call_1",
                    "type": "tool_call",
                }
            ],
            invalid_tool_calls=[
                {
                    "name": "ping",
                    "args": f'{{"host": "{LEAKS["invalid tool call args"]}"',  # not JSON
                    "id": "call_2",
                    "error": "truncated JSON",
                    "type": "invalid_tool_call",
                }
            ],
            additional_kwargs={
                "tool_calls": [openai_call],
                "function_call": {
                    "name": "dial",
                    "arguments": json.dumps({"phone": LEAKS["function_call arguments"]}),
                },
            },
            response_metadata={"client": {"ip": LEAKS["response_metadata"]}, "model_name": "m"},
        ),
        ToolMessage(
            json.dumps({"email": LEAKS["tool content"]}),
            tool_call_id="call_1",
            id="t1",
            artifact={"callback": LEAKS["artifact"]},
        ),
        ChatMessage("IP ::1 and 10.0.0.1", role="user", id="c1"),
        AIMessageChunk(
            "",
            id="k1",
            tool_call_chunks=[
                {"name": "mail", "args": f'{{"to": "{LEAKS["chunk args"]}"}}', "id": "call_3"}
            ],
        ),
    ]


def dumped(messages: list[BaseMessage]) -> str:
    return json.dumps([message_to_dict(m) for m in messages], ensure_ascii=False)


def test_every_field_of_every_message_is_redacted() -> None:
    original = conversation()
    before = dumped(original)
    redacted = [Redactor().redact_message(m) for m in original]
    text = dumped(redacted)
    leaked = [field for field, pii in LEAKS.items() if pii in text or pii in text.lower()]
    assert leaked == []
    assert "\\u0040example" not in text and "::1" not in text and "10.0.0.1" not in text
    assert dumped(original) == before  # the originals are untouched
    ai = redacted[2]
    assert isinstance(ai, AIMessage)
    assert ai.content[0] == {"type": "text", "text": "card [CARD] on file"}  # type: ignore[index]
    assert ai.tool_calls[0]["args"] == {"to": {"accounts": [{"iban": "[IBAN]"}]}}
    assert ai.invalid_tool_calls[0]["args"] == '{"host": "[IP]"'
    assert ai.response_metadata == {"client": {"ip": "[IP]"}, "model_name": "m"}
    assert redacted[1].name == "[EMAIL]"
    assert redacted[1].additional_kwargs == {"profile": {"[EMAIL]": "primary"}}
    assert isinstance(redacted[3], ToolMessage) and redacted[3].artifact == {"callback": "[PHONE]"}


def test_ids_types_and_tool_pairing_are_kept() -> None:
    original = conversation()
    redacted = [Redactor().redact_message(m) for m in original]
    assert [type(m) for m in redacted] == [type(m) for m in original]
    assert [m.id for m in redacted] == [m.id for m in original]
    ai, tool = redacted[2], redacted[3]
    assert isinstance(ai, AIMessage) and isinstance(tool, ToolMessage)
    assert [c["id"] for c in ai.tool_calls] == ["call_1"] == [tool.tool_call_id]
    assert ai.invalid_tool_calls[0]["id"] == "call_2"
    assert ai.additional_kwargs["tool_calls"][0]["id"] == "call_1"
    assert [b["type"] for b in ai.content] == [  # type: ignore[index]
        "text",
        "image_url",
        "image",
        "image_url",
        "tool_use",
    ]
    assert ai.content[4]["id"] == "toolu_1"  # type: ignore[index]
    assert isinstance(redacted[4], ChatMessage) and redacted[4].role == "user"


def test_json_arguments_stay_json_and_binary_payloads_are_untouched() -> None:
    ai = Redactor().redact_message(conversation()[2])
    arguments = ai.additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"to": "[EMAIL]"}
    call = ai.additional_kwargs["function_call"]["arguments"]
    assert json.loads(call) == {"phone": "[PHONE]"}
    assert ai.content[2]["data"] == IMAGE[22:]  # type: ignore[index]
    assert ai.content[3]["image_url"]["url"] == IMAGE  # type: ignore[index]
    unchanged = '{"note":   "nothing to see",\n "n": [1, 2]}'  # kept byte for byte
    assert Redactor().redact_value({"raw": unchanged}) == {"raw": unchanged}


def test_values_at_any_depth_keys_included() -> None:
    value: dict[str, Any] = {
        "ada@example.com": {"ip": ["10.0.0.1", ("::1", {"deep": "SSN 123-45-6789"})]},
        "bob@example.com": 1,
        "n": 1.5,
        "ok": True,
        "none": None,
    }
    assert Redactor().redact_value(value) == {
        "[EMAIL]": {"ip": ["[IP]", ["[IP]", {"deep": "SSN [SSN]"}]]},
        "[EMAIL] (2)": 1,  # two keys that mask alike keep both entries
        "n": 1.5,
        "ok": True,
        "none": None,
    }
    hashed = Redactor(mode="hash", secret=b"k").redact_value(value)
    assert len(hashed) == 5 and all("@" not in key for key in hashed)  # hashes stay distinct


def test_a_key_gives_its_value_context() -> None:
    redactor = Redactor()
    assert redactor.redact_value({"ssn": "123456789", "tel": 4155552671}) == {
        "ssn": "[SSN]",
        "tel": "[PHONE]",
    }
    assert redactor.redact_value({"phone_number": ["4155552671"], "card": 4111111111111111}) == {
        "phone_number": ["[PHONE]"],
        "card": "[CARD]",
    }
    kept = {
        "order_id": "4155552671",
        "count": 4155552671,
        "ticket": 123456789,
        "text": "1764843330 events",  # a generic key is no context ("text" is a phone word)
    }
    assert redactor.redact_value(kept) == kept


def test_hostile_depth_does_not_recurse() -> None:
    """A value nested far deeper than Python's recursion limit is still walked."""
    deep: Any = "ada@example.com"
    for _ in range(100_000):
        deep = [deep]
    out = Redactor().redact_value({"v": deep})["v"]
    for _ in range(100_000):
        out = out[0]
    assert out == "[EMAIL]"
    too_deep_json = "[" * 100_000 + '"ada@example.com"' + "]" * 100_000
    assert "ada@" not in Redactor().redact_value({"v": too_deep_json})["v"]


@pytest.mark.parametrize("mode", ["mask", "hash"])
def test_mask_and_hash_modes_cover_messages(mode: str) -> None:
    redactor = Redactor(mode=mode, secret=b"tenant")  # type: ignore[arg-type]
    text = dumped([redactor.redact_message(m) for m in conversation()])
    assert not [pii for pii in LEAKS.values() if pii in text]
