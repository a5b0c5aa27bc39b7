"""The optimizer under hung, slow and unhelpful models: one deadline, no starvation, fallbacks.

Every test is bounded in time: models that hang wait on an Event the fixtures set at
teardown (so no thread outlives its test for long), timeouts are a fraction of a second.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import (
    FakeListChatModel,
    GenericFakeChatModel,
    ParrotFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.graph import START, StateGraph
from langgraph.store.memory import InMemoryStore
from pydantic import ConfigDict, Field

from langmem_prod import RedisChatMessageHistory
from langmem_prod.embedded import EmbeddedRedis
from langmem_prod.errors import ConfigurationError
from langmem_prod.history.context_memory import ContextAwareMemory
from langmem_prod.optimizer import ContextOptimizer, OptimizerState, optimize_messages
from langmem_prod.optimizer._calls import WORKERS, ModelCaller, Workers
from langmem_prod.optimizer._flow import Failed
from langmem_prod.optimizer._llm import summary_answer
from langmem_prod.optimizer._summary import extractive
from langmem_prod.optimizer.optimizer import STORE_NAMESPACE
from tests.optimizer.conversations import FakeModel

TIMEOUT = 0.4
EPSILON = 0.25  # the optimization's own work and thread hand-offs, on a busy machine


def chat(turns: int = 10) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for n in range(turns):
        out += [
            HumanMessage(f"Question {n}: what about invoice INV-{n}?", id=f"h{n}"),
            AIMessage(f"INV-{n} is {n * 10} EUR, due 2026-12-0{n % 9 + 1}.", id=f"a{n}"),
        ]
    return out


def kind(messages: list[BaseMessage]) -> str:
    first = str(messages[0].content)
    return "score" if first.startswith("You rate") else "summary" if first.startswith("You") else ""


class Short(FakeModel):
    """`FakeModel` with summaries short enough for the summary's share of 150 tokens."""

    def reply(self, messages: list[BaseMessage]) -> str:
        if kind(messages) != "summary":
            return super().reply(messages)
        self.calls["summary"] += 1
        return f"summary {self.calls['summary']}: invoices INV-0 to INV-9 are due in December"


class Hung(Short):
    """A sync model that records each call it enters, then waits for `release`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    release: threading.Event = Field(default_factory=threading.Event)
    entered: list[str] = Field(default_factory=list)
    seconds: float = 30.0

    def reply(self, messages: list[BaseMessage]) -> str:
        self.entered.append(kind(messages))
        self.release.wait(self.seconds)
        return super().reply(messages)


class Slow(Short):
    """A sync model that answers after `seconds`."""

    seconds: float

    def reply(self, messages: list[BaseMessage]) -> str:
        time.sleep(self.seconds)
        return super().reply(messages)


class AsyncHung(Short):
    """A native async model that hangs; records whether the cancellation reached it."""

    entered: list[str] = Field(default_factory=list)
    cancelled: int = 0

    async def _agenerate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.entered.append(kind(messages))
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        raise AssertionError("never reached")


class Answers(Short):
    """Scores normally; answers the summary prompt with `summary(prompt)`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    summary: Callable[[list[BaseMessage]], AIMessage]

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        if kind(messages) == "summary":
            return ChatResult(generations=[ChatGeneration(message=self.summary(messages))])
        return super()._generate(messages, stop, run_manager, **kw)


@pytest.fixture
def hung() -> Iterator[Callable[..., Hung]]:
    """Hung models, released (and their threads back) at teardown."""
    made: list[Hung] = []

    def make(**kwargs: Any) -> Hung:
        made.append(Hung(**kwargs))
        return made[-1]

    yield make
    for model in made:
        model.release.set()
    for model in made:
        wait_until(lambda m=model: WORKERS.stuck(id(m)) == 0)  # type: ignore[misc]


def wait_until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


async def optimize(optimizer: ContextOptimizer, flavour: str, messages: Any = None) -> Any:
    """One optimization, timed: (result, seconds)."""
    messages = chat() if messages is None else messages
    start = time.monotonic()
    if flavour == "sync":
        result = await asyncio.to_thread(optimizer.optimize, messages)
    else:
        result = await optimizer.aoptimize(messages)
    return result, time.monotonic() - start


