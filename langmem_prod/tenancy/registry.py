"""The tenant registry, persisted in PostgreSQL or Redis, with sync and async methods.

Rules:
- the operations are `_flows`' generators; this module runs them on the stores' runners
  (the same retries and error translation), so the twins are one line each; creating,
  shredding and deleting also involve the key vault and stores (`_lifecycle`'s steps,
  run by `_drive` and `_adrive`, the vault in a worker thread when async);
- an update reads the tenant, applies the changes and writes it back; turning
  `encryption` off also lifts the vault's enforcement; turning it on gives the tenant
  data keys if it has none yet, and is finished by `rotate`, which seals what is in
  clear and then has the vault enforce the tenant;
- with a `vault`, every tenant created gets fresh data keys, `shred` destroys them, and
  `delete` refuses a tenant that still holds data or live keys unless `erase=True`.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Generator, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.errors import ConfigurationError
from langmem_prod.history._redis import DEFAULT_PREFIX as HISTORY_PREFIX
from langmem_prod.history._redis import check_prefix
from langmem_prod.security.vault import KeyVault
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._driver import runner_for as pg_runner_for
from langmem_prod.store.postgres._errors import SetupHint
from langmem_prod.store.redis._driver import runner_for as redis_runner_for
from langmem_prod.tenancy import _lifecycle as life
from langmem_prod.tenancy._flows import SCRIPTS, PgRegistryFlows, RedisRegistryFlows
from langmem_prod.tenancy.tenants import Tenant, agents, check_tenant_id


def _now() -> datetime:
    return datetime.now(UTC)


class TenantRegistry:
    """What both registries share: every operation, sync and async."""

    _flows: PgRegistryFlows | RedisRegistryFlows
    _runner: SyncRunnerBase[Any] | AsyncRunnerBase[Any]
    _clock: Callable[[], datetime] = staticmethod(_now)
    _client: Any = None
    vault: KeyVault | None = None

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
        flow = life.create_flow(self._flows, tenant, self._clock(), self.vault is not None)
        return (yield from flow)

    def _change(self, tenant_id: str, changes: dict[str, Any]) -> Generator[Any, Any, Tenant]:
        tenant = yield life.Db(self._flows.get_gen(check_tenant_id(tenant_id)))
        changed = tenant.with_changes(**changes)
        updated = yield life.Db(self._flows.update_gen(changed, self._clock()))
        if self.vault is not None and "encryption" in changes:
            keys = yield life.Vault("keys", (tenant_id,))
            if keys is None and changes["encryption"]:  # registered before it had a vault
                yield life.Vault("create", (tenant_id,))
            elif keys is not None and keys.enforced and not changes["encryption"]:
                yield life.Vault("enforce", (tenant_id, False))
        return updated  # type: ignore[no-any-return]

    def _vault(self) -> KeyVault:
        if self.vault is None:
            raise ConfigurationError(
                "this registry has no key vault: build it with vault=FileKeyVault(...) (or "
                "a KMS adapter) to create, shred and delete tenants' data keys"
            )
        return self.vault

    # -- the drivers of `_lifecycle`'s steps --------------------------------------------

    def _step(self, step: life.Step) -> Any:
        if isinstance(step, life.Db):
            return self._sync().run(step.gen)
        if isinstance(step, life.Vault):
            return getattr(self._vault(), step.method)(*step.args, **step.kwargs)
        if isinstance(step, life.Store):
            if step.op == "page":
                return step.store.stored_values(step.arg, limit=life.PAGE)
            return step.store.batch(step.arg)
        try:
            return list(self._client.scan_iter(match=step.pattern, count=1000))
        except Exception as exc:
            raise self._runner.translate(exc) from exc

    async def _astep(self, step: life.Step) -> Any:
        if isinstance(step, life.Db):
            return await self._async().run(step.gen)
        if isinstance(step, life.Vault):
            call = getattr(self._vault(), step.method)
            return await asyncio.to_thread(call, *step.args, **step.kwargs)
        if isinstance(step, life.Store):
            if not inspect.iscoroutinefunction(step.store.stored_values):  # a sync store
                return await asyncio.to_thread(self._step, step)
            if step.op == "page":
                return await step.store.stored_values(step.arg, limit=life.PAGE)
            return await step.store.abatch(step.arg)
        try:
            return [key async for key in self._client.scan_iter(match=step.pattern, count=1000)]
        except Exception as exc:
            raise self._runner.translate(exc) from exc

    def _drive(self, flow: Generator[life.Step, Any, Any]) -> Any:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            try:
                reply = self._step(step)
            except Exception as exc:  # thrown back into the flow, which may undo a step
                error = exc

    async def _adrive(self, flow: Generator[life.Step, Any, Any]) -> Any:
        reply: Any = None
        error: Exception | None = None
        while True:
            try:
                step = flow.throw(error) if error is not None else flow.send(reply)
            except StopIteration as stop:
                return stop.value
            reply, error = None, None
            try:
                reply = await self._astep(step)
            except Exception as exc:  # thrown back into the flow, which may undo a step
                error = exc

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
        return self._drive(gen)  # type: ignore[no-any-return]

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
        return await self._adrive(gen)  # type: ignore[no-any-return]

    def get(self, tenant_id: str) -> Tenant:
        """A registered tenant, or `TenantNotFoundError`."""
        return self._sync().run(self._flows.get_gen(check_tenant_id(tenant_id)))

    async def aget(self, tenant_id: str) -> Tenant:
        """Async `get`."""
        return await self._async().run(self._flows.get_gen(check_tenant_id(tenant_id)))

    def update(self, tenant_id: str, **changes: Any) -> Tenant:
        """Change fields (name, plan, status, allowed_agents, residency) or settings."""
        return self._drive(self._change(tenant_id, changes))  # type: ignore[no-any-return]

    async def aupdate(self, tenant_id: str, **changes: Any) -> Tenant:
        """Async `update`."""
        return await self._adrive(self._change(tenant_id, changes))  # type: ignore[no-any-return]

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

    def shred(self, tenant_id: str) -> None:
        """Crypto-shred: destroy the tenant's data keys in the vault; its data is unreadable.

        Every process sharing the vault refuses the tenant's data from its next
        operation (`KeyShreddedError`); no copy of the database holds a key.
        """
        self._vault()
        self._drive(life.shred_flow(self._flows, check_tenant_id(tenant_id)))

    async def ashred(self, tenant_id: str) -> None:
        """Async `shred`."""
        self._vault()
        await self._adrive(life.shred_flow(self._flows, check_tenant_id(tenant_id)))

    def _delete(
        self, tenant_id: str, erase: bool, stores: Sequence[Any]
    ) -> Generator[life.Step, Any, None]:
        return life.delete_flow(
            self._flows,
            check_tenant_id(tenant_id),
            erase=erase,
            stores=list(stores),
            has_vault=self.vault is not None,
        )

    def delete(self, tenant_id: str, *, erase: bool = False, stores: Sequence[Any] = ()) -> None:
        """Remove a tenant that holds nothing; with `erase=True`, shred and erase it first.

        Without `erase`, a tenant that still has items (in the registry's reach or in
        `stores`), chat conversations in reach or live data keys is refused with
        `TenantNotEmptyError`. With `erase=True` its keys are shredded first, then its
        items in reach and in `stores` (langmem stores, sync here) and its chat
        conversations in reach are deleted, then the tenant. In reach: on PostgreSQL
        the registry's schema; on Redis the chat histories under `history_prefix`
        (pass every `RedisStore` holding its items in `stores`).
        """
        self._drive(self._delete(tenant_id, erase, stores))

    async def adelete(
        self, tenant_id: str, *, erase: bool = False, stores: Sequence[Any] = ()
    ) -> None:
        """Async `delete` (async stores are awaited, sync ones run in a worker thread)."""
        await self._adrive(self._delete(tenant_id, erase, stores))

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


_SETUP = SetupHint("the tenant registry", "registry.setup()", "await registry.asetup()")


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
        vault: KeyVault | None = None,
    ) -> None:
        self._flows = PgRegistryFlows(schema)
        self._runner = pg_runner_for(
            conn, schema, retry, owner="the tenant registry", setup_hint=_SETUP
        )
        self.vault = vault


class RedisTenantRegistry(TenantRegistry):
    """Tenants in Redis hashes (one slot, so a cluster works too)."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "langmem",
        retry: RetryPolicy | None = None,
        vault: KeyVault | None = None,
        history_prefix: str = HISTORY_PREFIX,
    ) -> None:
        self._flows = RedisRegistryFlows(prefix, check_prefix(history_prefix))
        self._runner = redis_runner_for(client, retry, SCRIPTS, owner="the tenant registry")
        self._client = client
        self.vault = vault
