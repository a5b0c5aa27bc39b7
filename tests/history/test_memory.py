"""Memory classes over the chat histories: buffer, token window, summary buffer."""

from __future__ import annotations

import asyncio
from operator import itemgetter
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from pydantic import Field

from langmem_prod import errors
from langmem_prod.history.context_memory import ContextAwareMemory
from langmem_prod.history.memory import (
    ChatMemory,
    ConversationBufferMemory,
    ConversationSummaryBufferMemory,
    ConversationTokenBufferMemory,
)
from tests.history.conftest import History, MakeHistory


class CountingModel(BaseChatModel):
    """A fake chat model that records every prompt and answers 'summary N'."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "counting"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.prompts.append(messages)
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(f"summary {len(self.prompts)}"))]
        )


def words(messages: Any) -> int:
    """A token counter that counts words (exact, so windows are predictable)."""
    return sum(len(str(m.content).split()) for m in messages)


class Memory:
    """A memory behind an async interface (sync methods run in a thread)."""

    def __init__(self, memory: ChatMemory, flavour: str) -> None:
        self.memory = memory
        self.flavour = flavour

    async def load(self) -> Any:
        if self.flavour == "async":
            return (await self.memory.aload_memory_variables({}))["history"]
        return (await asyncio.to_thread(self.memory.load_memory_variables, {}))["history"]

    async def save(self, question: str, answer: str) -> None:
        inputs, outputs = {"input": question}, {"output": answer}
        if self.flavour == "async":
            await self.memory.asave_context(inputs, outputs)
        else:
            await asyncio.to_thread(self.memory.save_context, inputs, outputs)

    async def clear(self) -> None:
        if self.flavour == "async":
            await self.memory.aclear()
        else:
            await asyncio.to_thread(self.memory.clear)


def text(messages: list[BaseMessage]) -> list[str]:
    return [str(m.content) for m in messages]


async def test_buffer_memory(history: History) -> None:
    memory = Memory(ConversationBufferMemory(history=history.history), history.flavour)
    await memory.save("hi", "hello")
    await memory.save("how are you?", "fine")
    assert text(await memory.load()) == ["hi", "hello", "how are you?", "fine"]
    assert [type(m) for m in await memory.load()] == [HumanMessage, AIMessage] * 2
    window = Memory(
        ConversationBufferMemory(history=history.history, fetch_last=2), history.flavour
    )
    assert text(await window.load()) == ["how are you?", "fine"]
    await memory.clear()
    assert await memory.load() == []


async def test_token_window_counts_real_tokens_and_keeps_tool_pairs(history: History) -> None:
    await history.add_messages(
        [
            HumanMessage("one two three"),
            AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
            ToolMessage("four five", tool_call_id="c1"),
            AIMessage("six"),
            HumanMessage("seven eight"),
            AIMessage("nine"),
        ]
    )
    memory = ConversationTokenBufferMemory(
        history=history.history, max_tokens=6, token_counter=words
    )
    got = await Memory(memory, history.flavour).load()
    assert text(got) == ["seven eight", "nine"]  # the tool result never starts a window
    wide = ConversationTokenBufferMemory(history=history.history, max_tokens=9, token_counter=words)
    assert text(await Memory(wide, history.flavour).load()) == [
        "one two three",
        "",
        "four five",
        "six",
        "seven eight",
        "nine",
    ]


async def test_summary_buffer_calls_the_model_only_for_new_overflow(
    make_history: MakeHistory,
) -> None:
    history = await make_history("summary")
    model = CountingModel()
    memory = Memory(
        ConversationSummaryBufferMemory(
            history=history.history, llm=model, max_tokens=8, token_counter=words
        ),
        history.flavour,
    )
    await memory.save("invoice 17 costs 420 EUR", "noted")  # 6 words: fits
    assert model.prompts == []
    await memory.save("Bob owns the deploy", "ok")  # 11 words: the first turn overflows
    assert len(model.prompts) == 1
    assert "invoice 17 costs 420 EUR" in str(model.prompts[0][-1].content)
    assert "Bob owns" not in str(model.prompts[0][-1].content)
    got = await memory.load()  # nothing new overflowed: no call
    assert len(model.prompts) == 1
    assert isinstance(got[0], SystemMessage) and got[0].content.endswith("summary 1")
    assert text(got[1:]) == ["Bob owns the deploy", "ok"]
    await memory.save("error E42 at noon", "fixing")
    assert len(model.prompts) == 2
    second = str(model.prompts[1][-1].content)
    assert "summary 1" in second and "Bob owns the deploy" in second and "invoice" not in second
    # A new memory object on the same conversation continues from the saved summary.
    again = Memory(
        ConversationSummaryBufferMemory(
            history=history.history, llm=model, max_tokens=8, token_counter=words
        ),
        history.flavour,
    )
    got = await again.load()
    assert len(model.prompts) == 2
    assert got[0].content.endswith("summary 2") and text(got[1:]) == ["error E42 at noon", "fixing"]
    assert (await history.load()).state["summary_buffer"]["summary"] == "summary 2"
    await again.clear()
    assert await again.load() == []


async def test_string_buffers_and_keys(history: History) -> None:
    memory = ConversationBufferMemory(
        history=history.history, return_messages=False, ai_prefix="Bot"
    )
    wrapped = Memory(memory, history.flavour)
    await wrapped.save("hi", "hello")
    assert await wrapped.load() == "Human: hi\nBot: hello"
    with pytest.raises(errors.InvalidInputError, match="set input_key"):
        memory._turn({"a": 1, "b": 2}, {"output": "x"})
    keyed = ConversationBufferMemory(history=history.history, input_key="q", output_key="r")
    with pytest.raises(errors.InvalidInputError, match="no key 'q'"):
        keyed._turn({"a": 1}, {"r": "x"})
    assert keyed._turn({"q": "a", "memory": 1}, {"r": "b"}) == [HumanMessage("a"), AIMessage("b")]


async def test_memory_in_an_lcel_chain(make_history: MakeHistory) -> None:
    history = await make_history("lcel")
    memory = ConversationBufferMemory(history=history.history)
    model = CountingModel()
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    load = RunnableLambda(memory.load_memory_variables, afunc=memory.aload_memory_variables)
    chain = RunnablePassthrough.assign(history=load | itemgetter("history")) | prompt | model
    wrapped = Memory(memory, history.flavour)
    for question in ("my name is Ada", "what is my name?"):
        if history.flavour == "async":
            answer = await chain.ainvoke({"input": question})
        else:
            answer = await asyncio.to_thread(chain.invoke, {"input": question})
        await wrapped.save(question, str(answer.content))
    assert text(model.prompts[1]) == [
        "Be brief.",
        "my name is Ada",
        "summary 1",
        "what is my name?",
    ]


@pytest.mark.filterwarnings("ignore:The class `ConversationChain` was deprecated")
def test_a_legacy_chain_accepts_the_memories(history: History) -> None:
    from langchain_classic.base_memory import BaseMemory  # noqa: PLC0415
    from langchain_classic.chains import ConversationChain  # noqa: PLC0415

    if history.flavour == "async":
        pytest.skip("the legacy chain is called synchronously")
    memory = ConversationBufferMemory(history=history.history, return_messages=False)
    assert isinstance(memory, BaseMemory)
    model = CountingModel()
    chain = ConversationChain(llm=model, memory=memory)
    chain.invoke({"input": "my name is Ada"})
    chain.invoke({"input": "who am I?"})
    assert "Human: my name is Ada\nAI: summary 1\nHuman: who am I?" in str(
        model.prompts[1][0].content
    )
    assert text(history.history.messages) == [
        "my name is Ada",
        "summary 1",
        "who am I?",
        "summary 2",
    ]


async def test_context_aware_memory_runs_the_optimizer(make_history: MakeHistory) -> None:
    from langmem_prod.optimizer import ContextOptimizer  # noqa: PLC0415
    from langmem_prod.optimizer._summary import SUMMARY_ID  # noqa: PLC0415
    from tests.optimizer.conversations import FakeModel  # noqa: PLC0415

    history = await make_history("context")
    model = FakeModel()
    memory = Memory(
        ContextAwareMemory(history=history.history, optimizer=ContextOptimizer(120, model=model)),
        history.flavour,
    )
    for n in range(8):
        await memory.save(f"invoice INV-{n} is {n * 100} EUR", "noted")
    got = await memory.load()
    assert got[0].id == SUMMARY_ID and model.calls == {"score": 1, "summary": 1, "chat": 0}
    assert ContextOptimizer(120).counter(got) <= 120
    state = (await history.load()).state["context"]
    assert "INV-" in state["summary"] and len(state["scores"]) == 9  # 8 invoices, 1 "noted"
    # Another process continues from the saved state: nothing old is scored again.
    again_model = FakeModel()
    again = Memory(
        ContextAwareMemory(
            history=history.history, optimizer=ContextOptimizer(120, model=again_model)
        ),
        history.flavour,
    )
    await again.load()
    assert again_model.calls == {"score": 0, "summary": 0, "chat": 0}
    await again.save("invoice INV-99 is 5 EUR", "noted")
    await again.load()
    assert again_model.calls["score"] == 1 and again_model.scored[-1] == ["m0"]  # "noted" is known