async def test_a_hung_model_costs_one_timeout(
    hung: Callable[..., Hung], flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = hung()
    result, seconds = await optimize(ContextOptimizer(150, model=model, timeout=TIMEOUT), flavour)
    assert TIMEOUT * 0.9 <= seconds <= TIMEOUT + EPSILON
    assert model.entered == ["score"]  # the summary call never started: no time left
    stats = result.stats
    assert stats.fallback_reasons == {"scoring: timeout": 1, "summary: deadline": 1}
    assert stats.fallbacks == 2 and stats.llm_calls == 1
    assert stats.scored_by_heuristic == 20 and stats.scored_by_model == 0
    assert result.summary and "INV-" in result.summary  # the extractive summary
    assert caplog.text.count("was abandoned") == 1
    assert WORKERS.stuck(id(model)) == 1


async def test_a_hung_async_model_is_cancelled() -> None:
    model = AsyncHung()
    optimizer = ContextOptimizer(150, model=model, timeout=TIMEOUT)
    result, seconds = await optimize(optimizer, "async")
    assert seconds <= TIMEOUT + EPSILON
    assert model.entered == ["score"] and model.cancelled == 1  # the cancellation reached it
    assert result.stats.fallback_reasons == {"scoring: timeout": 1, "summary: deadline": 1}
    assert WORKERS.stuck(id(model)) == 0  # no thread was involved


async def test_scoring_and_summary_share_one_deadline(flavour: str) -> None:
    # Each call alone fits in the timeout; both together do not.
    model = Slow(seconds=TIMEOUT * 0.6)
    optimizer = ContextOptimizer(150, model=model, timeout=TIMEOUT)
    result, seconds = await optimize(optimizer, flavour)
    assert seconds <= TIMEOUT + EPSILON
    assert result.stats.scored_by_model == 20 and result.stats.llm_calls == 2
    assert result.stats.fallback_reasons == {"summary: timeout": 1}
    await asyncio.to_thread(wait_until, lambda: WORKERS.stuck(id(model)) == 0)


async def test_hung_calls_do_not_starve_a_healthy_model(
    hung: Callable[..., Hung], flavour: str
) -> None:
    stuck = hung()
    hung_optimizer = ContextOptimizer(150, model=stuck, timeout=TIMEOUT)
    await asyncio.gather(*(optimize(hung_optimizer, flavour) for _ in range(3)))
    assert WORKERS.stuck(id(stuck)) == 3
    healthy = Short()
    optimizers = [ContextOptimizer(150, model=healthy, timeout=TIMEOUT) for _ in range(4)]
    runs = await asyncio.gather(*(optimize(o, flavour) for o in optimizers))
    for result, seconds in runs:
        assert seconds <= TIMEOUT + EPSILON
        assert result.stats.fallbacks == 0 and result.stats.scored_by_model == 20
        assert result.summary.startswith("summary")  # the model's answer, used
    assert healthy.calls["score"] == 4 and healthy.calls["summary"] == 4


async def test_a_model_with_too_many_abandoned_calls_is_not_called(
    hung: Callable[..., Hung], flavour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "langmem_prod.optimizer")
    model = hung()
    optimizer = ContextOptimizer(150, model=model, timeout=TIMEOUT)
    await asyncio.gather(*(optimize(optimizer, flavour) for _ in range(WORKERS.max_stuck)))
    assert WORKERS.stuck(id(model)) == WORKERS.max_stuck == len(model.entered)
    result, seconds = await optimize(optimizer, flavour)
    assert seconds < TIMEOUT / 2 and len(model.entered) == WORKERS.max_stuck  # not called
    assert result.stats.fallback_reasons == {"scoring: saturated": 1, "summary: saturated": 1}
    assert result.stats.llm_calls == 0 and result.summary and "INV-" in result.summary
    assert caplog.text.count("was abandoned") == 1  # logged once, not per call
    assert caplog.text.count("further calls to it are not started") == 1
    assert optimizer.stats()["fallback_reasons"] == {
        "scoring: timeout": 4,
        "summary: deadline": 4,
        "scoring: saturated": 1,
        "summary: saturated": 1,
    }
    # The model comes back: its threads return and it is called again.
    model.release.set()
    await asyncio.to_thread(wait_until, lambda: WORKERS.stuck(id(model)) == 0)
    assert "every abandoned call to Hung has returned" in caplog.text
    result, _ = await optimize(optimizer, flavour)
    assert result.stats.fallbacks == 0 and result.summary.startswith("summary")
    assert result.stats.scored_by_model == 20  # the fallback scores were not cached


async def test_a_call_not_started_by_its_deadline_never_starts(flavour: str) -> None:
    workers = Workers(max_threads=1)
    busy, late = Hung(), Hung()
    prompt = [HumanMessage("hi")]
    first = threading.Thread(
        target=ModelCaller(busy, workers).call, args=(busy, prompt, time.monotonic() + 30)
    )
    first.start()
    await asyncio.to_thread(wait_until, lambda: busy.entered == [""])  # the only thread
    caller = ModelCaller(late, workers)
    start = time.monotonic()
    deadline = start + TIMEOUT / 2
    if flavour == "sync":
        outcome = await asyncio.to_thread(caller.call, late, prompt, deadline)
    else:
        outcome = await caller.acall(late, prompt, deadline)
    assert outcome == Failed("deadline")
    assert time.monotonic() - start >= TIMEOUT / 2 * 0.9  # it waited: queue time counted
    busy.release.set()
    await asyncio.to_thread(first.join, 5)
    late.release.set()
    after = ModelCaller(FakeModel(), workers).call(FakeModel(), prompt, time.monotonic() + 5)
    assert isinstance(after, AIMessage)  # the queue has moved past the late call...
    assert late.entered == []  # ...which never entered the model


def test_the_callers_context_goes_with_the_call() -> None:
    seen: list[str] = []
    var = contextvars.ContextVar("var", default="unset")

    class Reads(Short):
        def reply(self, messages: list[BaseMessage]) -> str:
            seen.append(var.get())
            return super().reply(messages)

    var.set("caller")
    ContextOptimizer(150, model=Reads(), timeout=5).optimize(chat())
    assert seen == ["caller", "caller"]


def test_without_a_timeout_the_model_runs_in_the_callers_thread() -> None:
    threads: list[threading.Thread] = []

    class Where(Short):
        def reply(self, messages: list[BaseMessage]) -> str:
            threads.append(threading.current_thread())
            return super().reply(messages)

    result = ContextOptimizer(150, model=Where(), timeout=None).optimize(chat())
    assert threads == [threading.current_thread()] * 2 and result.stats.fallbacks == 0


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), True, "1"])
def test_timeout_must_be_a_positive_number(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        ContextOptimizer(100, timeout=timeout)


def _new_lines(prompt: list[BaseMessage]) -> str:
    return str(prompt[-1].content).split("New lines:\n", 1)[1]


BAD_SUMMARIES: dict[str, tuple[Callable[[list[BaseMessage]], AIMessage], str]] = {
    "empty": (lambda p: AIMessage(""), "empty"),
    "whitespace": (lambda p: AIMessage("  \n\t \n"), "empty"),
    "over the budget": (
        lambda p: AIMessage("\n".join(f"- INV-{n} is {n} EUR" for n in range(100))),
        "over_budget",
    ),
    "the prompt": (lambda p: AIMessage(str(p[-1].content)), "echo"),
    "the instructions": (lambda p: AIMessage(f"Sure. {p[0].content}"), "echo"),
    "the new lines": (lambda p: AIMessage(_new_lines(p)), "echo"),
    "the new lines, bulleted": (
        lambda p: AIMessage("\n".join(f"- {line}" for line in _new_lines(p).splitlines())),
        "echo",
    ),
    "a tool call": (
        lambda p: AIMessage("", tool_calls=[{"name": "summarize", "args": {}, "id": "c1"}]),
        "not_text",
    ),
    "image blocks": (
        lambda p: AIMessage([{"type": "image", "url": "https://example.com/a.png"}]),
        "not_text",
    ),
}


@pytest.mark.parametrize("case", list(BAD_SUMMARIES))
async def test_an_unusable_summary_falls_back_to_the_extractive_one(
    case: str, flavour: str
) -> None:
    answer, reason = BAD_SUMMARIES[case]
    optimizer = ContextOptimizer(150, model=Answers(summary=answer), keep_last=2)
    result, _ = await optimize(optimizer, flavour)
    stats = result.stats
    assert stats.fallback_reasons == {f"summary: {reason}": 1}
    assert stats.llm_calls == 2 and stats.scored_by_model == 20
    share = optimizer._settings.summary_share
    assert result.summary == extractive(None, result.summarized, share, optimizer.counter)
    assert result.summary and "INV-" in result.summary
    assert stats.tokens_after <= 150


async def test_a_summary_that_quotes_some_lines_is_used(flavour: str) -> None:
    def quote(prompt: list[BaseMessage]) -> AIMessage:
        return AIMessage("\n".join(_new_lines(prompt).splitlines()[:2]))

    optimizer = ContextOptimizer(300, model=Answers(summary=quote))
    result, _ = await optimize(optimizer, flavour, chat(20))
    assert result.stats.fallbacks == 0
    assert result.summary == "\n".join(
        f"{'user' if m.type == 'human' else 'assistant'}: {m.content}"
        for m in result.summarized[:2]
    )


def test_summary_answers_that_are_not_text() -> None:
    assert summary_answer(None, []) == (None, "not_text")
    assert summary_answer({"summary": "x"}, []) == (None, "not_text")
    assert summary_answer("a plain string", []) == ("a plain string", None)
    blocks = AIMessage([{"type": "text", "text": "INV-3: 30 EUR"}, {"type": "image", "url": "u"}])
    assert summary_answer(blocks, []) == ("INV-3: 30 EUR", None)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(ParrotFakeChatModel, id="parrot"),
        pytest.param(lambda: FakeListChatModel(responses=["no scores here", ""]), id="fake-list"),
        pytest.param(
            lambda: GenericFakeChatModel(
                messages=iter(
                    [
                        AIMessage('{"scores": [{"id": "nobody", "importance": 1}]}'),
                        AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
                    ]
                )
            ),
            id="generic",
        ),
    ],
)
async def test_langchain_fake_models_that_answer_badly(
    model: Callable[[], Any], flavour: str
) -> None:
    result, _ = await optimize(ContextOptimizer(150, model=model(), timeout=5), flavour)
    reasons = result.stats.fallback_reasons
    assert reasons.pop("scoring: unparsable") == 1 and result.stats.scored_by_heuristic == 20
    assert set(reasons) <= {"summary: echo", "summary: empty", "summary: not_text"}
    assert len(reasons) == 1 and result.stats.llm_calls == 2
    assert result.summary and "INV-" in result.summary


