"""`TenantStore` over every backend: isolation levels, access refusals, scoped listings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.store.base import ListNamespacesOp, MatchCondition

from langmem_prod.errors import InvalidNamespaceError, TenantAccessError
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantRegistry,
    TenantStore,
)
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer


class World:
    """A store and a tenant registry on one backend, and tenant stores over them."""

    def __init__(
        self, backend: Backend, store: Any, registry: TenantRegistry, flavour: str
    ) -> None:
        self.backend, self.store, self.registry, self.flavour = backend, store, registry, flavour

    def tenant_store(self, tenant: str, **kwargs: Any) -> TenantStore:
        return TenantStore(self.store, self.registry, tenant, refresh_seconds=0, **kwargs)

    async def run(self, store: TenantStore | Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavour == "async":
            return await getattr(store, "a" + method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(store, method), *args, **kwargs)


@pytest.fixture
async def world(backend_server: PgServer | RedisServer, flavour: str) -> AsyncIterator[World]:
    backend = Backend(backend_server)
    place = backend.place()
    store = await backend.make(flavour, place, start_sweeper=False)
    if backend.kind == "postgres":
        registry: TenantRegistry = PostgresTenantRegistry(
            await backend._pg_source("sync"), schema=place
        )
    else:
        registry = RedisTenantRegistry(backend._redis_client("sync"), prefix=place)
    await asyncio.to_thread(registry.setup)
    if flavour == "async":
        await store.setup()
    else:
        await asyncio.to_thread(store.setup)
    for tenant, isolation in (
        ("acme", "moderate"),
        ("globex", "moderate"),
        ("solo", "minimal"),
        ("vault", "strict"),
    ):
        registry.create(tenant, isolation=isolation)
    registry.create("picky", allowed_agents=["support"])
    yield World(backend, store, registry, flavour)
    if flavour == "async":
        await store.aclose()
    else:
        await asyncio.to_thread(store.close)
    await backend.cleanup()


async def test_tenants_never_see_each_other(world: World) -> None:
    acme, globex = (
        world.tenant_store("acme", user_id="ada"),
        world.tenant_store("globex", user_id="ada"),
    )
    await world.run(acme, "put", ("prefs",), "theme", {"v": "dark", "n": 1})
    await world.run(globex, "put", ("prefs",), "theme", {"v": "light", "n": 2})
    assert (await world.run(acme, "get", ("prefs",), "theme")).value["v"] == "dark"
    assert (await world.run(globex, "get", ("prefs",), "theme")).value["v"] == "light"
    found = await world.run(acme, "search", (), filter={"n": {"$gte": 0}})
    assert [(i.namespace, i.value["v"]) for i in found] == [(("prefs",), "dark")]
    assert await world.run(acme, "list_namespaces") == [("prefs",)]
    raw = sorted(await world.run(world.store, "list_namespaces", prefix=("tenants",)))
    assert raw == [("tenants", "acme", "ada", "prefs"), ("tenants", "globex", "ada", "prefs")]
    await world.run(acme, "delete", ("prefs",), "theme")
    assert await world.run(globex, "get", ("prefs",), "theme") is not None


async def test_isolation_levels(world: World) -> None:
    moderate_a = world.tenant_store("acme", agent_id="a1", user_id="ada")
    moderate_b = world.tenant_store("acme", agent_id="a2", user_id="bob")
    minimal = [world.tenant_store("solo", user_id=u) for u in ("ada", "bob")]
    strict = [world.tenant_store("vault", agent_id=a, user_id="ada") for a in ("a1", "a2")]
    for store in (moderate_a, minimal[0], strict[0]):
        await world.run(store, "put", ("notes",), "k", {"v": 1})
    assert await world.run(moderate_b, "get", ("notes",), "k") is None  # users apart
    assert await world.run(minimal[1], "get", ("notes",), "k") is not None  # one tenant space
    assert await world.run(strict[1], "get", ("notes",), "k") is None  # agents apart too


async def test_listing_is_relative_to_the_tenant(world: World) -> None:
    store = world.tenant_store("acme", user_id="ada")
    for ns in (("a", "x"), ("a", "y"), ("b", "x", "deep")):
        await world.run(store, "put", ns, "k", {"v": 1})
    assert await world.run(store, "list_namespaces", prefix=("a",)) == [("a", "x"), ("a", "y")]
    assert await world.run(store, "list_namespaces", max_depth=1) == [("a",), ("b",)]
    assert await world.run(store, "list_namespaces", suffix=("x",)) == [("a", "x")]


async def test_a_str_namespace_is_refused_before_any_io(world: World) -> None:
    # An unknown tenant: reaching the registry would raise another error.
    for store in (world.tenant_store("acme", user_id="ada"), world.tenant_store("nobody")):
        for method, args, kwargs in (
            ("put", ("users", "k", {"v": 1}), {}),
            ("get", ("users", "k"), {}),
            ("delete", ("users", "k"), {}),
            ("search", ("users",), {}),
            ("list_namespaces", (), {"prefix": "a"}),
        ):
            with pytest.raises(InvalidNamespaceError, match=r"pass a tuple, e\.g\. \('users',\)"):
                await world.run(store, method, *args, **kwargs)
    acme = world.tenant_store("acme", user_id="ada")
    assert await world.run(acme, "list_namespaces") == []


async def test_a_str_match_path_in_a_raw_op_is_one_label(world: World) -> None:
    """As on the stores: `MatchCondition("prefix", "public")` means the label, scoped too."""
    acme = world.tenant_store("acme", user_id="ada")
    for namespace in [("public", "x"), tuple("public"), ("docs", "public")]:
        await world.run(acme, "put", namespace, "k", {"v": 1})
    prefixed, suffixed = await world.run(
        acme,
        "batch",
        [
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", "public"),)),  # type: ignore[arg-type]
            ListNamespacesOp(match_conditions=(MatchCondition("suffix", "public"),)),  # type: ignore[arg-type]
        ],
    )
    assert prefixed == [("public", "x")]
    assert suffixed == [("docs", "public")]


async def test_suspended_tenants_and_foreign_agents_are_refused(world: World) -> None:
    allowed = world.tenant_store("picky", agent_id="support")
    await world.run(allowed, "put", ("t",), "k", {"v": 1})
    stranger = world.tenant_store("picky", agent_id="marketing")
    with pytest.raises(TenantAccessError, match="agent 'marketing' is not allowed"):
        await world.run(stranger, "put", ("t",), "k2", {"v": 2})
    assert await world.run(allowed, "get", ("t",), "k2") is None  # nothing written
    world.registry.suspend("picky")
    with pytest.raises(TenantAccessError, match="suspended") as refused:
        await world.run(allowed, "get", ("t",), "k")
    assert isinstance(refused.value, PermissionError)
    world.registry.activate("picky")
    assert (await world.run(allowed, "get", ("t",), "k")).value == {"v": 1}


async def test_a_suspension_takes_effect_under_steady_traffic(world: World) -> None:
    store = TenantStore(world.store, world.registry, "acme", user_id="ada", refresh_seconds=0.3)
    await world.run(store, "put", ("t",), "k", {"v": 1})
    world.registry.suspend("acme")
    deadline = asyncio.get_running_loop().time() + 3
    with pytest.raises(TenantAccessError, match="suspended"):
        while asyncio.get_running_loop().time() < deadline:  # a read every 50 ms
            await world.run(store, "get", ("t",), "k")
            await asyncio.sleep(0.05)
