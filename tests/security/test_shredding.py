"""Crypto-shredding is final: after `shred`, nothing the database ever held opens the data.

The attacker of these tests has every byte the database holds for the schema or key
prefix, read below SQL: every raw heap page of every table (and TOAST table) with
pageinspect, dead row versions included, on the embedded PostgreSQL 18; every key under
the prefix on Redis; and the WAL files. They also have every key this process still
holds: the master keys, the vault's remaining data keys and its cache. From the raw
bytes they take every 32-byte window (and every 32-byte window of every base64 string
decoded) as a candidate data key, and also as a salt under each master key in the
HKDF scheme of earlier builds. Nothing opens a shredded tenant's ciphertext.

`test_the_attack_breaks_the_salt_design` runs the same attack on the design this
replaced (a salt in the registry row, set to NULL by `shred`): the salt survives in a
dead row version and opens the data, so the scan is able to fail.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from langchain_core.messages import AIMessage, HumanMessage
from psycopg_pool import ConnectionPool

from langmem_prod import (
    PostgresChatMessageHistory,
    PostgresStore,
    RedisChatMessageHistory,
    RedisStore,
)
from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis
from langmem_prod.errors import KeyShreddedError
from langmem_prod.security import EncryptionCodec, Envelope, FileKeyVault, Keyring
from langmem_prod.security.envelope import split
from langmem_prod.store.redis._driver import close_client
from langmem_prod.tenancy import PostgresTenantRegistry, RedisTenantRegistry, TenantEncryption
from langmem_prod.tenancy.encryption import aad, sealed_blob
from tests.conftest import drop_schema, new_schema

MASTER = os.urandom(32)
NS = ("tenants", "acme", "notes")
SESSION = "chat-1"
_B64 = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")
_LEGACY_INFO = b"langmem_prod/v1/data-key/"


@dataclass(frozen=True)
class Sealed:
    """One ciphertext the attacker wants to open, with the associated data they know."""

    key_id: str
    nonce: bytes
    body: bytes
    aad: bytes


def sealed_of(blob: bytes, associated: bytes) -> Sealed:
    key_id, head, nonce, body = split(blob)
    return Sealed(key_id, nonce, body, head + associated)


def opens(key: bytes, target: Sealed) -> bool:
    try:
        AESGCM(key).decrypt(target.nonce, target.body, target.aad)
    except InvalidTag:
        return False
    return True


def candidates(raw: bytes) -> set[bytes]:
    """Every 32-byte window of the raw bytes and of every base64 string in them."""
    found = {raw[i : i + 32] for i in range(len(raw) - 31)}
    for token in _B64.findall(raw):
        try:
            decoded = base64.b64decode(token + b"=" * (-len(token) % 4))
        except ValueError:
            continue
        found |= {decoded[i : i + 32] for i in range(len(decoded) - 31)}
    return found


def legacy_key(master: bytes, salt: bytes, tenant: str) -> bytes:
    """The data key of the replaced design: HKDF(master, salt, info=tenant)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=salt, info=_LEGACY_INFO + tenant.encode()
    ).derive(master)


def attack(
    targets: list[Sealed], raw: bytes, held: Iterable[bytes], masters: Iterable[bytes], tenant: str
) -> list[str]:
    """Every way the attacker opened a target (empty: nothing opened)."""
    # Every target of a tenant is sealed with one of few keys: one target per key id.
    one_per_key = list({t.key_id: t for t in targets}.values())
    found: list[str] = []
    held, masters = list(held), list(masters)
    for key in held:
        found += [f"held key opens {t.key_id}" for t in one_per_key if opens(key, t)]
    for window in candidates(raw):
        for t in one_per_key:
            if opens(window, t):
                found.append(f"a stored window is the key of {t.key_id}")
            for master in masters:
                if opens(legacy_key(master, window, tenant), t):
                    found.append(f"a stored window is a salt for {t.key_id}")
    return found


def key_forms(keys: Iterable[bytes]) -> list[bytes]:
    return [
        form
        for key in keys
        for form in (key, base64.b64encode(key), key.hex().encode(), base64.urlsafe_b64encode(key))
    ]


# -- PostgreSQL -------------------------------------------------------------------------


