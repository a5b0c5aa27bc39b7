"""Conversation units: what the optimizer keeps or drops as one piece, and what it must keep.

Rules:
- an `AIMessage` with tool calls and every `ToolMessage` answering one of its calls form
  one unit, kept or dropped together (parallel calls included);
- a `ToolMessage` whose call is not in the conversation is an orphan: it is never kept
  (it enters the summary), so the result never holds an orphan tool message;
- every other message is a unit of its own;
- leading system messages and the last human message are pinned (always kept); the
  units holding the last `keep_last` messages are preferred, newest first, while they fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage


@dataclass(slots=True)
class Unit:
    """Messages kept or dropped together, by their positions in the conversation."""

    positions: list[int]
    pinned: bool = False
    recent: bool = False
    orphan: bool = False


def leading_systems(messages: Sequence[BaseMessage]) -> int:
    """How many system messages open the conversation."""
    n = 0
    while n < len(messages) and isinstance(messages[n], SystemMessage):
        n += 1
    return n


def units(messages: Sequence[BaseMessage], keep_last: int) -> list[Unit]:
    """The conversation's units, in order of their first message.

    >>> from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    >>> call = AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}])
    >>> found = units([HumanMessage("q"), call, ToolMessage("r", tool_call_id="c1")], 0)
    >>> [(u.positions, u.pinned) for u in found]
    [([0], True), ([1, 2], False)]
    """
    caller: dict[str, int] = {}  # tool call id -> index of its unit
    found: list[Unit] = []
    last_human = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=-1)
    systems = leading_systems(messages)
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            owner = caller.get(message.tool_call_id)
            if owner is not None:
                found[owner].positions.append(i)
                continue
            found.append(Unit([i], orphan=True))
            continue
        unit = Unit([i], pinned=i < systems or i == last_human)
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id"):
                    caller[str(call["id"])] = len(found)
        found.append(unit)
    recent_from = len(messages) - keep_last
    for unit in found:
        unit.recent = not unit.orphan and max(unit.positions) >= recent_from
    return found
