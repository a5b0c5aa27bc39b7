"""The optimizer as a LangGraph node, before the model node, over `MessagesState`.

Rules:
- mode "llm_input" leaves `messages` whole and writes what to send to the model in
  `llm_input_messages`; mode "rewrite" replaces `messages` by the kept ones with the
  summary message (removing all and adding them back, so the summary sits after the
  leading system messages);
- the running summary, the keys of the messages it covers and the score cache are graph
  state (`context_summary`, `context_summarized`, `context_scores`), so they survive a
  checkpoint restore, and a later turn scores only new messages; the cache keeps only
  the scores of messages still in the conversation;
- a `BaseStore` given to the optimizer also caches scores across threads.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage, RemoveMessage
from langchain_core.runnables import RunnableLambda
from langgraph.graph import MessagesState
from langgraph.graph.message import REMOVE_ALL_MESSAGES

from langmem_prod.errors import ConfigurationError
from langmem_prod.optimizer._flow import OptimizeResult, message_key

Mode = Literal["llm_input", "rewrite"]


def _replace(_: Any, new: Any) -> Any:
    return new


class OptimizerState(MessagesState):
    """`MessagesState` plus what the optimizer node keeps between turns."""

    llm_input_messages: NotRequired[Annotated[list[AnyMessage], _replace]]
    context_summary: NotRequired[str | None]
    context_summarized: NotRequired[list[str]]
    context_scores: NotRequired[dict[str, float]]


def _update(result: OptimizeResult, state: dict[str, Any], mode: Mode) -> dict[str, Any]:
    keys = {message_key(m) for m in state["messages"]}
    covered = set(state.get("context_summarized") or ())
    covered |= {message_key(m) for m in result.summarized}
    update: dict[str, Any] = {
        "context_summary": result.summary,
        "context_summarized": sorted(covered & keys) if mode == "llm_input" else [],
        "context_scores": {k: v for k, v in result.scores.items() if k in keys},
    }
    if mode == "llm_input":
        update["llm_input_messages"] = result.llm_input
    elif result.dropped or result.summarized:
        update["messages"] = [RemoveMessage(id=REMOVE_ALL_MESSAGES), *result.llm_input]
    return update


def make_node(optimizer: Any, mode: Mode, messages_key: str) -> RunnableLambda[Any, Any]:
    """The node running `optimizer` on the state's `messages_key`."""
    if mode not in ("llm_input", "rewrite"):
        raise ConfigurationError("mode must be 'llm_input' or 'rewrite'")

    def arguments(state: dict[str, Any]) -> tuple[list[AnyMessage], dict[str, Any]]:
        optimizer.remember(state.get("context_scores") or {})
        kwargs = {
            "summary": state.get("context_summary") if mode == "llm_input" else None,
            "summarized": state.get("context_summarized") or (),
        }
        return list(state[messages_key]), kwargs

    def node(state: dict[str, Any]) -> dict[str, Any]:
        messages, kwargs = arguments(state)
        return _update(optimizer.optimize(messages, **kwargs), state, mode)

    async def anode(state: dict[str, Any]) -> dict[str, Any]:
        messages, kwargs = arguments(state)
        return _update(await optimizer.aoptimize(messages, **kwargs), state, mode)

    return RunnableLambda(node, afunc=anode, name="context_optimizer")
