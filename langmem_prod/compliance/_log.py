"""What every audit log shares: its sync and async methods, run on the backend's runner.

Rules:
- a backend says how to record and set up as `Job`s (a generator of its effects, and
  whether it must run in one transaction), and gives its reads and compare-and-sets as
  `AuditFlows`; verifying, checkpointing and signing are the flows of `_flows`, the same
  for both backends. This module runs them on the backend's runner, so each twin method
  is one to three lines and both backends have the same API;
- a log built on an async client (or pool) answers only its a-methods, one built on a
  sync client only its sync methods, with a `ConfigurationError` saying which to use;
- `verify` checks the chain and its head with the log's key (None: unkeyed); given a
  checkpoint (`since=`), it reads only from the checkpoint's entry on, unless `full`;
- a witness is called from the caller's thread (sync) or a worker thread (async): its
  I/O is a file's, or a client's of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from langmem_prod._bridge import in_thread
from langmem_prod.compliance._chain import AuditEntry, Event, Problem, check_events, check_tenant
from langmem_prod.compliance._checkpoint import Checkpoint
from langmem_prod.compliance._flows import (
    AuditFlows,
    checkpoints_gen,
    sign_head_gen,
    verify_gen,
    witness_gen,
)
from langmem_prod.compliance._protocol import AuditLog
from langmem_prod.compliance.witness import Witness
from langmem_prod.errors import ConfigurationError
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner

__all__ = ["AuditLog", "AuditLogBase", "Job"]  # AuditLog: where the tenancy layer imports it

T = TypeVar("T")
Witnessed = tuple[list[Problem], tuple[Checkpoint, ...]]


@dataclass(frozen=True, slots=True)
class Job(Generic[T]):
    """A backend's flow: `make()` gives a fresh generator; `transaction` runs it in one."""

    make: Callable[[], Generator[Any, Any, T]]
    transaction: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


def _nothing() -> Generator[Any, Any, None]:
    return
    yield


