"""Deleting a tenant: refused while it holds data, or erased and shredded; a tenant made
again with the same id never sees the old data."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from langmem_prod.errors import (
    ConfigurationError,
    DecryptionError,
    TenantNotEmptyError,
    TenantNotFoundError,
)
from langmem_prod.security import EncryptionCodec, Envelope, FileKeyVault, Keyring
from langmem_prod.store._stored import Replacement
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantEncryption,
    TenantRegistry,
)
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer

NS = ("tenants", "acme", "notes")


class Setup:
    """A registry, an encrypting store and chat histories of one backend and flavour."""

    def __init__(self, backend: Backend, flavour: str, vault: FileKeyVault | None) -> None:
        self.backend, self.flavour, self.vault = backend, flavour, vault
        self.place = backend.place()
        self.registry: Any = None
        self.store: Any = None

    async def open(self) -> None:
        if self.backend.kind == "postgres":
            self.registry = PostgresTenantRegistry(
                await self.backend._pg_source(self.flavour), schema=self.place, vault=self.vault
            )
        else:
            self.registry = RedisTenantRegistry(
                self.backend._redis_client(self.flavour),
                prefix=self.place,
                vault=self.vault,
                history_prefix=self.place,
            )
        await self.reg("setup")
        self.encryption = (
            None
            if self.vault is None
            else TenantEncryption(self.vault, self.registry, refresh_seconds=0)
        )
        self.store = await self.backend.make(
            self.flavour, self.place, values=self.encryption, start_sweeper=False
        )
        await self.call("setup")

    async def reg(self, method: str, *args: Any, **kwargs: Any) -> Any:
        registry: TenantRegistry = self.registry
        if self.flavour == "async":
            return await getattr(registry, "a" + method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(registry, method), *args, **kwargs)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.flavour == "async":
            plain = method in ("setup", "stored_values", "replace_stored_values")
            return await getattr(self.store, method if plain else "a" + method)(*args, **kwargs)
        return await asyncio.to_thread(getattr(self.store, method), *args, **kwargs)

    async def history(self, session: str) -> Any:
        codec = None if self.vault is None else EncryptionCodec(Envelope(self.vault), "acme")
        made = await self.backend.make_history(
            self.flavour, self.place, session, tenant_id="acme", codec=codec
        )
        if self.backend.kind == "postgres":
            await (made.asetup() if self.flavour == "async" else asyncio.to_thread(made.setup))
        return made

    async def add(self, history: Any, text: str) -> None:
        if self.flavour == "async":
            await history.aadd_messages([HumanMessage(text)])
        else:
            await asyncio.to_thread(history.add_messages, [HumanMessage(text)])

    async def messages(self, history: Any) -> list[Any]:
        if self.flavour == "async":
            return list(await history.aget_messages())
        return list(await asyncio.to_thread(lambda: history.messages))

    async def stored(self) -> dict[str, str]:
        page = await self.call("stored_values", ("tenants", "acme"), limit=1000)
        return {v.key: v.value_json for v in page.values}

    async def close(self) -> None:
        if self.store is not None:
            await (
                self.store.aclose()
                if self.flavour == "async"
                else asyncio.to_thread(self.store.close)
            )
        await self.backend.cleanup()


@pytest.fixture
async def setup(
    backend_server: PgServer | RedisServer, flavour: str, tmp_path: Path
) -> AsyncIterator[Setup]:
    vault = FileKeyVault(tmp_path / "vault.json", Keyring({"m": b"m" * 32}, "m"))
    made = Setup(Backend(backend_server), flavour, vault)
    await made.open()
    yield made
    await made.close()


async def test_delete_refuses_while_data_remains_then_erases_and_shreds(setup: Setup) -> None:
    await setup.reg("create", "acme", encryption=True)
    await setup.reg("create", "globex", encryption=True)
    await setup.call("put", NS, "n1", {"text": "acme's secret"})
    await setup.call("put", NS, "n2", {"text": "more"})
    await setup.call("put", ("tenants", "globex", "notes"), "g", {"text": "globex stays"})
    await setup.add(await setup.history("chat-1"), "acme said something")
    old_ciphertext = (await setup.stored())["n1"]
    stores = [setup.store]  # where the items live (on PostgreSQL the schema is in reach too)
    with pytest.raises(
        TenantNotEmptyError, match=r"2 (or more )?store items, 1 chat conversations, live"
    ):
        await setup.reg("delete", "acme", stores=stores)
    assert (await setup.reg("get", "acme")).id == "acme" and len(await setup.stored()) == 2
    assert not setup.vault.keys("acme").shredded  # type: ignore[union-attr]

    await setup.reg("delete", "acme", erase=True, stores=stores)
    with pytest.raises(TenantNotFoundError):
        await setup.reg("get", "acme")
    assert await setup.stored() == {}
    assert setup.vault.keys("acme").shredded  # type: ignore[union-attr]
    assert await setup.messages(await setup.history("chat-1")) == []  # erased, not just shredded
    assert await setup.call("get", ("tenants", "globex", "notes"), "g") is not None

    # The same id again: new keys; the old ciphertext, put back, does not open.
    await setup.reg("create", "acme", encryption=True)
    await setup.call("put", NS, "n1", {"text": "the new acme"})
    current = (await setup.stored())["n1"]
    replaced = await setup.call(
        "replace_stored_values", [Replacement("tenants.acme.notes", "n1", current, old_ciphertext)]
    )
    assert replaced == 1
    with pytest.raises(DecryptionError, match="data key it does not have"):
        await setup.call("get", NS, "n1")
    assert json.loads(old_ciphertext).keys() == {"__sealed__"}


async def test_a_tenant_without_data_or_keys_just_goes(setup: Setup) -> None:
    await setup.reg("create", "acme")
    with pytest.raises(TenantNotEmptyError, match="live data keys"):
        await setup.reg("delete", "acme")
    await setup.reg("shred", "acme")
    await setup.reg("delete", "acme")
    with pytest.raises(TenantNotFoundError):
        await setup.reg("delete", "acme")


def test_registry_twins_match() -> None:
    def params(fn: Any) -> list[tuple[str, Any]]:
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    for name in ("create", "update", "shred", "delete"):
        assert params(getattr(TenantRegistry, name)) == params(getattr(TenantRegistry, "a" + name))
        assert inspect.iscoroutinefunction(getattr(TenantRegistry, "a" + name))


async def test_a_registry_without_a_vault_erases_but_cannot_shred(
    backend_server: PgServer | RedisServer, flavour: str
) -> None:
    made = Setup(Backend(backend_server), flavour, None)
    try:
        await made.open()
        await made.reg("create", "acme")
        await made.call("put", NS, "n1", {"text": "clear"})
        with pytest.raises(TenantNotEmptyError, match="store items"):
            await made.reg("delete", "acme", stores=[made.store])
        with pytest.raises(ConfigurationError, match="has no key vault"):
            await made.reg("shred", "acme")
        await made.reg("delete", "acme", erase=True, stores=[made.store])
        assert await made.stored() == {}
    finally:
        await made.close()
