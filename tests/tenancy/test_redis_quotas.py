"""Quotas enforced by Redis: racing writers never take a tenant over its quota."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from langgraph.store.base import PutOp

from langmem_prod.errors import ConfigurationError, InvalidInputError, QuotaExceededError
from langmem_prod.store._values import encode_value
from langmem_prod.store.redis._driver import close_client
from langmem_prod.store.redis._quota import jsonb_size
from langmem_prod.tenancy._flows import usage_report
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer
from tests.contract.conftest import FakeClock

NOTES = ("tenants", "acme", "ada", "notes")


@pytest.fixture
async def backend(rs: RedisServer) -> AsyncIterator[Backend]:
    made = Backend(rs)
    yield made
    await made.cleanup()


def sync_store(backend: Backend, **kwargs: Any) -> Any:
    return backend.sync_store(backend.place(), start_sweeper=False, **kwargs)


def put_or_refused(store: Any, key: str, value: dict[str, Any]) -> bool:
    try:
        store.put(NOTES, key, value)
    except QuotaExceededError:
        return False
    return True


def test_fifty_racing_puts_leave_exactly_the_room(backend: Backend) -> None:
    store = sync_store(backend)
    for n in range(5):
        store.put(NOTES, f"old{n}", {"n": n})
    store.set_tenant_limits("acme", max_items=15)
    with ThreadPoolExecutor(10) as pool:
        granted = sum(pool.map(lambda n: put_or_refused(store, f"k{n}", {"n": n}), range(50)))
    assert granted == 10
    assert len(store.search(NOTES, limit=100)) == 15
    usage = store.tenant_usage("acme")
    assert usage["items"] == 15 and usage["max_items"] == 15 and usage["items_used"] == 1.0
    store.close()


async def test_fifty_concurrent_aputs_leave_exactly_the_room(backend: Backend) -> None:
    store = await backend.make("async", backend.place(), start_sweeper=False)
    await store.aset_tenant_limits("acme", max_items=10)

    async def put(n: int) -> bool:
        try:
            await store.aput(NOTES, f"k{n}", {"n": n})
        except QuotaExceededError:
            return False
        return True

    granted = await asyncio.gather(*(put(n) for n in range(50)))
    assert sum(granted) == 10
    assert len(await store.asearch(NOTES, limit=100)) == 10
    assert (await store.atenant_usage("acme"))["items"] == 10
    await store.aclose()


def test_updates_deletes_and_bytes(backend: Backend) -> None:
    store = sync_store(backend)
    store.set_tenant_limits("acme", max_items=2, max_bytes=300)
    a = ("tenants", "acme", "ada", "a")
    store.put(a, "k1", {"v": "x"})
    store.put(a, "k2", {"v": "y"})
    store.put(a, "k1", {"v": "changed"})  # an update takes no new item
    message = "tenant acme is over its quota: 3 of 2 items, 36 of 300 bytes; nothing was written"
    with pytest.raises(QuotaExceededError, match=message):
        store.put(a, "k3", {"v": "z"})
    store.delete(a, "k2")  # frees room
    store.put(a, "k3", {"v": "z"})
    with pytest.raises(QuotaExceededError, match="bytes"):
        store.put(a, "k3", {"v": "z" * 400})
    assert store.get(a, "k3").value == {"v": "z"}  # nothing half-written
    usage = store.tenant_usage("acme")
    # '{"v": "changed"}' and '{"v": "z"}', as PostgreSQL counts them.
    assert usage == usage_report(2, 16 + 10, 2, 300)
    store.set_tenant_limits("acme", max_items=None, max_bytes=None)
    assert store.tenant_usage("acme")["max_items"] is None
    store.close()


def test_a_batch_over_quota_writes_none_of_its_puts(backend: Backend) -> None:
    store = sync_store(backend)
    store.put(NOTES, "old", {"n": 0})
    store.set_tenant_limits("acme", max_items=3)
    ops = [PutOp(("tenants", "acme", "bob", "b"), f"k{n}", {"n": n}) for n in range(3)]
    with pytest.raises(QuotaExceededError, match="4 of 3 items"):
        store.batch([*ops, PutOp(NOTES, "old", {"n": 1})])
    assert store.search(("tenants", "acme", "bob")) == []
    assert store.get(NOTES, "old").value == {"n": 0}
    # A delete in the same batch makes room: the net effect counts.
    store.batch([*ops, PutOp(NOTES, "old", None)])
    assert store.tenant_usage("acme")["items"] == 3
    store.close()


def test_other_namespaces_and_tenants_are_not_counted(backend: Backend) -> None:
    store = sync_store(backend)
    store.set_tenant_limits("acme", max_items=1)
    store.put(NOTES, "k", {"v": 1})
    store.put(("tenants", "globex", "ada"), "k", {"v": 1})
    store.put(("users", "acme"), "k", {"v": 1})
    store.put(("tenants",), "k", {"v": 1})
    assert store.tenant_usage("acme")["items"] == 1
    assert store.tenant_usage("globex")["items"] == 1
    store.close()


def test_expiry_frees_room(backend: Backend) -> None:
    clock = FakeClock()
    store = sync_store(backend, clock=clock)
    store.set_tenant_limits("acme", max_items=2)
    store.put(NOTES, "short", {"v": 1}, ttl=1)
    store.put(NOTES, "long", {"v": 1})
    assert not put_or_refused(store, "new", {"v": 1})
    clock.advance(minutes=2)
    assert put_or_refused(store, "new", {"v": 1})  # the write swept the expired item
    assert store.tenant_usage("acme")["items"] == 2
    store.set_tenant_limits("acme", max_items=None)
    store.put(("tenants", "acme", "x"), "brief", {"v": 1}, ttl=1)
    store.put(NOTES, "brief", {"v": 1}, ttl=1)
    assert store.tenant_usage("acme")["items"] == 4
    clock.advance(minutes=2)
    assert store.sweep_ttl() == 2
    assert store.tenant_usage("acme") == usage_report(2, 2 * len('{"v": 1}'), None, None)
    store.close()


def test_usage_counts_what_existed_before(backend: Backend, rs: RedisServer) -> None:
    store = sync_store(backend)
    for n in range(3):
        store.put(NOTES, f"k{n}", {"v": "x" * n})
    store.put(("other",), "k", {"v": 1})
    # Items written before usage was kept: drop what this version keeps of them.
    client = redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)
    try:
        for pattern in (f"{store.prefix}:*:u:acme", f"{store.prefix}:*:q:acme"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)
    finally:
        close_client(client)
    store.set_tenant_limits("acme", max_items=4)
    assert store.tenant_usage("acme") == usage_report(3, 9 + 10 + 11, 4, None)
    store.put(NOTES, "k3", {"v": 1})
    assert not put_or_refused(store, "k4", {"v": 1})
    store.close()


def test_deep_shards_refuse_limits(backend: Backend) -> None:
    store = sync_store(backend, shard_depth=3)
    store.set_tenant_limits("acme", max_items=None, max_bytes=None)  # nothing to enforce
    with pytest.raises(ConfigurationError, match="shard_depth=3"):
        store.set_tenant_limits("acme", max_items=10)
    store.put(("tenants", "acme", "ada"), "k", {"v": 1})
    store.put(("tenants", "acme", "bob"), "k", {"v": 1})
    assert store.tenant_usage("acme")["items"] == 2  # summed over the shards
    with pytest.raises(InvalidInputError):
        store.set_tenant_limits("a.b", max_items=1)
    with pytest.raises(InvalidInputError):
        store.set_tenant_limits("acme", max_items=-1)
    store.close()


TRICKY = [
    {},
    {"a": [], "b": {}, "c": [1, 2, [3, {"d": None}]]},
    {"text": 'commas, colons: "quotes" \\ and \n\t\x01 control', "é": "ünïcødé ✓ 😀"},
    {"floats": [0.1, 1e-05, 1.5e300, -2.5e-7, 1e16, -0.0, 0.0, 1.0, 5e-324]},
    {"ints": [0, -1, 2**63, -(2**70), 10**30], "bools": [True, False]},
    {"nested": {"z": {"y": {"x": [{"w": "v"}]}}}, "a": "b"},
]
# Texts the store takes: no NUL (jsonb refuses it, so does the store), no lone surrogates.
TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


def pg_sizes(pg: PgServer, texts: list[str]) -> list[int]:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT octet_length(t::jsonb::text) FROM unnest(%s::text[]) WITH ORDINALITY "
            "AS u(t, n) ORDER BY n",
            (texts,),
        ).fetchall()
    return [int(row[0]) for row in rows]


def encoded(value: dict[str, Any]) -> str:
    return encode_value(value, max_bytes=1 << 20, namespace=NOTES, key="k")


def test_sizes_are_those_postgres_counts(pg: PgServer) -> None:
    texts = [encoded(v) for v in TRICKY]
    assert [jsonb_size(t) for t in texts] == pg_sizes(pg, texts)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.dictionaries(TEXT, JSON, max_size=5), min_size=1, max_size=10))
def test_sizes_match_postgres_for_any_value(pg: PgServer, values: list[dict[str, Any]]) -> None:
    texts = [encoded(value) for value in values]
    assert [jsonb_size(t) for t in texts] == pg_sizes(pg, texts)
