"""`TenantStore`: a `BaseStore` confined to one tenant (and agent and user) of another store.

Rules:
- every operation is scoped to the tenant's prefix by its isolation level
  (`Tenant.scope`); results come back without it;
- the tenant is read from the registry at most every `refresh_seconds`, so a suspension
  or a change of allowed agents takes effect within that time;
- a suspended tenant, or an agent not in the tenant's allowed agents, is refused with
  `TenantAccessError` (a `PermissionError`) before anything reaches the store;
- the wrapped store does the work: one round trip per batch, TTL, search and filters.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable

from langgraph.store.base import BaseStore, Op, Result

from langmem_prod.errors import TenantAccessError
from langmem_prod.tenancy._scope import scope_batch, unscope_batch
from langmem_prod.tenancy.registry import TenantRegistry
from langmem_prod.tenancy.tenants import Tenant


def check_access(tenant: Tenant, agent_id: str | None) -> None:
    """Refuse a suspended tenant or an agent it does not allow."""
    if tenant.status != "active":
        raise TenantAccessError(f"tenant {tenant.id!r} is suspended; reactivate it to use it")
    if tenant.allowed_agents is not None and agent_id not in tenant.allowed_agents:
        raise TenantAccessError(
            f"agent {agent_id!r} is not allowed to act for tenant {tenant.id!r}; "
            f"allowed: {sorted(tenant.allowed_agents)}"
        )


class TenantStore(BaseStore):
    """The part of `store` that belongs to a tenant, as seen by one agent for one user.

    Example:
        >>> from langgraph.store.memory import InMemoryStore
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.embedded import embedded_postgres
        >>> from langmem_prod.tenancy import PostgresTenantRegistry
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     registry = PostgresTenantRegistry(pool)
        ...     registry.setup()
        ...     _ = registry.create("acme", allowed_agents=["support"])
        ...     shared = InMemoryStore()
        ...     store = TenantStore(shared, registry, "acme", agent_id="support", user_id="ada")
        ...     store.put(("prefs",), "theme", {"value": "dark"})
        ...     store.get(("prefs",), "theme").namespace, shared.search(())[0].namespace
        (('prefs',), ('tenants', 'acme', 'ada', 'prefs'))
    """

    def __init__(
        self,
        store: BaseStore,
        registry: TenantRegistry,
        tenant_id: str,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.registry = registry
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.user_id = user_id
        self.refresh_seconds = refresh_seconds
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config
        self._tenant: Tenant | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._read_at < self.refresh_seconds

    def _remember(self, tenant: Tenant) -> Tenant:
        self._tenant, self._read_at = tenant, time.monotonic()
        return tenant

    def _scope(self, tenant: Tenant) -> tuple[str, ...]:
        check_access(tenant, self.agent_id)
        return tenant.scope(agent_id=self.agent_id, user_id=self.user_id)

    def tenant(self) -> Tenant:
        """The tenant, read from the registry at most every `refresh_seconds`."""
        with self._lock:
            if self._tenant is not None and self._fresh():
                return self._tenant
            return self._remember(self.registry.get(self.tenant_id))

    async def atenant(self) -> Tenant:
        """Async `tenant`."""
        if self._tenant is not None and self._fresh():
            return self._tenant
        if self.registry.is_async:
            return self._remember(await self.registry.aget(self.tenant_id))
        return self._remember(await asyncio.to_thread(self.registry.get, self.tenant_id))

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops on the tenant's part of the store."""
        ops = list(ops)
        scope = self._scope(self.tenant())
        return unscope_batch(ops, self.store.batch(scope_batch(ops, scope)), scope)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async `batch`."""
        ops = list(ops)
        scope = self._scope(await self.atenant())
        return unscope_batch(ops, await self.store.abatch(scope_batch(ops, scope)), scope)
