"""Memory classes over any chat history: buffer, token window and summary buffer.

Rules:
- a memory reads its conversation from a `BaseChatMessageHistory` and appends each turn
  (input, output) to it with one `add_messages`; langmem_prod's histories read the
  messages and the memory's saved state in one round trip (`load`), others through
  `messages`, with the state kept in the memory object;
- windows never start on an orphan: the kept messages start on a human message, so a
  tool result is never separated from the call that asked for it;
- a summary buffer summarizes only what newly overflowed, once: the running summary and
  where it stops are saved in the history's state; no LLM call when nothing overflowed;
  where it stops is the id of the last message summarized (the turns it saves get ids),
  never the messages' contents, so repeated turns ("ok", "next") cannot move it: every
  message is summarized or kept, exactly once;
- every method has an async twin that awaits the history's and the model's async API;
- with the `[classic]` extra installed, the classes are also `langchain_classic`
  `BaseMemory`s, so legacy chains accept them.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    get_buffer_string,
    message_to_dict,
    trim_messages,
)
from pydantic import ConfigDict, Field, PrivateAttr

from langmem_prod.errors import InvalidInputError
from langmem_prod.history._base import ChatHistoryBase, Transcript
from langmem_prod.tokens import TokenCounter, token_counter

if TYPE_CHECKING:
    from pydantic import BaseModel as _Root
else:
    try:
        from langchain_classic.base_memory import BaseMemory as _Root
    except ImportError:  # without the [classic] extra
        from pydantic import BaseModel as _Root

SUMMARY_PROMPT = """You keep the running summary of a conversation between a user and an \
AI assistant. Update the summary with the new lines. Keep every number, amount, metric, \
date, decision, owner, action item, error code, preference and name; drop greetings, \
acknowledgements and small talk. Write plain sentences, at most {max_tokens} tokens. \
Reply with the updated summary only."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class ChatMemory(_Root):
    """What every memory shares: the history, the keys of a turn, the output format."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    history: BaseChatMessageHistory
    memory_key: str = "history"
    return_messages: bool = True
    input_key: str | None = None
    output_key: str | None = None
    human_prefix: str = "Human"
    ai_prefix: str = "AI"
    fetch_last: int | None = Field(default=None, ge=1)
    _state: dict[str, Any] = PrivateAttr(default_factory=dict)

    @property
    def memory_variables(self) -> list[str]:
        """The input variable this memory fills."""
        return [self.memory_key]

    def _turn(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[BaseMessage]:
        return [
            HumanMessage(_text(self._pick(inputs, self.input_key, "inputs"))),
            AIMessage(_text(self._pick(outputs, self.output_key, "outputs"))),
        ]

    def _pick(self, values: Mapping[str, Any], key: str | None, what: str) -> Any:
        if key is not None:
            if key not in values:
                raise InvalidInputError(f"the {what} have no key {key!r}")
            return values[key]
        candidates = [k for k in values if k not in (self.memory_key, "stop")]
        if len(candidates) != 1:
            raise InvalidInputError(
                f"cannot tell which of the {what} {sorted(candidates)} to save; set "
                f"{'input_key' if what == 'inputs' else 'output_key'}"
            )
        return values[candidates[0]]

    def _render(self, messages: list[BaseMessage]) -> dict[str, Any]:
        if self.return_messages:
            return {self.memory_key: messages}
        text = get_buffer_string(messages, human_prefix=self.human_prefix, ai_prefix=self.ai_prefix)
        return {self.memory_key: text}

    def _kept_here(self, messages: list[BaseMessage]) -> Transcript:
        """A foreign history's messages (its last `fetch_last`) with this object's state."""
        return Transcript(
            messages[-self.fetch_last :] if self.fetch_last else messages, self._state
        )

    def _load(self) -> Transcript:
        if isinstance(self.history, ChatHistoryBase):
            return self.history.load(last=self.fetch_last)
        return self._kept_here(self.history.messages)

    async def _aload(self) -> Transcript:
        if isinstance(self.history, ChatHistoryBase):
            return await self.history.aload(last=self.fetch_last)
        return self._kept_here(await self.history.aget_messages())

    def _select(self, transcript: Transcript) -> list[BaseMessage]:
        return transcript.messages

    def _save_state(self, state: dict[str, Any] | None) -> None:
        """Save the conversation's state (in the history when it can hold it); None: no-op."""
        if state is None:
            return
        if isinstance(self.history, ChatHistoryBase):
            self.history.save_state(state)
        else:
            self._state = state

    async def _asave_state(self, state: dict[str, Any] | None) -> None:
        """Async `_save_state`."""
        if state is None:
            return
        if isinstance(self.history, ChatHistoryBase):
            await self.history.asave_state(state)
        else:
            self._state = state

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The conversation so far, as messages (or a string without `return_messages`)."""
        return self._render(self._select(self._load()))

    async def aload_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Async `load_memory_variables`."""
        return self._render(self._select(await self._aload()))

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Append the turn (input as a human message, output as an AI message)."""
        self.history.add_messages(self._turn(inputs, outputs))

    async def asave_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Async `save_context`."""
        await self.history.aadd_messages(self._turn(inputs, outputs))

    def clear(self) -> None:
        """Delete the conversation (and the memory's saved state)."""
        self.history.clear()
        self._state = {}

    async def aclear(self) -> None:
        """Async `clear`."""
        await self.history.aclear()
        self._state = {}


