"""`TenantStore`: a `BaseStore` confined to one tenant (and agent and user) of another store.

Rules:
- every operation is scoped to the tenant's prefix by its isolation level
  (`Tenant.scope`); results come back without it; agent and user ids are checked when
  the store is made (`check_scope_id`: "_" names a missing id and no id may take it);
- the tenant is read from the registry at most every `refresh_seconds`, so a suspension
  or a change of allowed agents takes effect within that time;
- a suspended tenant, or an agent not in the tenant's allowed agents, is refused with
  `TenantAccessError` (a `PermissionError`) before anything reaches the store;
- a tenant whose plan (or overrides) sets `rate_per_second` is rate-limited: each
  batch takes one token per op from the tenant's bucket (key: the tenant id, shared
  with its histories) before anything reaches the store, or raises `RateLimitedError`
  with `retry_after`; a batch larger than the burst goes through on a full bucket and
  leaves it in debt; the limit is re-read with the tenant; the buckets are this
  process's for the registry's tenants unless a server-side limiter is given (Redis or
  PostgreSQL: one bucket across processes);
- every put's value is checked first, before any I/O: a mapping nested at most
  `MAX_VALUE_DEPTH` deep (an iterative walk), so neither the redactor nor the store
  walks a hostile value; values are then redacted by the tenant's PII policy before
  they reach the store;
- with the tenant's `audit` on and an audit log given, the batch's operations named in
  `audit_ops` are recorded (who, operation, the caller's namespace and key; never
  values) after the batch succeeded; if recording fails the caller gets the error;
- the wrapped store does the work: one round trip per batch, TTL, search and filters;
  quotas are enforced by the database (a Postgres trigger; in Redis, the store's write
  script, whose limits this wrapper writes whenever it reads the tenant).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any, Literal

from langgraph.store.base import (
    BaseStore,
    GetOp,
    ListNamespacesOp,
    NamespacePath,
    Op,
    PutOp,
    Result,
    SearchOp,
)

from langmem_prod.compliance._log import AuditLog
from langmem_prod.errors import TenantAccessError
from langmem_prod.security.pii import Redactor
from langmem_prod.store._namespace import as_namespace, refuse_text_namespaces
from langmem_prod.store._values import check_shape
from langmem_prod.tenancy._scope import check_scope_id, scope_batch, unscope_batch
from langmem_prod.tenancy.rate_limit import Limiter, LocalRateLimiter
from langmem_prod.tenancy.redaction import tenant_redactor
from langmem_prod.tenancy.registry import TenantRegistry
from langmem_prod.tenancy.tenants import Tenant

_LOCAL: weakref.WeakKeyDictionary[TenantRegistry, LocalRateLimiter] = weakref.WeakKeyDictionary()
_LOCAL_LOCK = threading.Lock()


def local_limiter(registry: TenantRegistry) -> LocalRateLimiter:
    """This process's buckets for `registry`'s tenants, shared by its `TenantStore`s."""
    with _LOCAL_LOCK:
        limiter = _LOCAL.get(registry)
        if limiter is None:
            limiter = _LOCAL[registry] = LocalRateLimiter()
        return limiter


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

    Args:
        store: the store holding every tenant's data.
        registry: where the tenant is read (plan, overrides, status, agents).
        tenant_id: the tenant.
        agent_id: the agent acting (its label under strict isolation; None: `NO_ID`).
        user_id: the user acted for (its label under strict and moderate isolation;
            None: `NO_ID`, a label no user id can take).
        refresh_seconds: how long the tenant is kept before it is read again.
        audit: the audit log the tenant's `audit_ops` are recorded to.
        pii_secret: the secret of "hash" PII redaction.
        limiter: where the tenant's rate limit is enforced: "local" (the default), this
            process's buckets for `registry`'s tenants, shared by every `TenantStore` on
            that registry object (N processes allow N times the rate); a `RateLimiter`
            (Redis) or `PostgresRateLimiter` for one bucket per tenant across processes;
            None: not enforced.
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
        audit: AuditLog | None = None,
        pii_secret: bytes | None = None,
        limiter: Limiter | Literal["local"] | None = "local",
    ) -> None:
        self.store = store
        self.registry = registry
        self.tenant_id = tenant_id
        self.agent_id = check_scope_id("agent_id", agent_id)
        self.user_id = check_scope_id("user_id", user_id)
        self.limiter = local_limiter(registry) if limiter == "local" else limiter
        self.refresh_seconds = refresh_seconds
        self.supports_ttl = store.supports_ttl
        self.ttl_config = store.ttl_config
        self.audit = audit
        self._pii_secret = pii_secret
        self._redactor: Redactor | None = None
        self._tenant: Tenant | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def _fresh(self) -> bool:
        return time.monotonic() - self._read_at < self.refresh_seconds

    def _remember(self, tenant: Tenant) -> Tenant:
        self._redactor = tenant_redactor(tenant, self._pii_secret)
        self._tenant, self._read_at = tenant, time.monotonic()
        return tenant

    def _limits(self, tenant: Tenant) -> dict[str, int | None]:
        return {"max_items": tenant.max_items, "max_bytes": tenant.max_bytes}

    def _redacted(self, ops: list[Op]) -> list[Op]:
        redactor = self._redactor
        if redactor is None:
            return ops
        return [
            op._replace(value=redactor.redact_value(dict(op.value)))
            if isinstance(op, PutOp) and op.value is not None
            else op
            for op in ops
        ]

    def _events(
        self, tenant: Tenant, ops: list[Op]
    ) -> list[tuple[str, tuple[str, ...], str | None]]:
        if self.audit is None or not tenant.audit:
            return []
        wanted = tenant.audit_ops
        return [event for event in map(_event, ops) if event[0] in wanted]

    def _scope(self, tenant: Tenant) -> tuple[str, ...]:
        check_access(tenant, self.agent_id)
        return tenant.scope(agent_id=self.agent_id, user_id=self.user_id)

    def tenant(self) -> Tenant:
        """The tenant, read from the registry at most every `refresh_seconds`."""
        with self._lock:
            if self._tenant is not None and self._fresh():
                return self._tenant
            tenant = self.registry.get(self.tenant_id)
            if hasattr(self.store, "set_tenant_limits"):
                self.store.set_tenant_limits(self.tenant_id, **self._limits(tenant))
            return self._remember(tenant)

    async def atenant(self) -> Tenant:
        """Async `tenant`."""
        if self._tenant is not None and self._fresh():
            return self._tenant
        if self.registry.is_async:
            tenant = await self.registry.aget(self.tenant_id)
        else:
            tenant = await asyncio.to_thread(self.registry.get, self.tenant_id)
        if hasattr(self.store, "aset_tenant_limits"):
            await self.store.aset_tenant_limits(self.tenant_id, **self._limits(tenant))
        return self._remember(tenant)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the ops on the tenant's part of the store."""
        ops = _checked(ops)
        tenant = self.tenant()
        scope = self._scope(tenant)
        limit = tenant.rate_limit
        if self.limiter is not None and limit is not None and ops:
            self.limiter.acquire(self.tenant_id, len(ops), limit=limit)
        results = self.store.batch(scope_batch(self._redacted(ops), scope))
        events = self._events(tenant, ops)
        if events and self.audit is not None:
            self.audit.record(self.tenant_id, events, agent=self.agent_id, user=self.user_id)
        return unscope_batch(ops, results, scope)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async `batch`."""
        ops = _checked(ops)
        tenant = await self.atenant()
        scope = self._scope(tenant)
        limit = tenant.rate_limit
        if self.limiter is not None and limit is not None and ops:
            await self.limiter.aacquire(self.tenant_id, len(ops), limit=limit)
        results = await self.store.abatch(scope_batch(self._redacted(ops), scope))
        events = self._events(tenant, ops)
        if events and self.audit is not None:
            who = {"agent": self.agent_id, "user": self.user_id}
            if self.audit.is_async:
                await self.audit.arecord(self.tenant_id, events, **who)
            else:
                await asyncio.to_thread(self.audit.record, self.tenant_id, events, **who)
        return unscope_batch(ops, results, scope)

    def list_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """List the tenant's namespaces, as `BaseStore.list_namespaces` (a `str` is refused)."""
        return super().list_namespaces(
            prefix=_path(prefix),
            suffix=_path(suffix),
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """Async `list_namespaces`."""
        return await super().alist_namespaces(
            prefix=_path(prefix),
            suffix=_path(suffix),
            max_depth=max_depth,
            limit=limit,
            offset=offset,
        )

    def usage(self) -> dict[str, Any]:
        """The tenant's items, bytes and quota use (counted by the database)."""
        if hasattr(self.store, "tenant_usage"):
            return self.store.tenant_usage(self.tenant_id)  # type: ignore[no-any-return]
        return self.registry.usage(self.tenant_id)

    async def ausage(self) -> dict[str, Any]:
        """Async `usage`."""
        if hasattr(self.store, "atenant_usage"):
            return await self.store.atenant_usage(self.tenant_id)  # type: ignore[no-any-return]
        if self.registry.is_async:
            return await self.registry.ausage(self.tenant_id)
        return await asyncio.to_thread(self.registry.usage, self.tenant_id)


def _path(path: NamespacePath | None) -> NamespacePath | None:
    """A listing's prefix or suffix as a tuple; a bare `str` is refused."""
    return None if path is None else as_namespace(path)


def _checked(ops: Iterable[Op]) -> list[Op]:
    """The ops, checked with no I/O: tuple namespaces, put values at most `MAX_VALUE_DEPTH` deep."""
    ops = list(ops)
    for op in ops:
        refuse_text_namespaces(op)
        if isinstance(op, PutOp) and op.value is not None:
            check_shape(op.value, namespace=op.namespace, key=op.key)
    return ops


def _event(op: Op) -> tuple[str, tuple[str, ...], str | None]:
    """The audit event of an op, in the caller's terms: operation, namespace, key."""
    if isinstance(op, PutOp):
        return ("delete" if op.value is None else "put", tuple(op.namespace), op.key)
    if isinstance(op, GetOp):
        return ("get", tuple(op.namespace), op.key)
    if isinstance(op, SearchOp):
        return ("search", tuple(op.namespace_prefix), None)
    if isinstance(op, ListNamespacesOp):
        return ("list", (), None)
    raise TypeError(f"unknown operation {type(op).__name__}")
