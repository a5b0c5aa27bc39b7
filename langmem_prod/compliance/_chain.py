"""The audit log's hash chain, with no I/O.

Rules:
- an entry records who (tenant, agent, user) did what (operation) to which item
  (namespace and key) and when; never a value;
- each tenant has its own chain: entry n's hash is SHA-256(hash of entry n-1 + its
  payload), the first entry's previous hash is 32 zero bytes, and the payload is the
  canonical JSON of [at, agent, user, operation, namespace, key] (the database computes
  the hash as it assigns the sequence number, under the chain head's lock);
- verifying recomputes the chain in order and reports every entry whose hash does not
  follow (altered, or after a removed or reordered entry) and every gap in the sequence.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

GENESIS = bytes(32)


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
        at = self.at.astimezone(UTC).isoformat()
        ns = ".".join(self.namespace)
        return orjson.dumps([at, self.agent, self.user, self.operation, ns, self.key])


def link(previous: bytes, entry: AuditEntry) -> bytes:
    """The hash of `entry` after an entry whose hash is `previous`."""
    return hashlib.sha256(previous + entry.payload()).digest()


@dataclass(frozen=True, slots=True)
class Problem:
    """Where the chain breaks, and why."""

    seq: int
    reason: str


def verify_chain(entries: Iterable[AuditEntry]) -> list[Problem]:
    """Every break in a tenant's chain (entries in stored order); [] when it is intact.

    >>> from dataclasses import replace
    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> entry = AuditEntry("acme", 1, at, "bot", None, "put", ("a",), "k")
    >>> entry = replace(entry, hash=link(GENESIS, entry))
    >>> verify_chain([entry]), verify_chain([replace(entry, operation="delete")])[0].reason
    ([], 'hash does not follow: altered, or an entry before it changed')
    """
    problems: list[Problem] = []
    previous, expected_seq = GENESIS, 1
    for entry in entries:
        if entry.seq != expected_seq:
            problems.append(
                Problem(entry.seq, f"sequence jumps from {expected_seq - 1} to {entry.seq}")
            )
        if link(previous, entry) != entry.hash:
            problems.append(
                Problem(entry.seq, "hash does not follow: altered, or an entry before it changed")
            )
        previous, expected_seq = entry.hash, entry.seq + 1
    return problems


def ordered(entries: Sequence[AuditEntry]) -> list[AuditEntry]:
    """Entries as stored (by sequence number)."""
    return sorted(entries, key=lambda e: e.seq)
