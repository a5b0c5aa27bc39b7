"""No PII reaches storage: every message field on both histories, every string of a store
value at any depth through `TenantStore`. The raw bytes each backend holds are read back
(bytea columns decoded, not their hex text), on every backend, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantRegistry,
    TenantStore,
    tenant_redactor,
)
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer
from tests.security.test_pii_fields import LEAKS, conversation


class World:
    def __init__(self, backend: Backend, place: str, store: Any, registry: TenantRegistry) -> None:
        self.backend, self.place, self.store, self.registry = backend, place, store, registry
        self.flavour = "async" if type(store).__name__.startswith("Async") else "sync"

    async def call(self, target: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavour == "async":
            return await getattr(target, "a" + method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(target, method), *args, **kwargs)

    async def raw(self) -> bytes:
        """Every byte stored under the place; PostgreSQL bytea columns as their bytes."""
        if self.backend.kind == "redis":
            return await self.backend.raw_dump(self.place)
        dump = await self.backend.raw_dump(self.place)
        async with await psycopg.AsyncConnection.connect(self.backend.server.url) as conn:
            cur = await conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND data_type = 'bytea'",
                (self.place,),
            )
            for table, column in await cur.fetchall():
                query = sql.SQL("SELECT {} FROM {}.{}").format(
                    sql.Identifier(column), sql.Identifier(self.place), sql.Identifier(table)
                )
                rows = await (await conn.execute(query)).fetchall()
                dump += b"\n".join(bytes(row[0]) for row in rows if row[0] is not None)
        return dump


@pytest.fixture
async def world(backend_server: PgServer | RedisServer, flavour: str) -> AsyncIterator[World]:
    backend = Backend(backend_server)
    place = backend.place()
    store = await backend.make(flavour, place, start_sweeper=False)
    registry: TenantRegistry
    if backend.kind == "postgres":
        registry = PostgresTenantRegistry(await backend._pg_source("sync"), schema=place)
    else:
        registry = RedisTenantRegistry(backend._redis_client("sync"), prefix=place)
    await asyncio.to_thread(registry.setup)
    await (store.setup() if flavour == "async" else asyncio.to_thread(store.setup))
    yield World(backend, place, store, registry)
    await (store.aclose() if flavour == "async" else asyncio.to_thread(store.close))
    await backend.cleanup()


def leaks(raw: bytes, secrets: dict[str, str]) -> list[str]:
    return [name for name, pii in secrets.items() if pii.encode() in raw]


async def test_histories_store_no_pii_from_any_field(world: World) -> None:
    tenant = world.registry.create("masked", pii="mask")
    history = await world.backend.make_history(
        world.flavour, world.place, "s1", tenant_id="masked", redactor=tenant_redactor(tenant)
    )
    if world.backend.kind == "postgres":
        await world.call(history, "setup")
    messages = conversation()
    await world.call(history, "add_messages", messages)
    await world.call(history, "save_state", {"summary": {"who": [LEAKS["content"]]}})
    raw = await world.raw()
    assert b"Operator notes" in raw  # the reader sees stored text: a leak would show
    assert leaks(raw, LEAKS) == []
    assert b"\\u0040example" not in raw
    stored = (await world.call(history, "load")).messages
    assert [(type(m), m.id) for m in stored] == [(type(m), m.id) for m in messages]
    ai, tool = stored[2], stored[3]
    assert [c["id"] for c in ai.tool_calls] == [tool.tool_call_id] == ["call_1"]
    arguments = ai.additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert json.loads(arguments) == {"to": "[EMAIL]"}


async def test_tenant_store_values_have_no_pii_at_any_depth(world: World) -> None:
    world.registry.create("masked", pii="mask")
    world.registry.create("hashed", pii="hash")
    secrets = {
        "top": "ada@example.com",
        "deep": "4111 1111 1111 1111",
        "key": "bob@example.com",
        "list": "+44 20 7946 0958",
        "json text": "carol@example.com",
        "int": "4155552671",
        "context": "219456789",
    }
    deep: Any = {"card": secrets["deep"]}
    for level in range(12):
        deep = {f"level{level}": [deep, {"n": level}]}
    value = {
        "note": f"mail {secrets['top']}",
        "nested": deep,
        secrets["key"]: "owner",
        "calls": [["x", [secrets["list"]]]],
        "payload": json.dumps({"to": secrets["json text"]}).replace("@", "\\u0040"),
        "phone": int(secrets["int"]),
        "ssn": secrets["context"],
    }
    for tenant in ("masked", "hashed"):
        store = TenantStore(world.store, world.registry, tenant, user_id="u", pii_secret=b"s")
        await world.call(store, "put", ("notes",), "k", value)
        got = (await world.call(store, "get", ("notes",), "k")).value
        text = json.dumps(got)
        assert not [name for name, pii in secrets.items() if pii in text]
        got = got["nested"]
        for level in reversed(range(12)):
            got = got[f"level{level}"][0]
        assert got["card"].startswith("[CARD")
    raw = await world.raw()
    assert b"owner" in raw  # the reader sees stored values: a leak would show
    assert leaks(raw, secrets) == []
    assert b"\\u0040example" not in raw
