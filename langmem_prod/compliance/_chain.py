"""The audit log's hash chain, with no I/O.

Rules:
- an entry records who (tenant, agent, user) did what (operation) to which item
  (namespace and key) and when; never a value;
- each tenant has its own chain: entry n's hash is SHA-256(hash of entry n-1 + its
  payload), the first entry's previous hash is 32 zero bytes, and the payload is the
  canonical JSON of [at, agent, user, operation, namespace, key];
- a keyed chain uses HMAC-SHA256 instead, under the tenant's chain key
  HKDF-SHA256(log key, info="langmem_prod/v1/audit-chain/<tenant>"): without the log
  key (kept outside the database) nobody can rewrite the chain so that it verifies, nor
  pass one tenant's chain off as another's;
- a chain's head is the (seq, hash) of its last entry, (0, 32 zero bytes) when empty;
  it is stored apart from the entries and advanced with them, atomically;
- verifying recomputes the chain in stored order and reports every entry whose hash does
  not follow (altered, or after a removed or reordered entry), every gap in the
  sequence, and a head that the entries do not end at (a truncated tail, a lost head);
  it may start after an entry whose (seq, hash) is trusted (a witnessed checkpoint's)
  instead of at the first entry.

What the head is signed with, and the checkpoints that catch a rolled-back head, are in
`_head` and `_checkpoint`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import NamedTuple

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from langmem_prod.errors import ConfigurationError, InvalidInputError

GENESIS = bytes(32)
MIN_KEY_BYTES = 32
Event = tuple[str, tuple[str, ...], str | None]  # operation, namespace, key
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class Head(NamedTuple):
    """The (seq, hash) of a chain's last entry; `EMPTY` for a chain with none."""

    seq: int
    hash: bytes


EMPTY = Head(0, GENESIS)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited operation (values are never recorded)."""

    tenant: str
    seq: int
    at: datetime
    agent: str | None
    user: str | None
    operation: str
    namespace: tuple[str, ...]
    key: str | None
    hash: bytes = b""

    def payload(self) -> bytes:
        """The canonical bytes the chain hashes."""
        return orjson.dumps(
            [self.at_text, self.agent, self.user, self.operation, self.namespace_text, self.key]
        )

    @property
    def at_text(self) -> str:
        """`at` as the chain hashes it: ISO 8601 in UTC."""
        return self.at.astimezone(UTC).isoformat()

    @property
    def namespace_text(self) -> str:
        """The namespace as stored: its labels joined by '.' (labels hold no '.')."""
        return ".".join(self.namespace)


def check_tenant(tenant: object) -> str:
    """A tenant id as the tenant registry makes them (it also names Redis hash tags)."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidInputError(
            "an audited tenant id is 1-64 letters, digits, '_' or '-', starting with a "
            "letter or digit"
        )
    return tenant


def check_events(events: Iterable[Event]) -> tuple[Event, ...]:
    """Events as (operation, namespace labels, key or None), checked."""
    checked: list[Event] = []
    for event in events:
        operation, namespace, key = event
        labels = tuple(namespace)
        if (
            isinstance(namespace, str)
            or not isinstance(operation, str)
            or not operation
            or not all(isinstance(label, str) and "." not in label for label in labels)
            or not (key is None or isinstance(key, str))
        ):
            raise InvalidInputError(
                "an audit event is (operation, namespace, key): a non-empty operation name, "
                "a tuple of labels without '.', and a key string or None"
            )
        checked.append((operation, labels, key))
    return tuple(checked)


def check_key(key: object) -> bytes | None:
    """The log's secret key, checked: None (an unkeyed chain) or >= 32 random bytes."""
    if key is not None and (not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES):
        raise ConfigurationError(
            f"the audit key must be at least {MIN_KEY_BYTES} random bytes kept outside the "
            "database (os.urandom(32), or a Keyring data key), or None for an unkeyed chain"
        )
    return key


