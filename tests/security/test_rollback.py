"""Encryption cannot be rolled back, downgraded or jammed: attacks on the stored values.

Every backend, sync and async. The attacker writes stored values directly (the store's
`replace_stored_values`, which bypasses encryption, or raw SQL), as a database writer
would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psycopg
import pytest
from langgraph.store.base import GetOp, PutOp

from langmem_prod.errors import DecryptionError, InvalidValueError
from langmem_prod.store._stored import Replacement
from langmem_prod.tenancy import TenantEncryption
from langmem_prod.tenancy.encryption import SEALED
from langmem_prod.tenancy.rotation import arotate, rotate
from tests.tenancy.test_store_encryption import ACME, OPEN, World, world

__all__ = ["world"]


async def overwrite(world: World, namespace: tuple[str, ...], key: str, new_json: str) -> None:
    old = (await world.stored(namespace))[key]
    replacement = Replacement(".".join(namespace), key, old, new_json)
    assert await world.call(world.store, "replace_stored_values", [replacement]) == 1


async def run_rotate(world: World, tenant: str) -> Any:
    assert world.encryption is not None
    if world.flavour == "async":
        return await arotate(world.store, world.encryption, tenant)
    return await asyncio.to_thread(rotate, world.store, world.encryption, tenant)


async def test_an_older_ciphertext_put_back_does_not_open_as_current(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", ACME, "limit", {"kind": "cfg", "max": 100})
    old = (await world.stored(ACME))["limit"]
    await world.call(store, "put", ACME, "limit", {"kind": "cfg", "max": 5})
    await overwrite(world, ACME, "limit", old)  # the attacker replays the old value
    with pytest.raises(DecryptionError, match="written at another time"):
        await world.call(store, "get", ACME, "limit")
    with pytest.raises(DecryptionError, match="written at another time"):
        await world.call(store, "search", ACME)


async def test_a_whole_old_row_put_back_reads_as_the_old_write(world: World) -> None:
    """The documented limit: value and updated_at replayed together read as the old write."""
    if world.backend.kind != "postgres":
        pytest.skip("raw row edits are shown on PostgreSQL")
    store = await world.open_store()
    await world.call(store, "put", ACME, "limit", {"max": 100})
    first = await world.call(store, "get", ACME, "limit")
    old = (await world.stored(ACME))["limit"]
    await world.call(store, "put", ACME, "limit", {"max": 5})
    with psycopg.connect(world.backend.server.url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "{world.place}".items SET value = %s::jsonb, updated_at = %s '
            "WHERE prefix = 'tenants.acme.notes' AND key = 'limit'",
            (old, first.updated_at),
        )
    item = await world.call(store, "get", ACME, "limit")
    assert item.value == {"max": 100} and item.updated_at == first.updated_at


async def test_a_clear_value_over_an_enforced_tenant_is_refused(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", ACME, "n1", {"kind": "note", "text": "sealed"})
    await overwrite(world, ACME, "n1", json.dumps({"kind": "note", "text": "forged"}))
    with pytest.raises(DecryptionError, match="stored in clear, but the tenant's values must"):
        await world.call(store, "get", ACME, "n1")
    # A non-encrypting tenant's clear values are its normal form.
    await world.call(store, "put", OPEN, "n1", {"text": "clear"})
    assert (await world.call(store, "get", OPEN, "n1")).value == {"text": "clear"}


async def test_a_database_writer_cannot_turn_encryption_off(world: World) -> None:
    """The registry row is in the database; enforcement is in the vault, outside it."""
    if world.backend.kind != "postgres":
        pytest.skip("raw registry edits are shown on PostgreSQL")
    store = await world.open_store()
    with psycopg.connect(world.backend.server.url, autocommit=True) as conn:
        conn.execute(
            f'UPDATE "{world.place}".tenants SET settings = jsonb_set(settings, '
            "'{overrides,encryption}', 'false') WHERE id = 'acme'"
        )
    assert not world.registry.get("acme").encryption  # the database now says "off"
    await world.call(store, "put", ACME, "n2", {"kind": "note", "text": "still sealed"})
    assert SEALED in json.loads((await world.stored(ACME))["n2"])
    assert "still sealed" not in (await world.stored(ACME))["n2"]


async def test_turning_encryption_on_migrates_then_enforces(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", OPEN, "old", {"text": "written in clear"})
    world.registry.update("open", encryption=True)
    # During the migration a clear value still opens (it was legitimately written).
    assert (await world.call(store, "get", OPEN, "old")).value == {"text": "written in clear"}
    assert not world.vault.keys("open").enforced  # type: ignore[union-attr]
    report = await run_rotate(world, "open")
    assert report.sealed_from_clear == 1 and report.enforced
    assert world.vault.keys("open").enforced  # type: ignore[union-attr]
    assert (await world.call(store, "get", OPEN, "old")).value == {"text": "written in clear"}
    await overwrite(world, OPEN, "old", json.dumps({"text": "forged"}))
    with pytest.raises(DecryptionError, match="stored in clear"):
        await world.call(store, "get", OPEN, "old")
    # Turning encryption off lifts the enforcement: new values are stored in clear again,
    # and sealed ones still open.
    await world.call(store, "put", OPEN, "old", {"text": "sealed again"})
    world.registry.update("open", encryption=False)
    assert not world.vault.keys("open").enforced  # type: ignore[union-attr]
    await world.call(store, "put", OPEN, "new", {"text": "clear again"})
    assert json.loads((await world.stored(OPEN))["new"]) == {"text": "clear again"}
    assert (await world.call(store, "get", OPEN, "old")).value == {"text": "sealed again"}


class CountingRegistry:
    """A registry that counts the reads encryption makes of it (to show there are none)."""

    def __init__(self, registry: Any) -> None:
        self.registry, self.reads = registry, 0
        self.is_async = False

    def get(self, tenant_id: str) -> Any:
        self.reads += 1
        return self.registry.get(tenant_id)

    async def aget(self, tenant_id: str) -> Any:
        raise AssertionError("not async")


@pytest.mark.parametrize(
    "namespace", [ACME, OPEN, ("tenants", "unregistered", "x"), ("users", "ada")]
)
async def test_the_reserved_field_is_refused_before_any_io(
    world: World, namespace: tuple[str, ...]
) -> None:
    store = await world.open_store()
    counting = CountingRegistry(world.registry)
    assert world.encryption is not None
    world.encryption = TenantEncryption(world.vault, counting, plaintext_fields=["kind"])
    store.values = world.encryption
    ops = [
        PutOp(ACME, "fine", {"text": "ok"}),
        PutOp(namespace, "jam", {SEALED: "QUFBQQ==", "text": "looks sealed"}),
    ]
    with pytest.raises(InvalidValueError, match="reserved for encrypted values"):
        await world.call(store, "batch", ops)
    assert counting.reads == 0  # refused before the registry (or anything) was read
    assert await world.call(store, "batch", [GetOp(ACME, "fine"), GetOp(namespace, "jam")]) == [
        None,
        None,
    ]
