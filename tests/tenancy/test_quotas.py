"""Quotas enforced by PostgreSQL: racing writers never take a tenant over its quota."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from langmem_prod import PostgresStore
from langmem_prod.errors import QuotaExceededError
from langmem_prod.tenancy import PostgresTenantRegistry, TenantStore
from tests.conftest import PgServer


@pytest.fixture
def world(pg: PgServer, schema: str) -> Iterator[tuple[PostgresStore, PostgresTenantRegistry]]:
    with ConnectionPool(pg.url, max_size=12, kwargs={"autocommit": True}) as pool:
        registry = PostgresTenantRegistry(pool, schema=schema)
        registry.setup()
        with PostgresStore(pool, schema=schema, start_sweeper=False) as store:
            store.setup()
            yield store, registry


def test_fifty_racing_puts_leave_exactly_the_room(world: tuple[Any, Any]) -> None:
    store, registry = world
    registry.create("acme", max_items=15, rate_per_second=None)  # quotas, not rates
    tenant = TenantStore(store, registry, "acme", user_id="ada")
    for n in range(5):
        tenant.put(("notes",), f"old{n}", {"n": n})

    def put(n: int) -> bool:
        try:
            tenant.put(("notes",), f"k{n}", {"n": n})
        except QuotaExceededError:
            return False
        return True

    with ThreadPoolExecutor(10) as pool:
        granted = sum(pool.map(put, range(50)))
    assert granted == 10
    assert len(tenant.search(("notes",), limit=100)) == 15
    usage = registry.usage("acme")
    assert usage["items"] == 15 and usage["max_items"] == 15 and usage["items_used"] == 1.0


def test_updates_deletes_and_bytes(world: tuple[Any, Any]) -> None:
    store, registry = world
    registry.create("acme", max_items=2, max_bytes=300)
    tenant = TenantStore(store, registry, "acme", user_id="ada")
    tenant.put(("a",), "k1", {"v": "x"})
    tenant.put(("a",), "k2", {"v": "y"})
    tenant.put(("a",), "k1", {"v": "changed"})  # an update takes no new item
    with pytest.raises(QuotaExceededError, match="tenant acme is over its quota: 3 of 2 items"):
        tenant.put(("a",), "k3", {"v": "z"})
    tenant.delete(("a",), "k2")  # frees room
    tenant.put(("a",), "k3", {"v": "z"})
    with pytest.raises(QuotaExceededError, match="bytes"):
        tenant.put(("a",), "k3", {"v": "z" * 400})
    assert tenant.get(("a",), "k3").value == {"v": "z"}  # nothing half-written
    usage = registry.usage("acme")
    assert usage["items"] == 2 and 0 < usage["bytes"] <= 300
    # A batch over the quota writes none of its puts.
    from langgraph.store.base import PutOp  # noqa: PLC0415

    registry.update("acme", max_items=3)
    with pytest.raises(QuotaExceededError):
        tenant.batch([PutOp(("b",), f"k{n}", {"n": n}) for n in range(2)])
    assert tenant.search(("b",)) == []


def test_usage_counts_what_existed_before_the_tenant(world: tuple[Any, Any], pg: PgServer) -> None:
    store, registry = world
    store.put(("tenants", "late", "ada", "notes"), "k", {"v": 1})
    store.put(("other",), "k", {"v": 1})
    registry.create("late", max_items=10)
    assert registry.usage("late")["items"] == 1
    registry.update("late", max_items=None)
    assert registry.usage("late")["max_items"] is None
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("SELECT 1")
