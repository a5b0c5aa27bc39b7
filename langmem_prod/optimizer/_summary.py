"""Summaries: the message the optimizer inserts, and the offline extractive summarizer.

Rules:
- the summary is one system message, placed right after the leading system messages,
  with a fixed id so that a graph replaces it in place turn after turn;
- the extractive summary is incremental: the previous summary's lines and the sentences
  of the newly dropped messages compete on heuristic importance; the best fill the
  token cap, in their original order, each line naming who said it;
- a previous summary longer than the cap is cut the same way (a model's summary over
  the cap is not cut: the flow falls back to the extractive summary).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import BaseMessage, SystemMessage, ToolMessage

from langmem_prod.optimizer._heuristic import message_text, sentences, text_score
from langmem_prod.tokens import TokenCounter

SUMMARY_ID = "langmem-context-summary"
SUMMARY_HEADER = "Summary of the earlier conversation:\n"


def summary_message(summary: str) -> SystemMessage:
    """The message carrying the running summary."""
    return SystemMessage(SUMMARY_HEADER + summary, id=SUMMARY_ID)


def speaker(message: BaseMessage) -> str:
    """Who said a message, as a summary line names it."""
    if isinstance(message, ToolMessage):
        return f"tool {message.name or message.tool_call_id}"
    return {"human": "user", "ai": "assistant"}.get(message.type, message.type)


def _said(line: str) -> str:
    """What a summary line says, without who said it."""
    return line.split(": ", 1)[1] if line.startswith("- ") and ": " in line else line


def fit_lines(lines: Sequence[str], cap: int, counter: TokenCounter) -> str:
    """The most important lines whose summary message fits in `cap` tokens, in order.

    Lines that say nothing worth keeping (small talk scores 0) are left out.
    """
    scores = [text_score(_said(line))[0] for line in lines]
    ranked = sorted((i for i in range(len(lines)) if scores[i] > 0), key=lambda i: (-scores[i], -i))
    chosen: set[int] = set()
    for i in ranked:
        trial = "\n".join(lines[j] for j in sorted(chosen | {i}))
        if counter([summary_message(trial)]) <= cap:
            chosen.add(i)
    return "\n".join(lines[j] for j in sorted(chosen))


def extractive(
    previous: str | None, dropped: Sequence[BaseMessage], cap: int, counter: TokenCounter
) -> str:
    """The previous summary updated with the dropped messages, within `cap` tokens."""
    lines = [line for line in (previous or "").splitlines() if line.strip()]
    for message in dropped:
        lines += [f"- {speaker(message)}: {s}" for s in sentences(message_text(message))]
    return fit_lines(lines, cap, counter)