def heap_bytes(conn: psycopg.Connection[Any], schema: str) -> tuple[bytes, int]:
    """Every raw page of every table and TOAST table of `schema`, and the dead tuples seen."""
    conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
    relations = conn.execute(
        "SELECT c.oid::regclass::text, t.oid::regclass::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "LEFT JOIN pg_class t ON t.oid = c.reltoastrelid "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
        (schema,),
    ).fetchall()
    names = [name for pair in relations for name in pair if name]
    pages, dead = [], 0
    for name in names:
        blocks = conn.execute("SELECT pg_relation_size(%s::regclass) / 8192", (name,)).fetchone()
        for block in range(int(blocks[0]) if blocks else 0):
            (page,) = conn.execute("SELECT get_raw_page(%s, %s)", (name, block)).fetchone()  # type: ignore[misc]
            pages.append(bytes(page))
            (count,) = conn.execute(
                "SELECT count(*) FROM heap_page_items(%s) WHERE t_xmax <> 0", (page,)
            ).fetchone()  # type: ignore[misc]
            dead += int(count)
    return b"".join(pages), dead


def wal_bytes(server: EmbeddedPostgres) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((server.data / "pg_wal").glob("0*")))


@pytest.fixture
def pg_world(embedded_pg: EmbeddedPostgres, tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    schema = new_schema()
    vault = FileKeyVault(tmp_path / "vault.json", Keyring({"m1": MASTER}, "m1"))
    with ConnectionPool(embedded_pg.url, kwargs={"autocommit": True}, open=True) as pool:
        registry = PostgresTenantRegistry(pool, schema=schema, vault=vault)
        registry.setup()
        encryption = TenantEncryption(vault, registry, plaintext_fields=["kind"])
        with PostgresStore(pool, schema=schema, values=encryption, start_sweeper=False) as store:
            store.setup()
            yield pool, schema, vault, registry, store
    drop_schema(embedded_pg.url, schema)


def pg_targets(conn: psycopg.Connection[Any], schema: str) -> list[Sealed]:
    """acme's ciphertexts, read from the live rows as the attacker would."""
    rows = conn.execute(
        f'SELECT prefix, key, value, updated_at FROM "{schema}".items WHERE tenant = %s',
        ("acme",),
    ).fetchall()
    targets = []
    for prefix, key, value, updated_at in rows:
        blob = sealed_blob(value)
        assert blob is not None
        targets.append(sealed_of(blob, aad("acme", tuple(prefix.split(".")), key, updated_at)))
    context = f"history\x00acme\x00{SESSION}".encode()
    messages = conn.execute(
        f'SELECT message FROM "{schema}".chat_messages WHERE tenant_id = %s', ("acme",)
    ).fetchall()
    targets += [sealed_of(bytes(m), context) for (m,) in messages]
    assert len(targets) >= 6
    return targets


def fill(registry: Any, store: Any, history: Any) -> None:
    """acme writes, rewrites and chats; its registry row changes a few times."""
    registry.create("acme", plan="pro", encryption=True)
    registry.create("globex", plan="pro", encryption=True)
    for n in range(4):
        store.put(NS, f"n{n}", {"kind": "note", "text": f"acme secret {n}: 4711"})
    store.put(NS, "n0", {"kind": "note", "text": "acme secret 0, rewritten"})
    store.put(("tenants", "globex", "notes"), "g", {"kind": "note", "text": "globex data"})
    for name in ("Acme", "Acme Inc", "Acme Holding"):
        registry.update("acme", name=name)
    history.add_messages([HumanMessage("my PIN is 4242"), AIMessage("noted")])
    history.add_messages([HumanMessage("and my IBAN is DE89 3704 0044 0532 0130 00")])


def held_keys(vault: FileKeyVault) -> list[bytes]:
    """Every key this process still holds: masters, every data key left, the vault's cache."""
    remaining = [k for t in vault.tenants() for k in (vault.keys(t).keys.values())]  # type: ignore[union-attr]
    cached = [k for keys in vault._unwrapped.values() for k in keys.keys.values()]
    return [MASTER, *remaining, *cached]


def test_nothing_postgres_held_opens_a_shredded_tenant(
    pg_world: tuple[Any, ...], embedded_pg: EmbeddedPostgres
) -> None:
    pool, schema, vault, registry, store = pg_world
    codec = EncryptionCodec(Envelope(vault), "acme")
    history = PostgresChatMessageHistory(
        SESSION, pool, schema=schema, tenant_id="acme", codec=codec
    )
    history.setup()
    fill(registry, store, history)
    acme_keys = list(vault.keys("acme").keys.values())  # type: ignore[union-attr]
    with pool.connection() as conn:
        targets = pg_targets(conn, schema)
        raw_before, _ = heap_bytes(conn, schema)
    # Positive control: the attack opens everything with the right key in hand.
    assert attack(targets, b"", acme_keys, [], "acme")

    registry.shred("acme")
    with pytest.raises(KeyShreddedError):
        store.get(NS, "n1")
    with pytest.raises(KeyShreddedError):
        history.get_messages()
    assert store.get(("tenants", "globex", "notes"), "g").value["text"] == "globex data"

    with psycopg.connect(embedded_pg.url, autocommit=True) as conn:
        conn.execute("SELECT pg_switch_wal()")  # the WAL written so far reaches its files
        raw, dead = heap_bytes(conn, schema)
    assert dead > 0  # the scan does see old row versions (the rewritten note, the renames)
    assert b"Acme Inc" in raw  # and the bytes of a dead tuple of the registry row
    vault_file = vault.path.read_bytes()  # the vault as it is now is the attacker's too
    everything = raw + raw_before + vault_file
    assert attack(targets, everything, held_keys(vault), [MASTER], "acme") == []
    # The data keys never reached the database: not in a heap page, not in the WAL.
    wal = wal_bytes(embedded_pg)
    assert not any(form in raw + raw_before + wal for form in key_forms(acme_keys))


def test_the_attack_breaks_the_salt_design(embedded_pg: EmbeddedPostgres) -> None:
    """The design this replaced: the registry's salt, set to NULL by shred, survives."""
    schema = new_schema()
    salt, nonce = os.urandom(32), os.urandom(12)
    body = AESGCM(legacy_key(MASTER, salt, "acme")).encrypt(nonce, b"acme secret", b"aad")
    target = Sealed("legacy", nonce, body, b"aad")
    try:
        with psycopg.connect(embedded_pg.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
            conn.execute(f'CREATE TABLE "{schema}".tenants (id text PRIMARY KEY, salt bytea)')
            conn.execute(f'INSERT INTO "{schema}".tenants VALUES (%s, %s)', ("acme", salt))
            conn.execute(f"UPDATE \"{schema}\".tenants SET salt = NULL WHERE id = 'acme'")
            assert conn.execute(f'SELECT salt FROM "{schema}".tenants').fetchone() == (None,)
            raw, dead = heap_bytes(conn, schema)
        assert dead == 1
        assert attack([target], raw, [], [MASTER], "acme") == [
            "a stored window is a salt for legacy"
        ]
    finally:
        drop_schema(embedded_pg.url, schema)


# -- Redis ------------------------------------------------------------------------------


def redis_bytes(client: Any, prefix: str) -> bytes:
    parts: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = client.type(key)
        if kind == b"string":
            parts += [key, client.get(key) or b""]
        elif kind == b"hash":
            parts += [key, *(x for kv in client.hgetall(key).items() for x in kv)]
        elif kind == b"zset":
            parts += [key, *client.zrange(key, 0, -1)]
        elif kind == b"list":
            parts += [key, *client.lrange(key, 0, -1)]
        elif kind == b"set":
            parts += [key, *client.smembers(key)]
    return b"\n".join(parts)


def test_nothing_redis_held_opens_a_shredded_tenant(
    embedded_valkey: EmbeddedRedis, tmp_path: Path
) -> None:
    prefix = new_schema()
    vault = FileKeyVault(tmp_path / "vault.json", Keyring({"m1": MASTER}, "m1"))
    client = redis.Redis.from_url(embedded_valkey.url)
    registry = RedisTenantRegistry(client, prefix=prefix, vault=vault, history_prefix=prefix)
    encryption = TenantEncryption(vault, registry, plaintext_fields=["kind"])
    store = RedisStore(client, prefix=prefix, values=encryption, start_sweeper=False)
    codec = EncryptionCodec(Envelope(vault), "acme")
    history = RedisChatMessageHistory(SESSION, client, prefix=prefix, tenant_id="acme", codec=codec)
    try:
        store.setup()
        fill(registry, store, history)
        acme_keys = list(vault.keys("acme").keys.values())  # type: ignore[union-attr]
        page = store.stored_values(("tenants", "acme"), limit=100)
        targets = [
            sealed_of(
                sealed_blob(json.loads(v.value_json)),  # type: ignore[arg-type]
                aad("acme", tuple(v.prefix.split(".")), v.key, v.updated_at),
            )
            for v in page.values
        ]
        context = f"history\x00acme\x00{SESSION}".encode()
        messages = client.lrange(f"{prefix}:{{acme\x00{SESSION}}}:m", 0, -1)
        targets += [sealed_of(m, context) for m in messages]
        assert len(targets) == 7 and attack(targets, b"", acme_keys, [], "acme")

        registry.shred("acme")
        with pytest.raises(KeyShreddedError):
            store.get(NS, "n1")
        with pytest.raises(KeyShreddedError):
            history.get_messages()
        raw = redis_bytes(client, prefix)
        assert b"Acme Holding" in raw and len(raw) > 1000
        everything = raw + vault.path.read_bytes()
        assert attack(targets, everything, held_keys(vault), [MASTER], "acme") == []
        assert not any(form in raw for form in key_forms(acme_keys))
    finally:
        store.close()
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
        close_client(client)
