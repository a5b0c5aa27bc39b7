"""The optimizer node in a real multi-turn LangGraph graph with a checkpointer."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph

from langmem_prod.optimizer import ContextOptimizer, OptimizerState
from langmem_prod.optimizer._summary import SUMMARY_ID
from tests.optimizer.conversations import FakeModel


def build(model: FakeModel, saver: InMemorySaver, mode: str) -> Any:
    optimizer = ContextOptimizer(260, model=model, keep_last=2)
    key = "llm_input_messages" if mode == "llm_input" else "messages"

    def respond(state: OptimizerState) -> dict[str, Any]:
        seen = state[key]  # type: ignore[literal-required]
        assert optimizer.counter(seen) <= 260
        return {"messages": [model.invoke(seen)]}

    builder = StateGraph(OptimizerState)
    builder.add_node("optimize", optimizer.as_node(mode=mode))  # type: ignore[arg-type]
    builder.add_node("respond", respond)
    builder.add_edge(START, "optimize")
    builder.add_edge("optimize", "respond")
    return builder.compile(checkpointer=saver)


def turn_text(n: int) -> str:
    return f"Turn {n}: invoice INV-{n} is {n * 100} EUR and Bob owns follow-up {n}."


@pytest.mark.parametrize("mode", ["llm_input", "rewrite"])
async def test_at_most_one_scoring_and_one_summary_call_per_turn(mode: str, flavour: str) -> None:
    model, saver = FakeModel(), InMemorySaver()
    graph = build(model, saver, mode)
    config = {"configurable": {"thread_id": f"t-{mode}-{flavour}"}}
    seen_scores = 0
    first = {
        "messages": [SystemMessage("You are a billing assistant."), HumanMessage(turn_text(0))]
    }
    for n in range(12):
        before = dict(model.calls)
        update = first if n == 0 else {"messages": [HumanMessage(turn_text(n))]}
        if flavour == "sync":
            state = graph.invoke(update, config)
        else:
            state = await graph.ainvoke(update, config)
        assert model.calls["score"] - before["score"] <= 1
        assert model.calls["summary"] - before["summary"] <= 1
        if model.calls["score"] > before["score"]:
            new = model.scored[-1]
            assert len(new) <= 2 * (n + 1) - seen_scores  # only messages not scored before
            seen_scores += len(new)
        if n >= 9:  # the budget overflows from turn 9 on
            assert state["context_summary"]
    assert model.calls["summary"] >= 1
    if mode == "llm_input":
        assert len(state["messages"]) == 25  # the history stays whole
        assert state["llm_input_messages"][1].id == SUMMARY_ID
    else:
        assert state["messages"][0].content == "You are a billing assistant."
        assert state["messages"][1].id == SUMMARY_ID and len(state["messages"]) < 25
    # A restored thread (new graph, new optimizer, same checkpointer) rescoring nothing old.
    again_model = FakeModel()
    again = build(again_model, saver, mode)
    await again.ainvoke({"messages": [HumanMessage(turn_text(99))]}, config)
    assert again_model.calls["score"] <= 1
    assert all(len(ids) <= 2 for ids in again_model.scored)  # the new question (and answer)


async def test_without_a_model_the_node_runs_offline() -> None:
    optimizer = ContextOptimizer(120, keep_last=2)
    builder = StateGraph(OptimizerState)
    builder.add_node("optimize", optimizer.as_node())  # type: ignore[arg-type]
    builder.add_edge(START, "optimize")
    graph = builder.compile()
    messages = [HumanMessage(turn_text(n)) if n % 2 == 0 else AIMessage("ok") for n in range(30)]
    state = await graph.ainvoke({"messages": messages})
    assert optimizer.counter(state["llm_input_messages"]) <= 120
    assert state["context_summary"] and "INV-" in state["context_summary"]
    stats = optimizer.stats()
    assert stats["optimizations"] == 1 and stats["llm_calls"] == 0
