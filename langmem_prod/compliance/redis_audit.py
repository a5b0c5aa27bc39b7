"""The audit log on Redis: one stream per tenant, chained by the client, appended by Lua.

Rules:
- a tenant's chain is the stream `<prefix>:{audit:<tenant>}:log` and its head the hash
  `<prefix>:{audit:<tenant>}:head` (seq, hash, at, and when keyed kid and mac: see
  `_head`); with the writers' line below, all under one hash tag, so one slot of a
  cluster; each entry's fields are seq, at, agent, user, operation, namespace, key and
  hash (hex), agent, user and key left out when None; never a value;
- the hashes and the head's MAC are computed here (Redis Lua has no SHA-256, and a keyed
  chain's key must never reach the server), optimistically: `record` chains the events
  from the head it believes current and sends one script that appends them and advances
  the head only if the head is still that one; otherwise the script answers the current
  head, whose MAC the client checks (refusing a forged one, carrying an unsigned one)
  before chaining again from it. The script is atomic, so concurrent writers never fork
  the chain;
- refused writers wait in line (`...:waiting`, oldest first; `...:seen` drops one silent
  for `WAITER_GONE_MS`): while one waits, only the oldest may append, so no writer
  starves behind a faster one; a writer refused for `GIVE_UP_MS` of server time raises
  `BackendUnavailableError`. Waiting is retrying (one round trip each), not sleeping;
- the head last appended per tenant is remembered, so an uncontended `record` is one
  round trip; a resent script (after a dropped connection) whose entries already landed
  finds the head at its own new head and appends nothing twice;
- a head that is gone while the stream has entries is refused (`AuditChainError`), never
  restarted at 1;
- the tenants with a chain are listed in the set `<prefix>:audit:tenants` (added with a
  tenant's first append by each process), for `checkpoint_all`;
- reads go page by page (`PAGE_ENTRIES` entries a script), the last page with the head:
  one consistent view even while others append, and no script holds the server for a
  whole stream. From a checkpoint, the read starts at the stream id the checkpoint holds
  as its `position` (checked to be the checkpoint's entry; else the stream is read whole).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator, Sequence
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
from langmem_prod.compliance._checkpoint import Checkpoint, Tip
from langmem_prod.compliance._head import ChainHead, make_head, signs_after, time_text
from langmem_prod.compliance._log import AuditLogBase, Job
from langmem_prod.compliance._redis_lua import SCRIPTS, SHAS
from langmem_prod.compliance._verify import Read
from langmem_prod.errors import AuditChainError, BackendUnavailableError, ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store.redis._driver import runner_for
from langmem_prod.store.redis._effects import Pipeline, script

WAITER_GONE_MS = 1_000  # a refused writer silent this long has gone: skip it
GIVE_UP_MS = 10_000  # refused for this long (server time): too contended, raise
PAGE_ENTRIES = 1_000  # entries read by one script
_NEVER = datetime.min.replace(tzinfo=UTC)
_STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
Rows = list[Any]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hex(head: Head) -> str:
    return "" if head.seq == 0 else head.hash.hex()


def _parsed(parse: Callable[[str], Any], value: Any, default: Any) -> Any:
    try:
        return parse(_text(value))
    except ValueError:
        return default


def _chain_head(fields: list[Any]) -> ChainHead | None:
    """A head from its fields (seq, hash, at, kid, mac); a malformed one cannot verify."""
    seq, hash_hex, at, kid, mac = (None if v in (None, b"", "") else v for v in fields)
    if seq is None:
        return None
    number = _parsed(int, seq, -1)
    hash_ = b"" if hash_hex is None else _parsed(bytes.fromhex, hash_hex, b"")
    head = ChainHead(number, hash_ if number != 0 else EMPTY.hash)
    if at is None and kid is None and mac is None:
        return head
    return ChainHead(
        head.seq,
        head.hash,
        None if at is None else _parsed(datetime.fromisoformat, at, _NEVER),
        None if kid is None else _text(kid),
        _parsed(bytes.fromhex, mac, b"") if mac is not None else None,
    )


def _fields(entry: AuditEntry) -> list[str | int]:
    """The XADD arguments of an entry, preceded by their number."""
    fields: list[str | int] = ["seq", entry.seq, "at", entry.at_text, "operation", entry.operation]
    fields += ["namespace", entry.namespace_text, "hash", entry.hash.hex()]
    for name, value in (("agent", entry.agent), ("user", entry.user), ("key", entry.key)):
        if value is not None:
            fields += [name, value]
    return [len(fields), *fields]


def _entry_from(tenant: str, raw: list[Any]) -> AuditEntry:
    """An entry from its stream fields; malformed (forged) fields still give an entry.

    `raw` is a script's flat [field, value, ...] list, or redis-py's dict of a parsed
    XREVRANGE reply.
    """
    flat = [part for pair in raw.items() for part in pair] if isinstance(raw, dict) else raw
    values = [_text(v) for v in flat]
    fields = dict(zip(values[::2], values[1::2], strict=False))
    ns = fields.get("namespace", "")
    return AuditEntry(
        tenant,
        _parsed(int, fields.get("seq", "0"), 0),
        _parsed(datetime.fromisoformat, fields.get("at", ""), _NEVER),
        fields.get("agent"),
        fields.get("user"),
        fields.get("operation", ""),
        tuple(ns.split(".")) if ns else (),
        fields.get("key"),
        _parsed(bytes.fromhex, fields.get("hash", ""), b""),
    )


def _headless(tenant: str) -> AuditChainError:
    return AuditChainError(
        f"the audit chain head of tenant {tenant!r} is missing while its stream has "
        "entries; run verify() and restore the head before recording more"
    )


def _refused(tenant: str, reply: list[Any]) -> tuple[ChainHead, int]:
    """The current head and the server's time (ms) of a refused append."""
    head = _chain_head([reply[0], reply[1], reply[3], reply[4], reply[5]])
    if head is None or head.seq < 0 or (head.seq > 0 and len(head.hash) != 32):
        raise AuditChainError(
            f"the audit chain head of tenant {tenant!r} is not a (seq, hash) pair; run "
            "verify() and restore the head before recording more"
        )
    return head, int(reply[2])


