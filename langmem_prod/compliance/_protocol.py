"""The `AuditLog` protocol: what a store records to, and what an auditor asks of it.

Rules:
- every method has an async twin named `a<method>` with the same parameters; a log
  answers one family only (see `AuditLogBase.is_async`);
- verifying never writes; `witness_checkpoint` writes to the witness only after a
  verification found nothing, and `sign_head` writes only an unsigned head's MAC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from langmem_prod.compliance._chain import AuditEntry, Event, Problem
from langmem_prod.compliance._checkpoint import Checkpoint
from langmem_prod.compliance.witness import Witness


@runtime_checkable
class AuditLog(Protocol):
    """An audit log a store records to: `PostgresAuditLog` or `RedisAuditLog`.

    Built on a sync client, it answers the sync methods; on an async one, the a-methods
    (`is_async` says which).
    """

    @property
    def is_async(self) -> bool:
        """Whether the log runs on an async client (its a-methods work)."""
        ...

    def record(
        self,
        tenant: str,
        events: Iterable[Event],
        *,
        agent: str | None = None,
        user: str | None = None,
    ) -> None:
        """Append events (operation, namespace, key) to the tenant's chain."""
        ...

    async def arecord(
        self,
        tenant: str,
        events: Iterable[Event],
        *,
        agent: str | None = None,
        user: str | None = None,
    ) -> None:
        """Async `record`."""
        ...

    def entries(self, tenant: str) -> list[AuditEntry]:
        """The tenant's entries, in order."""
        ...

    async def aentries(self, tenant: str) -> list[AuditEntry]:
        """Async `entries`."""
        ...

    def verify(
        self, tenant: str, *, since: Checkpoint | None = None, full: bool = False
    ) -> list[Problem]:
        """Every break in the tenant's chain (from checkpoint `since`); [] when intact."""
        ...

    async def averify(
        self, tenant: str, *, since: Checkpoint | None = None, full: bool = False
    ) -> list[Problem]:
        """Async `verify`."""
        ...

    def verify_witnessed(
        self, tenant: str, witness: Witness, *, full: bool = False
    ) -> list[Problem]:
        """`verify` from the witness's latest checkpoint of the tenant."""
        ...

    async def averify_witnessed(
        self, tenant: str, witness: Witness, *, full: bool = False
    ) -> list[Problem]:
        """Async `verify_witnessed`."""
        ...

    def checkpoint(self, tenant: str) -> Checkpoint:
        """A checkpoint of the tenant's current head, for a witness."""
        ...

    async def acheckpoint(self, tenant: str) -> Checkpoint:
        """Async `checkpoint`."""
        ...

    def checkpoint_all(self, tenants: Sequence[str] | None = None) -> list[Checkpoint]:
        """Checkpoints of every tenant's head (or of `tenants`)."""
        ...

    async def acheckpoint_all(self, tenants: Sequence[str] | None = None) -> list[Checkpoint]:
        """Async `checkpoint_all`."""
        ...

    def witness_checkpoint(self, tenant: str, witness: Witness) -> list[Problem]:
        """Verify from the witness's latest checkpoint; if intact, write it the next one."""
        ...

    async def awitness_checkpoint(self, tenant: str, witness: Witness) -> list[Problem]:
        """Async `witness_checkpoint`."""
        ...

    def sign_head(self, tenant: str, *, since: Checkpoint | None = None) -> list[Problem]:
        """Sign an unsigned head (after upgrading) once the whole chain verifies."""
        ...

    async def asign_head(self, tenant: str, *, since: Checkpoint | None = None) -> list[Problem]:
        """Async `sign_head`."""
        ...