@lru_cache(maxsize=1024)
def chain_key(key: bytes, tenant: str) -> bytes:
    """The tenant's HMAC key, derived from the log's key (never a bare hash)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"langmem_prod/v1/audit-chain/" + tenant.encode(),
    ).derive(key)


def link(previous: bytes, entry: AuditEntry, key: bytes | None = None) -> bytes:
    """The hash of `entry` after an entry whose hash is `previous` (keyed with `key`)."""
    message = previous + entry.payload()
    if key is None:
        return hashlib.sha256(message).digest()
    return hmac.digest(chain_key(key, entry.tenant), message, "sha256")


def unchained(
    tenant: str, events: Sequence[Event], at: datetime, agent: str | None, user: str | None
) -> list[AuditEntry]:
    """The entries of `events`, not yet numbered nor hashed (seq 0, empty hash)."""
    return [AuditEntry(tenant, 0, at, agent, user, op, tuple(ns), k) for op, ns, k in events]


def extend(head: Head, pending: Sequence[AuditEntry], key: bytes | None = None) -> list[AuditEntry]:
    """The `pending` entries numbered and hashed to follow a chain ending at `head`."""
    entries: list[AuditEntry] = []
    previous = head.hash
    for seq, entry in enumerate(pending, head.seq + 1):
        previous = link(previous, entry, key)
        entries.append(replace(entry, seq=seq, hash=previous))
    return entries


@dataclass(frozen=True, slots=True)
class Problem:
    """Where the chain breaks, and why."""

    seq: int
    reason: str


def verify_chain(
    entries: Iterable[AuditEntry], key: bytes | None = None, start: Head = EMPTY
) -> list[Problem]:
    """Every break in a tenant's chain (entries in stored order); [] when it is intact.

    `start` is the (seq, hash) of the entry before the first one given: the chain's
    start by default, or a trusted entry to verify from (a checkpoint's).

    >>> from dataclasses import replace
    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> entry = AuditEntry("acme", 1, at, "bot", None, "put", ("a",), "k")
    >>> entry = replace(entry, hash=link(GENESIS, entry))
    >>> verify_chain([entry]), verify_chain([replace(entry, operation="delete")])[0].reason
    ([], 'hash does not follow: altered, or an entry before it changed')
    >>> verify_chain([entry], key=bytes(32))[0].reason  # a keyed log refuses an unkeyed chain
    'hash does not follow: altered, or an entry before it changed'
    """
    problems: list[Problem] = []
    previous, expected_seq = start.hash, start.seq + 1
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(
                Problem(entry.seq, f"sequence jumps from {expected_seq - 1} to {entry.seq}")
            )
        if not hmac.compare_digest(link(previous, entry, key), entry.hash):
            problems.append(
                Problem(entry.seq, "hash does not follow: altered, or an entry before it changed")
            )
        previous, expected_seq = entry.hash, entry.seq + 1
    return problems


def head_problems(last: AuditEntry | None, head: Head | None) -> list[Problem]:
    """Whether a chain whose last stored entry is `last` ends where its `head` says."""
    if head is None:
        if last is not None:
            return [Problem(last.seq, "the chain's head is missing (it was deleted)")]
        return []
    ends = EMPTY if last is None else Head(last.seq, last.hash)
    if ends.seq > head.seq:
        return [Problem(ends.seq, "entries after the chain's head: not appended by a log")]
    if ends.seq < head.seq:
        return [Problem(head.seq, "the chain's last entries were removed")]
    if ends.hash != head.hash:
        return [Problem(head.seq, "the last entry's hash is not the chain head's")]
    return []


def verify_log(
    entries: Sequence[AuditEntry], head: Head | None, key: bytes | None = None
) -> list[Problem]:
    """`verify_chain`, plus whether the entries end where the chain's head says.

    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> events = [("put", ("a",), "k"), ("get", ("a",), "k")]
    >>> chain = extend(EMPTY, unchained("acme", events, at, None, None))
    >>> verify_log(chain, Head(2, chain[-1].hash)), verify_log(chain[:1], Head(2, chain[-1].hash))
    ([], [Problem(seq=2, reason="the chain's last entries were removed")])
    """
    last = max(entries, key=lambda e: e.seq, default=None)
    return verify_chain(entries, key) + head_problems(last, head)
