"""The file key vault: wrapped keys bound to their place, atomic rewrites, several processes."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from langmem_prod.errors import (
    ConfigurationError,
    DecryptionError,
    InvalidInputError,
    KeyShreddedError,
    TenantNotFoundError,
)
from langmem_prod.security import FileKeyVault, Keyring

MASTER = bytes(range(32))


def vault_at(path: Path) -> FileKeyVault:
    return FileKeyVault(path, Keyring({"m1": MASTER}, "m1"))


def forms(key: bytes) -> list[bytes]:
    """The ways a key could appear in a text file."""
    return [key, base64.b64encode(key), key.hex().encode(), base64.urlsafe_b64encode(key)]


def test_the_file_holds_wrapped_keys_only(tmp_path: Path) -> None:
    vault = vault_at(tmp_path / "vault.json")
    keys = vault.create("acme")
    vault.rotate("acme")
    data = (tmp_path / "vault.json").read_bytes()
    for key in vault.keys("acme").keys.values():  # type: ignore[union-attr]
        assert not any(form in data for form in forms(key))
    assert keys.current is not None and keys.current.encode() in data  # ids are not secret
    assert stat.S_IMODE((tmp_path / "vault.json").stat().st_mode) == 0o600


def edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_text())
    change(doc["tenants"])
    path.write_text(json.dumps(doc))


def test_a_wrapped_key_moved_or_a_flag_edited_does_not_unwrap(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    vault = vault_at(path)
    vault.create("acme", enforced=True)
    vault.create("globex")

    def moved(tenants: dict[str, Any]) -> None:  # globex's entry now carries acme's key
        acme, globex = tenants["acme"], tenants["globex"]
        globex["keys"] = {globex["current"]: acme["keys"][acme["current"]]}

    edit(path, moved)
    with pytest.raises(DecryptionError, match="moved to another tenant or key id"):
        vault_at(path).keys("globex")

    def relaxed(tenants: dict[str, Any]) -> None:  # a downgrade attempt in the file
        tenants["acme"]["enforced"] = False

    edit(path, relaxed)
    with pytest.raises(DecryptionError, match="failed authentication"):
        vault_at(path).keys("acme")


def test_destroy_leaves_a_tombstone_and_only_replace_makes_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    vault = vault_at(path)
    first = vault.create("acme")
    with pytest.raises(InvalidInputError, match="already has an entry"):
        vault.create("acme")
    old_key = first.keys[first.current]  # type: ignore[index]
    vault.destroy("acme")
    assert not any(form in path.read_bytes() for form in forms(old_key))
    gone = vault.keys("acme")
    assert gone is not None and gone.shredded and not gone.keys
    with pytest.raises(KeyShreddedError):
        vault.rotate("acme")
    with pytest.raises(InvalidInputError, match="already has an entry"):
        vault.create("acme")  # a shredded tenant does not quietly come back
    again = vault.create("acme", replace=True)
    assert again.current != first.current and again.keys[again.current] != old_key  # type: ignore[index]
    with pytest.raises(TenantNotFoundError):
        vault.rotate("nobody")


def test_another_reader_sees_every_change_at_once(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    writer, reader = vault_at(path), vault_at(path)
    writer.create("acme")
    for _ in range(300):  # rapid rewrites: inode numbers and mtimes could repeat
        current = writer.rotate("acme").current
        assert reader.keys("acme").current == current  # type: ignore[union-attr]
    writer.destroy("acme")
    assert reader.keys("acme").shredded  # type: ignore[union-attr]


def test_a_failed_write_leaves_the_old_file_and_no_litter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "vault.json"
    vault = vault_at(path)
    vault.create("acme")
    before = path.read_bytes()

    def broken(src: str, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        vault.destroy("acme")
    monkeypatch.undo()
    assert path.read_bytes() == before and not vault.keys("acme").shredded  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vault.json", "vault.json.lock"]


def test_writes_are_synced_file_then_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = vault_at(tmp_path / "vault.json")
    synced: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    vault.create("acme")
    vault.destroy("acme")
    assert synced == ["file", "folder", "file", "folder"]


def test_a_damaged_file_is_reported_without_its_content(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    path.write_text('{"secret-looking": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}')
    with pytest.raises(ConfigurationError, match="not a langmem_prod key vault") as caught:
        vault_at(path).keys("acme")
    assert "AAAAAAAA" not in str(caught.value)


def _worker(path: str, prefix: str, count: int) -> None:
    vault = vault_at(Path(path))
    for n in range(count):
        vault.create(f"{prefix}{n}")
        vault.rotate(f"{prefix}{n}")


def test_several_processes_share_one_vault(tmp_path: Path) -> None:
    path = tmp_path / "vault.json"
    vault_at(path).create("shared")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_worker, args=(str(path), f"p{i}-", 15)) for i in range(3)]
    for worker in workers:
        worker.start()
    local = vault_at(path)
    for _ in range(15):
        local.rotate("shared")
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    final = vault_at(path)
    assert len(final.tenants()) == 1 + 3 * 15  # no process lost another's change
    assert all(len(final.keys(t).keys) == 2 for t in final.tenants() if t != "shared")  # type: ignore[union-attr]
    assert len(final.keys("shared").keys) == 16  # type: ignore[union-attr]
