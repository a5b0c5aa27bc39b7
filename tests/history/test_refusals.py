"""What a chat history refuses on write (nothing written), and what `ttl=0` means.

Every backend x sync/async: a message of a type LangChain cannot read back, NaN or an
infinity in any field (orjson would store null), a negative TTL; `ttl=0` is no expiry.
"""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from langmem_prod import PostgresChatMessageHistory, RedisChatMessageHistory, errors
from tests.history.conftest import History, MakeHistory


class NoteMessage(BaseMessage):
    """A message type of the application's own, which `messages_from_dict` cannot rebuild."""

    type: str = "note"


async def contents(history: History) -> list[Any]:
    return [m.content for m in await history.get_messages()]


async def test_a_message_of_an_unknown_type_is_refused_and_reads_keep_working(
    history: History,
) -> None:
    await history.add_messages([HumanMessage("q"), AIMessage("a")])
    with pytest.raises(errors.InvalidMessageError, match=r"message 0 \(NoteMessage\).*read"):
        await history.add_messages([NoteMessage("remember this")])
    with pytest.raises(errors.InvalidMessageError, match=r"message 2 \(NoteMessage\)"):
        await history.add_messages([HumanMessage("q2"), AIMessage("a2"), NoteMessage("n")])
    assert await contents(history) == ["q", "a"]
    assert (await history.load()).messages == [HumanMessage("q"), AIMessage("a")]


NON_FINITE = [math.nan, math.inf, -math.inf]
PLACES = {
    "content block": lambda x: HumanMessage([{"type": "text", "text": "t", "score": x}]),
    "additional_kwargs": lambda x: HumanMessage("m", additional_kwargs={"w": [1, {"v": x}]}),
    "response_metadata": lambda x: AIMessage("m", response_metadata={"logprob": x}),
    "tool call args": lambda x: AIMessage(
        "", tool_calls=[{"name": "f", "args": {"threshold": x}, "id": "c1"}]
    ),
    "tool artifact": lambda x: ToolMessage("r", tool_call_id="c1", artifact={"p": [x]}),
}


@pytest.mark.parametrize("place", list(PLACES))
async def test_nan_and_infinities_are_refused_wherever_they_are(
    history: History, place: str
) -> None:
    await history.add_messages([HumanMessage("kept")])
    for number in NON_FINITE:
        bad = PLACES[place](number)
        with pytest.raises(errors.InvalidMessageError, match=r"message 1 .*NaN or an infinity"):
            await history.add_messages([HumanMessage("fine"), bad])
    assert await contents(history) == ["kept"]
    await history.add_messages([PLACES[place](0.5)])  # a finite number is stored exactly
    assert (await history.get_messages(last=1)) == [PLACES[place](0.5)]


@pytest.mark.parametrize("ttl", [0, 0.0, timedelta(0)], ids=["0", "0.0", "timedelta(0)"])
async def test_ttl_zero_means_no_expiry(make_history: MakeHistory, ttl: Any) -> None:
    history = await make_history("forever", ttl=ttl)
    await history.add_messages([HumanMessage("q"), AIMessage("a")])
    await history.save_state({"summary": "s"})
    await asyncio.sleep(0.1)
    transcript = await history.load()
    assert [m.content for m in transcript.messages] == ["q", "a"]
    assert transcript.state == {"summary": "s"}


@pytest.mark.parametrize("cls", [PostgresChatMessageHistory, RedisChatMessageHistory])
@pytest.mark.parametrize("ttl", [-1, -0.001, timedelta(seconds=-5), math.nan, -math.inf, "60"])
def test_a_negative_or_non_numeric_ttl_is_refused_at_construction(cls: Any, ttl: Any) -> None:
    url = "redis://127.0.0.1:1/0" if cls is RedisChatMessageHistory else "postgresql://x:1/db"
    with pytest.raises(errors.ConfigurationError, match=r"ttl must be a number of seconds >= 0"):
        cls("s", url, ttl=ttl)
