"""`ContextAwareMemory`: the context optimizer over a chat history, as a memory class.

Rules:
- each load runs the optimizer over the newest messages; the running summary, the keys
  of the messages it covers (still in the conversation) and their importance scores are
  saved in the history's state, and only when they changed;
- the async twin awaits the history's and the optimizer's async API;
- a load waits for the model at most the optimizer's `timeout` (scoring and summary
  together): a hung or failing model makes it fall back offline, never hang.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from langmem_prod.history._base import Transcript
from langmem_prod.history.memory import ChatMemory
from langmem_prod.optimizer._flow import message_key


class ContextAwareMemory(ChatMemory):
    """The conversation as the context optimizer shapes it: what matters, within budget.

    Each load runs `optimizer` (a `ContextOptimizer`) over the newest `fetch_last`
    messages: important messages are kept, the rest enter a running summary. The
    summary, what it covers and the importance scores are saved in the history's state
    (langmem_prod histories; others keep them in this object), so a later load scores
    only new messages and summarizes only what newly dropped.

    Example:
        >>> from langmem_prod import RedisChatMessageHistory
        >>> from langmem_prod.embedded import embedded_redis
        >>> from langmem_prod.optimizer import ContextOptimizer
        >>> with embedded_redis() as url:
        ...     history = RedisChatMessageHistory("s1", url)
        ...     memory = ContextAwareMemory(
        ...         history=history, optimizer=ContextOptimizer(80, keep_last=2)
        ...     )
        ...     memory.save_context({"input": "My invoice INV-17 is 90 EUR."}, {"output": "Noted."})
        ...     memory.save_context({"input": "Bob owns the refund."}, {"output": "OK."})
        ...     for n in range(5):
        ...         memory.save_context({"input": "hello"}, {"output": "hi!"})
        ...     for message in memory.load_memory_variables({})["history"]:
        ...         print(f"{message.type}: {message.content}")
        human: My invoice INV-17 is 90 EUR.
        human: Bob owns the refund.
        human: hello
        ai: hi!
    """

    optimizer: Any
    fetch_last: int | None = Field(default=500, ge=1)
    state_key: str = "context"

    def _arguments(self, transcript: Transcript) -> dict[str, Any]:
        own = transcript.state.get(self.state_key) or {}
        self.optimizer.remember(own.get("scores") or {})
        return {"summary": own.get("summary"), "summarized": own.get("summarized") or ()}

    def _changed(self, transcript: Transcript, result: Any) -> dict[str, Any] | None:
        own = transcript.state.get(self.state_key) or {}
        present = {message_key(m) for m in transcript.messages}
        covered = set(own.get("summarized") or ()) | {message_key(m) for m in result.summarized}
        new = {
            "summary": result.summary,
            "summarized": sorted(covered & present),
            "scores": {k: v for k, v in result.scores.items() if k in present},
        }
        return None if new == own else {**transcript.state, self.state_key: new}

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The optimized conversation: kept messages with the summary message."""
        transcript = self._load()
        result = self.optimizer.optimize(transcript.messages, **self._arguments(transcript))
        self._save_state(self._changed(transcript, result))
        return self._render(result.llm_input)

    async def aload_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Async `load_memory_variables`."""
        transcript = await self._aload()
        result = await self.optimizer.aoptimize(transcript.messages, **self._arguments(transcript))
        await self._asave_state(self._changed(transcript, result))
        return self._render(result.llm_input)
