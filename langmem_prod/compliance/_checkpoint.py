"""Checkpoints: signed statements of where a tenant's chain was, to keep outside the log.

Rules:
- a checkpoint says "at time `at`, the chain of `tenant` had `seq` entries, the last
  one's hash `hash`"; a keyed log signs it with HMAC-SHA256 under HKDF-SHA256(log key,
  info="langmem_prod/v1/audit-checkpoint/<tenant>") over the canonical JSON of
  ["audit-checkpoint", tenant, seq, hash (hex), time (ISO 8601 UTC), key id] (a head's
  MAC, made under another derived key, can never pass for a checkpoint's). An unkeyed
  log's checkpoints are unsigned: they are worth what the place keeping them is;
- `position` is a backend's hint of where entry `seq` is stored (a Redis stream id), so
  a verifier can start there; it is not signed: a wrong one only costs a full read;
- a witness (`witness.Witness`) keeps checkpoints outside the database and never takes
  one behind the latest it holds for the tenant (a smaller seq, or the same seq with
  another hash): that would be a chain rolled back. One that says nothing new (same seq,
  hash and key) is not written again, nor one both behind and older (its `at` not after
  the held one's): a stale checkpoint from a job that overlapped another, not a rollback
  (a rolled-back chain's checkpoint is made after the one it contradicts);
- a checkpoint is made from a head only if the head can be vouched for: present, its MAC
  verifying (keyed), and the chain's last entry ending at it; otherwise `AuditChainError`;
- its JSON line is {"v": 1, "tenant", "seq", "hash" (hex), "at", "key_id", "mac" (hex or
  null), "position"}.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from langmem_prod.compliance._chain import EMPTY, Head, Problem, check_tenant
from langmem_prod.compliance._head import ChainHead, head_problems, key_id, statement_mac
from langmem_prod.errors import AuditChainError, InvalidInputError

NOT_SIGNED = "the checkpoint is not signed, but this log is keyed: it was not made by this log"
OTHER_KEY = "the checkpoint is signed under another audit key: verify with that key"
FORGED = "the checkpoint's MAC does not verify: forged, altered, or moved from another tenant"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a tenant's chain was at `at`: its entry count and last hash, signed if keyed.

    Example:
        >>> from datetime import UTC, datetime
        >>> point = Checkpoint("acme", 3, bytes(32), datetime(2026, 1, 1, tzinfo=UTC))
        >>> Checkpoint.from_json(point.to_json()) == point
        True
    """

    tenant: str
    seq: int
    hash: bytes
    at: datetime
    key_id: str | None = None
    mac: bytes | None = None
    position: str = ""

    def to_json(self) -> bytes:
        """The checkpoint as one line of JSON (no newline)."""
        return orjson.dumps(
            {
                "v": 1,
                "tenant": self.tenant,
                "seq": self.seq,
                "hash": self.hash.hex(),
                "at": self.at.isoformat(),
                "key_id": self.key_id,
                "mac": None if self.mac is None else self.mac.hex(),
                "position": self.position,
            }
        )

    @classmethod
    def from_json(cls, text: bytes | str) -> Checkpoint:
        """A checkpoint from its JSON line; `InvalidInputError` if it is not one."""
        try:
            data: Any = orjson.loads(text)
            mac = data["mac"]
            made = cls(
                check_tenant(data["tenant"]),
                _count(data["seq"]),
                bytes.fromhex(data["hash"]),
                datetime.fromisoformat(data["at"]),
                _optional_text(data["key_id"]),
                None if mac is None else bytes.fromhex(mac),
                str(data.get("position", "")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(
                "not an audit checkpoint: expected the JSON of Checkpoint.to_json()"
            ) from exc
        if made.at.tzinfo is None or len(made.hash) != 32:
            raise InvalidInputError(
                "not an audit checkpoint: its time has no time zone, or its hash is not 32 bytes"
            )
        return made

    @property
    def point(self) -> Head:
        """The (seq, hash) the checkpoint witnessed."""
        return Head(self.seq, self.hash)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("seq")
    return value


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("key_id")
    return value


def make_checkpoint(
    key: bytes | None, tenant: str, point: Head, at: datetime, position: str = ""
) -> Checkpoint:
    """The checkpoint of `tenant`'s chain at `point`, made at `at` (signed if `key`)."""
    if key is None:
        return Checkpoint(tenant, point.seq, point.hash, at, position=position)
    kid = key_id(key)
    mac = statement_mac(key, "audit-checkpoint", tenant, point, at=at, kid=kid)
    return Checkpoint(tenant, point.seq, point.hash, at, kid, mac, position)


def checkpoint_problems(checkpoint: Checkpoint, tenant: str, key: bytes | None) -> list[Problem]:
    """What is wrong with a checkpoint given to verify `tenant` ([] when it can be used)."""
    if checkpoint.tenant != tenant:
        raise InvalidInputError(
            "the checkpoint is another tenant's; verify a tenant against its own checkpoint"
        )
    if key is None:
        return []
    if checkpoint.mac is None or checkpoint.key_id is None:
        return [Problem(checkpoint.seq, NOT_SIGNED)]
    if checkpoint.key_id != key_id(key):
        return [Problem(checkpoint.seq, OTHER_KEY)]
    expected = statement_mac(
        key, "audit-checkpoint", tenant, checkpoint.point, at=checkpoint.at, kid=checkpoint.key_id
    )
    if not hmac.compare_digest(expected, checkpoint.mac):
        return [Problem(checkpoint.seq, FORGED)]
    return []


def advance(
    latest: Mapping[str, Checkpoint], checkpoints: Iterable[Checkpoint]
) -> list[Checkpoint]:
    """The checkpoints a witness holding `latest` must write; refuses any going back.

    >>> from datetime import UTC, datetime, timedelta
    >>> at = datetime(2026, 1, 1, tzinfo=UTC)
    >>> old = Checkpoint("acme", 5, bytes(32), at)
    >>> advance({"acme": old}, [old, Checkpoint("acme", 7, bytes(32), at)])[0].seq
    7
    >>> advance({"acme": old}, [Checkpoint("acme", 4, bytes(32), at)])  # stale: skipped
    []
    >>> later = at + timedelta(minutes=1)
    >>> advance({"acme": old}, [Checkpoint("acme", 4, bytes(32), later)])
    ... # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    AuditChainError: the checkpoint of tenant 'acme' is behind the one the witness holds
    """
    held = dict(latest)
    fresh: list[Checkpoint] = []
    for checkpoint in checkpoints:
        before = held.get(checkpoint.tenant)
        if before is not None and checkpoint.seq < before.seq and checkpoint.at <= before.at:
            continue  # stale: made before the one held
        if before is not None and (
            checkpoint.seq < before.seq
            or (checkpoint.seq == before.seq and checkpoint.hash != before.hash)
        ):
            raise AuditChainError(
                f"the checkpoint of tenant {checkpoint.tenant!r} is behind the one the "
                "witness holds (fewer entries, or the same number ending elsewhere): the "
                "chain was rolled back or rewritten; run verify_witnessed() and write nothing"
            )
        if before is not None and (before.point, before.key_id) == (
            checkpoint.point,
            checkpoint.key_id,
        ):
            continue
        held[checkpoint.tenant] = checkpoint
        fresh.append(checkpoint)
    return fresh


class Tip(NamedTuple):
    """A chain's head and its last stored entry (seq, hash, position), as read together."""

    tenant: str
    head: ChainHead | None
    last: Head | None
    position: str = ""


def checkpoint_of(tip: Tip, key: bytes | None, at: datetime) -> Checkpoint:
    """The checkpoint of a chain's current head; `AuditChainError` if it cannot be vouched for."""
    head = tip.head
    problems = [] if head is None else head_problems(tip.tenant, head, key)
    ends = EMPTY if tip.last is None else tip.last
    if head is None and tip.last is None:
        return make_checkpoint(key, tip.tenant, EMPTY, at)
    if head is None or problems or head.point != ends:
        raise AuditChainError(
            f"the audit chain head of tenant {tip.tenant!r} cannot be vouched for (missing, "
            "not signed by this log's key, or not where the last entry ends); run verify() "
            "(or sign_head() once after upgrading) before taking a checkpoint"
        )
    return make_checkpoint(key, tip.tenant, head.point, at, tip.position)