async def test_the_node_under_a_hung_model(hung: Callable[..., Hung], flavour: str) -> None:
    optimizer = ContextOptimizer(150, model=hung(), timeout=TIMEOUT)
    builder = StateGraph(OptimizerState)
    builder.add_node("optimize", optimizer.as_node())  # type: ignore[arg-type]
    builder.add_edge(START, "optimize")
    graph = builder.compile()
    start = time.monotonic()
    if flavour == "sync":
        state = await asyncio.to_thread(graph.invoke, {"messages": chat()})
    else:
        state = await graph.ainvoke({"messages": chat()})
    assert time.monotonic() - start <= TIMEOUT + EPSILON
    assert state["context_summary"] and "INV-" in state["context_summary"]
    assert optimizer.stats()["fallback_reasons"] == {"scoring: timeout": 1, "summary: deadline": 1}


def test_optimize_messages_under_a_hung_model(hung: Callable[..., Hung]) -> None:
    model = hung()
    start = time.monotonic()
    result = optimize_messages(chat(), 150, model=model, timeout=TIMEOUT)
    assert time.monotonic() - start <= TIMEOUT + EPSILON
    assert result.stats.fallback_reasons == {"scoring: timeout": 1, "summary: deadline": 1}
    assert model.entered == ["score"]


