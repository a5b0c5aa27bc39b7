"""Chat messages and session state as stored bytes, and what a history accepts.

Rules:
- a message is stored as the JSON of `message_to_dict` (type + every field), so every
  message type round-trips exactly: tool calls, invalid tool calls, content blocks, ids,
  names, additional_kwargs, response_metadata, usage_metadata; the common types are
  rebuilt with `model_construct` (the data was validated when it was dumped), the rest
  through `messages_from_dict`;
- only JSON types are accepted; anything else (a datetime in additional_kwargs, bytes,
  NaN or an infinity anywhere: content blocks, additional_kwargs, response_metadata,
  tool call args) is refused with the message's position, before anything is written;
- only message types LangChain reads back (`messages_from_dict`'s) are accepted: a
  message of another type is refused on write, so no read ever fails on it;
- the optional codec (encryption) sees the JSON bytes and the owner's context;
- session, tenant and user ids are non-empty strings without NUL or lone surrogates, at
  most 512 characters;
- a stored message or state nests at most `MAX_VALUE_DEPTH` (254) JSON objects and
  arrays, the message's own envelope (`{"type", "data": {...}}`) included: orjson's
  limit, translated to the project's error naming it (no `RecursionError`, whatever the
  depth); `nesting_exceeds_message` checks a message before anything walks it (PII
  redaction);
- a read window is every message, the `last` N, or a page (`offset`, `limit`), oldest
  first; counts are ints up to `MAX_COUNT`; a TTL is at most 100 years, 0 (as in
  langchain-redis and langchain-community) or infinite means no expiry, and a negative
  TTL is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, NamedTuple

import orjson
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)

from langmem_prod.codec import Codec
from langmem_prod.errors import ConfigurationError, InvalidInputError, InvalidMessageError
from langmem_prod.store._namespace import MAX_COUNT
from langmem_prod.store._text import has_surrogate
from langmem_prod.store._ttl import MAX_TTL_MINUTES
from langmem_prod.store._values import MAX_VALUE_DEPTH, nesting_exceeds

MAX_ID_CHARS = 512
MAX_TTL_SECONDS = MAX_TTL_MINUTES * 60
_CLASSES: dict[str, type[BaseMessage]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        AIMessage,
        AIMessageChunk,
        ChatMessage,
        FunctionMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
}
READABLE_TYPES = frozenset(
    {
        *_CLASSES,
        "remove",
        "HumanMessageChunk",
        "SystemMessageChunk",
        "ChatMessageChunk",
        "FunctionMessageChunk",
        "ToolMessageChunk",
    }
)
"""The message types `messages_from_dict` rebuilds: the only ones a history stores."""
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class Window(NamedTuple):
    """Which messages a read returns: all, the `last` N, or `limit` from `offset`."""

    last: int | None = None
    offset: int = 0
    limit: int | None = None


ALL = Window()


def window(last: int | None, offset: int, limit: int | None) -> Window:
    """Check a read window's arguments.

    >>> window(5, 0, None)
    Window(last=5, offset=0, limit=None)
    >>> window(5, 2, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.InvalidInputError: pass either last=... or offset/limit, not both
    """
    for name, value in (("last", last), ("limit", limit)):
        if value is not None and not _is_count(value, 0):
            raise InvalidInputError(f"{name} must be an int from 0 to {MAX_COUNT} or None")
    if not _is_count(offset, 0):
        raise InvalidInputError(f"offset must be an int from 0 to {MAX_COUNT}")
    if last is not None and (offset or limit is not None):
        raise InvalidInputError("pass either last=... or offset/limit, not both")
    return Window(last, offset, limit)


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_COUNT


def check_id(name: str, value: object, *, optional: bool = False) -> str:
    """A session, tenant or user id, checked; '' stands for "none" when optional."""
    if value is None and optional:
        return ""
    if (
        not isinstance(value, str)
        or not value
        or "\x00" in value
        or len(value) > MAX_ID_CHARS
        or has_surrogate(value)
    ):
        raise InvalidInputError(
            f"{name} must be a non-empty string of at most {MAX_ID_CHARS} characters "
            f"without NUL or lone surrogates, got {type(value).__name__}"
        )
    return value


def check_ttl(ttl: float | timedelta | None) -> float | None:
    """A conversation TTL in seconds (None: keep forever; 0 and infinity mean the same).

    >>> check_ttl(90), check_ttl(0), check_ttl(timedelta(0))
    (90.0, None, None)
    """
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ConfigurationError(
            "ttl must be a number of seconds >= 0 or a timedelta (0 or None: no expiry)"
        )
    if seconds in (0, math.inf):
        return None
    if not seconds <= MAX_TTL_SECONDS:
        raise ConfigurationError(
            f"ttl must be at most {MAX_TTL_SECONDS:.0f} seconds (100 years); use None to keep "
            "the conversation forever"
        )
    return float(seconds)


def check_max_messages(value: int | None) -> int | None:
    """The bound on a history's length (None: unbounded)."""
    if value is not None and not _is_count(value, 1):
        raise ConfigurationError(f"max_messages must be an int from 1 to {MAX_COUNT} or None")
    return value


def _refuse(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not a JSON type")


def encode_messages(
    messages: Iterable[BaseMessage], codec: Codec | None, context: bytes
) -> list[bytes]:
    """The stored bytes of each message, or `InvalidMessageError` naming the first bad one."""
    out = []
    for n, message in enumerate(messages):
        if not isinstance(message, BaseMessage):
            raise InvalidMessageError(
                f"message {n} is a {type(message).__name__}, not a langchain BaseMessage"
            )
        if not isinstance(message.type, str) or message.type not in READABLE_TYPES:
            raise InvalidMessageError(
                f"message {n} ({type(message).__name__}) has a type LangChain cannot read "
                "back (messages_from_dict); store a HumanMessage, AIMessage, SystemMessage, "
                "ToolMessage, ChatMessage or FunctionMessage (or a chunk of one) instead"
            )
        stored = message_to_dict(message)
        try:
            data = orjson.dumps(stored, default=_refuse, option=_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            if nesting_exceeds_message(message):
                raise _too_deep(n, message) from None
            raise InvalidMessageError(
                f"message {n} ({message.type}) cannot be stored exactly: {exc}; keep only JSON "
                "types (str, numbers, bools, None, lists, dicts) in its fields"
            ) from exc
        if has_non_finite(stored["data"]):  # orjson writes NaN and infinities as null
            raise InvalidMessageError(
                f"message {n} ({message.type}) holds NaN or an infinity, which JSON cannot "
                "represent (it would be read back as null); use None or a string instead"
            )
        out.append(codec.encode(data, context) if codec is not None else data)
    return out


def has_non_finite(value: Any) -> bool:
    """Whether a JSON-like value holds a float NaN or infinity (walked without recursion).

    >>> has_non_finite({"a": [1.5, {"b": float("nan")}]}), has_non_finite({"a": [1.5]})
    (True, False)
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def nesting_exceeds_message(message: BaseMessage) -> bool:
    """Whether a message's stored JSON would nest deeper than `MAX_VALUE_DEPTH` (no recursion).

    >>> from langchain_core.messages import HumanMessage
    >>> nesting_exceeds_message(HumanMessage([{"type": "text", "text": "hi"}]))
    False
    """
    # Stored as {"type": ..., "data": {<fields>}}: the fields sit one level down.
    return nesting_exceeds(vars(message), MAX_VALUE_DEPTH - 1)


def check_message_depths(messages: Sequence[BaseMessage]) -> None:
    """Refuse, before anything walks them, messages nested deeper than the limit."""
    for n, message in enumerate(messages):
        if isinstance(message, BaseMessage) and nesting_exceeds_message(message):
            raise _too_deep(n, message)


def _too_deep(n: int, message: BaseMessage) -> InvalidMessageError:
    return InvalidMessageError(
        f"message {n} ({message.type}) nests objects and arrays more than {MAX_VALUE_DEPTH} "
        "levels deep as stored, the limit; flatten its content or metadata"
    )


def check_state(state: object) -> None:
    """Refuse a session state that is not a mapping or nests deeper than the limit."""
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"a session state must be a mapping, got {type(state).__name__}")
    if nesting_exceeds(state, MAX_VALUE_DEPTH):
        raise InvalidInputError(_STATE_TOO_DEEP)


_STATE_TOO_DEEP = (
    f"a session state nests objects and arrays more than {MAX_VALUE_DEPTH} levels deep, "
    "the limit; flatten it"
)


def decode_messages(
    blobs: Sequence[bytes], codec: Codec | None, context: bytes
) -> list[BaseMessage]:
    """The messages of stored bytes, oldest first."""
    if codec is not None:
        blobs = [codec.decode(bytes(b), context) for b in blobs]
    out = []
    for blob in blobs:
        stored = orjson.loads(blob)
        cls = _CLASSES.get(stored["type"])
        # Stored data is the dump of a validated message: rebuilt without validating it
        # again, it is equal field for field (and twice as fast); other types validate.
        out.append(
            cls.model_construct(**stored["data"]) if cls else messages_from_dict([stored])[0]
        )
    return out


def encode_state(state: Mapping[str, Any], codec: Codec | None, context: bytes) -> bytes:
    """The stored bytes of a session's state (a JSON object, e.g. a running summary)."""
    if not isinstance(state, Mapping):
        raise InvalidInputError(f"a session state must be a mapping, got {type(state).__name__}")
    try:
        data = orjson.dumps(state, default=_refuse, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        check_state(state)
        raise InvalidInputError(f"a session state must hold JSON types only: {exc}") from exc
    return codec.encode(data, context) if codec is not None else data


def decode_state(blob: bytes | None, codec: Codec | None, context: bytes) -> dict[str, Any]:
    """A session's state ({} when none was saved)."""
    if blob is None:
        return {}
    data = codec.decode(bytes(blob), context) if codec is not None else blob
    state: dict[str, Any] = orjson.loads(data)
    return state
