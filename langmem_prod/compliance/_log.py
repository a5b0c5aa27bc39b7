"""What every audit log shares: the `AuditLog` protocol and its sync and async methods.

Rules:
- a backend says how to record, read and set up as `Job`s (a generator of its effects,
  and whether it must run in one transaction); this module runs them on the backend's
  runner, so each twin method is one line and both backends have the same API;
- a log built on an async client (or pool) answers only its a-methods, one built on a
  sync client only its sync methods, with a `ConfigurationError` saying which to use;
- `verify` checks the chain and its head with the log's key (None: unkeyed).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from langmem_prod.compliance._chain import (
    AuditEntry,
    Event,
    Head,
    Problem,
    check_events,
    check_tenant,
    verify_log,
)
from langmem_prod.errors import ConfigurationError
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner

T = TypeVar("T")
Read = tuple[list[AuditEntry], Head | None]


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

    def verify(self, tenant: str) -> list[Problem]:
        """Every break in the tenant's chain; [] when it is intact."""
        ...

    async def averify(self, tenant: str) -> list[Problem]:
        """Async `verify`."""
        ...


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
    """Both backends' public methods; a backend supplies the jobs and the runner."""

    _runner: SyncRunnerBase[Any] | AsyncRunnerBase[Any]
    _key: bytes | None
    _clock: Callable[[], datetime] = staticmethod(_now)

    def _append_job(
        self, tenant: str, events: tuple[Event, ...], at: datetime, agent: Any, user: Any
    ) -> Job[None]:
        raise NotImplementedError

    def _read_job(self, tenant: str) -> Job[Read]:
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

    def _reader(self, tenant: str) -> Job[Read]:
        return self._read_job(check_tenant(tenant))

    def _problems(self, read: Read) -> list[Problem]:
        return verify_log(read[0], read[1], self._key)

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
        return self._run(self._reader(tenant))[0]

    async def aentries(self, tenant: str) -> list[AuditEntry]:
        """Async `entries`."""
        return (await self._arun(self._reader(tenant)))[0]

    def verify(self, tenant: str) -> list[Problem]:
        """Every break in the tenant's chain; [] when nothing was altered, removed or moved."""
        return self._problems(self._run(self._reader(tenant)))

    async def averify(self, tenant: str) -> list[Problem]:
        """Async `verify`."""
        return self._problems(await self._arun(self._reader(tenant)))
