"""The optimization of one conversation, as a generator of effects (no I/O, no clock).

Rules:
- the input's previous summary message (by its id) is taken out and read as the
  previous summary; everything else is a candidate, grouped into units;
- when everything fits (with the summary still needed, if any), nothing is scored and
  nothing is dropped;
- otherwise messages are scored: cached scores first (memory, then the store), then one
  `AskScores` for the rest when a model is set, else (or when it fails) the heuristic;
  scores are cached (and saved) except the heuristic's when it stands in for a model
  that failed, so that the model scores those messages once it answers again;
- a unit scores its best message; selection keeps what fits in the budget left after
  the reserve (system prompt, tools) and the summary's share;
- the dropped messages not summarized before enter the summary: one `AskSummary` when a
  model is set and the summary's share can hold a line (the extractive summary when the
  call fails or its answer is not a usable summary), capped to the summary's share;
- a model call is answered with the model's reply or with `Failed(reason)`; every
  fallback to the heuristic or the extractive summary counts in `stats.fallbacks` and,
  by step and reason, in `stats.fallback_reasons` (`REASONS` says what each means); a
  call skipped before the model was entered is not counted in `stats.llm_calls`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from langchain_core.messages import BaseMessage

from langmem_prod.optimizer._heuristic import message_text, score_message
from langmem_prod.optimizer._llm import parse_scores, score_prompt, summary_answer, summary_prompt
from langmem_prod.optimizer._select import select
from langmem_prod.optimizer._summary import (
    SUMMARY_HEADER,
    SUMMARY_ID,
    extractive,
    fit_lines,
    summary_message,
)
from langmem_prod.optimizer._units import leading_systems, units
from langmem_prod.tokens import TokenCounter


class LoadScores(NamedTuple):
    """Read cached scores of `keys` from the store; answered with {key: score}."""

    keys: tuple[str, ...]


class SaveScores(NamedTuple):
    """Write scores to the store; answered with None."""

    scores: dict[str, float]


class AskScores(NamedTuple):
    """Call the model once with `prompt`; answered with its reply, or None if it failed."""

    prompt: list[BaseMessage]


class AskSummary(NamedTuple):
    """Call the model once with `prompt`; answered with its reply, or `Failed`."""

    prompt: list[BaseMessage]


class Failed(NamedTuple):
    """The answer to `AskScores` or `AskSummary` when the model gave none.

    `reason` is a key of `REASONS`; `error` is the exception the model raised, if any.
    """

    reason: str
    error: BaseException | None = None


REASONS: dict[str, str] = {
    "error": "the model raised an exception",
    "timeout": "the call was still running at the deadline and was abandoned",
    "deadline": "the deadline passed before the call could start (the model was not called)",
    "saturated": "too many abandoned calls to this model still run (the model was not called)",
    "unparsable": "no importance score for the messages asked could be read from the answer",
    "empty": "the answer holds no text",
    "not_text": "the answer is not text (a tool call, non-text content blocks, nothing)",
    "echo": "the answer repeats the prompt, or the messages to summarize verbatim",
    "over_budget": "the answer does not fit in the summary's token share",
}
NOT_CALLED = frozenset({"deadline", "saturated"})


@dataclass(frozen=True, slots=True)
class Settings:
    """How an optimizer chooses (see `ContextOptimizer` for each one)."""

    max_tokens: int
    counter: TokenCounter
    keep_last: int
    threshold: float
    summary_share: int
    reserve: int
    use_model: bool


@dataclass(slots=True)
class OptimizeStats:
    """What one optimization did.

    `fallback_reasons` counts the fallbacks by step ("scoring", "summary") and reason,
    e.g. `{"scoring: timeout": 1, "summary: deadline": 1}`. Reasons: "error" (the model
    raised), "timeout" (abandoned at the deadline), "deadline" (not started: no time
    left), "saturated" (not started: too many abandoned calls to the model still run),
    "unparsable" (no scores in the answer), and for a summary "empty", "not_text",
    "echo" (the prompt or the new lines repeated) or "over_budget". `llm_calls` counts
    the calls that reached the model.

    >>> stats = OptimizeStats(llm_calls=1)
    >>> stats.fell_back("summary", "echo")
    >>> stats.fallbacks, stats.fallback_reasons
    (1, {'summary: echo': 1})
    """

    tokens_before: int = 0
    tokens_after: int = 0
    kept: int = 0
    dropped: int = 0
    summarized: int = 0
    scored_by_model: int = 0
    scored_by_heuristic: int = 0
    cache_hits: int = 0
    llm_calls: int = 0
    fallbacks: int = 0
    latency_ms: float = 0.0
    fallback_reasons: dict[str, int] = field(default_factory=dict)

    def fell_back(self, step: str, reason: str) -> None:
        """Count a fallback of `step` ("scoring" or "summary") for `reason`."""
        self.fallbacks += 1
        name = f"{step}: {reason}"
        self.fallback_reasons[name] = self.fallback_reasons.get(name, 0) + 1


@dataclass(slots=True)
class OptimizeResult:
    """The kept messages (same objects, original order), the running summary and stats.

    `llm_input` is what to send to the model: the leading system messages, the summary
    message (when there is a summary), then the other kept messages.
    """

    messages: list[BaseMessage]
    summary: str | None
    stats: OptimizeStats
    dropped: list[BaseMessage] = field(default_factory=list)
    summarized: list[BaseMessage] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def llm_input(self) -> list[BaseMessage]:
        """The messages to send to the model, the summary message included."""
        if not self.summary:
            return list(self.messages)
        head = leading_systems(self.messages)
        return [*self.messages[:head], summary_message(self.summary), *self.messages[head:]]


def message_key(message: BaseMessage) -> str:
    """The cache key of a message: its id and a hash of what it says."""
    calls = getattr(message, "tool_calls", None) or []
    data = orjson.dumps([message.type, message_text(message), calls], default=str)
    return f"{message.id or ''}:{hashlib.sha256(data).hexdigest()[:16]}"


def _split_summary(messages: Sequence[BaseMessage]) -> tuple[list[BaseMessage], str | None]:
    rest, found = [], None
    for message in messages:
        if message.id == SUMMARY_ID:
            found = message.text.removeprefix(SUMMARY_HEADER)
        else:
            rest.append(message)
    return rest, found


def optimize_gen(
    settings: Settings,
    messages: Sequence[BaseMessage],
    previous: str | None,
    summarized: frozenset[str],
    cache: dict[str, float],
) -> Generator[Any, Any, OptimizeResult]:
    """Choose what to keep and update the summary; see the module's rules."""
    count = settings.counter
    candidates, in_input = _split_summary(messages)
    previous = previous or in_input
    keys = [message_key(m) for m in candidates]
    stats = OptimizeStats(tokens_before=count(list(messages)) + settings.reserve)
    found = units(candidates, settings.keep_last)
    # A summary that came in as a message covers messages that are gone; one passed in
    # covers the `summarized` messages, and is needed while any of them is not kept.
    still_needed = previous is not None and (
        in_input is not None or not summarized or not summarized <= set(keys)
    )
    base = count(candidates) + settings.reserve
    if previous and still_needed:
        base += count([summary_message(previous)])
    if base <= settings.max_tokens and not any(u.orphan for u in found):
        kept_summary = previous if still_needed else None
        return _result(
            candidates,
            kept_summary,
            dropped=[],
            fresh=[],
            cache=cache,
            stats=stats,
            settings=settings,
        )
    scores = yield from _scores(settings, candidates, keys, cache, stats)
    unit_scores = [max(scores[keys[p]] for p in u.positions) for u in found]
    costs = [count([candidates[p] for p in u.positions]) for u in found]
    pinned = sum(c for u, c in zip(found, costs, strict=True) if u.pinned)
    room = settings.max_tokens - settings.reserve
    share = max(0, min(settings.summary_share, room - pinned))
    keep = select(found, costs, unit_scores, room - share, settings.threshold)
    kept_positions = sorted(p for i in keep for p in found[i].positions)
    gone = sorted(set(range(len(candidates))) - set(kept_positions))
    dropped = [candidates[p] for p in gone]
    fresh = [candidates[p] for p in gone if keys[p] not in summarized]
    summary: str | None = previous
    if fresh:
        summary = yield from _summarize(settings, previous, fresh, share, stats)
    elif previous and count([summary_message(previous)]) > share:  # a long one passed in
        summary = fit_lines(previous.splitlines(), share, count)
    kept = [candidates[p] for p in kept_positions]
    return _result(
        kept, summary, dropped=dropped, fresh=fresh, cache=cache, stats=stats, settings=settings
    )


