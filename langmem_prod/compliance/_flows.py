"""The audit log's multi-step operations, written once over any backend's reads.

Rules:
- a backend offers three generators of its own effects (`AuditFlows`): read a chain
  (whole, or from a checkpoint's window), read tips (heads with their last entries), and
  sign a head by compare-and-set; the flows here compose them, so PostgreSQL and Redis,
  sync and async, verify, checkpoint and sign the same way;
- a checkpoint given to verify is checked first (tenant, MAC under the log's key); one
  that fails is reported and the chain is verified whole, without it;
- `witness_gen` verifies from the witness's latest checkpoint and, only if nothing is
  wrong, makes the next checkpoint from the same read: a witness never receives the
  state of a tampered chain;
- `sign_head_gen` signs an unsigned head only when the whole chain verifies (and, given
  a checkpoint, reaches it) and the head has not moved meanwhile.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Protocol

from langmem_prod.compliance._chain import EMPTY, Head, Problem
from langmem_prod.compliance._checkpoint import (
    Checkpoint,
    Tip,
    checkpoint_of,
    checkpoint_problems,
    make_checkpoint,
)
from langmem_prod.compliance._head import UNSIGNED, ChainHead, make_head
from langmem_prod.compliance._verify import Read, verify_read
from langmem_prod.errors import BackendUnavailableError, ConfigurationError

SIGN_ATTEMPTS = 5
Gen = Generator[Any, Any, Any]


class AuditFlows(Protocol):
    """What a backend reads and writes for verification, checkpoints and signing."""

    def read_gen(self, tenant: str, since: Checkpoint | None) -> Generator[Any, Any, Read]:
        """The chain whole (`since` None), or its window from the checkpoint's entry."""
        ...

    def tips_gen(self, tenants: Sequence[str] | None) -> Generator[Any, Any, list[Tip]]:
        """The heads and last entries of `tenants` (None: every tenant with a head)."""
        ...

    def sign_gen(self, tenant: str, expected: Head, head: ChainHead) -> Generator[Any, Any, bool]:
        """Store the signed `head` if the head is still `expected` and unsigned."""
        ...


def _trusted(
    tenant: str, since: Checkpoint | None, key: bytes | None
) -> tuple[list[Problem], Checkpoint | None]:
    if since is None:
        return [], None
    problems = checkpoint_problems(since, tenant, key)
    return problems, None if problems else since


def verify_gen(
    flows: AuditFlows, tenant: str, key: bytes | None, since: Checkpoint | None, whole: bool
) -> Generator[Any, Any, list[Problem]]:
    """Every problem of the tenant's chain, from `since`'s window (or whole)."""
    problems, trusted = _trusted(tenant, since, key)
    read = yield from flows.read_gen(tenant, None if whole else trusted)
    return problems + verify_read(tenant, read, key, trusted)


def witness_gen(
    flows: AuditFlows, tenant: str, key: bytes | None, since: Checkpoint | None, at: datetime
) -> Generator[Any, Any, tuple[list[Problem], Checkpoint | None]]:
    """Verify from `since`; if intact, the next checkpoint (None for an empty chain)."""
    problems, trusted = _trusted(tenant, since, key)
    read = yield from flows.read_gen(tenant, trusted)
    problems += verify_read(tenant, read, key, trusted)
    point = EMPTY if read.head is None else read.head.point
    if problems or point.seq == 0:
        return problems, None
    return [], make_checkpoint(key, tenant, point, at, read.position)


def checkpoints_gen(
    flows: AuditFlows, tenants: Sequence[str] | None, key: bytes | None, at: datetime
) -> Generator[Any, Any, list[Checkpoint]]:
    """The checkpoints of the tenants' current heads (each head vouched for)."""
    tips = yield from flows.tips_gen(tenants)
    if tenants is None:  # every tenant with a chain: none of an empty one
        tips = [tip for tip in tips if tip.head is not None or tip.last is not None]
    return [checkpoint_of(tip, key, at) for tip in tips]


def sign_head_gen(
    flows: AuditFlows, tenant: str, key: bytes | None, since: Checkpoint | None
) -> Generator[Any, Any, list[Problem]]:
    """Sign the tenant's unsigned head once its whole chain verifies; the problems else."""
    if key is None:
        raise ConfigurationError("an unkeyed audit log signs no heads; give the log its key")
    problems, trusted = _trusted(tenant, since, key)
    for _ in range(SIGN_ATTEMPTS):
        read = yield from flows.read_gen(tenant, None)
        found = problems + verify_read(tenant, read, key, trusted)
        head = read.head
        if head is None or [p.reason for p in found] != [UNSIGNED] or not read.entries:
            return found
        last = max(read.entries, key=lambda e: e.seq)
        signed = make_head(key, tenant, head.point, last.at, sign=True)
        if (yield from flows.sign_gen(tenant, head.point, signed)):
            return []
    raise BackendUnavailableError(
        f"the audit chain head of tenant {tenant!r} kept moving while it was being signed; "
        "retry sign_head() when the tenant records less"
    )
