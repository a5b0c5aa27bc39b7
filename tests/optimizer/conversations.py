"""Conversations for the optimizer tests: generated (hypothesis) and a fake model."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import strategies as st
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import Field

from langmem_prod.optimizer import ScoreBatch

FACTS = [
    "Invoice INV-{n} is 1,240.50 EUR, due 2026-12-0{d}.",
    "We decided to migrate to PostgreSQL 18; Bob owns it.",
    "The deploy failed with error E{n} at 14:05.",
    "I prefer dark mode and I am allergic to peanuts.",
    "Action item: Carol will send the report by Friday.",
]
FILLER = ["ok", "thanks!", "sure, sounds good", "hello there", "great, got it", "cool"]

_text = st.one_of(
    st.sampled_from(FACTS).map(lambda t: t.format(n=417, d=3)),
    st.sampled_from(FILLER),
    st.text(max_size=60),
)


@st.composite
def conversations(draw: st.DrawFn) -> list[BaseMessage]:
    """A conversation: leading system messages, then turns with parallel tool calls."""
    messages: list[BaseMessage] = [
        SystemMessage(draw(_text)) for _ in range(draw(st.integers(0, 2)))
    ]
    for turn in range(draw(st.integers(1, 8))):
        messages.append(HumanMessage(draw(_text)))
        for call_round in range(draw(st.integers(0, 2))):
            ids = [f"call-{turn}-{call_round}-{k}" for k in range(draw(st.integers(1, 3)))]
            calls = [{"name": "lookup", "args": {"q": draw(_text)}, "id": i} for i in ids]
            messages.append(AIMessage(draw(_text), tool_calls=calls))
            answers = draw(st.permutations(ids))
            messages += [ToolMessage(draw(_text), tool_call_id=i) for i in answers]
        if draw(st.booleans()):
            messages.append(AIMessage(draw(_text)))
    return messages


class FakeModel(BaseChatModel):
    """Scores (JSON in text), summarizes and answers; counts each kind of call."""

    calls: dict[str, int] = Field(default_factory=lambda: {"score": 0, "summary": 0, "chat": 0})
    scored: list[list[str]] = Field(default_factory=list)
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "fake-optimizer-model"

    def reply(self, messages: list[BaseMessage]) -> str:
        first = str(messages[0].content)
        if self.fail and (first.startswith(("You rate", "You maintain"))):
            raise RuntimeError("the model is down")
        if first.startswith("You rate"):
            self.calls["score"] += 1
            ids = re.findall(r"^\[(m\d+)\]", str(messages[-1].content), re.MULTILINE)
            self.scored.append(ids)
            body = ",".join(f'{{"id": "{i}", "importance": 0.9}}' for i in ids)
            return f'Here you go:\n```json\n{{"scores": [{body}]}}\n```'
        if first.startswith("You maintain"):
            self.calls["summary"] += 1
            return f"summary {self.calls['summary']}: " + str(messages[-1].content)[-200:]
        self.calls["chat"] += 1
        return f"answer {self.calls['chat']}"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self.reply(messages)))])


class StructuredFakeModel(FakeModel):
    """A fake model with structured output: answers `ScoreBatch` objects."""

    def with_structured_output(self, schema: Any, **kwargs: Any) -> Runnable[Any, Any]:
        assert schema is ScoreBatch

        def answer(messages: list[BaseMessage]) -> ScoreBatch:
            text = self.reply(messages)
            return ScoreBatch.model_validate_json(text[text.index("{") : text.rindex("}") + 1])

        return RunnableLambda(answer)