class ConversationBufferMemory(ChatMemory):
    """The whole conversation, or its `fetch_last` N messages.

    Example:
        >>> from langmem_prod import RedisChatMessageHistory
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     memory = ConversationBufferMemory(history=RedisChatMessageHistory("s1", url))
        ...     memory.save_context({"input": "hi"}, {"output": "hello"})
        ...     [m.content for m in memory.load_memory_variables({})["history"]]
        ['hi', 'hello']
    """


class ConversationTokenBufferMemory(ChatMemory):
    """The newest messages that fit in `max_tokens`, by real token count.

    `token_counter` is a callable, a chat model (its own counter), an OpenAI model name
    (tiktoken) or None (an estimate). The window starts on a human message.

    Example:
        >>> from langmem_prod import RedisChatMessageHistory
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     history = RedisChatMessageHistory("s1", url)
        ...     memory = ConversationTokenBufferMemory(history=history, max_tokens=30)
        ...     for n in range(5):
        ...         memory.save_context({"input": f"question {n}"}, {"output": f"answer {n}"})
        ...     [m.content for m in memory.load_memory_variables({})["history"]]
        ['question 3', 'answer 3', 'question 4', 'answer 4']
    """

    max_tokens: int = Field(gt=0)
    token_counter: Any = None
    fetch_last: int | None = Field(default=200, ge=1)

    @property
    def _counter(self) -> TokenCounter:
        return token_counter(self.token_counter)

    def _select(self, transcript: Transcript) -> list[BaseMessage]:
        return _fit(transcript.messages, self.max_tokens, self._counter)


def _fit(messages: list[BaseMessage], max_tokens: int, counter: TokenCounter) -> list[BaseMessage]:
    if not messages or max_tokens <= 0:
        return []
    return trim_messages(
        messages,
        max_tokens=max_tokens,
        token_counter=counter,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )


class _Plan(NamedTuple):
    """What a summary buffer does: summarize `overflow`, keep `keep`; `covered` ends both."""

    overflow: list[BaseMessage]
    keep: list[BaseMessage]
    summary: str
    covered: int


def _fingerprint(messages: Sequence[BaseMessage]) -> str:
    """Names the last messages summarized, for messages without ids (written elsewhere)."""
    data = orjson.dumps([message_to_dict(m) for m in messages[-3:]])
    return hashlib.sha256(data).hexdigest()[:32]


def _boundary(covered: list[BaseMessage]) -> dict[str, str]:
    """Where the summary stops: the id of the last message summarized.

    A message another writer added without an id is named by its contents instead.
    """
    last_id = covered[-1].id
    if isinstance(last_id, str) and last_id:
        return {"last_id": last_id}
    return {"mark": _fingerprint(covered)}


def _uncovered(messages: list[BaseMessage], own: Mapping[str, Any]) -> int:
    """Where the messages not yet in the summary start."""
    last_id, mark = own.get("last_id"), own.get("mark")
    for end in range(len(messages), 0, -1):
        if last_id is not None:
            if messages[end - 1].id == last_id:
                return end
        elif mark is not None and _fingerprint(messages[max(0, end - 3) : end]) == mark:
            return end
    return 0  # nothing summarized yet, or only messages older than what was read


def _with_id(message: BaseMessage) -> BaseMessage:
    return message if message.id else message.model_copy(update={"id": str(uuid.uuid4())})


