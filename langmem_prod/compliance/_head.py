"""The signed head of a keyed audit chain, and the id that names the audit key; no I/O.

Rules:
- a chain's stored head is its last entry's (seq, hash) and time; a keyed log also
  stores its key id and a MAC: HMAC-SHA256 under HKDF-SHA256(log key,
  info="langmem_prod/v1/audit-head/<tenant>") of the canonical JSON of
  ["audit-head", tenant, seq, hash (hex), time (ISO 8601 UTC), key id]. Without the key
  nobody can make a head for another (seq, hash), so cutting the chain's tail and moving
  the head back to the new last entry is caught, and a head moved to another tenant too;
- what the MAC cannot catch: a head that was genuine once. Someone who kept an old head
  can cut the chain back to it and put it back; only a checkpoint kept outside the
  database (`_checkpoint`) catches that;
- the key id is the first 8 bytes, in hex, of HKDF-SHA256(log key,
  info="langmem_prod/v1/audit-key-id"): it names a key without revealing it, so a
  verifier holding several keys (after a rotation) knows which one signed a head or a
  checkpoint. Entries carry no key id: a chain is under one key, and a rotation (to
  come) would append a chained entry naming the next key, so the entries' payload stays
  as it is;
- a keyed log signs a new head only over a head it can vouch for: the empty head, or one
  whose MAC verifies. Over an unsigned head (written before heads were signed, or its MAC
  removed) it writes an unsigned head again, so the next append cannot launder a removed
  MAC; `sign_head` signs such a head once the whole chain verifies. Over a head whose MAC
  does not verify it refuses to append (`AuditChainError`);
- an unkeyed log's heads carry no MAC and no key id.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from langmem_prod.compliance._chain import EMPTY, Head, Problem
from langmem_prod.errors import AuditChainError

UNSIGNED = (
    "the chain's head is not signed: written before heads were signed (run sign_head()), "
    "or its MAC was removed"
)
OTHER_KEY = "the chain's head is signed under another audit key: verify with that key"
FORGED = "the chain's head MAC does not verify: the head was moved back or forged without the key"


@lru_cache(maxsize=4096)
def derived_key(key: bytes, purpose: str, tenant: str) -> bytes:
    """The tenant's key for `purpose` ("audit-head", "audit-checkpoint"), from the log's."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=f"langmem_prod/v1/{purpose}/{tenant}".encode(),
    ).derive(key)


@lru_cache(maxsize=64)
def key_id(key: bytes) -> str:
    """The public name of an audit key (16 hex digits), which does not reveal it.

    >>> key_id(bytes(32)) == key_id(bytes(32)) != key_id(bytes(range(32)))
    True
    """
    info = b"langmem_prod/v1/audit-key-id"
    return HKDF(algorithm=hashes.SHA256(), length=8, salt=None, info=info).derive(key).hex()


def time_text(at: datetime) -> str:
    """A time as statements sign it: ISO 8601 in UTC."""
    return at.astimezone(UTC).isoformat()


def statement_mac(
    key: bytes, purpose: str, tenant: str, point: Head, *, at: datetime, kid: str
) -> bytes:
    """The MAC of the statement "`tenant`'s chain had `point` at `at`", for `purpose`."""
    message = orjson.dumps([purpose, tenant, point.seq, point.hash.hex(), time_text(at), kid])
    return hmac.digest(derived_key(key, purpose, tenant), message, "sha256")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """A chain's stored head: its last entry's (seq, hash) and time, signed when keyed."""

    seq: int
    hash: bytes
    at: datetime | None = None
    key_id: str | None = None
    mac: bytes | None = None

    @property
    def point(self) -> Head:
        """The (seq, hash) the chain ends at."""
        return Head(self.seq, self.hash)


def make_head(key: bytes | None, tenant: str, point: Head, at: datetime, sign: bool) -> ChainHead:
    """The head to store after an append ending at `point` (signed if `key` and `sign`).

    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> head = make_head(bytes(32), "acme", Head(1, bytes(32)), at, sign=True)
    >>> head_problems("acme", head, bytes(32)), len(head_problems("globex", head, bytes(32)))
    ([], 1)
    """
    if key is None or not sign:
        return ChainHead(point.seq, point.hash, at)
    kid = key_id(key)
    return ChainHead(
        point.seq,
        point.hash,
        at,
        kid,
        statement_mac(key, "audit-head", tenant, point, at=at, kid=kid),
    )


def head_problems(tenant: str, head: ChainHead, key: bytes | None) -> list[Problem]:
    """What is wrong with a stored head's signature (nothing to check when unkeyed)."""
    if key is None or head.point == EMPTY:
        return []
    if head.mac is None or head.at is None or head.key_id is None:
        return [Problem(head.seq, UNSIGNED)]
    if head.key_id != key_id(key):
        return [Problem(head.seq, OTHER_KEY)]
    expected = statement_mac(key, "audit-head", tenant, head.point, at=head.at, kid=head.key_id)
    if not hmac.compare_digest(expected, head.mac):
        return [Problem(head.seq, FORGED)]
    return []


def signs_after(tenant: str, head: ChainHead, key: bytes | None) -> bool:
    """Whether an append over `head` writes a signed head; refuses a forged head."""
    if key is None:
        return False
    problems = head_problems(tenant, head, key)
    if not problems:
        return True
    if problems[0].reason == UNSIGNED:
        return False
    raise AuditChainError(
        f"the audit chain head of tenant {tenant!r} is not signed by this log's key (moved "
        "back, forged, or signed under another key); run verify() and restore the head "
        "before recording more"
    )
