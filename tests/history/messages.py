"""Messages of every kind, and a hypothesis strategy generating them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

EVERY_KIND: list[BaseMessage] = [
    SystemMessage("You are terse.", id="sys-1"),
    HumanMessage("What is 2+2?", id="h-1", name="ada", additional_kwargs={"lang": "en"}),
    AIMessage(
        "",
        id="ai-1",
        tool_calls=[
            {"name": "add", "args": {"a": 2, "b": 2}, "id": "call-1", "type": "tool_call"},
            {"name": "mul", "args": {"x": [1, 2.5, None]}, "id": "call-2", "type": "tool_call"},
        ],
        invalid_tool_calls=[
            {
                "name": "bad",
                "args": "{not json",
                "id": "call-3",
                "error": "no",
                "type": "invalid_tool_call",
            }
        ],
        usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
        response_metadata={"model_name": "fake", "finish_reason": "tool_calls"},
    ),
    ToolMessage("4", tool_call_id="call-1", name="add", id="t-1", artifact={"raw": [4]}),
    ToolMessage("boom", tool_call_id="call-2", status="error"),
    AIMessage(
        [{"type": "text", "text": "It is "}, {"type": "text", "text": "4."}],
        id="ai-2",
        name="bot",
    ),
    HumanMessage([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]),
    ChatMessage("custom role", role="critic"),
    FunctionMessage("result", name="legacy_fn"),
    AIMessageChunk("partial", id="chunk-1"),
    HumanMessage('unicode: 𝄞 café \u2028 \\ " \x01'),
]

_text = st.text(max_size=40)
_json: Any = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=8,
)
_kwargs = st.dictionaries(_text, _json, max_size=3)
_ids = st.none() | _text
_content = _text | st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}), max_size=3
)
_tool_call = st.fixed_dictionaries(
    {
        "name": _text,
        "args": st.dictionaries(_text, _json, max_size=3),
        "id": _ids,
        "type": st.just("tool_call"),
    }
)


def _ai(content: Any, mid: Any, name: Any, kwargs: Any, calls: Any, meta: Any) -> AIMessage:
    return AIMessage(
        content,
        id=mid,
        name=name,
        additional_kwargs=kwargs,
        tool_calls=calls,
        response_metadata=meta,
    )


messages = st.one_of(
    st.builds(HumanMessage, content=_content, id=_ids, name=_ids, additional_kwargs=_kwargs),
    st.builds(SystemMessage, content=_content, id=_ids),
    st.builds(
        _ai,
        _content,
        _ids,
        _ids,
        _kwargs,
        st.lists(_tool_call, max_size=3),
        _kwargs,
    ),
    st.builds(
        ToolMessage,
        content=_content,
        tool_call_id=_text,
        id=_ids,
        status=st.sampled_from(["success", "error"]),
        artifact=_json,
    ),
)
