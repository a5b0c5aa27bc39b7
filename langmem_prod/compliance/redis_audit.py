"""The audit log on Redis: one stream per tenant, chained by the client, appended by Lua.

Rules:
- a tenant's chain is the stream `<prefix>:{audit:<tenant>}:log` and its head the hash
  `<prefix>:{audit:<tenant>}:head` (fields seq, hash); with the writers' line below, all
  under one hash tag, so one slot of a cluster; each entry's fields are seq, at, agent,
  user, operation, namespace, key and hash (hex), agent, user and key left out when
  None; never a value;
- the hashes are computed here (Redis Lua has no SHA-256, and a keyed chain's key must
  never reach the server), optimistically: `record` chains the events from the head it
  believes current and sends one script that appends them and advances the head only if
  the head is still that one; otherwise the script answers the current head and the
  client chains again from it. The script is atomic, so concurrent writers never fork the
  chain;
- refused writers wait in line (`...:waiting`, oldest first; `...:seen` drops one silent
  for `WAITER_GONE_MS`): while one waits, only the oldest may append, so no writer
  starves behind a faster one; a writer refused for `GIVE_UP_MS` of server time raises
  `BackendUnavailableError`. Waiting is retrying (one round trip each), not sleeping;
- the head last appended per tenant is remembered, so an uncontended `record` is one
  round trip; a resent script (after a dropped connection) whose entries already landed
  finds the head at its own new head and appends nothing twice;
- a head that is gone while the stream has entries is refused (`AuditChainError`), never
  restarted at 1;
- `entries` and `verify` read the stream and its head with one script: one consistent
  view, even while others append.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

from langmem_prod.compliance._chain import (
    EMPTY,
    AuditEntry,
    Event,
    Head,
    check_key,
    check_tenant,
    extend,
    unchained,
)
from langmem_prod.compliance._log import AuditLogBase, Job, Read
from langmem_prod.errors import AuditChainError, BackendUnavailableError, ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.redis._driver import runner_for
from langmem_prod.store.redis._effects import Pipeline, script

APPEND = """
-- KEYS: stream, head, waiting (writers by first refusal), seen (writer -> last try, ms)
-- ARGV: writer, expected seq, expected hash, new seq, new hash, then per entry: its
-- number of field and value arguments, then those arguments.
-- Answers {1} (appended, or already there), {0, seq, hash, now} (refused: the head moved
-- or an older writer waits), {-1} (entries but no head).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local me = ARGV[1]
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
if not head[1] then
  if redis.call('XLEN', KEYS[1]) > 0 then return {-1} end
  head = {'0', ''}
end
local function done()
  redis.call('ZREM', KEYS[3], me)
  redis.call('HDEL', KEYS[4], me)
  return {1}
end
if head[1] == ARGV[4] and head[2] == ARGV[5] then return done() end
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
while first and first ~= me
    and (tonumber(redis.call('HGET', KEYS[4], first)) or 0) < now - tonumber(ARGV[6]) do
  redis.call('ZREM', KEYS[3], first)
  redis.call('HDEL', KEYS[4], first)
  first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
end
if (first and first ~= me) or head[1] ~= ARGV[2] or head[2] ~= ARGV[3] then
  redis.call('ZADD', KEYS[3], 'NX', now, me)
  redis.call('HSET', KEYS[4], me, now)
  return {0, head[1], head[2] or '', now}
end
local i = 7
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
redis.call('HSET', KEYS[2], 'seq', ARGV[4], 'hash', ARGV[5])
return done()
"""
READ = """
-- KEYS: stream, head. The head and every entry, in one atomic read.
return {redis.call('HMGET', KEYS[2], 'seq', 'hash'), redis.call('XRANGE', KEYS[1], '-', '+')}
"""
SCRIPTS = {"audit_append": APPEND, "audit_read": READ}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
WAITER_GONE_MS = 1_000  # a refused writer silent this long has gone: skip it
GIVE_UP_MS = 10_000  # refused for this long (server time): too contended, raise
_NEVER = datetime.min.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hex(head: Head) -> str:
    return "" if head.seq == 0 else head.hash.hex()


def _head(seq: Any, hash_hex: Any) -> Head:
    number = int(_text(seq))
    return EMPTY if number == 0 else Head(number, bytes.fromhex(_text(hash_hex)))


def _fields(entry: AuditEntry) -> list[str | int]:
    """The XADD arguments of an entry, preceded by their number."""
    fields: list[str | int] = ["seq", entry.seq, "at", entry.at_text, "operation", entry.operation]
    fields += ["namespace", entry.namespace_text, "hash", entry.hash.hex()]
    for name, value in (("agent", entry.agent), ("user", entry.user), ("key", entry.key)):
        if value is not None:
            fields += [name, value]
    return [len(fields), *fields]


def _entry_from(tenant: str, raw: list[Any]) -> AuditEntry:
    """An entry from its stream fields; malformed (forged) fields still give an entry."""
    values = [_text(v) for v in raw]
    fields = dict(zip(values[::2], values[1::2], strict=False))
    try:
        seq = int(fields.get("seq", "0"))
    except ValueError:
        seq = 0
    try:
        at = datetime.fromisoformat(fields.get("at", ""))
    except ValueError:
        at = _NEVER
    try:
        hash_ = bytes.fromhex(fields.get("hash", ""))
    except ValueError:
        hash_ = b""
    ns = fields.get("namespace", "")
    namespace = tuple(ns.split(".")) if ns else ()
    operation = fields.get("operation", "")
    return AuditEntry(
        tenant, seq, at, fields.get("agent"), fields.get("user"), operation, namespace,
        fields.get("key"), hash_,
    )  # fmt: skip


def _headless(tenant: str) -> AuditChainError:
    return AuditChainError(
        f"the audit chain head of tenant {tenant!r} is missing while its stream has "
        "entries; run verify() and restore the head before recording more"
    )


def _refused(tenant: str, reply: list[Any]) -> tuple[Head, int]:
    """The current head and the server's time (ms) of a refused append."""
    try:
        return _head(reply[0], reply[1]), int(reply[2])
    except ValueError as exc:
        raise AuditChainError(
            f"the audit chain head of tenant {tenant!r} is not a (seq, hash) pair; run "
            "verify() and restore the head before recording more"
        ) from exc


