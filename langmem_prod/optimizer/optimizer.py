"""`ContextOptimizer`: keep what matters of a conversation within a token budget.

Rules:
- the optimization itself is `_flow.optimize_gen`; this module only answers its effects:
  the model (one scoring call, one summary call at most, through `_calls.ModelCaller`),
  and the optional `BaseStore` holding scores across processes;
- `timeout` is one deadline for the whole optimization, set when it starts: the scoring
  and the summary calls share it, waiting for a thread counts, a call not started by
  then is skipped and one still running is abandoned; each falls back offline (the
  heuristic scores, the extractive summary), and so does an unusable answer, with the
  reason in the stats; a model error logs a warning, any other fallback an info line;
- sync and async twins differ only in `await`;
- `stats()` adds up every optimization of this optimizer.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Generator, Sequence
from typing import Any

import orjson
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.store.base import BaseStore, GetOp, PutOp

from langmem_prod.errors import ConfigurationError
from langmem_prod.optimizer._calls import ModelCaller
from langmem_prod.optimizer._flow import (
    AskScores,
    Failed,
    LoadScores,
    OptimizeResult,
    OptimizeStats,
    SaveScores,
    Settings,
    optimize_gen,
)
from langmem_prod.optimizer._llm import ScoreBatch
from langmem_prod.optimizer.node import Mode, make_node
from langmem_prod.tokens import TokenCounter
from langmem_prod.tokens import token_counter as make_counter

logger = logging.getLogger("langmem_prod.optimizer")
STORE_NAMESPACE = ("langmem_prod", "importance")


def _structured(model: BaseChatModel) -> Runnable[Any, Any]:
    """The model answering `ScoreBatch`, or the model itself (JSON in text) if it cannot.

    A model has structured output when it implements `with_structured_output` or tool
    calling (`bind_tools`), on which LangChain's default `with_structured_output` rests.
    """
    kind = type(model)
    if (
        kind.with_structured_output is not BaseChatModel.with_structured_output
        or kind.bind_tools is not BaseChatModel.bind_tools
    ):
        try:
            return model.with_structured_output(ScoreBatch)
        except (NotImplementedError, TypeError, ValueError):
            logger.info("%s has no structured output; scoring asks for JSON", kind.__name__)
    return model


def _reserve(counter: TokenCounter, system_prompt: str | None, tools: Sequence[Any]) -> int:
    """Tokens the system prompt and the tool schemas take from every request."""
    parts = [SystemMessage(system_prompt)] if system_prompt else []
    if tools:
        schemas = orjson.dumps([convert_to_openai_tool(t) for t in tools]).decode()
        parts.append(SystemMessage(schemas))
    return counter(parts) if parts else 0


class ContextOptimizer:
    """Keeps the important messages of a conversation within `max_tokens`, summarizing the rest.

    Messages are scored for importance (one call to `model` for the messages not scored
    before, or offline rules), grouped so that a tool call and its results stay together,
    and kept by importance within the budget; leading system messages, the last human
    message and, while they fit, the last `keep_last` messages are always kept. What is
    dropped enters a running summary (the model's, or extractive offline) that counts
    against the budget.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> chat = [HumanMessage("hi"), AIMessage("hello!")] * 20 + [
        ...     HumanMessage("Invoice INV-17 is 1,240.50 EUR, due 2026-12-01."),
        ...     AIMessage("Noted."),
        ...     HumanMessage("thanks"), AIMessage("you're welcome"),
        ...     HumanMessage("When is my invoice due?"),
        ... ]
        >>> result = ContextOptimizer(max_tokens=120, keep_last=2).optimize(chat)
        >>> for message in result.messages:
        ...     print(message.content)
        Invoice INV-17 is 1,240.50 EUR, due 2026-12-01.
        you're welcome
        When is my invoice due?
        >>> result.stats.tokens_after <= 120
        True

    Args:
        max_tokens: the budget for the messages sent to the model, summary included.
        model: the chat model that scores and summarizes; None runs offline.
        token_counter: how tokens are counted (a callable, a chat model, an OpenAI model
            name); by default `model`'s own counter, else an estimate.
        keep_last: the last N messages are kept while they fit.
        threshold: messages scoring below it are not kept even when there is room.
        summary_ratio: the share of `max_tokens` the summary may take...
        max_summary_tokens: ...and at most this many tokens.
        system_prompt: a system prompt sent with every request (its tokens are reserved).
        tools: tools bound to the model (their schemas' tokens are reserved).
        store: a `BaseStore` caching scores across processes.
        timeout: seconds one optimization may wait for the model, from its start: the
            scoring and the summary calls share this one deadline, and time spent waiting
            for a thread counts. A call not started by then is skipped (the model is not
            called) and one still running is abandoned; either falls back offline (the
            heuristic scores, the extractive summary), as does an answer that is not a
            usable summary (empty, not text, over the summary's share, an echo of the
            prompt); `stats.fallback_reasons` says which and why. An optimization so
            takes at most `timeout` plus its own computing (and the `store`'s calls,
            bounded by the store's timeouts). A sync model's abandoned call keeps its
            thread until it returns (Python cannot stop a thread); after 4 such calls
            still running, calls to that model are not started until one returns. None:
            no deadline, the model is called in the caller's thread or task.
    """

    def __init__(
        self,
        max_tokens: int,
        *,
        model: BaseChatModel | None = None,
        token_counter: Any = None,
        keep_last: int = 4,
        threshold: float = 0.3,
        summary_ratio: float = 0.25,
        max_summary_tokens: int = 512,
        system_prompt: str | None = None,
        tools: Sequence[Any] = (),
        store: BaseStore | None = None,
        timeout: float | None = 30.0,
    ) -> None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be an int >= 1, got {max_tokens!r}")
        if keep_last < 0 or not 0.0 <= threshold <= 1.0 or not 0.0 <= summary_ratio < 1.0:
            raise ConfigurationError(
                "keep_last must be >= 0, threshold in [0, 1] and summary_ratio in [0, 1)"
            )
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ConfigurationError("timeout must be a number of seconds > 0, or None")
        counter = make_counter(token_counter if token_counter is not None else model)
        self.model = model
        self.store = store
        self.timeout = timeout
        self._scorer = _structured(model) if model is not None else None
        self._caller = ModelCaller(model) if model is not None else None
        self._settings = Settings(
            max_tokens=max_tokens,
            counter=counter,
            keep_last=keep_last,
            threshold=threshold,
            summary_share=min(max_summary_tokens, int(max_tokens * summary_ratio)),
            reserve=_reserve(counter, system_prompt, tools),
            use_model=model is not None,
        )
        self._cache: dict[str, float] = {}
        self._totals = OptimizeStats()
        self._runs = 0
        self._lock = threading.Lock()

    @property
    def counter(self) -> TokenCounter:
        """The token counter in use."""
        return self._settings.counter

    def _gen(
        self, messages: Sequence[BaseMessage], summary: str | None, summarized: Sequence[str]
    ) -> Generator[Any, Any, OptimizeResult]:
        return optimize_gen(
            self._settings, list(messages), summary, frozenset(summarized), self._cache
        )

    def optimize(
        self,
        messages: Sequence[BaseMessage],
        *,
        summary: str | None = None,
        summarized: Sequence[str] = (),
    ) -> OptimizeResult:
        """Choose the messages to keep and update the summary.

        Args:
            messages: the conversation, oldest first (a previous summary message of this
                optimizer in it is read as the previous summary).
            summary: the running summary so far, if kept outside the messages.
            summarized: keys (`message_key`) of the messages `summary` already covers.
        """
        start, deadline = self._start()
        gen = self._gen(messages, summary, summarized)
        try:
            effect = next(gen)
            while True:
                effect = gen.send(self._answer(effect, deadline))
        except StopIteration as stop:
            return self._done(stop.value, start)

    async def aoptimize(
        self,
        messages: Sequence[BaseMessage],
        *,
        summary: str | None = None,
        summarized: Sequence[str] = (),
    ) -> OptimizeResult:
        """Async `optimize`."""
        start, deadline = self._start()
        gen = self._gen(messages, summary, summarized)
        try:
            effect = next(gen)
            while True:
                effect = gen.send(await self._aanswer(effect, deadline))
        except StopIteration as stop:
            return self._done(stop.value, start)

    def _start(self) -> tuple[float, float | None]:
        """When an optimization starts (for its latency) and its deadline (monotonic)."""
        now = time.monotonic()
        return time.perf_counter(), None if self.timeout is None else now + self.timeout

    def _answer(self, effect: Any, deadline: float | None) -> Any:
        if isinstance(effect, LoadScores):
            return self._loaded(self.store.batch(self._gets(effect)) if self.store else [])
        if isinstance(effect, SaveScores):
            if self.store is not None and effect.scores:
                self.store.batch(self._puts(effect))
            return None
        assert self._caller is not None
        return self._logged(
            effect, self._caller.call(self._runnable(effect), effect.prompt, deadline)
        )

    async def _aanswer(self, effect: Any, deadline: float | None) -> Any:
        if isinstance(effect, LoadScores):
            return self._loaded(await self.store.abatch(self._gets(effect)) if self.store else [])
        if isinstance(effect, SaveScores):
            if self.store is not None and effect.scores:
                await self.store.abatch(self._puts(effect))
            return None
        assert self._caller is not None
        reply = await self._caller.acall(self._runnable(effect), effect.prompt, deadline)
        return self._logged(effect, reply)

    def _runnable(self, effect: Any) -> Runnable[Any, Any]:
        runnable = self._scorer if isinstance(effect, AskScores) else self.model
        assert runnable is not None
        return runnable

    @staticmethod
    def _gets(effect: LoadScores) -> list[GetOp]:
        return [GetOp(STORE_NAMESPACE, key) for key in effect.keys]

    @staticmethod
    def _puts(effect: SaveScores) -> list[PutOp]:
        return [
            PutOp(STORE_NAMESPACE, key, {"importance": score}, index=False)
            for key, score in effect.scores.items()
        ]

    @staticmethod
    def _loaded(items: Sequence[Any]) -> dict[str, float]:
        return {item.key: float(item.value["importance"]) for item in items if item is not None}

    @staticmethod
    def _logged(effect: Any, reply: Any) -> Any:
        if isinstance(reply, Failed) and reply.error is not None:
            what = "scoring" if isinstance(effect, AskScores) else "summary"
            error = reply.error
            logger.warning(
                "the %s call failed (%s: %s); using the offline fallback",
                what,
                type(error).__name__,
                error,
            )
        return reply

    def _done(self, result: OptimizeResult, start: float) -> OptimizeResult:
        stats = result.stats
        stats.latency_ms = (time.perf_counter() - start) * 1000
        for name in stats.fallback_reasons:
            if not name.endswith(": error"):
                logger.info("%s fell back offline (%s)", *name.split(": "))
        with self._lock:
            self._runs += 1
            for f in dataclasses.fields(OptimizeStats):
                if f.name != "fallback_reasons":
                    setattr(
                        self._totals, f.name, getattr(self._totals, f.name) + getattr(stats, f.name)
                    )
            reasons = self._totals.fallback_reasons
            for name, n in stats.fallback_reasons.items():
                reasons[name] = reasons.get(name, 0) + n
        return result

    def remember(self, scores: dict[str, float]) -> None:
        """Add known scores (e.g. from graph state) to the cache."""
        self._cache.update(scores)

    def as_node(
        self, *, mode: Mode = "llm_input", messages_key: str = "messages"
    ) -> RunnableLambda[Any, Any]:
        """This optimizer as a LangGraph node to put before the model node.

        Use `OptimizerState` (or add its keys to your state). Mode "llm_input" writes
        `llm_input_messages` and keeps the history whole; mode "rewrite" replaces
        `messages` with the kept ones and the summary message.
        """
        return make_node(self, mode, messages_key)

    def stats(self) -> dict[str, Any]:
        """Totals over every optimization so far (and how many there were).

        `fallback_reasons` counts the fallbacks by step and reason over all of them.
        """
        with self._lock:
            return {"optimizations": self._runs, **dataclasses.asdict(self._totals)}


def optimize_messages(
    messages: Sequence[BaseMessage],
    max_tokens: int,
    *,
    model: BaseChatModel | None = None,
    token_counter: Any = None,
    keep_last: int = 4,
    summary: str | None = None,
    **options: Any,
) -> OptimizeResult:
    """Optimize `messages` once (see `ContextOptimizer` for the options).

    >>> from langchain_core.messages import HumanMessage
    >>> optimize_messages([HumanMessage("hi")], 100).messages[0].content
    'hi'
    """
    optimizer = ContextOptimizer(
        max_tokens, model=model, token_counter=token_counter, keep_last=keep_last, **options
    )
    return optimizer.optimize(messages, summary=summary)