@pytest.fixture
async def redis_history(embedded_valkey: EmbeddedRedis) -> AsyncIterator[RedisChatMessageHistory]:
    history = RedisChatMessageHistory("s", embedded_valkey.url, prefix=f"t{uuid.uuid4().hex}")
    yield history
    await history.aclear()


async def test_context_aware_memory_under_a_hung_model(
    hung: Callable[..., Hung], redis_history: RedisChatMessageHistory, flavour: str
) -> None:
    model = hung()
    memory = ContextAwareMemory(
        history=redis_history, optimizer=ContextOptimizer(150, model=model, timeout=TIMEOUT)
    )
    await redis_history.aadd_messages(chat())
    start = time.monotonic()
    if flavour == "sync":
        loaded = await asyncio.to_thread(memory.load_memory_variables, {})
    else:
        loaded = await memory.aload_memory_variables({})
    assert time.monotonic() - start <= TIMEOUT + EPSILON
    assert "INV-" in str(loaded["history"][0].content)  # the extractive summary message
    state = (await redis_history.aload()).state["context"]
    assert "INV-" in state["summary"] and model.entered == ["score"]


def test_abandoned_threads_leave_room_and_idle_threads_end() -> None:
    workers = Workers(max_threads=1, idle_seconds=0.2)
    stuck, healthy = Hung(), Short()
    prompt = [HumanMessage("hi")]
    try:
        outcome = ModelCaller(stuck, workers).call(stuck, prompt, time.monotonic() + 0.1)
        assert outcome == Failed("timeout") and workers.stuck(id(stuck)) == 1
        assert workers.threads() == 0  # the stuck thread no longer counts...
        start = time.monotonic()
        answer = ModelCaller(healthy, workers).call(healthy, prompt, time.monotonic() + 5)
        assert isinstance(answer, AIMessage) and time.monotonic() - start < 1  # ...so no wait
        assert workers.threads() == 1
    finally:
        stuck.release.set()
    wait_until(lambda: workers.stuck() == 0)
    assert workers.threads() <= 1  # the returning thread left: the pool was full
    wait_until(lambda: workers.threads() == 0)  # idle threads end


