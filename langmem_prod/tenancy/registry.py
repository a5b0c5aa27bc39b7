"""The tenant registry, persisted in PostgreSQL or Redis, with sync and async methods.

Rules:
- the operations are `_flows`' generators; this module runs them on the stores' runners
  (the same retries and error translation), so the twins are one line each;
- an update reads the tenant, applies the changes and writes it back;
- `salt` feeds `security.Envelope`: a shredded tenant has none.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._driver import runner_for as pg_runner_for
from langmem_prod.store.redis._driver import runner_for as redis_runner_for
from langmem_prod.tenancy._flows import SCRIPTS, PgRegistryFlows, RedisRegistryFlows
from langmem_prod.tenancy.tenants import Tenant, agents, check_tenant_id


def _now() -> datetime:
    return datetime.now(UTC)


class TenantRegistry:
    """What both registries share: every operation, sync and async."""

    _flows: PgRegistryFlows | RedisRegistryFlows
    _runner: SyncRunnerBase[Any] | AsyncRunnerBase[Any]
    _clock: Callable[[], datetime] = staticmethod(_now)

    def _new(
        self,
        tenant_id: str,
        *,
        name: str | None,
        plan: str,
        allowed_agents: Iterable[str] | None,
        residency: str | None,
        settings: dict[str, Any],
    ) -> Generator[Any, Any, Tenant]:
        tenant = Tenant(
            check_tenant_id(tenant_id),
            name or tenant_id,
            plan,
            overrides=settings,
            allowed_agents=agents(allowed_agents),
            residency=residency,
        )
        return (yield from self._flows.create_gen(tenant, self._clock()))

    def _change(self, tenant_id: str, changes: dict[str, Any]) -> Generator[Any, Any, Tenant]:
        tenant = yield from self._flows.get_gen(check_tenant_id(tenant_id))
        return (yield from self._flows.update_gen(tenant.with_changes(**changes), self._clock()))

    @property
    def is_async(self) -> bool:
        """Whether the registry runs on an async client (its a-methods work)."""
        return isinstance(self._runner, AsyncRunnerBase)

    def _sync(self) -> SyncRunnerBase[Any]:
        if not isinstance(self._runner, SyncRunnerBase):
            raise ConfigurationError("this registry was built on an async client; use a-methods")
        return self._runner

    def _async(self) -> AsyncRunnerBase[Any]:
        if not isinstance(self._runner, AsyncRunnerBase):
            raise ConfigurationError("this registry was built on a sync client; use sync methods")
        return self._runner

    def create(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        plan: str = "free",
        allowed_agents: Iterable[str] | None = None,
        residency: str | None = None,
        **settings: Any,
    ) -> Tenant:
        """Register a tenant; `settings` override the plan's (max_items, isolation, ...)."""
        gen = self._new(
            tenant_id,
            name=name,
            plan=plan,
            allowed_agents=allowed_agents,
            residency=residency,
            settings=settings,
        )
        return self._sync().run(gen)

    async def acreate(
        self,
        tenant_id: str,
        *,
        name: str | None = None,
        plan: str = "free",
        allowed_agents: Iterable[str] | None = None,
        residency: str | None = None,
        **settings: Any,
    ) -> Tenant:
        """Async `create`."""
        gen = self._new(
            tenant_id,
            name=name,
            plan=plan,
            allowed_agents=allowed_agents,
            residency=residency,
            settings=settings,
        )
        return await self._async().run(gen)

    def get(self, tenant_id: str) -> Tenant:
        """A registered tenant, or `TenantNotFoundError`."""
        return self._sync().run(self._flows.get_gen(check_tenant_id(tenant_id)))

    async def aget(self, tenant_id: str) -> Tenant:
        """Async `get`."""
        return await self._async().run(self._flows.get_gen(check_tenant_id(tenant_id)))

    def update(self, tenant_id: str, **changes: Any) -> Tenant:
        """Change fields (name, plan, status, allowed_agents, residency) or settings."""
        return self._sync().run(self._change(tenant_id, changes))

    async def aupdate(self, tenant_id: str, **changes: Any) -> Tenant:
        """Async `update`."""
        return await self._async().run(self._change(tenant_id, changes))

    def suspend(self, tenant_id: str) -> Tenant:
        """Suspend a tenant: its stores refuse every operation until it is reactivated."""
        return self.update(tenant_id, status="suspended")

    def activate(self, tenant_id: str) -> Tenant:
        """Reactivate a suspended tenant."""
        return self.update(tenant_id, status="active")

    def list_tenants(self) -> list[Tenant]:
        """Every tenant, by id."""
        return self._sync().run(self._flows.list_gen())

    async def alist_tenants(self) -> list[Tenant]:
        """Async `list_tenants`."""
        return await self._async().run(self._flows.list_gen())

    def _usage_gen(self, tenant_id: str) -> Generator[Any, Any, dict[str, Any]]:
        if not isinstance(self._flows, PgRegistryFlows):
            raise ConfigurationError(
                "on Redis, usage is counted by the store: use RedisStore.tenant_usage or "
                "TenantStore.usage"
            )
        return self._flows.usage_gen(check_tenant_id(tenant_id))

    def usage(self, tenant_id: str) -> dict[str, Any]:
        """The tenant's items and bytes, its quotas, and the share of each in use."""
        return self._sync().run(self._usage_gen(tenant_id))

    async def ausage(self, tenant_id: str) -> dict[str, Any]:
        """Async `usage`."""
        return await self._async().run(self._usage_gen(tenant_id))

    def salt(self, tenant_id: str) -> bytes | None:
        """The tenant's data-key salt (for `security.Envelope`); None once shredded."""
        return self._sync().run(self._flows.salt_gen(check_tenant_id(tenant_id)))

    async def asalt(self, tenant_id: str) -> bytes | None:
        """Async `salt`."""
        return await self._async().run(self._flows.salt_gen(check_tenant_id(tenant_id)))

    def shred(self, tenant_id: str) -> None:
        """Crypto-shred: destroy the tenant's salt, so its encrypted data is unreadable."""
        self._sync().run(self._flows.shred_gen(check_tenant_id(tenant_id), self._clock()))

    def delete(self, tenant_id: str) -> None:
        """Remove a tenant from the registry (its data is not touched)."""
        self._sync().run(self._flows.delete_gen(check_tenant_id(tenant_id)))

    def setup(self) -> None:
        """Create or upgrade the registry's storage (idempotent)."""
        runner = self._sync()
        if isinstance(runner, SyncRunner) and isinstance(self._flows, PgRegistryFlows):
            runner.run_in_transaction(self._flows.setup_gen)

    async def asetup(self) -> None:
        """Async `setup`."""
        runner = self._async()
        if isinstance(runner, AsyncRunner) and isinstance(self._flows, PgRegistryFlows):
            await runner.run_in_transaction(self._flows.setup_gen)


class PostgresTenantRegistry(TenantRegistry):
    """Tenants in a PostgreSQL table (in the store's schema, with its migrations).

    Example:
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.embedded import embedded_postgres
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     registry = PostgresTenantRegistry(pool)
        ...     registry.setup()
        ...     acme = registry.create("acme", name="Acme", plan="pro", max_items=500)
        ...     registry.get("acme").max_items, registry.suspend("acme").status
        (500, 'suspended')
    """

    def __init__(
        self,
        conn: Connection[Any]
        | ConnectionPool[Any]
        | AsyncConnection[Any]
        | AsyncConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._flows = PgRegistryFlows(schema)
        self._runner = pg_runner_for(conn, schema, retry, owner="the tenant registry")


class RedisTenantRegistry(TenantRegistry):
    """Tenants in Redis hashes (one slot, so a cluster works too)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "langmem",
        retry: RetryPolicy | None = None,
    ) -> None:
        self._flows = RedisRegistryFlows(prefix)
        self._runner = redis_runner_for(client, retry, SCRIPTS, owner="the tenant registry")