class RedisAuditFlows:
    """The log's operations on Redis, as generators of `Pipeline` effects."""

    def __init__(self, prefix: str, key: bytes | None) -> None:
        self.prefix, self.key = prefix, key
        self.index = f"{prefix}:audit:tenants"
        self.heads: dict[str, ChainHead] = {}  # the head last written per tenant (a hint)

    def keys(self, tenant: str) -> tuple[str, str]:
        """The tenant's stream and head keys (one slot)."""
        tag = f"{self.prefix}:{{audit:{tenant}}}"
        return f"{tag}:log", f"{tag}:head"

    def _append_keys(self, tenant: str) -> tuple[str, ...]:
        tag = f"{self.prefix}:{{audit:{tenant}}}"
        return (*self.keys(tenant), f"{tag}:waiting", f"{tag}:seen")

    def _append(
        self, keys: tuple[str, ...], head: Head, writer: str, entries: list[AuditEntry], new: Any
    ) -> Any:
        args: list[Any] = [writer, head.seq, _hex(head), new.seq, _hex(new.point)]
        args += [WAITER_GONE_MS, time_text(new.at), new.key_id or "", (new.mac or b"").hex()]
        for entry in entries:
            args += _fields(entry)
        return script("audit_append", keys, tuple(args), SHAS)

    def append_gen(
        self, tenant: str, pending: list[AuditEntry], writer: str
    ) -> Generator[Pipeline, Any, None]:
        """Chain `pending` from the head and append it, again from the new head if refused.

        `writer` names this call (random): refused writers wait in line, oldest first.
        """
        keys, since, at = self._append_keys(tenant), None, pending[0].at
        head = self.heads.get(tenant, ChainHead(EMPTY.seq, EMPTY.hash))
        first: tuple[Any, ...] = () if tenant in self.heads else (("SADD", self.index, tenant),)
        sign = signs_after(tenant, head, self.key)
        while True:
            entries = extend(head.point, pending, self.key)
            new = make_head(self.key, tenant, Head(entries[-1].seq, entries[-1].hash), at, sign)
            command = self._append(keys, head.point, writer, entries, new)
            *_, (status, *current) = yield Pipeline((*first, command), scripted=True)
            first = ()
            if int(status) == 1:
                self.heads[tenant] = new
                return
            if int(status) == -1:
                self.heads.pop(tenant, None)
                raise _headless(tenant)
            head, now = _refused(tenant, current)
            since = now if since is None else since
            try:
                sign = signs_after(tenant, head, self.key)
                if now - since > GIVE_UP_MS:
                    raise BackendUnavailableError(
                        f"the audit chain of tenant {tenant!r} refused an append for "
                        f"{GIVE_UP_MS} ms: too many concurrent writers for one tenant; retry "
                        "later"
                    )
            except (AuditChainError, BackendUnavailableError):
                yield Pipeline((("ZREM", keys[2], writer), ("HDEL", keys[3], writer)))
                raise

    def _pages(self, tenant: str, start: str) -> Generator[Pipeline, Any, tuple[Any, int, Rows]]:
        """The entries from `start` on, page by page; the last page's head and length."""
        rows: Rows = []
        while True:
            command = script("audit_page", self.keys(tenant), (start, PAGE_ENTRIES), SHAS)
            ((head, length, page),) = yield Pipeline((command,), scripted=True)
            rows += page
            if len(page) < PAGE_ENTRIES:
                return head, int(length), rows
            start = "(" + _text(page[-1][0])

    def read_gen(self, tenant: str, since: Checkpoint | None) -> Generator[Pipeline, Any, Read]:
        """The tenant's entries (whole, or from the one before `since`'s) and its head."""
        if since is not None and since.seq > 1 and _STREAM_ID.fullmatch(since.position):
            log = self.keys(tenant)[0]
            (found,) = yield Pipeline((("XREVRANGE", log, since.position, "-", "COUNT", 2),))
            window = list(reversed(found))
            if window and _text(window[-1][0]) == since.position:
                anchor = [_entry_from(tenant, raw) for _, raw in window]
                if anchor[-1].seq == since.seq:
                    head, length, rows = yield from self._pages(tenant, "(" + since.position)
                    rows = window + rows
                    return self._read(tenant, rows, head, length - len(rows), whole=False)
        head, length, rows = yield from self._pages(tenant, "-")
        return self._read(tenant, rows, head, 0, whole=True)

    def _read(self, tenant: str, rows: Rows, head: Any, before: int, whole: bool) -> Read:
        entries = [_entry_from(tenant, raw) for _, raw in rows]
        position = _text(rows[-1][0]) if rows else ""
        return Read(entries, _chain_head(head), before, whole, position)

    def tips_gen(self, tenants: Sequence[str] | None) -> Generator[Pipeline, Any, list[Tip]]:
        """The heads of `tenants` (None: the listed tenants) with their last entries."""
        if tenants is None:
            (members,) = yield Pipeline((("SMEMBERS", self.index),))
            names = sorted(_text(m) for m in members)
            tenants = [n for n in names if _is_tenant(n)]
        if not tenants:
            return []
        commands = tuple(script("audit_tip", self.keys(t), (), SHAS) for t in tenants)
        replies = yield Pipeline(commands, scripted=True)
        tips = []
        for tenant, (head, last) in zip(tenants, replies, strict=True):
            entry = _entry_from(tenant, last[0][1]) if last else None
            end = None if entry is None else Head(entry.seq, entry.hash)
            tips.append(Tip(tenant, _chain_head(head), end, _text(last[0][0]) if last else ""))
        return tips

    def sign_gen(
        self, tenant: str, expected: Head, head: ChainHead
    ) -> Generator[Pipeline, Any, bool]:
        """Store the signed `head` if the head is still `expected` and unsigned."""
        at = "" if head.at is None else time_text(head.at)
        args = (expected.seq, _hex(expected), at, head.key_id or "", (head.mac or b"").hex())
        command = script("audit_sign", (self.keys(tenant)[1],), args, SHAS)
        (signed,) = yield Pipeline((command,), scripted=True)
        return bool(int(signed))


