"""What every chat history shares: the public methods, over one conversation's flows.

Rules:
- a backend provides the conversation's flows (`append_gen`, `read_gen`,
  `save_state_gen`, `clear_gen`) and a sync and an async runner; everything else is here;
- messages are encoded (and checked) before any I/O, so a bad message writes nothing;
- sync methods run on the sync connection and async methods on the async one, natively
  (no thread pool); a history built with only one kind says so when asked for the other;
- `add_messages` is one round trip; reads are one round trip, state included;
- with a `limiter` (e.g. `tenancy.TenantRateLimiter`, whose limits are each tenant's
  plan), every read, write and clear first takes one token from the bucket of the
  history's `tenant_id` (the one its `TenantStore` uses), or raises `RateLimitedError`;
  input is checked before that, and the sweep of expired conversations takes none.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage

from langmem_prod.codec import Codec
from langmem_prod.errors import ConfigurationError
from langmem_prod.history._messages import (
    ALL,
    Window,
    check_id,
    check_message_depths,
    check_state,
    decode_messages,
    decode_state,
    encode_messages,
    encode_state,
    window,
)
from langmem_prod.security.pii import Redactor
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase

T = TypeVar("T")


class HistoryLimiter(Protocol):
    """What a history needs of a rate limiter (`tenancy.Limiter` is one)."""

    def acquire(self, key: str, cost: float = 1) -> None:
        """Take `cost` tokens from `key`'s bucket, or raise `RateLimitedError`."""
        ...

    async def aacquire(self, key: str, cost: float = 1) -> None:
        """Async `acquire`."""
        ...


class Transcript(NamedTuple):
    """A conversation's messages (oldest first) and its saved state."""

    messages: list[BaseMessage]
    state: dict[str, Any]


