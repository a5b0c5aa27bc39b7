"""The key vault: where each tenant's random data keys live, outside the database.

Rules:
- every tenant has its own random 32-byte data keys, named by key ids that are unique
  across tenants and re-creations ("v<version>-<random>"); one is current (new data is
  sealed with it), the others only open older data;
- data keys never reach the database: the database holds ciphertexts naming a key id,
  so no copy of the database (heap, dead row versions, WAL, replicas, backups) holds
  anything that opens them once the vault has destroyed the tenant's keys;
- `destroy` (crypto-shredding) removes every key of a tenant and leaves a tombstone, so
  the tenant's data is then refused with `KeyShreddedError`, and no key can be made
  for it again by mistake; only `create(..., replace=True)` (a tenant registered anew)
  gives the id fresh keys, which open none of the old ciphertexts;
- `enforced` records, outside the database, that every value of the tenant must be
  sealed: a value found in clear is then refused on read, and a database writer can
  neither turn it off nor downgrade the tenant to clear text;
- `rotate` makes a new current data key (a rotation job re-seals data under it) and
  `retire` drops an old one once nothing is sealed under it; `rewrap` re-wraps every
  data key under the keyring's primary master key (master-key rotation never touches
  the data);
- `keys` is on the hot path (every seal and open): an implementation answers from
  memory and notices changes (the file vault compares the file's identity; a KMS
  adapter keeps a short cache). It is synchronous: async code calls the writing
  methods in a worker thread.

A KMS plugs in here: implement this protocol, e.g. `create` as the KMS's "generate data
key" kept wrapped under a per-tenant KMS key, `keys` as a cached "decrypt", `destroy`
as deleting the wrapped keys and scheduling the deletion of the tenant's KMS key.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


def new_key_id(version: int) -> str:
    """A data key id: its version and a random part (unique across re-created tenants).

    >>> new_key_id(3).startswith("v3-")
    True
    """
    return f"v{version}-{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class TenantKeys:
    r"""A tenant's data keys as the vault holds them now (`repr` shows ids only).

    Example:
        >>> keys = TenantKeys("acme", "v2-aa", {"v1-bb": bytes(32), "v2-aa": bytes(32)})
        >>> keys.current, keys.shredded, sorted(keys.keys)
        ('v2-aa', False, ['v1-bb', 'v2-aa'])
        >>> "\\x00" in repr(keys)
        False
    """

    tenant: str
    current: str | None
    keys: Mapping[str, bytes] = field(repr=False)
    enforced: bool = False

    @property
    def shredded(self) -> bool:
        """Whether the tenant's keys were destroyed (crypto-shredded)."""
        return self.current is None

    @property
    def key_ids(self) -> list[str]:
        """The ids of the tenant's data keys, sorted."""
        return sorted(self.keys)


@runtime_checkable
class KeyVault(Protocol):
    """Creates, serves, rotates and destroys the tenants' data keys.

    Example:
        >>> import tempfile, pathlib
        >>> from langmem_prod.security import FileKeyVault, Keyring
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vault.json"
        >>> vault = FileKeyVault(path, Keyring({"m": bytes(32)}, "m"))
        >>> isinstance(vault, KeyVault)
        True
    """

    def keys(self, tenant: str) -> TenantKeys | None:
        """The tenant's keys (a shredded tenant has none and no current), or None if unknown."""
        ...

    def create(self, tenant: str, *, enforced: bool = False, replace: bool = False) -> TenantKeys:
        """Give a tenant its first data key (refused if it has keys, unless `replace`)."""
        ...

    def rotate(self, tenant: str) -> TenantKeys:
        """Add a new current data key; the older ones keep opening older data."""
        ...

    def retire(self, tenant: str, key_id: str) -> TenantKeys:
        """Destroy one old data key (never the current one): what it sealed is lost."""
        ...

    def enforce(self, tenant: str, enforced: bool) -> TenantKeys:
        """Record whether every value of the tenant must be sealed."""
        ...

    def destroy(self, tenant: str) -> None:
        """Crypto-shred: destroy every data key of the tenant, leaving a tombstone."""
        ...

    def rewrap(self) -> int:
        """Re-wrap every data key under the primary master key; returns how many were."""
        ...
