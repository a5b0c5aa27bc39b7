"""The tenant registry on every backend: plans and overrides, status, vault keys, shredding."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from langmem_prod.errors import (
    ConfigurationError,
    InvalidInputError,
    KeyShreddedError,
    TenantExistsError,
    TenantNotEmptyError,
    TenantNotFoundError,
)
from langmem_prod.security import Envelope, FileKeyVault, Keyring, new_master_key
from langmem_prod.tenancy import PostgresTenantRegistry, RedisTenantRegistry, TenantRegistry
from tests.backends import Backend
from tests.conftest import PgServer, RedisServer


@pytest.fixture
async def registry(
    backend_server: PgServer | RedisServer, flavour: str, tmp_path: Path
) -> AsyncIterator[tuple[TenantRegistry, str]]:
    backend = Backend(backend_server)
    place = backend.place()
    keyring = Keyring.from_env({"LANGMEM_MASTER_KEYS": f"k1:{new_master_key()}"})
    vault = FileKeyVault(tmp_path / "vault.json", keyring)
    if backend.kind == "postgres":
        made: TenantRegistry = PostgresTenantRegistry(
            await backend._pg_source(flavour), schema=place, vault=vault
        )
    else:
        made = RedisTenantRegistry(
            backend._redis_client(flavour), prefix=place, vault=vault, history_prefix=place
        )
    if flavour == "async":
        await made.asetup()
    else:
        await asyncio.to_thread(made.setup)
    yield made, flavour
    await backend.cleanup()


async def call(subject: tuple[TenantRegistry, str], method: str, *args: Any, **kwargs: Any) -> Any:
    registry, flavour = subject
    if flavour == "async" and hasattr(registry, "a" + method):
        return await getattr(registry, "a" + method)(*args, **kwargs)
    if flavour == "async":
        pytest.skip(f"{method} has no async twin yet")
    return await asyncio.to_thread(getattr(registry, method), *args, **kwargs)


async def test_plans_overrides_and_updates(registry: tuple[TenantRegistry, str]) -> None:
    acme = await call(
        registry,
        "create",
        "acme",
        name="Acme",
        plan="pro",
        max_items=500,
        allowed_agents=["support"],
    )
    assert (acme.max_items, acme.max_bytes, acme.isolation, acme.encryption) == (
        500,
        1 << 30,
        "moderate",
        True,
    )
    assert acme.allowed_agents == frozenset({"support"}) and acme.created_at is not None
    await call(registry, "create", "globex", residency="eu")
    got = await call(registry, "get", "acme")
    assert got.name == "Acme" and got.max_items == 500 and got.plan == "pro"
    changed = await call(
        registry, "update", "acme", isolation="strict", name="Acme Inc", plan="enterprise"
    )
    assert (
        changed.isolation == "strict"
        and changed.max_items == 500
        and changed.retention_days is None
    )
    assert [t.id for t in await call(registry, "list_tenants")] == ["acme", "globex"]
    assert (await call(registry, "get", "globex")).residency == "eu"


async def test_errors_name_what_is_wrong(registry: tuple[TenantRegistry, str]) -> None:
    await call(registry, "create", "acme")
    with pytest.raises(TenantExistsError, match="'acme' already exists"):
        await call(registry, "create", "acme")
    with pytest.raises(TenantNotFoundError, match="no tenant 'nope'"):
        await call(registry, "get", "nope")
    with pytest.raises(TenantNotFoundError):
        await call(registry, "update", "nope", name="x")
    with pytest.raises(InvalidInputError, match="a tenant id is"):
        await call(registry, "create", "bad.id")
    with pytest.raises(ConfigurationError, match="unknown plan"):
        await call(registry, "create", "x1", plan="platinum")
    with pytest.raises(ConfigurationError, match="unknown tenant settings"):
        await call(registry, "create", "x2", max_items_per_day=3)
    with pytest.raises(ConfigurationError, match="isolation must be one of"):
        await call(registry, "create", "x3", isolation="total")
    with pytest.raises(ConfigurationError, match="max_items must be an int from 0 to"):
        await call(registry, "create", "x4", max_items=2**63)  # past a bigint
    with pytest.raises(ConfigurationError, match="retention_days must be an int from 0 to"):
        await call(registry, "create", "x5", retention_days=10**9)
    assert [t.id for t in await call(registry, "list_tenants")] == ["acme"]  # nothing half-made


async def test_concurrent_creates_of_one_id_make_one_tenant(
    registry: tuple[TenantRegistry, str],
) -> None:
    reg, flavour = registry
    if flavour == "async":
        results = await asyncio.gather(
            *(reg.acreate("race") for _ in range(8)), return_exceptions=True
        )
    else:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(reg.create, "race") for _ in range(8)]
        results = [f.exception() or f.result() for f in futures]
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, TenantExistsError) for r in results if isinstance(r, Exception))


async def test_vault_keys_follow_the_tenant(registry: tuple[TenantRegistry, str]) -> None:
    reg, _ = registry
    assert reg.vault is not None
    await call(registry, "create", "acme", encryption=True)
    await call(registry, "create", "globex")
    acme, globex = reg.vault.keys("acme"), reg.vault.keys("globex")
    assert acme is not None and globex is not None
    assert acme.enforced and not globex.enforced and acme.current != globex.current
    envelope = Envelope(reg.vault)
    sealed = {t: envelope.seal(t, f"{t} secret".encode(), b"aad") for t in ("acme", "globex")}
    await call(registry, "shred", "acme")
    with pytest.raises(KeyShreddedError):
        envelope.open("acme", sealed["acme"], b"aad")
    assert envelope.open("globex", sealed["globex"], b"aad") == b"globex secret"
    assert (await call(registry, "get", "acme")).id == "acme"  # still registered
    with pytest.raises(TenantNotFoundError):
        await call(registry, "shred", "nope")
    await call(registry, "update", "acme", name="Acme")  # no key needed to rename
    with pytest.raises(TenantNotEmptyError, match="live data keys"):
        await call(registry, "delete", "globex")  # its keys are live: shred or erase first
    await call(registry, "delete", "acme")  # shredded and empty: it goes
    with pytest.raises(TenantNotFoundError):
        await call(registry, "get", "acme")
    # A tenant registered without a vault gets keys when it turns encryption on.
    vault, reg.vault = reg.vault, None
    await call(registry, "create", "initech")
    reg.vault = vault
    assert vault.keys("initech") is None
    await call(registry, "update", "initech", encryption=True)
    made = vault.keys("initech")
    assert made is not None and made.current is not None and not made.enforced
