"""Encryption at rest: keyring, AES-256-GCM bound to its owner, rotation, crypto-shredding."""

from __future__ import annotations

import base64
import os

import pytest

from langmem_prod.errors import ConfigurationError, DecryptionError, KeyShreddedError
from langmem_prod.security import Envelope, Keyring, new_master_key, owner
from langmem_prod.security.envelope import split

SALTS = {"acme": os.urandom(32), "globex": os.urandom(32)}


def envelope(primary: str = "k1", **keys: bytes) -> Envelope:
    keys = keys or {"k1": os.urandom(32)}
    return Envelope(Keyring(keys, primary), SALTS.get)


def test_a_ciphertext_opens_only_for_its_owner() -> None:
    env = envelope()
    sealed = env.seal("acme", b"allergic to peanuts", owner("acme", "memories", "m1"))
    assert b"peanuts" not in sealed and split(sealed)[0] == "k1"
    assert env.open("acme", sealed, owner("acme", "memories", "m1")) == b"allergic to peanuts"
    for tenant, aad in [
        ("acme", owner("acme", "memories", "m2")),  # copied to another key
        ("acme", owner("acme", "other", "m1")),  # another namespace
        ("globex", owner("globex", "memories", "m1")),  # another tenant (another data key)
    ]:
        with pytest.raises(DecryptionError, match="does not belong"):
            env.open(tenant, sealed, aad)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError, match="altered"):
        env.open("acme", tampered, owner("acme", "memories", "m1"))
    with pytest.raises(DecryptionError, match="not a langmem_prod ciphertext"):
        env.open("acme", b'{"plain": true}', owner("acme", "memories", "m1"))


def test_rotation_keeps_old_data_readable() -> None:
    old, new = os.urandom(32), os.urandom(32)
    before = envelope("2026-01", **{"2026-01": old})
    sealed = before.seal("acme", b"v", b"aad")
    after = envelope("2026-06", **{"2026-01": old, "2026-06": new})
    assert after.needs_rotation(sealed) and after.open("acme", sealed, b"aad") == b"v"
    resealed = after.seal("acme", after.open("acme", sealed, b"aad"), b"aad")
    assert not after.needs_rotation(resealed)
    retired = envelope("2026-06", **{"2026-06": new})
    assert retired.open("acme", resealed, b"aad") == b"v"
    with pytest.raises(DecryptionError, match="master key '2026-01', which is not in the keyring"):
        retired.open("acme", sealed, b"aad")


def test_crypto_shredding_makes_one_tenant_unreadable() -> None:
    salts = dict(SALTS)
    keyring = Keyring({"k1": os.urandom(32)}, "k1")
    env = Envelope(keyring, salts.get)
    a, g = env.seal("acme", b"a", b"x"), env.seal("globex", b"g", b"x")
    del salts["acme"]  # the registry destroys the tenant's salt
    keyring.forget("acme")
    with pytest.raises(KeyShreddedError, match="crypto-shredded"):
        env.open("acme", a, b"x")
    assert env.open("globex", g, b"x") == b"g"


def test_keyrings_from_the_environment() -> None:
    key = new_master_key()
    ring = Keyring.from_env(
        {
            "LANGMEM_MASTER_KEYS": f"old:{new_master_key()}, new:{key}",
            "LANGMEM_PRIMARY_KEY_ID": "new",
        }
    )
    assert ring.primary_id == "new" and "old" in ring
    assert Keyring.from_provider(lambda: {"kms": base64.b64decode(key)}, "kms").primary_id == "kms"
    for bad, message in [
        ({}, "is empty"),
        ({"LANGMEM_MASTER_KEYS": "k:not base64!"}, "not base64"),
        (
            {"LANGMEM_MASTER_KEYS": f"k:{base64.b64encode(b'short').decode()}"},
            "use 32 random bytes",
        ),
        ({"LANGMEM_MASTER_KEYS": f"k:{key}", "LANGMEM_PRIMARY_KEY_ID": "x"}, "not in the keyring"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            Keyring.from_env(bad)
