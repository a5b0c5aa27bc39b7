"""What the optimizer asks a chat model, and how it reads the answers.

Rules:
- scoring is one call for every message not yet scored: each is shown with a short id;
  the answer is a `ScoreBatch` (pydantic-validated), by structured output when the model
  has it, else from JSON text found in the reply (tolerant: fences, prose around it, a
  bare list, scores as strings, out-of-range values clipped, unknown ids ignored);
- a message the answer leaves out keeps its heuristic score;
- the summary prompt asks to keep numbers, decisions, owners, dates and errors, and to
  merge the previous summary with the new lines, within the tokens its lines may take;
- a summary answer is usable when it is text (a message without tool calls whose content
  holds text, or a string), not blank, and not an echo: it neither repeats the prompt
  (its instructions, or both its section headers) nor is exactly the new lines, with or
  without who said them (bullets, case and spacing ignored); a summary that quotes only
  some lines, or keeps the previous summary unchanged, is a summary. Whether it fits is
  the caller's to check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError, field_validator

from langmem_prod.optimizer._heuristic import message_text
from langmem_prod.optimizer._summary import speaker

_SHOWN_CHARS = 1200


class MessageScore(BaseModel):
    """How much one message matters for the rest of the conversation."""

    id: str
    importance: float = Field(ge=0.0, le=1.0)
    categories: list[str] = Field(default_factory=list)
    reason: str = ""

    @field_validator("importance", mode="before")
    @classmethod
    def _clip(cls, value: Any) -> float:
        return max(0.0, min(1.0, float(value)))

    @field_validator("id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return str(value)


class ScoreBatch(BaseModel):
    """The scores of a batch of messages."""

    scores: list[MessageScore]


SCORE_INSTRUCTIONS = """You rate how important each message of a conversation is for \
continuing it later. 1.0: facts that must not be lost (numbers, amounts, dates, \
decisions, owners and action items, errors and error codes, user preferences, names, \
results of tools). 0.0: greetings, thanks, acknowledgements, small talk, filler. \
Rate every message by its id. Answer with JSON only: {"scores": [{"id": "...", \
"importance": 0.0-1.0, "categories": ["..."], "reason": "..."}]}"""

SUMMARY_INSTRUCTIONS = """You maintain the running summary of a conversation that is \
being shortened. Merge the previous summary with the new lines into one updated summary. \
Keep every number, amount, metric, date, decision, owner, action item, error code, \
preference and name, with who said it; drop greetings, thanks and small talk. Plain \
lines, at most {max_tokens} tokens. Reply with the summary only."""


def score_prompt(candidates: Sequence[tuple[str, BaseMessage]]) -> list[BaseMessage]:
    """The scoring call's messages: instructions, then each candidate with its id."""
    shown = "\n".join(
        f"[{key}] {speaker(m)}: {message_text(m)[:_SHOWN_CHARS]}" for key, m in candidates
    )
    return [SystemMessage(SCORE_INSTRUCTIONS), HumanMessage(f"Messages:\n{shown}")]


def summary_prompt(
    previous: str | None, dropped: Sequence[BaseMessage], max_tokens: int
) -> list[BaseMessage]:
    """The summary call's messages."""
    lines = "\n".join(f"{speaker(m)}: {message_text(m)}" for m in dropped)
    return [
        SystemMessage(SUMMARY_INSTRUCTIONS.format(max_tokens=max_tokens)),
        HumanMessage(f"Previous summary:\n{previous or '(none)'}\n\nNew lines:\n{lines}"),
    ]


_HEADERS = ("previous summary:", "new lines:")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def _flat(text: str) -> str:
    """Text compared for echoes: lines without bullets, spacing collapsed, casefolded."""
    lines = (_BULLET.sub("", line) for line in text.splitlines())
    return " ".join(" ".join(lines).split()).casefold()


_INSTRUCTIONS = _flat(SUMMARY_INSTRUCTIONS.split(".", maxsplit=1)[0])


def _is_echo(text: str, new_lines: Sequence[BaseMessage]) -> bool:
    flat = _flat(text)
    if _INSTRUCTIONS in flat or all(header in flat for header in _HEADERS):
        return True
    said = (
        _flat("\n".join(f"{speaker(m)}: {message_text(m)}" for m in new_lines)),
        _flat("\n".join(message_text(m) for m in new_lines)),
    )
    return flat in said


def summary_answer(reply: Any, new_lines: Sequence[BaseMessage]) -> tuple[str | None, str | None]:
    r"""The summary in a model's reply (blank lines removed), or None and why it is unusable.

    The reason is "not_text", "empty" or "echo" (see the module's rules).

    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> said = [HumanMessage("Invoice INV-17 is 90 EUR."), AIMessage("Noted.")]
    >>> summary_answer(AIMessage("- INV-17: 90 EUR\n\n- owner: Bob"), said)
    ('- INV-17: 90 EUR\n- owner: Bob', None)
    >>> summary_answer(AIMessage("user: Invoice INV-17 is 90 EUR. assistant: Noted."), said)
    (None, 'echo')
    >>> summary_answer(AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}]), said)
    (None, 'not_text')
    """
    if isinstance(reply, BaseMessage):
        if getattr(reply, "tool_calls", None):
            return None, "not_text"
        text = str(reply.text)
        if not text.strip() and reply.content and not isinstance(reply.content, str):
            return None, "not_text"  # content blocks, none of them text
    elif isinstance(reply, str):
        text = reply
    else:
        return None, "not_text"
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None, "empty"
    if _is_echo(text, new_lines):
        return None, "echo"
    return "\n".join(lines), None


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _json_candidates(text: str) -> list[str]:
    found = [m.group(1) for m in _FENCE.finditer(text)]
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            found.append(text[start : end + 1])
    return found


def parse_scores(reply: Any) -> ScoreBatch | None:
    r"""A `ScoreBatch` from a structured answer or from reply text; None if none is there.

    >>> reply = 'Sure! ```json\n[{"id": "m1", "importance": "0.9"}]\n```'
    >>> parse_scores(reply).scores[0].importance
    0.9
    """
    if isinstance(reply, ScoreBatch):
        return reply
    if isinstance(reply, BaseModel | dict) and not isinstance(reply, BaseMessage):
        data: Any = reply.model_dump() if isinstance(reply, BaseModel) else reply
        return _batch(data)
    text = reply.text if isinstance(reply, BaseMessage) else str(reply)
    for candidate in _json_candidates(text):
        try:
            batch = _batch(json.loads(candidate))
        except json.JSONDecodeError:
            continue
        if batch is not None:
            return batch
    return None


def _batch(data: Any) -> ScoreBatch | None:
    if isinstance(data, list):
        data = {"scores": data}
    if not isinstance(data, dict):
        return None
    good = []
    for item in data.get("scores") or []:
        try:
            good.append(MessageScore.model_validate(item))
        except (ValidationError, TypeError, ValueError):
            continue
    return ScoreBatch(scores=good) if good else None