def _result(
    kept: list[BaseMessage],
    summary: str | None,
    *,
    dropped: list[BaseMessage],
    fresh: list[BaseMessage],
    cache: Mapping[str, float],
    stats: OptimizeStats,
    settings: Settings,
) -> OptimizeResult:
    result = OptimizeResult(kept, summary or None, stats, dropped, fresh, dict(cache))
    stats.kept, stats.dropped, stats.summarized = len(kept), len(dropped), len(fresh)
    stats.tokens_after = settings.counter(result.llm_input) + settings.reserve
    return result


def _called(reply: Any) -> int:
    """1 if the model was called for `reply` (it answered, failed or ran out of time)."""
    return 0 if isinstance(reply, Failed) and reply.reason in NOT_CALLED else 1


def _scores(
    settings: Settings,
    messages: Sequence[BaseMessage],
    keys: Sequence[str],
    cache: dict[str, float],
    stats: OptimizeStats,
) -> Generator[Any, Any, dict[str, float]]:
    missing = [k for k in dict.fromkeys(keys) if k not in cache]
    stats.cache_hits += len(set(keys)) - len(missing)
    if missing:
        stored: dict[str, float] = yield LoadScores(tuple(missing))
        cache.update(stored)
        stats.cache_hits += len(stored)
        missing = [k for k in missing if k not in stored]
    if not missing:
        return cache
    by_key = dict(zip(keys, messages, strict=True))
    new: dict[str, float] = {}
    if settings.use_model:
        short = {f"m{n}": k for n, k in enumerate(missing)}
        reply = yield AskScores(score_prompt([(s, by_key[k]) for s, k in short.items()]))
        stats.llm_calls += _called(reply)
        batch = None if isinstance(reply, Failed) else parse_scores(reply)
        if batch is not None:
            new = {short[s.id]: s.importance for s in batch.scores if s.id in short}
            stats.scored_by_model += len(new)
        if not new:  # a fallback: used now, not cached, so the model scores them later
            stats.fell_back("scoring", reply.reason if isinstance(reply, Failed) else "unparsable")
            stats.scored_by_heuristic += len(missing)
            return {**cache, **{k: score_message(by_key[k])[0] for k in missing}}
    for key in missing:
        if key not in new:
            new[key] = score_message(by_key[key])[0]
            stats.scored_by_heuristic += 1
    cache.update(new)
    yield SaveScores(new)
    return cache


def _summarize(
    settings: Settings,
    previous: str | None,
    fresh: list[BaseMessage],
    share: int,
    stats: OptimizeStats,
) -> Generator[Any, Any, str]:
    count = settings.counter
    room = share - count([summary_message("")])  # what the lines may take
    if settings.use_model and room > 0:
        reply = yield AskSummary(summary_prompt(previous, fresh, room))
        stats.llm_calls += _called(reply)
        text, reason = (
            (None, reply.reason) if isinstance(reply, Failed) else summary_answer(reply, fresh)
        )
        if text is not None and count([summary_message(text)]) > share:
            text, reason = None, "over_budget"
        if text is not None:
            return text
        stats.fell_back("summary", reason or "empty")
    return extractive(previous, fresh, share, count)