class Conversation(Protocol):
    """The flows of one conversation on one backend."""

    def append_gen(self, blobs: list[bytes], now: datetime) -> Generator[Any, Any, None]:
        """Append stored messages."""
        ...

    def read_gen(
        self, window: Window, now: datetime, *, with_state: bool = False
    ) -> Generator[Any, Any, tuple[list[bytes], bytes | None]]:
        """Read stored messages and, when asked, the state."""
        ...

    def save_state_gen(self, blob: bytes, now: datetime) -> Generator[Any, Any, None]:
        """Store the state."""
        ...

    def clear_gen(self) -> Generator[Any, Any, None]:
        """Delete the conversation."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ChatHistoryBase(BaseChatMessageHistory):
    """A `BaseChatMessageHistory` over a backend's conversation flows and runners."""

    _conversation: Conversation
    _codec: Codec | None
    _context: bytes
    _clock: Callable[[], datetime]
    _retry: RetryPolicy
    _sync: SyncRunnerBase[Any] | None = None
    _async: AsyncRunnerBase[Any] | None = None
    _limiter: HistoryLimiter | None = None

    def _init_common(
        self,
        session_id: str,
        *,
        tenant_id: str | None,
        user_id: str | None,
        codec: Codec | None,
        clock: Callable[[], datetime] | None,
        retry: RetryPolicy | None,
        redactor: Redactor | None = None,
        limiter: HistoryLimiter | None = None,
    ) -> None:
        """Check and keep what every history takes besides its connection and place."""
        self.session_id = check_id("session_id", session_id)
        self.tenant_id = check_id("tenant_id", tenant_id, optional=True)
        self.user_id = check_id("user_id", user_id, optional=True) or None
        if codec is not None and not isinstance(codec, Codec):
            raise ConfigurationError("codec must have encode(data, context) and decode(...)")
        if redactor is not None and not isinstance(redactor, Redactor):
            raise ConfigurationError("redactor must be a langmem_prod.security.Redactor")
        if limiter is not None and not self.tenant_id:
            raise ConfigurationError("a rate-limited history needs the tenant_id it limits")
        self._codec = codec
        self._redactor = redactor
        self._limiter = limiter
        self._context = f"history\x00{self.tenant_id}\x00{self.session_id}".encode()
        self._clock = clock or _utcnow
        self._retry = retry or RetryPolicy()

    def _run(self, gen: Generator[Any, Any, T], *, limited: bool = True) -> T:
        if self._sync is None:
            gen.close()
            raise ConfigurationError(
                f"{type(self).__name__} was built on an async connection; use the a-methods "
                "(aget_messages, aadd_messages, aclear), or pass a sync connection or a URL"
            )
        if limited and self._limiter is not None:
            try:
                self._limiter.acquire(self.tenant_id)
            except BaseException:
                gen.close()
                raise
        return self._sync.run(gen)

    async def _arunner(self) -> AsyncRunnerBase[Any] | None:
        """The async runner (a history on a URL takes the running loop's connection)."""
        return self._async

    async def _arun(self, gen: Generator[Any, Any, T], *, limited: bool = True) -> T:
        runner = await self._arunner()
        if runner is None:
            gen.close()
            raise ConfigurationError(
                f"{type(self).__name__} was built on a sync connection; use the sync methods, "
                "or pass an async connection or a URL"
            )
        if limited and self._limiter is not None:
            try:
                await self._limiter.aacquire(self.tenant_id)
            except BaseException:
                gen.close()
                raise
        return await runner.run(gen)

    def _read(self, window: Window, *, with_state: bool) -> Generator[Any, Any, Transcript]:
        blobs, state = yield from self._conversation.read_gen(
            window, self._clock(), with_state=with_state
        )
        return Transcript(
            decode_messages(blobs, self._codec, self._context),
            decode_state(state, self._codec, self._context),
        )

    def _append(self, messages: Sequence[BaseMessage]) -> Generator[Any, Any, None]:
        if self._redactor is not None:
            check_message_depths(messages)  # before the redactor walks them
            messages = [self._redactor.redact_message(m) for m in messages]
        blobs = encode_messages(messages, self._codec, self._context)
        return self._conversation.append_gen(blobs, self._clock())

    def _save(self, state: Mapping[str, Any]) -> Generator[Any, Any, None]:
        if self._redactor is not None:
            check_state(state)  # before the redactor walks it
            state = self._redactor.redact_value(dict(state))
        blob = encode_state(state, self._codec, self._context)
        return self._conversation.save_state_gen(blob, self._clock())

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Every message of the conversation, oldest first (one round trip)."""
        return self._run(self._read(ALL, with_state=False)).messages

    def get_messages(
        self, *, last: int | None = None, offset: int = 0, limit: int | None = None
    ) -> list[BaseMessage]:
        """The `last` N messages, or `limit` messages from `offset`, oldest first."""
        return self._run(self._read(window(last, offset, limit), with_state=False)).messages

    async def aget_messages(
        self, *, last: int | None = None, offset: int = 0, limit: int | None = None
    ) -> list[BaseMessage]:
        """Async `get_messages` (every message by default)."""
        gen = self._read(window(last, offset, limit), with_state=False)
        return (await self._arun(gen)).messages

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one round trip; a bad message writes nothing."""
        self._run(self._append(messages))

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async `add_messages`."""
        await self._arun(self._append(messages))

    def clear(self) -> None:
        """Delete the conversation: messages and state."""
        self._run(self._conversation.clear_gen())

    async def aclear(self) -> None:
        """Async `clear`."""
        await self._arun(self._conversation.clear_gen())

    def load(self, *, last: int | None = None) -> Transcript:
        """The messages (all, or the `last` N) and the saved state, in one round trip."""
        return self._run(self._read(window(last, 0, None), with_state=True))

    async def aload(self, *, last: int | None = None) -> Transcript:
        """Async `load`."""
        return await self._arun(self._read(window(last, 0, None), with_state=True))

    def save_state(self, state: Mapping[str, Any]) -> None:
        """Replace the conversation's state (a JSON object, e.g. a running summary)."""
        self._run(self._save(state))

    async def asave_state(self, state: Mapping[str, Any]) -> None:
        """Async `save_state`."""
        await self._arun(self._save(state))


def split_sources(
    connection: object,
    async_connection: object,
    sync_types: tuple[type, ...],
    async_types: tuple[type, ...],
    accepted: str,
) -> tuple[Any, Any]:
    """Sort a history's connection arguments into (sync, async); a URL gives (None, None)."""
    sync = connection if isinstance(connection, sync_types) else None
    asynchronous = connection if isinstance(connection, async_types) else None
    if sync is None and asynchronous is None and not isinstance(connection, str):
        raise ConfigurationError(
            f"connection must be {accepted} or a URL, got {type(connection).__name__}"
        )
    if async_connection is not None:
        if not isinstance(async_connection, async_types) or asynchronous is not None:
            raise ConfigurationError(
                "async_connection must be an async client or pool, given with a sync "
                "`connection` (or pass the async one as `connection`)"
            )
        asynchronous = async_connection
    return sync, asynchronous