class AuditLogBase:
    """Both backends' public methods; a backend supplies its flows, jobs and runner."""

    _runner: SyncRunnerBase[Any] | AsyncRunnerBase[Any]
    _key: bytes | None
    _flows: AuditFlows
    _clock: Callable[[], datetime] = staticmethod(_now)

    def _append_job(
        self, tenant: str, events: tuple[Event, ...], at: datetime, agent: Any, user: Any
    ) -> Job[None]:
        raise NotImplementedError

    def _setup_job(self) -> Job[None]:
        return Job(_nothing)

    def _record(
        self, tenant: str, events: Iterable[Event], agent: str | None, user: str | None
    ) -> Job[None]:
        tenant, checked = check_tenant(tenant), check_events(events)
        if not checked:
            return Job(_nothing)
        return self._append_job(tenant, checked, self._clock(), agent, user)

    def _entries(self, tenant: str) -> Job[list[AuditEntry]]:
        tenant = check_tenant(tenant)

        def entries() -> Generator[Any, Any, list[AuditEntry]]:
            return (yield from self._flows.read_gen(tenant, None)).entries

        return Job(entries)

    def _verify(self, tenant: str, since: Checkpoint | None, full: bool) -> Job[list[Problem]]:
        tenant = check_tenant(tenant)
        return Job(lambda: verify_gen(self._flows, tenant, self._key, since, full))

    def _witness(self, tenant: str, since: Checkpoint | None) -> Job[Witnessed]:
        tenant, at = check_tenant(tenant), self._clock()

        def witnessed() -> Generator[Any, Any, Witnessed]:
            problems, checkpoint = yield from witness_gen(self._flows, tenant, self._key, since, at)
            return problems, () if checkpoint is None else (checkpoint,)

        return Job(witnessed)

    def _checkpoints(self, tenants: Sequence[str] | None) -> Job[list[Checkpoint]]:
        names = None if tenants is None else [check_tenant(t) for t in tenants]
        at = self._clock()
        return Job(lambda: checkpoints_gen(self._flows, names, self._key, at))

    def _sign(self, tenant: str, since: Checkpoint | None) -> Job[list[Problem]]:
        tenant = check_tenant(tenant)
        return Job(lambda: sign_head_gen(self._flows, tenant, self._key, since))

    @property
    def is_async(self) -> bool:
        """Whether the log runs on an async client (its a-methods work)."""
        return isinstance(self._runner, AsyncRunnerBase)

    def _run(self, job: Job[T]) -> T:
        if not isinstance(self._runner, SyncRunnerBase):
            raise ConfigurationError("this audit log was built on an async client; use a-methods")
        if job.transaction and isinstance(self._runner, SyncRunner):
            return self._runner.run_in_transaction(job.make)
        return self._runner.run(job.make())

    async def _arun(self, job: Job[T]) -> T:
        if not isinstance(self._runner, AsyncRunnerBase):
            raise ConfigurationError("this audit log was built on a sync client; use sync methods")
        if job.transaction and isinstance(self._runner, AsyncRunner):
            return await self._runner.run_in_transaction(job.make)
        return await self._runner.run(job.make())

    def setup(self) -> None:
        """Create or upgrade the log's storage (idempotent; nothing to do on Redis)."""
        self._run(self._setup_job())

    async def asetup(self) -> None:
        """Async `setup`."""
        await self._arun(self._setup_job())

    def record(
        self,
        tenant: str,
        events: Iterable[Event],
        *,
        agent: str | None = None,
        user: str | None = None,
    ) -> None:
        """Append events (operation, namespace, key) to the tenant's chain, atomically."""
        self._run(self._record(tenant, events, agent, user))

    async def arecord(
        self,
        tenant: str,
        events: Iterable[Event],
        *,
        agent: str | None = None,
        user: str | None = None,
    ) -> None:
        """Async `record`."""
        await self._arun(self._record(tenant, events, agent, user))

    def entries(self, tenant: str) -> list[AuditEntry]:
        """The tenant's entries, in stored order."""
        return self._run(self._entries(tenant))

    async def aentries(self, tenant: str) -> list[AuditEntry]:
        """Async `entries`."""
        return await self._arun(self._entries(tenant))

    def verify(
        self, tenant: str, *, since: Checkpoint | None = None, full: bool = False
    ) -> list[Problem]:
        """Every break in the tenant's chain; [] when nothing was altered, removed or moved.

        Keyed, a head not signed by this log's key is a problem too. Given a checkpoint
        `since` (a witness's), it also reports a wiped chain, a head behind the
        checkpoint (rolled back), and the checkpoint's entry missing or not the one
        witnessed; it then reads from the checkpoint's entry on, counting the entries
        before it instead of reading them, unless `full` (read and check everything).
        A checkpoint that is not this log's (another tenant's raises, a bad MAC is
        reported) is not used.
        """
        return self._run(self._verify(tenant, since, full))

    async def averify(
        self, tenant: str, *, since: Checkpoint | None = None, full: bool = False
    ) -> list[Problem]:
        """Async `verify`."""
        return await self._arun(self._verify(tenant, since, full))

    def verify_witnessed(
        self, tenant: str, witness: Witness, *, full: bool = False
    ) -> list[Problem]:
        """`verify` from the witness's latest checkpoint of the tenant (whole if none)."""
        return self.verify(tenant, since=witness.latest(check_tenant(tenant)), full=full)

    async def averify_witnessed(
        self, tenant: str, witness: Witness, *, full: bool = False
    ) -> list[Problem]:
        """Async `verify_witnessed`."""
        since = await in_thread(witness.latest, check_tenant(tenant))
        return await self.averify(tenant, since=since, full=full)

    def checkpoint(self, tenant: str) -> Checkpoint:
        """A checkpoint of the tenant's current head (signed when keyed), for a witness.

        The head must be signed by this log (keyed) and end where the last entry does,
        else `AuditChainError`; the chain before it is not read: `witness_checkpoint`
        verifies since the previous checkpoint first.
        """
        return self._run(self._checkpoints([tenant]))[0]

    async def acheckpoint(self, tenant: str) -> Checkpoint:
        """Async `checkpoint`."""
        return (await self._arun(self._checkpoints([tenant])))[0]

    def checkpoint_all(self, tenants: Sequence[str] | None = None) -> list[Checkpoint]:
        """`checkpoint` of every tenant with a chain head (or of `tenants`), in one read."""
        return self._run(self._checkpoints(tenants))

    async def acheckpoint_all(self, tenants: Sequence[str] | None = None) -> list[Checkpoint]:
        """Async `checkpoint_all`."""
        return await self._arun(self._checkpoints(tenants))

    def witness_checkpoint(self, tenant: str, witness: Witness) -> list[Problem]:
        """Verify from the witness's latest checkpoint; if intact, write it the next one.

        Returns the problems ([] when the chain is intact and witnessed anew); nothing is
        written when there are some. An empty chain writes nothing.
        """
        problems, fresh = self._run(self._witness(tenant, witness.latest(check_tenant(tenant))))
        witness.write(*fresh)
        return problems

    async def awitness_checkpoint(self, tenant: str, witness: Witness) -> list[Problem]:
        """Async `witness_checkpoint`."""
        since = await in_thread(witness.latest, check_tenant(tenant))
        problems, fresh = await self._arun(self._witness(tenant, since))
        await in_thread(witness.write, *fresh)
        return problems

    def sign_head(self, tenant: str, *, since: Checkpoint | None = None) -> list[Problem]:
        """Sign the tenant's unsigned head once the whole chain verifies (keyed logs).

        Heads written before heads were signed have no MAC; run this once per tenant
        after upgrading (verify first from a witness: pass its checkpoint as `since`).
        Returns [] once the head is signed, else the problems that kept it unsigned.
        """
        return self._run(self._sign(tenant, since))

    async def asign_head(self, tenant: str, *, since: Checkpoint | None = None) -> list[Problem]:
        """Async `sign_head`."""
        return await self._arun(self._sign(tenant, since))
