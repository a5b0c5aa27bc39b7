"""A tenant's life in the registry and the key vault: create, shred, delete, as steps.

Rules:
- creating a tenant registers it, then gives it fresh data keys in the vault (replacing
  whatever an earlier tenant of the same id left there), enforced when its `encryption`
  setting is on; if the vault fails, the registration is undone;
- shredding destroys the tenant's data keys in the vault (the registry keeps the
  tenant, whose data then raises `KeyShreddedError`);
- deleting a tenant is refused (`TenantNotEmptyError`) while it holds anything: items in
  the registry's reach or in the `stores` given, chat conversations in reach, or live
  data keys; with `erase=True` it shreds the keys first (so whatever the erasure cannot
  reach stays unreadable), erases the data in reach and in `stores`, then removes the
  tenant. A tenant registered again with the same id gets new keys: it opens none of
  the old ciphertexts;
- each flow is a generator of steps (`Db`, `Vault`, `Store`, `Scan`) that the registry's
  sync and async drivers run; a failed step is thrown back into the flow.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from langgraph.store.base import PutOp

from langmem_prod.errors import TenantNotEmptyError
from langmem_prod.store._namespace import decode_namespace
from langmem_prod.store._stored import StoredPage
from langmem_prod.store._tenant import TENANT_ROOT
from langmem_prod.tenancy._flows import PgRegistryFlows, RedisRegistryFlows
from langmem_prod.tenancy.tenants import Tenant

PAGE = 500


@dataclass(frozen=True, slots=True)
class Db:
    """Run a backend generator on the registry's runner."""

    gen: Generator[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Vault:
    """Call a method of the key vault (in a worker thread when async)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Store:
    """Read a page of a store's stored values under a prefix, or run a batch of deletes."""

    store: Any
    op: Literal["page", "delete"]
    arg: Any


@dataclass(frozen=True, slots=True)
class Scan:
    """The Redis keys matching a pattern, on every node."""

    pattern: str


Step = Db | Vault | Store | Scan
Flows = PgRegistryFlows | RedisRegistryFlows


@dataclass
class Holdings:
    """What a tenant still holds, as far as the registry can see."""

    items: int = 0
    more_items: bool = False
    conversations: int = 0
    live_keys: bool = False

    def __bool__(self) -> bool:
        return bool(self.items or self.conversations or self.live_keys)

    def describe(self) -> str:
        """The holdings in words (counts only, never names or values)."""
        parts = []
        if self.items:
            parts.append(f"{self.items}{' or more' if self.more_items else ''} store items")
        if self.conversations:
            parts.append(f"{self.conversations} chat conversations")
        if self.live_keys:
            parts.append("live data keys in the key vault")
        return ", ".join(parts)


def create_flow(
    flows: Flows, tenant: Tenant, now: datetime, has_vault: bool
) -> Generator[Step, Any, Tenant]:
    """Register `tenant`, then give it fresh data keys (undone if the vault fails)."""
    made: Tenant = yield Db(flows.create_gen(tenant, now))
    if has_vault:
        try:
            yield Vault("create", (made.id,), {"enforced": made.encryption, "replace": True})
        except Exception:
            yield Db(flows.delete_gen(made.id))
            raise
    return made


def shred_flow(flows: Flows, tenant_id: str) -> Generator[Step, Any, None]:
    """Destroy a registered tenant's data keys."""
    yield Db(flows.get_gen(tenant_id))
    yield Vault("destroy", (tenant_id,))


def _prefix(tenant_id: str) -> tuple[str, str]:
    return (TENANT_ROOT, tenant_id)


def holdings_flow(
    flows: Flows, tenant_id: str, stores: Sequence[Any], has_vault: bool
) -> Generator[Step, Any, Holdings]:
    """What the tenant holds in the registry's reach, in `stores` and in the vault."""
    held = Holdings()
    if isinstance(flows, PgRegistryFlows):
        held.items, held.conversations = yield Db(flows.holdings_gen(tenant_id))
    else:
        keys = yield Scan(flows.history_pattern(tenant_id))
        held.conversations = len({bytes(k).rpartition(b":")[0] for k in keys})
    for store in stores:  # a store may be the registry's schema again: count the largest
        page: StoredPage = yield Store(store, "page", _prefix(tenant_id))
        more = page.cursor is not None or bool(held.items and page.values)
        held.items = max(held.items, len(page.values))
        held.more_items = held.more_items or more
    if has_vault:
        keys_now = yield Vault("keys", (tenant_id,))
        held.live_keys = keys_now is not None and keys_now.current is not None
    return held


def _erase_store(store: Any, tenant_id: str) -> Generator[Step, Any, None]:
    while True:  # from the start each time: deleting shifts a Redis page's ranks
        page: StoredPage = yield Store(store, "page", _prefix(tenant_id))
        if not page.values:
            return
        deletes = [PutOp(decode_namespace(v.prefix), v.key, None) for v in page.values]
        yield Store(store, "delete", deletes)


def delete_flow(
    flows: Flows, tenant_id: str, *, erase: bool, stores: Sequence[Any], has_vault: bool
) -> Generator[Step, Any, None]:
    """Remove a tenant that holds nothing, or (`erase`) shred, erase and remove it."""
    yield Db(flows.get_gen(tenant_id))
    if not erase:
        held = yield from holdings_flow(flows, tenant_id, stores, has_vault)
        if held:
            raise TenantNotEmptyError(
                f"tenant {tenant_id!r} still holds {held.describe()}; delete it with "
                "erase=True (its keys are shredded and the data in reach erased; pass the "
                "stores that hold its items as stores=[...])"
            )
    else:
        if has_vault:
            yield Vault("destroy", (tenant_id,))
        for store in stores:
            yield from _erase_store(store, tenant_id)
        if isinstance(flows, PgRegistryFlows):
            yield Db(flows.erase_gen(tenant_id))
        else:
            keys = yield Scan(flows.history_pattern(tenant_id))
            yield Db(flows.drop_gen(list(keys)))
    yield Db(flows.delete_gen(tenant_id))
