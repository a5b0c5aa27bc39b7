"""The offline importance scorer: what a message carries, read from its text by rules.

Rules (a table of signals, each with a weight and a category):
- facts worth keeping raise a message: numbers and amounts, dates, metrics and units,
  decisions, action items and owners, errors and error codes, preferences and
  constraints, identifiers and proper names;
- acknowledgements, greetings and small talk lower it;
- a score is in [0, 1]: a base of 0.2, plus the weights of the signals found (each
  counted once), minus the small-talk weight for short messages, clipped;
- system messages score 1 (they are pinned anyway); tool results score at least as
  high as their signals say, so facts that exist only in a tool result survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, SystemMessage

BASE = 0.2
_SHORT = 40  # characters: below this, small talk weighs in full


@dataclass(frozen=True, slots=True)
class Signal:
    """A pattern that marks a category of fact, and how much it adds."""

    category: str
    weight: float
    pattern: re.Pattern[str]


def _p(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE)


SIGNALS: tuple[Signal, ...] = (
    Signal("number", 0.2, _p(r"\d")),
    Signal("amount", 0.15, _p(r"[$€£¥]\s?\d|\d\s?(?:%|eur|usd|gbp|k\b|m\b|ms\b|gb\b|mb\b)")),
    Signal(
        "date",
        0.15,
        _p(
            r"\b\d{4}-\d{2}-\d{2}\b|\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|"
            r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d|"
            r"\b(?:tomorrow|deadline|due|by (?:eod|end of))\b"
        ),
    ),
    Signal(
        "decision",
        0.3,
        _p(
            r"\b(?:decided|decision|agreed|approved|we will|we'll|let's go with|"
            r"going with|chose|chosen|settled on|final answer|confirmed)\b"
        ),
    ),
    Signal(
        "action",
        0.3,
        _p(
            r"\b(?:todo|action item|owner|owns|assigned|assign|will (?:send|fix|check|do|"
            r"deploy|review|call)|follow[- ]up|next step|remind|must|need to)\b"
        ),
    ),
    Signal(
        "error",
        0.35,
        _p(
            r"\b(?:error|exception|traceback|failed|failure|crash|timeout|bug|incident|"
            r"outage|(?:e|err|http|ora|sqlstate)[-_ ]?\d{2,5})\b"
        ),
    ),
    Signal(
        "preference",
        0.3,
        _p(
            r"\b(?:prefer|preference|i like|i love|i hate|don't like|do not like|always|"
            r"never|allergic|favou?rite|please use|i want|i need|my name is|i am|i'm)\b"
        ),
    ),
    Signal("identifier", 0.15, re.compile(r"\b[A-Z]{2,}[-_]?\d+\b|\b[\w.-]+@[\w-]+\.\w+\b")),
    Signal("name", 0.1, re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")),
)

SMALL_TALK = _p(
    r"^\W*(?:ok(?:ay)?|sure|thanks?(?: you)?(?: so much)?|thx|great|cool|nice|got it|"
    r"sounds good|perfect|hello|hi|hey|good (?:morning|afternoon|evening)|bye|"
    r"you're welcome|no problem|np|yes|no|yep|nope|lol|haha|awesome|understood|noted)"
    r"\b[\W\w]{0,25}$"
)
SMALL_TALK_WEIGHT = 0.25


def text_score(text: str) -> tuple[float, list[str]]:
    """The importance of a piece of text, and the categories of fact it holds.

    >>> text_score("ok, thanks!")[0] < text_score("Deploy failed with E1234 on 2026-11-20")[0]
    True
    """
    found = [s for s in SIGNALS if s.pattern.search(text)]
    score = BASE + sum(s.weight for s in found)
    if len(text) < _SHORT and SMALL_TALK.search(text.strip()):
        score -= SMALL_TALK_WEIGHT
    return max(0.0, min(1.0, score)), [s.category for s in found]


def message_text(message: BaseMessage) -> str:
    """The text of a message, its tool calls' arguments included."""
    text = str(message.text)
    calls = getattr(message, "tool_calls", None) or []
    if calls:
        text += " " + " ".join(f"{c['name']}({c['args']})" for c in calls)
    return text


def score_message(message: BaseMessage) -> tuple[float, list[str]]:
    """The heuristic importance of a message and its categories."""
    if isinstance(message, SystemMessage):
        return 1.0, ["system"]
    return text_score(message_text(message))


SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def sentences(text: str) -> list[str]:
    """The sentences (or lines) of a text, stripped, without empty ones."""
    return [s.strip() for s in SENTENCE.split(text) if s.strip()]
