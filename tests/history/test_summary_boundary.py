"""The summary buffer's boundary: every message is summarized or kept, exactly once.

It used to find where its summary ended by the contents of the last three messages
summarized, so a conversation of repeated turns ("ok", "next") moved the boundary
forward and messages were neither summarized nor kept.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import BaseMessage, SystemMessage
from pydantic import PrivateAttr

from langmem_prod.history.memory import ConversationSummaryBufferMemory
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer
from tests.history.conftest import MakeHistory

WORDS = ["ok", "next", "ok ok", "next please", "yes"]


class RecordingMemory(ConversationSummaryBufferMemory):
    """Records every message it hands to the model to summarize."""

    _summarized: list[BaseMessage] = PrivateAttr(default_factory=list)

    def _prompt(self, summary: str, overflow: list[BaseMessage]) -> list[BaseMessage]:
        self._summarized.extend(overflow)
        return super()._prompt(summary, overflow)


class ListHistory(BaseChatMessageHistory):
    """A history that is not langmem_prod's: the memory keeps its state itself."""

    def __init__(self) -> None:
        self.messages: list[BaseMessage] = []

    def add_messages(self, messages: Any) -> None:
        self.messages.extend(messages)

    def clear(self) -> None:
        self.messages = []


def words(messages: Any) -> int:
    return sum(len(str(m.content).split()) for m in messages)


def memory_on(history: Any, max_tokens: int) -> RecordingMemory:
    llm = FakeListChatModel(responses=["the summary"])
    return RecordingMemory(history=history, llm=llm, max_tokens=max_tokens, token_counter=words)


def check_exactly_once(memory: RecordingMemory, stored: list[BaseMessage], out: Any) -> None:
    kept = [m for m in out if not isinstance(m, SystemMessage)]
    seen = memory._summarized + kept
    assert [m.content for m in seen] == [m.content for m in stored]  # none lost, none twice
    assert [m.id for m in seen] == [m.id for m in stored]  # the very messages, in order
    assert all(m.id for m in stored)


@pytest.fixture
def sync_backend(backend_server: PgServer | RedisServer) -> Iterator[tuple[Backend, str]]:
    backend = Backend(backend_server)
    place = backend.place()
    if backend.kind == "postgres":
        asyncio.run(backend.make_history("sync", place, "setup")).setup()
    yield backend, place
    asyncio.run(backend.cleanup())


turns = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(WORDS)), max_size=30)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(turns=turns, max_tokens=st.integers(1, 12))
def test_repeated_turns_are_summarized_or_kept_exactly_once(
    sync_backend: tuple[Backend, str], turns: list[tuple[str, str]], max_tokens: int
) -> None:
    backend, place = sync_backend
    history = asyncio.run(backend.make_history("sync", place, uuid.uuid4().hex))
    memory = memory_on(history, max_tokens)
    for question, answer in turns:
        memory.save_context({"input": question}, {"output": answer})
    out = memory.load_memory_variables({})["history"]
    check_exactly_once(memory, history.messages, out)


@settings(max_examples=50, deadline=None)
@given(turns=turns, max_tokens=st.integers(1, 12))
def test_on_a_foreign_history_too(turns: list[tuple[str, str]], max_tokens: int) -> None:
    history = ListHistory()
    memory = memory_on(history, max_tokens)
    for question, answer in turns:
        memory.save_context({"input": question}, {"output": answer})
    check_exactly_once(memory, history.messages, memory.load_memory_variables({})["history"])


async def test_repeated_turns_lose_nothing_sync_and_async(make_history: MakeHistory) -> None:
    made = await make_history("repeats")
    memory = memory_on(made.history, 4)
    for n in range(12):
        turn = {"input": "ok" if n % 3 else "ok ok"}, {"output": "next"}
        if made.flavour == "async":
            await memory.asave_context(*turn)
        else:
            await asyncio.to_thread(memory.save_context, *turn)
    if made.flavour == "async":
        out = (await memory.aload_memory_variables({}))["history"]
    else:
        out = (await asyncio.to_thread(memory.load_memory_variables, {}))["history"]
    check_exactly_once(memory, await made.get_messages(), out)
