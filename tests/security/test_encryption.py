"""Encryption at rest: AES-256-GCM bound to its owner, data-key rotation, crypto-shredding."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from langmem_prod.errors import ConfigurationError, DecryptionError, KeyShreddedError
from langmem_prod.security import Envelope, FileKeyVault, Keyring, new_master_key, owner
from langmem_prod.security.envelope import split


@pytest.fixture
def vault(tmp_path: Path) -> FileKeyVault:
    made = FileKeyVault(tmp_path / "vault.json", Keyring({"k1": os.urandom(32)}, "k1"))
    made.create("acme")
    made.create("globex")
    return made


def test_a_ciphertext_opens_only_for_its_owner(vault: FileKeyVault) -> None:
    env = Envelope(vault)
    sealed = env.seal("acme", b"allergic to peanuts", owner("acme", "memories", "m1"))
    assert b"peanuts" not in sealed and split(sealed)[0] == vault.keys("acme").current  # type: ignore[union-attr]
    assert env.open("acme", sealed, owner("acme", "memories", "m1")) == b"allergic to peanuts"
    for tenant, aad in [
        ("acme", owner("acme", "memories", "m2")),  # copied to another key
        ("acme", owner("acme", "other", "m1")),  # another namespace
    ]:
        with pytest.raises(DecryptionError, match="does not belong"):
            env.open(tenant, sealed, aad)
    with pytest.raises(DecryptionError, match="data key it does not have"):
        env.open("globex", sealed, owner("globex", "memories", "m1"))  # another tenant's key
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError, match="altered"):
        env.open("acme", tampered, owner("acme", "memories", "m1"))
    head_edited = bytes([sealed[0], sealed[1]]) + sealed[2:].replace(b"v1-", b"v2-", 1)
    with pytest.raises(DecryptionError):
        env.open("acme", head_edited, owner("acme", "memories", "m1"))
    with pytest.raises(DecryptionError, match="sealed by an earlier langmem_prod"):
        env.open("acme", b"\x01\x02k1" + bytes(40), owner("acme", "memories", "m1"))
    with pytest.raises(DecryptionError, match="not a langmem_prod ciphertext"):
        env.open("acme", b'{"plain": true}', owner("acme", "memories", "m1"))


def test_data_key_rotation_keeps_old_data_readable_until_retired(vault: FileKeyVault) -> None:
    env = Envelope(vault)
    sealed = env.seal("acme", b"v", b"aad")
    old = vault.keys("acme").current  # type: ignore[union-attr]
    new = vault.rotate("acme").current
    assert new != old and env.needs_rotation("acme", sealed)
    assert env.open("acme", sealed, b"aad") == b"v"
    resealed = env.seal("acme", env.open("acme", sealed, b"aad"), b"aad")
    assert not env.needs_rotation("acme", resealed) and split(resealed)[0] == new
    with pytest.raises(Exception, match="cannot retire the current data key"):
        vault.retire("acme", new)  # type: ignore[arg-type]
    vault.retire("acme", old)  # type: ignore[arg-type]
    assert env.open("acme", resealed, b"aad") == b"v"
    with pytest.raises(DecryptionError, match="data key it does not have"):
        env.open("acme", sealed, b"aad")


def test_master_key_rotation_rewraps_the_vault_not_the_data(tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    path = tmp_path / "vault.json"
    before = FileKeyVault(path, Keyring({"2026-01": old}, "2026-01"))
    before.create("acme")
    sealed = Envelope(before).seal("acme", b"v", b"aad")
    during = FileKeyVault(path, Keyring({"2026-01": old, "2026-06": new}, "2026-06"))
    assert during.rewrap() == 1 and during.rewrap() == 0
    after = FileKeyVault(path, Keyring({"2026-06": new}, "2026-06"))
    assert Envelope(after).open("acme", sealed, b"aad") == b"v"  # the data never changed
    with pytest.raises(DecryptionError, match="master key '2026-06', which is not in"):
        FileKeyVault(path, Keyring({"2026-01": old}, "2026-01")).keys("acme")


def test_crypto_shredding_makes_one_tenant_unreadable(vault: FileKeyVault) -> None:
    env = Envelope(vault)
    a, g = env.seal("acme", b"a", b"x"), env.seal("globex", b"g", b"x")
    vault.destroy("acme")
    with pytest.raises(KeyShreddedError, match="crypto-shredded"):
        env.open("acme", a, b"x")
    with pytest.raises(KeyShreddedError):
        env.seal("acme", b"new", b"x")
    assert env.open("globex", g, b"x") == b"g"
    with pytest.raises(ConfigurationError, match="no data key"):
        env.seal("initech", b"x", b"x")  # never created


def test_keyrings_from_the_environment() -> None:
    key = new_master_key()
    ring = Keyring.from_env(
        {
            "LANGMEM_MASTER_KEYS": f"old:{new_master_key()}, new:{key}",
            "LANGMEM_PRIMARY_KEY_ID": "new",
        }
    )
    assert ring.primary_id == "new" and "old" in ring and ring.ids == ["new", "old"]
    assert Keyring.from_provider(lambda: {"kms": base64.b64decode(key)}, "kms").primary_id == "kms"
    for bad, message in [
        ({}, "is empty"),
        ({"LANGMEM_MASTER_KEYS": "k:not base64!"}, "not valid base64"),
        (
            {"LANGMEM_MASTER_KEYS": f"k:{base64.b64encode(b'short').decode()}"},
            "use 32 random bytes",
        ),
        ({"LANGMEM_MASTER_KEYS": f"k:{key}", "LANGMEM_PRIMARY_KEY_ID": "x"}, "not one of"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            Keyring.from_env(bad)
