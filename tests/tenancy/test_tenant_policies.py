"""Per-tenant policies applied by `TenantStore` and the histories on every backend:
PII redaction before storing, and audit of the operations the tenant's settings name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.store.base import PutOp

from langmem_prod.compliance import AuditLog, PostgresAuditLog, RedisAuditLog
from langmem_prod.errors import ConfigurationError, QuotaExceededError
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantRegistry,
    TenantStore,
    tenant_redactor,
)
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer

EMAIL, CARD = "ada@example.com", "4111 1111 1111 1111"


class World:
    def __init__(
        self, backend: Backend, place: str, store: Any, registry: TenantRegistry, audit: AuditLog
    ) -> None:
        self.backend, self.place, self.store = backend, place, store
        self.registry, self.audit = registry, audit
        self.flavour = "async" if store.__class__.__name__.startswith("Async") else "sync"

    def tenant_store(self, tenant: str, **kwargs: Any) -> TenantStore:
        return TenantStore(
            self.store, self.registry, tenant, refresh_seconds=0, audit=self.audit, **kwargs
        )

    async def call(self, store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavour == "async":
            return await getattr(store, "a" + method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(store, method), *args, **kwargs)


@pytest.fixture
async def world(backend_server: PgServer | RedisServer, flavour: str) -> AsyncIterator[World]:
    backend = Backend(backend_server)
    place = backend.place()
    store = await backend.make(flavour, place, start_sweeper=False)
    audit: AuditLog
    if backend.kind == "postgres":
        source = await backend._pg_source("sync")
        registry: TenantRegistry = PostgresTenantRegistry(source, schema=place)
        audit = PostgresAuditLog(source, schema=place)
    else:
        client = backend._redis_client("sync")
        registry = RedisTenantRegistry(client, prefix=place)
        audit = RedisAuditLog(client, prefix=place)
    for thing in (registry, audit):
        await asyncio.to_thread(thing.setup)
    await (store.setup() if flavour == "async" else asyncio.to_thread(store.setup))
    yield World(backend, place, store, registry, audit)
    await (store.aclose() if flavour == "async" else asyncio.to_thread(store.close))
    await backend.cleanup()


async def test_values_are_redacted_by_the_tenant_policy(world: World) -> None:
    world.registry.create("masked", pii="mask")
    world.registry.create("hashed", pii="hash", pii_kinds=["EMAIL"])
    world.registry.create("hashed2", pii="hash")
    world.registry.create("kept")
    value = {"note": f"mail {EMAIL}, card {CARD}", "nested": [{"who": EMAIL}]}
    masked = world.tenant_store("masked", user_id="u")
    await world.call(masked, "put", ("n",), "k", value)
    got = (await world.call(masked, "get", ("n",), "k")).value
    assert got == {"note": "mail [EMAIL], card [CARD]", "nested": [{"who": "[EMAIL]"}]}
    tokens = []
    for tenant in ("hashed", "hashed2"):
        store = world.tenant_store(tenant, user_id="u", pii_secret=b"outside the db")
        await world.call(store, "put", ("n",), "k", value)
        tokens.append((await world.call(store, "get", ("n",), "k")).value["nested"][0]["who"])
    hashed = (
        await world.call(world.tenant_store("hashed", user_id="u", pii_secret=b"x"), "search", ())
    )[0]
    assert CARD in hashed.value["note"]  # pii_kinds: emails only
    assert tokens[0].startswith("[EMAIL:") and tokens[0] != tokens[1]  # not linkable across
    kept = world.tenant_store("kept", user_id="u")
    await world.call(kept, "put", ("n",), "k", value)
    assert (await world.call(kept, "get", ("n",), "k")).value == value
    raw = await world.backend.raw_dump(world.place)
    assert raw.count(EMAIL.encode()) == 2  # both in the one tenant that keeps PII
    with pytest.raises(ConfigurationError, match="needs a secret"):
        await world.call(world.tenant_store("hashed", user_id="u"), "get", ("n",), "k")


async def test_histories_redact_messages_before_storing(world: World) -> None:
    tenant = world.registry.create("masked", pii="mask")
    history = await world.backend.make_history(
        world.flavour, world.place, "s1", tenant_id="masked", redactor=tenant_redactor(tenant)
    )
    if world.backend.kind == "postgres" and world.flavour == "async":
        await history.asetup()
    elif world.backend.kind == "postgres":
        await asyncio.to_thread(history.setup)
    messages = [HumanMessage(f"I am {EMAIL}"), AIMessage([{"type": "text", "text": CARD}])]
    if world.flavour == "async":
        await history.aadd_messages(messages)
        stored = await history.aget_messages()
    else:
        await asyncio.to_thread(history.add_messages, messages)
        stored = await asyncio.to_thread(lambda: history.messages)
    assert [m.content for m in stored] == ["I am [EMAIL]", [{"type": "text", "text": "[CARD]"}]]
    raw = await world.backend.raw_dump(world.place)
    assert EMAIL.encode() not in raw and CARD.encode() not in raw
    assert CARD.replace(" ", "").encode() not in raw


async def test_audit_follows_the_tenant_settings(world: World) -> None:
    world.registry.create("audited", audit=True)
    world.registry.create("reads", audit=True, audit_ops=["get", "put"])
    world.registry.create("quiet", audit=False)
    for tenant in ("audited", "reads", "quiet"):
        store = world.tenant_store(tenant, agent_id="bot", user_id="ada")
        await world.call(store, "put", ("notes",), "k1", {"v": 1})
        await world.call(store, "get", ("notes",), "k1")
        await world.call(store, "delete", ("notes",), "k1")
    logged = {
        t: [(e.operation, e.namespace, e.key, e.agent, e.user) for e in world.audit.entries(t)]
        for t in ("audited", "reads", "quiet")
    }
    assert logged["audited"] == [
        ("put", ("notes",), "k1", "bot", "ada"),
        ("delete", ("notes",), "k1", "bot", "ada"),
    ]
    assert [e[0] for e in logged["reads"]] == ["put", "get"]
    assert logged["quiet"] == []
    assert world.audit.verify("audited") == [] and world.audit.verify("reads") == []


async def test_fifty_racing_puts_leave_exactly_the_room_on_every_backend(world: World) -> None:
    world.registry.create("acme", max_items=15, rate_per_second=None)  # quotas, not rates
    tenant = world.tenant_store("acme", user_id="ada")
    await world.call(tenant, "batch", [PutOp(("old",), f"k{n}", {"n": n}) for n in range(5)])

    async def put(n: int) -> bool:
        try:
            await world.call(tenant, "put", ("notes",), f"k{n}", {"n": n})
        except QuotaExceededError:
            return False
        return True

    granted = await asyncio.gather(*(put(n) for n in range(50)))
    assert sum(granted) == 10
    assert len(await world.call(tenant, "search", ("notes",), limit=100)) == 10
    usage = await world.call(tenant, "usage")
    assert usage["items"] == 15 and usage["max_items"] == 15