async def test_fallback_scores_are_not_cached(hung: Callable[..., Hung]) -> None:
    model, store = hung(), InMemoryStore()
    optimizer = ContextOptimizer(150, model=model, timeout=TIMEOUT, store=store)
    first, _ = await optimize(optimizer, "async")
    assert first.stats.fallback_reasons["scoring: timeout"] == 1
    assert first.scores == {} and store.search(STORE_NAMESPACE) == []
    model.release.set()
    await asyncio.to_thread(wait_until, lambda: WORKERS.stuck(id(model)) == 0)
    again, _ = await optimize(optimizer, "async")  # the model scores them once it answers
    assert again.stats.scored_by_model == 20 and len(store.search(STORE_NAMESPACE, limit=50)) == 20


HUNG_AT_EXIT = """
import time
from langchain_core.messages import HumanMessage
from langmem_prod.optimizer import ContextOptimizer
from tests.optimizer.conversations import FakeModel

class Forever(FakeModel):
    def reply(self, messages):
        time.sleep(3600)

chat = [HumanMessage(f"invoice INV-{n} is {n} EUR") for n in range(40)]
result = ContextOptimizer(100, model=Forever(), timeout=0.2).optimize(chat)
print(result.stats.fallback_reasons)
"""


def test_a_hung_model_does_not_hold_up_the_interpreters_exit() -> None:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", HUNG_AT_EXIT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "'scoring: timeout': 1" in done.stdout
    assert time.monotonic() - start < 30  # imports, then out: the thread is a daemon
