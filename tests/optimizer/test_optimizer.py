"""Scoring, caching, summaries, fallbacks, token reserves and stats of the optimizer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.store.memory import InMemoryStore

from langmem_prod.errors import ConfigurationError
from langmem_prod.optimizer import BudgetTooSmallError, ContextOptimizer, optimize_messages
from langmem_prod.optimizer._heuristic import text_score
from langmem_prod.optimizer._llm import parse_scores
from tests.optimizer.conversations import FakeModel, StructuredFakeModel


def chat(turns: int, start: int = 0) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for n in range(start, start + turns):
        out += [
            HumanMessage(f"Question {n}: what about invoice INV-{n}?", id=f"h{n}"),
            AIMessage(f"INV-{n} is {n * 10} EUR, due 2026-12-0{n % 9 + 1}.", id=f"a{n}"),
        ]
    return out


@pytest.mark.parametrize("model_class", [FakeModel, StructuredFakeModel])
async def test_one_scoring_call_for_new_messages_only(
    model_class: type[FakeModel], flavour: str
) -> None:
    model = model_class()
    optimizer = ContextOptimizer(300, model=model, keep_last=2)
    run = optimizer.optimize if flavour == "sync" else None

    async def optimize(messages: list[BaseMessage]) -> Any:
        if run is not None:
            return await asyncio.to_thread(run, messages)
        return await optimizer.aoptimize(messages)

    first = await optimize(chat(20))
    assert model.calls["score"] == 1 and len(model.scored[0]) == 40
    assert model.calls["summary"] == 1 and first.summary.startswith("summary 1")
    assert first.stats.llm_calls == 2 and first.stats.scored_by_model == 40
    second = await optimize(chat(22))
    assert model.calls["score"] == 2 and len(model.scored[1]) == 4  # only the new turns
    assert second.stats.cache_hits == 40
    totals = optimizer.stats()
    assert totals["optimizations"] == 2 and totals["llm_calls"] == 4


def test_scores_are_cached_in_a_store_across_optimizers() -> None:
    store = InMemoryStore()
    model = FakeModel()
    ContextOptimizer(150, model=model, store=store).optimize(chat(10))
    again = ContextOptimizer(150, model=model, store=store).optimize(chat(10))
    assert model.calls["score"] == 1
    assert again.stats.cache_hits == 20 and again.stats.scored_by_model == 0


async def test_a_failing_model_falls_back_offline(caplog: pytest.LogCaptureFixture) -> None:
    model = FakeModel(fail=True)
    result = await ContextOptimizer(150, model=model).aoptimize(chat(10))
    assert result.stats.fallbacks == 2 and result.stats.scored_by_heuristic == 20
    assert result.summary and "INV-" in result.summary  # the extractive summary
    assert "the scoring call failed" in caplog.text


def test_a_slow_model_times_out_to_the_fallback() -> None:
    class Slow(FakeModel):
        def reply(self, messages: list[BaseMessage]) -> str:
            time.sleep(0.5)
            return super().reply(messages)

    start = time.perf_counter()
    result = ContextOptimizer(150, model=Slow(), timeout=0.1).optimize(chat(10))
    assert time.perf_counter() - start < 0.45
    assert result.stats.fallbacks == 2 and result.summary


def test_tolerant_parsing() -> None:
    assert parse_scores('[{"id": "m0", "importance": 1.7}]').scores[0].importance == 1.0
    assert parse_scores({"scores": [{"id": 3, "importance": "0.25"}]}).scores[0].id == "3"
    assert parse_scores("no json here") is None
    assert parse_scores('{"scores": [{"id": "m0"}]}') is None  # no importance: not a score
    batch = parse_scores('{"scores": [{"id": "m0", "importance": 0.5}, {"oops": 1}]}')
    assert batch is not None and [s.id for s in batch.scores] == ["m0"]


def test_heuristic_ranks_facts_above_small_talk() -> None:
    facts = [
        "Deploy failed with error E503 at 14:05",
        "We decided to go with Postgres; Bob owns the migration",
        "Action item: Carol will send the report by Friday",
        "I prefer dark mode",
        "Invoice total is $1,240.50",
    ]
    talk = ["ok", "thanks!", "hello there", "sure, sounds good", "great, got it"]
    assert min(text_score(f)[0] for f in facts) > max(text_score(t)[0] for t in talk)


def test_system_prompt_and_tools_are_reserved() -> None:
    @tool
    def lookup(invoice: str) -> str:
        """Look an invoice up by its number, returning the amount and the due date."""
        return invoice

    plain = ContextOptimizer(400).optimize(chat(20))
    reserved = ContextOptimizer(
        400, system_prompt="You are a billing assistant. " * 20, tools=[lookup]
    )
    result = reserved.optimize(chat(20))
    assert result.stats.tokens_after <= 400
    assert len(result.messages) < len(plain.messages)


def test_budget_errors_and_settings() -> None:
    with pytest.raises(BudgetTooSmallError, match="raise max_tokens"):
        optimize_messages([SystemMessage("x" * 400), HumanMessage("hi")], 20)
    for bad in (
        {"max_tokens": 0},
        {"max_tokens": 10, "threshold": 2},
        {"max_tokens": 10, "keep_last": -1},
    ):
        with pytest.raises(ConfigurationError):
            ContextOptimizer(**bad)


def test_the_summary_is_incremental_and_capped() -> None:
    optimizer = ContextOptimizer(200, keep_last=2, max_summary_tokens=60)
    first = optimizer.optimize(chat(10))
    second = optimizer.optimize(chat(20), summary=first.summary, summarized=[])
    assert optimizer.counter([HumanMessage(second.summary or "")]) <= 60
    assert second.stats.tokens_after <= 200


def test_a_long_summary_passed_in_is_capped() -> None:
    optimizer = ContextOptimizer(200, keep_last=2, max_summary_tokens=40)
    long = "\n".join(f"- user: invoice INV-{n} is {n} EUR" for n in range(50))
    result = optimizer.optimize(chat(10), summary=long, summarized=["gone:0"])
    assert result.stats.tokens_after <= 200
    assert optimizer.counter([HumanMessage(result.summary or "")]) <= 40
