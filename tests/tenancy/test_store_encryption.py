"""Store values encrypted at rest on every backend: raw data, binding, filters, shredding,
data-key rotation while the store is in use."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.store.base import PutOp

from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.errors import DecryptionError, InvalidInputError, KeyShreddedError
from langmem_prod.security import FileKeyVault, Keyring
from langmem_prod.security.envelope import split
from langmem_prod.store._stored import Replacement
from langmem_prod.store.redis._quota import jsonb_size
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantEncryption,
    TenantRegistry,
)
from langmem_prod.tenancy.encryption import SEALED
from langmem_prod.tenancy.rotation import arotate, rotate
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer

SECRET = "the vault code is 4711-SECRET"
K1 = b"1" * 32
ACME = ("tenants", "acme", "notes")
OPEN = ("tenants", "open", "notes")


class World:
    """A store that encrypts per tenant, its registry, and how to call it in a flavour."""

    def __init__(
        self,
        backend: Backend,
        place: str,
        registry: TenantRegistry,
        flavour: str,
        vault: FileKeyVault,
    ):
        self.backend, self.place, self.registry, self.flavour = backend, place, registry, flavour
        self.vault = vault
        self.store: Any = None
        self.encryption: TenantEncryption | None = None

    async def open_store(self, **kwargs: Any) -> Any:
        self.encryption = TenantEncryption(
            self.vault, self.registry, plaintext_fields=["kind"], refresh_seconds=0
        )
        store = await self.backend.make(
            self.flavour, self.place, values=self.encryption, start_sweeper=False, **kwargs
        )
        await self.call(store, "setup")
        self.store = store
        return store

    async def call(self, store: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavour == "async":
            name = (
                method
                if method in ("setup", "stored_values", "replace_stored_values")
                else ("a" + method)
            )
            return await getattr(store, name)(*args, **kwargs)
        return await asyncio.to_thread(getattr(store, method), *args, **kwargs)

    async def close(self, store: Any) -> None:
        await (store.aclose() if self.flavour == "async" else asyncio.to_thread(store.close))

    async def rotate(self, **kwargs: Any) -> Any:
        assert self.encryption is not None
        if self.flavour == "async":
            return await arotate(self.store, self.encryption, "acme", **kwargs)
        return await asyncio.to_thread(rotate, self.store, self.encryption, "acme", **kwargs)

    async def stored(self, namespace: tuple[str, ...]) -> dict[str, str]:
        page = await self.call(self.store, "stored_values", namespace, limit=10_000)
        return {v.key: v.value_json for v in page.values}


@pytest.fixture
async def world(
    backend_server: PgServer | RedisServer, flavour: str, tmp_path: Path
) -> AsyncIterator[World]:
    backend = Backend(backend_server)
    place = backend.place()
    vault = FileKeyVault(tmp_path / "vault.json", Keyring({"k1": K1}, "k1"))
    if backend.kind == "postgres":
        registry: TenantRegistry = PostgresTenantRegistry(
            await backend._pg_source("sync"), schema=place, vault=vault
        )
    else:
        registry = RedisTenantRegistry(backend._redis_client("sync"), prefix=place, vault=vault)
    await asyncio.to_thread(registry.setup)
    registry.create("acme", encryption=True)
    registry.create("globex", encryption=True)
    registry.create("open", encryption=False)
    world = World(backend, place, registry, flavour, vault)
    yield world
    if world.store is not None:
        await world.close(world.store)
    await backend.cleanup()


async def test_no_plaintext_at_rest_and_values_come_back(world: World) -> None:
    store = await world.open_store()
    value = {"kind": "note", "text": SECRET, "n": 12345678901234567890123, "tags": ["a", "b"]}
    await world.call(store, "put", ACME, "n1", value)
    await world.call(store, "put", OPEN, "n1", {"kind": "note", "text": SECRET + "-open"})
    raw = await world.backend.raw_dump(world.place)
    assert b"4711-SECRET-open" in raw  # the tenant that does not encrypt
    assert raw.count(b"4711-SECRET") == 1 and b"12345678901234567890123" not in raw
    assert (await world.call(store, "get", ACME, "n1")).value == value
    found = await world.call(store, "search", ("tenants", "acme"))
    assert [i.value for i in found] == [value]
    # Declared plaintext fields stay filterable; a filter on a sealed field is refused.
    hits = await world.call(store, "search", ("tenants", "acme"), filter={"kind": "note"})
    assert [i.key for i in hits] == ["n1"]
    with pytest.raises(InvalidInputError, match=r"cannot filter on \['text'\].*encrypts"):
        await world.call(store, "search", ACME, filter={"text": SECRET})
    stored = await world.stored(ACME)
    assert set(json.loads(stored["n1"])) == {"kind", SEALED}


async def test_logical_filters_see_sealed_fields_at_any_depth(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", ACME, "n1", {"kind": "note", "text": SECRET})
    await world.call(store, "put", ACME, "t1", {"kind": "todo", "text": SECRET})
    either = {"$or": [{"kind": "note"}, {"$not": {"kind": {"$ne": "todo"}}}]}
    hits = await world.call(store, "search", ("tenants", "acme"), filter=either)
    assert sorted(i.key for i in hits) == ["n1", "t1"]
    for hidden in (
        {"$or": [{"kind": "note"}, {"text": SECRET}]},
        {"$not": {"$and": [{"text.x": 1}]}},
        {"kind": "note", "$or": [{"$not": {"text": {"$exists": True}}}]},
    ):
        with pytest.raises(InvalidInputError, match=r"cannot filter on \['text'\].*encrypts"):
            await world.call(store, "search", ACME, filter=hidden)


async def test_a_copied_ciphertext_does_not_open(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", ACME, "mine", {"text": SECRET})
    await world.call(store, "put", ACME, "other", {"text": "x"})
    await world.call(store, "put", ("tenants", "globex", "notes"), "mine", {"text": "y"})
    mine = (await world.stored(ACME))["mine"]
    for namespace, key in ((ACME, "other"), (("tenants", "globex", "notes"), "mine")):
        old = (await world.stored(namespace))[key]
        replaced = await world.call(
            store, "replace_stored_values", [Replacement(".".join(namespace), key, old, mine)]
        )
        assert replaced == 1
        with pytest.raises(DecryptionError, match=r"does not belong|data key it does not have"):
            await world.call(store, "get", namespace, key)
    assert (await world.call(store, "get", ACME, "mine")).value == {"text": SECRET}


async def test_shredding_makes_a_tenant_unreadable_and_spares_others(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", ACME, "n1", {"text": SECRET})
    await world.call(store, "put", ("tenants", "globex", "x"), "n1", {"text": "fine"})
    world.registry.shred("acme")
    with pytest.raises(KeyShreddedError, match="crypto-shredded"):
        await world.call(store, "get", ACME, "n1")
    with pytest.raises(KeyShreddedError):
        await world.call(store, "put", ACME, "n2", {"text": "new"})
    assert (await world.call(store, "get", ("tenants", "globex", "x"), "n1")).value == {
        "text": "fine"
    }


async def test_a_batch_that_fails_to_seal_writes_nothing(world: World) -> None:
    store = await world.open_store()
    world.registry.shred("globex")
    ops = [PutOp(ACME, "a", {"text": "1"}), PutOp(("tenants", "globex", "n"), "b", {"t": "2"})]
    with pytest.raises(KeyShreddedError):
        await world.call(store, "batch", ops)
    assert await world.call(store, "get", ACME, "a") is None


async def test_semantic_search_sees_the_clear_text(world: World) -> None:
    if not world.backend.has_vectors:
        pytest.skip("this PostgreSQL server has no pgvector")
    index = {"dims": 64, "embed": HashingEmbeddings(dims=64), "fields": ["text"]}
    world.registry.update("acme", index_sealed=True)  # the tenant accepts what vectors reveal
    store = await world.open_store(index=index)
    await world.call(store, "put", ACME, "pizza", {"text": "I love pizza with extra cheese"})
    await world.call(store, "put", ACME, "tax", {"text": "the tax return is due in April"})
    hits = await world.call(store, "search", ("tenants", "acme"), query="pizza and cheese")
    assert hits[0].key == "pizza" and hits[0].value["text"].startswith("I love")


async def test_rotation_reseals_while_the_store_is_in_use(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "batch", [PutOp(ACME, f"k{n}", {"n": n}) for n in range(250)])
    await world.call(store, "put", OPEN, "plain", {"text": "stays clear"})
    # A new data key: the old one still opens old data until the rotation is done.
    old = world.vault.keys("acme").current  # type: ignore[union-attr]
    new = world.vault.rotate("acme").current
    stop, writes = threading.Event(), {}

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            key = f"k{n % 250}"
            writes[key] = {"n": n % 250, "rewritten": n}
            await world.call(store, "put", ACME, key, writes[key])
            assert (await world.call(store, "get", ACME, key)).value == writes[key]
            n += 1

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.05)
    report = await world.rotate(batch_size=40)
    stop.set()
    await task
    assert report.resealed + report.skipped >= 250 - len(writes)
    for value_json in (await world.stored(ACME)).values():
        blob = base64.b64decode(json.loads(value_json)[SEALED])
        assert split(blob)[0] == new
    # The old data key can now be retired: everything opens with the new one alone.
    world.vault.retire("acme", old)  # type: ignore[arg-type]
    items = await world.call(store, "search", ("tenants", "acme"), limit=1000)
    assert len(items) == 250
    assert all(i.value == writes.get(i.key, {"n": int(i.key[1:])}) for i in items)
    assert (await world.call(store, "get", OPEN, "plain")).value == {"text": "stays clear"}


async def test_turning_encryption_on_and_rotating_seals_existing_data(world: World) -> None:
    store = await world.open_store()
    await world.call(store, "put", OPEN, "n1", {"text": SECRET})
    world.registry.update("open", encryption=True)
    assert world.encryption is not None
    report = await (
        arotate(store, world.encryption, "open")
        if world.flavour == "async"
        else asyncio.to_thread(rotate, store, world.encryption, "open")
    )
    assert report.sealed_from_clear == 1 and report.passes == 2
    assert b"4711-SECRET" not in await world.backend.raw_dump(world.place)
    # The tenant's usage follows the new size (the Postgres trigger; Redis's replace script).
    stored = (await world.stored(OPEN))["n1"]
    if world.backend.kind == "postgres":  # value::text, measured as the trigger does
        usage, size = world.registry.usage("open"), len(stored.encode())
    else:  # compact JSON, measured as PostgreSQL would
        usage, size = await world.call(store, "tenant_usage", "open"), jsonb_size(stored)
    assert usage["items"] == 1 and usage["bytes"] == size
    assert (await world.call(store, "get", OPEN, "n1")).value == {"text": SECRET}
