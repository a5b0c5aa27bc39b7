r"""Chat histories on Redis, Valkey or Redis Cluster: key layout, script and flows, no I/O.

Rules:
- a conversation is a list of stored messages at `<prefix>:{<tenant>\0<session>}:m`
  and a hash at `...:s` (tenant, user, created, updated, last append id, state); the
  hash tag keeps both in one slot, so the store runs unchanged on a cluster;
- an append is one script: RPUSH, LTRIM to `max_messages`, the hash, and one expiry
  for the whole conversation, refreshed on every write; the script skips an append id
  it has already applied, so a retry after a lost reply adds nothing twice;
- reads are LRANGE (every message, the last N, or a page) and, when asked, HGET of the
  state, in one round trip; expiry is the server's.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langmem_prod.errors import ConfigurationError
from langmem_prod.history._messages import Window
from langmem_prod.store.redis._effects import Pipeline, script

DEFAULT_PREFIX = "langmem:history"

APPEND = """
-- KEYS: messages list, session hash
-- ARGV: append id, now ISO, ttl ms ('' none), max ('' none), tenant, user ('' none), blobs...
local prev = redis.call('HGET', KEYS[2], 'append')
if prev == ARGV[1] then
  return 0
end
-- Lua's C stack bounds how many values one unpack() may pass: push 1000 at a time.
local i = 7
while i <= #ARGV do
  local last = math.min(i + 999, #ARGV)
  redis.call('RPUSH', KEYS[1], unpack(ARGV, i, last))
  i = last + 1
end
if ARGV[4] ~= '' then
  redis.call('LTRIM', KEYS[1], -tonumber(ARGV[4]), -1)
end
local fields = {'append', ARGV[1], 'updated', ARGV[2]}
if not prev then  -- the conversation's first append
  redis.call('HSETNX', KEYS[2], 'created', ARGV[2])
  fields[#fields + 1] = 'tenant'
  fields[#fields + 1] = ARGV[5]
end
if ARGV[6] ~= '' then
  fields[#fields + 1] = 'user'
  fields[#fields + 1] = ARGV[6]
end
redis.call('HSET', KEYS[2], unpack(fields))
if ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return #ARGV - 6
"""

SAVE_STATE = """
-- KEYS: messages list, session hash; ARGV: state, now ISO, ttl ms ('' none), tenant, user
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'updated', ARGV[2], 'tenant', ARGV[4])
redis.call('HSETNX', KEYS[2], 'created', ARGV[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[2], 'user', ARGV[5])
end
if ARGV[3] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
end
return 1
"""

SCRIPTS = {"history_append": APPEND, "history_state": SAVE_STATE}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}


def check_prefix(prefix: str) -> str:
    """A key prefix without hash-tag braces (they would move the conversation's slot)."""
    if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
        raise ConfigurationError("prefix must be a non-empty string without '{' or '}'")
    return prefix


@dataclass(frozen=True, slots=True)
class RedisConversation:
    """One conversation on Redis: its keys and how it is written."""

    prefix: str
    tenant_id: str
    session_id: str
    user_id: str | None
    ttl: float | None
    max_messages: int | None

    @property
    def keys(self) -> tuple[str, str]:
        """The messages list and the session hash (one hash tag, so one slot)."""
        base = f"{self.prefix}:{{{self.tenant_id}\x00{self.session_id}}}:"
        return base + "m", base + "s"

    def _ttl_ms(self) -> str:
        return "" if self.ttl is None else str(max(1, round(self.ttl * 1000)))

    def append_gen(self, blobs: list[bytes], now: datetime) -> Generator[Pipeline, Any, None]:
        """Append stored messages with one script (safe to retry)."""
        if not blobs:
            return
        args = (
            os.urandom(8).hex(),
            now.isoformat(),
            self._ttl_ms(),
            "" if self.max_messages is None else str(self.max_messages),
            self.tenant_id,
            self.user_id or "",
            *blobs,
        )
        command = script("history_append", self.keys, args, SHAS)
        yield Pipeline((command,), scripted=True)

    def read_gen(
        self, window: Window, now: datetime, *, with_state: bool = False
    ) -> Generator[Pipeline, Any, tuple[list[bytes], bytes | None]]:
        """Read stored messages (oldest first) and, when asked, the state: one round trip."""
        del now  # expiry is the server's
        messages, session = self.keys
        if window.last is not None:
            if window.last == 0:
                start, stop = 1, 0  # an empty range
            else:
                start, stop = -window.last, -1
        else:
            start = window.offset
            stop = -1 if window.limit is None else window.offset + window.limit - 1
        commands: tuple[tuple[Any, ...], ...] = (("LRANGE", messages, start, stop),)
        if with_state:
            commands += (("HGET", session, "state"),)
        replies = yield Pipeline(commands)
        if window.limit == 0:
            return [], replies[1] if with_state else None
        return list(replies[0]), replies[1] if with_state else None

    def save_state_gen(self, blob: bytes, now: datetime) -> Generator[Pipeline, Any, None]:
        """Store the conversation's state (refreshes its TTL like any write)."""
        args = (blob, now.isoformat(), self._ttl_ms(), self.tenant_id, self.user_id or "")
        yield Pipeline((script("history_state", self.keys, args, SHAS),), scripted=True)

    def clear_gen(self) -> Generator[Pipeline, Any, None]:
        """Delete the conversation, its messages and its state."""
        yield Pipeline((("DEL", *self.keys),))
