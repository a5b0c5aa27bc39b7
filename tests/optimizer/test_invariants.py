"""The optimizer's invariants on generated conversations (hypothesis), offline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately

from langmem_prod.optimizer import ContextOptimizer
from langmem_prod.optimizer._units import leading_systems
from tests.optimizer.conversations import conversations


def check_invariants(messages: list[BaseMessage], max_tokens: int, keep_last: int) -> None:
    optimizer = ContextOptimizer(max_tokens, keep_last=keep_last)
    result = optimizer.optimize(messages)
    kept = result.messages
    # Fits the budget, summary message included.
    assert count_tokens_approximately(result.llm_input) <= max_tokens
    assert result.stats.tokens_after <= max_tokens
    # Same objects, original order.
    positions = [next(i for i, m in enumerate(messages) if m is k) for k in kept]
    assert positions == sorted(positions)
    # Leading system messages and the last human message are kept.
    head = leading_systems(messages)
    assert all(any(m is k for k in kept) for m in messages[:head])
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    if humans:
        assert any(k is humans[-1] for k in kept)
    # A tool call and all its results are kept or dropped together; no orphan result.
    kept_ids = {id(k) for k in kept}
    for m in messages:
        if isinstance(m, AIMessage) and m.tool_calls:
            answers = [
                t
                for t in messages
                if isinstance(t, ToolMessage) and t.tool_call_id in {c["id"] for c in m.tool_calls}
            ]
            assert len({id(t) in kept_ids for t in [m, *answers]}) == 1
    calls = {c["id"] for k in kept if isinstance(k, AIMessage) for c in k.tool_calls}
    assert all(k.tool_call_id in calls for k in kept if isinstance(k, ToolMessage))
    # Nothing is dropped without entering the summary.
    dropped = [m for m in messages if id(m) not in kept_ids]
    assert {id(m) for m in dropped} == {id(m) for m in result.summarized}
    share = min(512, int(max_tokens * 0.25), max_tokens - pinned_tokens(messages))
    if share >= 60 and any(str(m.text).strip() for m in dropped):
        assert result.summary  # room for a summary line: the summary says something


def pinned_tokens(messages: list[BaseMessage]) -> int:
    head = leading_systems(messages)
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    return count_tokens_approximately(messages[:head] + humans[-1:])


@settings(max_examples=300, deadline=None)
@given(messages=conversations(), slack=st.integers(0, 400), keep_last=st.integers(0, 8))
def test_invariants_hold(messages: list[BaseMessage], slack: int, keep_last: int) -> None:
    budget = pinned_tokens(messages) + slack
    check_invariants(messages, max(1, budget), keep_last)


def test_a_big_budget_keeps_everything() -> None:
    messages = [SystemMessage("be brief"), HumanMessage("hi"), AIMessage("hello")]
    result = ContextOptimizer(1000).optimize(messages)
    assert result.messages == messages and result.summary is None and result.dropped == []
    assert result.stats.llm_calls == 0 and result.stats.scored_by_heuristic == 0
