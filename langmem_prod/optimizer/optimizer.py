"""`ContextOptimizer`: keep what matters of a conversation within a token budget.

Rules:
- the optimization itself is `_flow.optimize_gen`; this module only answers its effects:
  the model (one scoring call, one summary call at most, each under `timeout`; a failure
  or a timeout falls back to the heuristic or the extractive summary), and the optional
  `BaseStore` holding scores across processes;
- sync and async twins differ only in `await`;
- `stats()` adds up every optimization of this optimizer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
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
from langmem_prod.optimizer._flow import (
    AskScores,
    AskSummary,
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
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="langmem-llm")


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
        timeout: seconds before a model call is abandoned for the offline fallback.
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
        counter = make_counter(token_counter if token_counter is not None else model)
        self.model = model
        self.store = store
        self.timeout = timeout
        self._scorer = _structured(model) if model is not None else None
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
        start = time.perf_counter()
        gen = self._gen(messages, summary, summarized)
        try:
            effect = next(gen)
            while True:
                effect = gen.send(self._answer(effect))
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
        start = time.perf_counter()
        gen = self._gen(messages, summary, summarized)
        try:
            effect = next(gen)
            while True:
                effect = gen.send(await self._aanswer(effect))
        except StopIteration as stop:
            return self._done(stop.value, start)

    def _answer(self, effect: Any) -> Any:
        if isinstance(effect, LoadScores):
            return self._loaded(self.store.batch(self._gets(effect)) if self.store else [])
        if isinstance(effect, SaveScores):
            if self.store is not None and effect.scores:
                self.store.batch(self._puts(effect))
            return None
        runnable = self._scorer if isinstance(effect, AskScores) else self.model
        assert runnable is not None
        try:
            reply = _POOL.submit(runnable.invoke, effect.prompt).result(self.timeout)
        except Exception as exc:  # any model failure falls back offline
            return self._failed(effect, exc)
        return self._reply(effect, reply)

    async def _aanswer(self, effect: Any) -> Any:
        if isinstance(effect, LoadScores):
            return self._loaded(await self.store.abatch(self._gets(effect)) if self.store else [])
        if isinstance(effect, SaveScores):
            if self.store is not None and effect.scores:
                await self.store.abatch(self._puts(effect))
            return None
        runnable = self._scorer if isinstance(effect, AskScores) else self.model
        assert runnable is not None
        try:
            reply = await asyncio.wait_for(runnable.ainvoke(effect.prompt), self.timeout)
        except Exception as exc:  # any model failure falls back offline
            return self._failed(effect, exc)
        return self._reply(effect, reply)

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
    def _failed(effect: Any, exc: BaseException) -> None:
        what = "scoring" if isinstance(effect, AskScores) else "summary"
        logger.warning(
            "the %s call failed (%s: %s); using the offline fallback", what, type(exc).__name__, exc
        )

    @staticmethod
    def _reply(effect: Any, reply: Any) -> Any:
        if isinstance(effect, AskSummary):
            return reply.text if isinstance(reply, BaseMessage) else str(reply)
        return reply

    def _done(self, result: OptimizeResult, start: float) -> OptimizeResult:
        result.stats.latency_ms = (time.perf_counter() - start) * 1000
        with self._lock:
            self._runs += 1
            for f in dataclasses.fields(OptimizeStats):
                setattr(
                    self._totals,
                    f.name,
                    getattr(self._totals, f.name) + getattr(result.stats, f.name),
                )
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
        """Totals over every optimization so far (and how many there were)."""
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