class RedisAuditFlows:
    """The log's operations on Redis, as generators of `Pipeline` effects."""

    def __init__(self, prefix: str, key: bytes | None) -> None:
        self.prefix, self.key = prefix, key
        self.heads: dict[str, Head] = {}  # the head last seen per tenant (a hint only)

    def keys(self, tenant: str) -> tuple[str, str]:
        """The tenant's stream and head keys (one slot)."""
        tag = f"{self.prefix}:{{audit:{tenant}}}"
        return f"{tag}:log", f"{tag}:head"

    def _append_keys(self, tenant: str) -> tuple[str, ...]:
        tag = f"{self.prefix}:{{audit:{tenant}}}"
        return (*self.keys(tenant), f"{tag}:waiting", f"{tag}:seen")

    def _append(
        self, keys: tuple[str, ...], head: Head, writer: str, entries: list[AuditEntry]
    ) -> Any:
        new = Head(entries[-1].seq, entries[-1].hash)
        args: list[Any] = [writer, head.seq, _hex(head), new.seq, _hex(new), WAITER_GONE_MS]
        for entry in entries:
            args += _fields(entry)
        return script("audit_append", keys, tuple(args), SHAS)

    def append_gen(
        self, tenant: str, pending: list[AuditEntry], writer: str
    ) -> Generator[Pipeline, Any, None]:
        """Chain `pending` from the head and append it, again from the new head if refused.

        `writer` names this call (random): refused writers wait in line, oldest first.
        """
        keys, head, since = self._append_keys(tenant), self.heads.get(tenant, EMPTY), None
        while True:
            entries = extend(head, pending, self.key)
            command = self._append(keys, head, writer, entries)
            ((status, *current),) = yield Pipeline((command,), scripted=True)
            if int(status) == 1:
                self.heads[tenant] = Head(entries[-1].seq, entries[-1].hash)
                return
            if int(status) == -1:
                self.heads.pop(tenant, None)
                raise _headless(tenant)
            head, now = _refused(tenant, current)
            since = now if since is None else since
            if now - since > GIVE_UP_MS:
                yield Pipeline((("ZREM", keys[2], writer), ("HDEL", keys[3], writer)))
                raise BackendUnavailableError(
                    f"the audit chain of tenant {tenant!r} refused an append for "
                    f"{GIVE_UP_MS} ms: too many concurrent writers for one tenant; retry later"
                )

    def read_gen(self, tenant: str) -> Generator[Pipeline, Any, Read]:
        """The tenant's entries in stream order, and its chain head, from one atomic read."""
        command = script("audit_read", self.keys(tenant), (), SHAS)
        ((head, rows),) = yield Pipeline((command,), scripted=True)
        entries = [_entry_from(tenant, raw) for _, raw in rows]
        if head[0] is None:
            return entries, None
        try:
            return entries, _head(head[0], head[1] or "")
        except ValueError:  # a forged head: no chain can end at it
            return entries, Head(-1, b"")


class RedisAuditLog(AuditLogBase):
    """Tamper-evident audit entries per tenant, as Redis streams (sync or asyncio client).

    Pass `key` (>= 32 secret bytes kept outside Redis) for an HMAC-SHA256 chain that
    nobody without it can rewrite undetected; the same key is needed to verify. Runs on
    Redis >= 7, Valkey and Redis Cluster. Keep the server's `maxmemory-policy` at
    `noeviction` (or keep audit keys out of eviction's reach): an evicted key is a
    removed entry.

    Example:
        >>> import os, redis
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     audit = RedisAuditLog(redis.Redis.from_url(url), key=os.urandom(32))
        ...     audit.record("acme", [("put", ("notes",), "k1")], agent="bot", user="ada")
        ...     audit.record("acme", [("delete", ("notes",), "k1")], agent="bot")
        ...     [(e.seq, e.operation) for e in audit.entries("acme")], audit.verify("acme")
        ([(1, 'put'), (2, 'delete')], [])

        On a `redis.asyncio` client, use the a-methods: `await audit.arecord(...)`,
        `await audit.averify(...)`.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "langmem",
        key: bytes | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError("prefix must not contain '{' or '}'")
        self.prefix = prefix
        self._key = check_key(key)
        self._flows = RedisAuditFlows(prefix, self._key)
        self._runner = runner_for(client, retry, SCRIPTS, owner="the audit log")
        if clock is not None:
            self._clock = clock

    def keys(self, tenant: str) -> tuple[str, str]:
        """The Redis keys of the tenant's chain: its stream and its head."""
        return self._flows.keys(check_tenant(tenant))

    def _append_job(
        self, tenant: str, events: tuple[Event, ...], at: datetime, agent: Any, user: Any
    ) -> Job[None]:
        pending, writer = unchained(tenant, events, at, agent, user), os.urandom(12).hex()
        return Job(lambda: self._flows.append_gen(tenant, pending, writer))

    def _read_job(self, tenant: str) -> Job[Read]:
        return Job(lambda: self._flows.read_gen(tenant))