class ConversationSummaryBufferMemory(ChatMemory):
    """Recent messages within `max_tokens`, and an LLM's running summary of the rest.

    When the messages not yet summarized outgrow `max_tokens`, the oldest of them are
    summarized by `llm` (one call, with the previous summary) and the summary is saved
    in the history's state (langmem_prod histories; others keep it in this object).
    The summary is returned first, as a system message.

    Example:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> from langmem_prod import RedisChatMessageHistory
        >>> from langmem_prod.embedded import embedded_redis
        >>> llm = FakeListChatModel(responses=["Invoice 0 is paid."])
        >>> with embedded_redis() as url:
        ...     history = RedisChatMessageHistory("s1", url)
        ...     memory = ConversationSummaryBufferMemory(history=history, llm=llm, max_tokens=30)
        ...     for n in range(3):
        ...         memory.save_context({"input": f"invoice {n}?"}, {"output": f"paid, {n}"})
        ...     for message in memory.load_memory_variables({})["history"]:
        ...         print(message.content)
        ...     history.load().state["summary_buffer"]["summary"]
        Summary of the earlier conversation: Invoice 0 is paid.
        invoice 1?
        paid, 1
        invoice 2?
        paid, 2
        'Invoice 0 is paid.'
    """

    llm: BaseChatModel
    max_tokens: int = Field(gt=0)
    max_summary_tokens: int = Field(default=256, gt=0)
    token_counter: Any = None
    fetch_last: int | None = Field(default=200, ge=1)
    summary_prompt: str = SUMMARY_PROMPT
    summary_prefix: str = "Summary of the earlier conversation: "
    state_key: str = "summary_buffer"

    def _plan(self, transcript: Transcript) -> _Plan:
        own = transcript.state.get(self.state_key) or {}
        start = _uncovered(transcript.messages, own)
        pending = transcript.messages[start:]
        keep = _fit(pending, self.max_tokens, token_counter(self.token_counter))
        end = len(transcript.messages) - len(keep)
        return _Plan(transcript.messages[start:end], keep, str(own.get("summary", "")), end)

    def _turn(self, inputs: Mapping[str, Any], outputs: Mapping[str, Any]) -> list[BaseMessage]:
        return [_with_id(m) for m in super()._turn(inputs, outputs)]

    def _prompt(self, summary: str, overflow: list[BaseMessage]) -> list[BaseMessage]:
        lines = get_buffer_string(
            overflow, human_prefix=self.human_prefix, ai_prefix=self.ai_prefix
        )
        return [
            SystemMessage(self.summary_prompt.format(max_tokens=self.max_summary_tokens)),
            HumanMessage(f"Current summary:\n{summary or '(none)'}\n\nNew lines:\n{lines}"),
        ]

    def _new_state(self, transcript: Transcript, plan: _Plan, summary: str) -> dict[str, Any]:
        boundary = _boundary(transcript.messages[: plan.covered])
        return {**transcript.state, self.state_key: {"summary": summary, **boundary}}

    def _output(self, summary: str, keep: list[BaseMessage]) -> list[BaseMessage]:
        head: list[BaseMessage] = [SystemMessage(self.summary_prefix + summary)] if summary else []
        return head + keep

    def summarize(self) -> list[BaseMessage]:
        """Summarize what newly overflowed (if anything); return the memory's messages."""
        transcript = self._load()
        plan = self._plan(transcript)
        summary = plan.summary
        if plan.overflow:
            summary = _text(self.llm.invoke(self._prompt(summary, plan.overflow)).text)
            self._save_state(self._new_state(transcript, plan, summary))
        return self._output(summary, plan.keep)

    async def asummarize(self) -> list[BaseMessage]:
        """Async `summarize`."""
        transcript = await self._aload()
        plan = self._plan(transcript)
        summary = plan.summary
        if plan.overflow:
            summary = _text((await self.llm.ainvoke(self._prompt(summary, plan.overflow))).text)
            await self._asave_state(self._new_state(transcript, plan, summary))
        return self._output(summary, plan.keep)

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The summary (a system message) and the recent messages."""
        return self._render(self.summarize())

    async def aload_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Async `load_memory_variables`."""
        return self._render(await self.asummarize())

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Append the turn, then summarize what it pushed out of the window."""
        super().save_context(inputs, outputs)
        self.summarize()

    async def asave_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Async `save_context`."""
        await super().asave_context(inputs, outputs)
        await self.asummarize()
