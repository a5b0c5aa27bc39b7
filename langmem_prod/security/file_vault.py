"""A key vault in one local file: data keys wrapped under the master keyring.

Rules:
- the file is JSON: per tenant, its data keys, each wrapped (AES-256-GCM) under a master
  key of the keyring with associated data naming the format, the tenant, the key id and
  whether the tenant is enforced, so a wrapped key moved to another tenant or id, or an
  `enforced` flag edited in the file, fails to unwrap; the file holds no key in clear;
- every change is a whole new file: written beside the old one, fsynced, renamed over
  it, then the directory fsynced, so a crash leaves the old file or the new one, and a
  destroyed key is gone from the file the moment `destroy` returns (older copies of the
  file, on disk blocks or in backups, still hold it wrapped: see the README);
- several processes on one host may share the file: writers take an exclusive `flock`
  on `<file>.lock` and re-read the file before changing it; readers never lock: they
  keep the file they read open and re-read when the path names another file (a held
  file's inode cannot be reused, so a change is never missed); a vault shared by
  several hosts needs a KMS adapter instead;
- unwrapped keys are cached per file version, and dropped when the file changes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from langmem_prod.errors import (
    ConfigurationError,
    InvalidInputError,
    KeyShreddedError,
    TenantNotFoundError,
)
from langmem_prod.security.keys import KEY_BYTES, Keyring
from langmem_prod.security.vault import TenantKeys, new_key_id

FORMAT = "langmem_prod key vault 1"
Doc = dict[str, Any]
Entry = dict[str, Any]


def wrap_aad(tenant: str, key_id: str, enforced: bool) -> bytes:
    r"""The associated data of a wrapped data key.

    >>> wrap_aad("acme", "v1-00", True)
    b'langmem_prod key vault 1\x00acme\x00v1-00\x00enforced'
    """
    flag = "enforced" if enforced else "open"
    return "\x00".join((FORMAT, tenant, key_id, flag)).encode()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    fd: int | None
    ident: tuple[int, int] | None
    doc: Doc


def _empty() -> Doc:
    return {"format": FORMAT, "tenants": {}}


def _close(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def _read_fd(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(data: bytes) -> Doc:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigurationError(
            "the key vault file is not a langmem_prod key vault (damaged, or another file); "
            "restore it from its backup"
        )
    return doc


class FileKeyVault:
    """Tenants' data keys in a local file, wrapped under the master `keyring`.

    Example:
        >>> import tempfile, pathlib
        >>> from langmem_prod.security import Keyring
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vault.json"
        >>> vault = FileKeyVault(path, Keyring({"m1": bytes(32)}, "m1"))
        >>> first = vault.create("acme")
        >>> vault.rotate("acme").current != first.current, len(vault.keys("acme").keys)
        (True, 2)
        >>> vault.destroy("acme")
        >>> vault.keys("acme").shredded, "acme" in path.read_text(), vault.keys("globex")
        (True, True, None)
    """

    def __init__(self, path: str | os.PathLike[str], keyring: Keyring) -> None:
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ConfigurationError("the key vault's folder does not exist; create it first")
        self.keyring = keyring
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.RLock()
        self._snapshot = _Snapshot(None, None, _empty())
        self._unwrapped: dict[str, TenantKeys] = {}
        self._held: list[int | None] = [None]  # the open file, closed with the vault
        weakref.finalize(self, _close_held, self._held)

    def __repr__(self) -> str:
        return f"FileKeyVault({str(self.path)!r}, {self.keyring!r})"

    # -- reading ------------------------------------------------------------------------

    def _current(self) -> _Snapshot:
        """The file as it is now (re-read only when the path names another file)."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            if self._snapshot.ident is not None:
                self._install(_Snapshot(None, None, _empty()))
            return self._snapshot
        if self._snapshot.ident == (stat.st_dev, stat.st_ino):
            return self._snapshot
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            held = os.fstat(fd)
            doc = _parse(_read_fd(fd))
        except BaseException:
            os.close(fd)
            raise
        self._install(_Snapshot(fd, (held.st_dev, held.st_ino), doc))
        return self._snapshot

    def _install(self, snapshot: _Snapshot) -> None:
        old, self._snapshot = self._snapshot, snapshot
        self._held[0] = snapshot.fd
        self._unwrapped.clear()
        _close(old.fd)

    def keys(self, tenant: str) -> TenantKeys | None:
        """The tenant's keys, unwrapped (cached until the file changes), or None."""
        with self._mutex:
            snapshot = self._current()
            found = self._unwrapped.get(tenant)
            if found is not None:
                return found
            entry = snapshot.doc["tenants"].get(tenant)
            if entry is None:
                return None
            found = self._unwrap(tenant, entry)
            self._unwrapped[tenant] = found
            return found

    def _unwrap(self, tenant: str, entry: Entry) -> TenantKeys:
        enforced = bool(entry.get("enforced", False))
        keys = {}
        for key_id, (master_id, wrapped) in entry.get("keys", {}).items():
            try:
                blob = base64.b64decode(wrapped, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise ConfigurationError(
                    "the key vault file holds a wrapped key that is not base64 (damaged); "
                    "restore it from its backup"
                ) from None
            keys[key_id] = self.keyring.unwrap(master_id, blob, wrap_aad(tenant, key_id, enforced))
        return TenantKeys(tenant, entry.get("current"), keys, enforced)

    def tenants(self) -> list[str]:
        """The tenants the vault knows (shredded ones included), sorted."""
        with self._mutex:
            return sorted(self._current().doc["tenants"])

    # -- writing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Doc]:
        """The latest document, under the exclusive file lock; written back on success."""
        with self._mutex:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                doc = json.loads(json.dumps(self._current().doc))  # a private copy
                yield doc
                self._write(doc)
            finally:
                os.close(fd)  # releases the lock

    def _write(self, doc: Doc) -> None:
        data = json.dumps(doc, sort_keys=True, indent=1).encode()
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            try:
                os.fchmod(fd, 0o600)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        folder = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
        self._current()  # this process sees its own change at once

    def _change(self, tenant: str, change: Callable[[Entry | None], Entry]) -> TenantKeys:
        with self._locked() as doc:
            doc["tenants"][tenant] = change(doc["tenants"].get(tenant))
        found = self.keys(tenant)
        assert found is not None
        return found

    def _wrap(self, tenant: str, key_id: str, key: bytes, enforced: bool) -> list[str]:
        master_id, wrapped = self.keyring.wrap(key, wrap_aad(tenant, key_id, enforced))
        return [master_id, base64.b64encode(wrapped).decode()]

    def _live(self, tenant: str, entry: Entry | None) -> Entry:
        if entry is None:
            raise TenantNotFoundError(f"the key vault has no keys for tenant {tenant!r}")
        if entry.get("current") is None:
            raise KeyShreddedError(
                f"tenant {tenant!r}'s data keys were destroyed (crypto-shredded)"
            )
        return entry

    def _rewrapped(self, tenant: str, entry: Entry, enforced: bool) -> Entry:
        old = self._unwrap(tenant, entry)
        keys = {k: self._wrap(tenant, k, key, enforced) for k, key in old.keys.items()}
        return {**entry, "enforced": enforced, "keys": keys}

    def create(self, tenant: str, *, enforced: bool = False, replace: bool = False) -> TenantKeys:
        """Give `tenant` a first, random data key.

        Refused when the tenant has live keys, unless `replace` (then they are destroyed:
        a tenant registered anew never opens the data of an earlier one). A shredded
        tenant's tombstone is replaced only with `replace` too.
        """

        def change(entry: Entry | None) -> Entry:
            if entry is not None and not replace:
                raise InvalidInputError(
                    f"tenant {tenant!r} already has an entry in the key vault (live or "
                    "shredded); pass replace=True to give it fresh keys"
                )
            key_id = new_key_id(1)
            key = os.urandom(KEY_BYTES)
            return {
                "current": key_id,
                "enforced": enforced,
                "next": 2,
                "keys": {key_id: self._wrap(tenant, key_id, key, enforced)},
                "changed_at": _now(),
            }

        return self._change(tenant, change)

    def rotate(self, tenant: str) -> TenantKeys:
        """Add a new current data key for `tenant`; older keys keep opening older data."""

        def change(entry: Entry | None) -> Entry:
            live = self._live(tenant, entry)
            version = int(live.get("next", len(live["keys"]) + 1))
            key_id = new_key_id(version)
            wrapped = self._wrap(tenant, key_id, os.urandom(KEY_BYTES), bool(live["enforced"]))
            keys = {**live["keys"], key_id: wrapped}
            changed = {"current": key_id, "next": version + 1, "keys": keys}
            return {**live, **changed, "changed_at": _now()}

        return self._change(tenant, change)

    def retire(self, tenant: str, key_id: str) -> TenantKeys:
        """Destroy one old data key of `tenant`; what was sealed under it cannot be opened."""

        def change(entry: Entry | None) -> Entry:
            live = self._live(tenant, entry)
            if key_id == live["current"]:
                raise InvalidInputError(
                    "cannot retire the current data key; rotate first, re-seal, then retire"
                )
            if key_id not in live["keys"]:
                raise InvalidInputError(f"tenant {tenant!r} has no data key {key_id!r}")
            keys = {k: v for k, v in live["keys"].items() if k != key_id}
            return {**live, "keys": keys, "changed_at": _now()}

        return self._change(tenant, change)

    def enforce(self, tenant: str, enforced: bool) -> TenantKeys:
        """Record whether every value of `tenant` must be sealed (its keys are re-wrapped)."""

        def change(entry: Entry | None) -> Entry:
            live = self._live(tenant, entry)
            if bool(live["enforced"]) == enforced:
                return live
            return {**self._rewrapped(tenant, live, enforced), "changed_at": _now()}

        return self._change(tenant, change)

    def destroy(self, tenant: str) -> None:
        """Crypto-shred `tenant`: every data key is removed from the file (idempotent)."""
        with self._locked() as doc:
            doc["tenants"][tenant] = {"current": None, "keys": {}, "shredded_at": _now()}

    def rewrap(self) -> int:
        """Re-wrap every data key under the keyring's primary master key.

        Afterwards the other master keys can leave the keyring. Returns how many data
        keys were wrapped under another master key.
        """
        with self._locked() as doc:
            moved = 0
            for tenant, entry in doc["tenants"].items():
                others = [k for k, (m, _) in entry["keys"].items() if m != self.keyring.primary_id]
                if others:
                    moved += len(others)
                    doc["tenants"][tenant] = self._rewrapped(tenant, entry, entry["enforced"])
        return moved

    def close(self) -> None:
        """Release the file this vault holds open (it reopens it when used again)."""
        with self._mutex:
            self._install(_Snapshot(None, None, _empty()))


def _close_held(held: list[int | None]) -> None:
    _close(held[0])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
