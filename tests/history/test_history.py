"""The chat history contract, on every backend, sync and async."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from langchain_core.messages import AIMessage, HumanMessage, messages_to_dict

from langmem_prod import errors
from tests.history.conftest import History, MakeHistory
from tests.history.messages import EVERY_KIND


def turn(n: int) -> list[HumanMessage | AIMessage]:
    return [HumanMessage(f"question {n}"), AIMessage(f"answer {n}")]


async def contents(history: History, **window: int) -> list[str]:
    return [str(m.content) for m in await history.get_messages(**window)]


async def test_every_message_kind_round_trips_exactly(history: History) -> None:
    await history.add_messages(EVERY_KIND)
    got = await history.get_messages()
    assert got == EVERY_KIND
    assert [type(m) for m in got] == [type(m) for m in EVERY_KIND]
    assert messages_to_dict(got) == messages_to_dict(EVERY_KIND)
    assert got[2].tool_calls == EVERY_KIND[2].tool_calls  # type: ignore[attr-defined]
    assert got[2].usage_metadata == EVERY_KIND[2].usage_metadata  # type: ignore[attr-defined]


async def test_appends_keep_order_across_calls(history: History) -> None:
    for n in range(5):
        await history.add_messages(turn(n))
    assert await contents(history) == [
        t for n in range(5) for t in (f"question {n}", f"answer {n}")
    ]


async def test_windows(history: History) -> None:
    await history.add_messages([HumanMessage(str(n)) for n in range(10)])
    assert await contents(history, last=3) == ["7", "8", "9"]
    assert await contents(history, last=0) == []
    assert await contents(history, last=50) == [str(n) for n in range(10)]
    assert await contents(history, offset=2, limit=3) == ["2", "3", "4"]
    assert await contents(history, offset=8) == ["8", "9"]
    assert await contents(history, offset=20, limit=5) == []
    assert await contents(history, limit=0) == []
    with pytest.raises(errors.InvalidInputError, match="either last"):
        await history.get_messages(last=2, offset=1)
    with pytest.raises(errors.InvalidInputError, match="offset"):
        await history.get_messages(offset=-1)


async def test_empty_and_missing_conversations(history: History) -> None:
    assert await history.get_messages() == []
    await history.add_messages([])
    assert await history.get_messages() == []
    transcript = await history.load()
    assert transcript.messages == [] and transcript.state == {}
    await history.clear()  # clearing nothing is fine


async def test_clear_removes_messages_and_state(history: History) -> None:
    await history.add_messages(turn(1))
    await history.save_state({"summary": "s"})
    await history.clear()
    assert (await history.load()) == ([], {})
    await history.add_messages(turn(2))
    assert await contents(history) == ["question 2", "answer 2"]


async def test_sessions_and_tenants_are_separate(make_history: MakeHistory) -> None:
    a = await make_history("same", tenant_id="acme")
    b = await make_history("same", tenant_id="globex")
    c = await make_history("same")
    d = await make_history("other", tenant_id="acme")
    for n, h in enumerate((a, b, c, d)):
        await h.add_messages([HumanMessage(f"from {n}")])
    for n, h in enumerate((a, b, c, d)):
        assert await contents(h) == [f"from {n}"]
    await a.clear()
    assert await contents(b) == ["from 1"]


async def test_tricky_session_ids(make_history: MakeHistory) -> None:
    ids = ["a}b", "{x}", "with space", "ü" * 100, "a:b", "a\\b", "%_*"]
    histories = [await make_history(sid, tenant_id="t{1}") for sid in ids]
    for sid, h in zip(ids, histories, strict=True):
        await h.add_messages([HumanMessage(sid)])
    for sid, h in zip(ids, histories, strict=True):
        assert await contents(h) == [sid]


async def test_max_messages_keeps_the_newest(make_history: MakeHistory) -> None:
    history = await make_history(max_messages=5)
    for n in range(4):
        await history.add_messages(turn(n))
    assert await contents(history) == [
        "answer 1",
        "question 2",
        "answer 2",
        "question 3",
        "answer 3",
    ]
    await history.add_messages([HumanMessage(str(n)) for n in range(12)])
    assert await contents(history) == ["7", "8", "9", "10", "11"]
    assert await contents(history, last=2) == ["10", "11"]


async def test_state_is_saved_and_loaded_with_the_messages(history: History) -> None:
    await history.save_state({"summary": "Ada likes tea", "covered": 4, "nested": {"a": [1]}})
    await history.add_messages(turn(1))
    transcript = await history.load(last=1)
    assert [m.content for m in transcript.messages] == ["answer 1"]
    assert transcript.state == {"summary": "Ada likes tea", "covered": 4, "nested": {"a": [1]}}
    await history.save_state({"summary": "newer"})
    assert (await history.load()).state == {"summary": "newer"}


async def test_bad_messages_write_nothing(history: History) -> None:
    await history.add_messages(turn(0))
    with pytest.raises(errors.InvalidMessageError, match="message 1 is a str"):
        await history.add_messages([HumanMessage("ok"), "not a message"])  # type: ignore[list-item]
    with pytest.raises(errors.InvalidMessageError, match=r"message 0 \(human\) cannot be stored"):
        await history.add_messages([HumanMessage("x", additional_kwargs={"at": dt.datetime.now()})])
    with pytest.raises(errors.InvalidInputError, match="JSON types"):
        await history.save_state({"at": dt.date.today()})
    assert await contents(history) == ["question 0", "answer 0"]


async def test_ttl_expires_the_conversation_and_writes_refresh_it(
    make_history: MakeHistory,
) -> None:
    history = await make_history(ttl=0.6)
    await history.add_messages(turn(1))
    await history.save_state({"summary": "x"})
    await asyncio.sleep(0.4)
    await history.add_messages(turn(2))  # refreshes the whole conversation's expiry
    await asyncio.sleep(0.4)
    assert await contents(history) == ["question 1", "answer 1", "question 2", "answer 2"]
    assert (await history.load()).state == {"summary": "x"}
    await asyncio.sleep(0.7)
    assert await history.get_messages() == []
    assert (await history.load()).state == {}
    await history.add_messages(turn(3))  # a new conversation: nothing old comes back
    assert await contents(history) == ["question 3", "answer 3"]
    await asyncio.sleep(0.7)
    await history.save_state({"summary": "fresh"})  # a state write does not revive messages
    assert await history.get_messages() == []
    assert (await history.load()).state == {"summary": "fresh"}


async def test_concurrent_appends_lose_nothing(make_history: MakeHistory) -> None:
    writers = [await make_history("busy") for _ in range(4)]

    async def write(w: int, history: History) -> None:
        for n in range(15):
            await history.add_messages([HumanMessage(f"{w}.{n}"), AIMessage(f"{w}.{n}")])

    await asyncio.gather(*(write(w, h) for w, h in enumerate(writers)))
    got = await contents(writers[0])
    assert len(got) == 120
    for w in range(4):  # each writer's turns stay in order and adjacent
        mine = [c for c in got if c.startswith(f"{w}.")]
        assert mine == [f"{w}.{n}" for n in range(15) for _ in range(2)]
    pairs = list(zip(got[::2], got[1::2], strict=True))
    assert all(q == a for q, a in pairs)