def _is_tenant(name: str) -> bool:
    try:
        check_tenant(name)
    except ValueError:
        return False
    return True


class RedisAuditLog(AuditLogBase):
    """Tamper-evident audit entries per tenant, as Redis streams (sync or asyncio client).

    Pass `key` (>= 32 secret bytes kept outside Redis) for an HMAC-SHA256 chain and
    signed heads that nobody without it can rewrite undetected; the same key is needed to
    verify. Runs on Redis >= 7, Valkey and Redis Cluster. Keep the server's
    `maxmemory-policy` at `noeviction` (or keep audit keys out of eviction's reach): an
    evicted key is a removed entry.

    Example:
        >>> import os, redis
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     audit = RedisAuditLog(redis.Redis.from_url(url), key=os.urandom(32))
        ...     audit.record("acme", [("put", ("notes",), "k1")], agent="bot", user="ada")
        ...     checkpoint = audit.checkpoint("acme")  # for a Witness, outside Redis
        ...     audit.record("acme", [("delete", ("notes",), "k1")], agent="bot")
        ...     [(e.seq, e.operation) for e in audit.entries("acme")], audit.verify("acme")
        ...     audit.verify("acme", since=checkpoint)
        ([(1, 'put'), (2, 'delete')], [])
        []

        On a `redis.asyncio` client, use the a-methods: `await audit.arecord(...)`,
        `await audit.averify(...)`.
    """

    _flows: RedisAuditFlows

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
