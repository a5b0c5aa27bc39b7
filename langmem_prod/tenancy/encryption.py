"""Store values encrypted at rest, per tenant: the `ValueTransform` a store is built with.

Rules:
- a value under ("tenants", <id>, ...) of a tenant that encrypts is stored as
  {"__sealed__": base64 AES-256-GCM blob of the whole value, plus the declared
  `plaintext_fields` copied in clear}; other values are stored as they are; a tenant
  encrypts when its `encryption` setting is on or the key vault enforces it;
- the blob is bound to the tenant, the namespace, the key and the write time (the
  item's `updated_at`), and is checked against the row on read: a value copied to
  another item or tenant, or an older ciphertext of the same item put back over the
  current one, fails with `DecryptionError`. Replaying a whole old row (value and
  `updated_at` together) is not detected: that needs state outside the database;
- a caller's value holding the reserved field `__sealed__` is refused with
  `InvalidValueError` before anything is read or written, whatever the tenant;
- once the vault enforces a tenant (`registry.create(..., encryption=True)`, or a
  `rotate` that found nothing left in clear), a value of it found in clear is refused
  on read with `DecryptionError`: it was written around the store (a downgrade);
  turning encryption on for a tenant with data is a migration: values in clear still
  open until `rotate` has sealed them, and then the vault enforces the tenant;
- a sealed value opens whatever the tenant's setting is now (turning encryption off
  does not strand data);
- semantic search vectors are computed from the clear value, and embeddings can be
  inverted to the words they encode (a dictionary attack on a stored vector recovers a
  PIN): a put whose indexed fields are sealed is refused with `InvalidInputError`
  unless the tenant's `index_sealed` setting is on (every plan leaves it off), or the
  fields are `plaintext_fields`;
- what stays visible: namespaces, keys, timestamps, the size of values, the vectors of
  indexed fields, and the plaintext fields; a filter on any other field of an
  encrypting tenant's values is refused (the database cannot see it) instead of
  silently matching nothing;
- a tenant's settings are read from the registry at most every `refresh_seconds`; its
  keys come from the vault on every value, so `registry.shred(...)` takes effect at
  once in every process sharing the vault.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from langmem_prod.errors import (
    DecryptionError,
    InvalidInputError,
    InvalidValueError,
    TenantNotFoundError,
)
from langmem_prod.security.envelope import Envelope, owner
from langmem_prod.security.vault import KeyVault
from langmem_prod.store._namespace import encode_namespace
from langmem_prod.store._tenant import TENANT_ROOT, tenant_of
from langmem_prod.store._values import decode_value
from langmem_prod.tenancy.tenants import Tenant

SEALED = "__sealed__"
Namespace = tuple[str, ...]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class Registry(Protocol):
    """What encryption reads of a tenant registry (`tenancy.TenantRegistry` has it)."""

    @property
    def is_async(self) -> bool:
        """Whether the a-methods are the ones that work."""
        ...

    def get(self, tenant_id: str) -> Tenant:
        """The tenant."""
        ...

    async def aget(self, tenant_id: str) -> Tenant:
        """Async `get`."""
        ...


@dataclass(frozen=True, slots=True)
class _Settings:
    encrypts: bool
    index_sealed: bool
    read_at: float


class TenantEncryption:
    """Encrypts the store values of the tenants whose plan or overrides ask for it.

    Example:
        >>> import pathlib, tempfile
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod import PostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> from langmem_prod.security import FileKeyVault, Keyring, new_master_key
        >>> from langmem_prod.tenancy import PostgresTenantRegistry, TenantEncryption
        >>> keyring = Keyring.from_env({"LANGMEM_MASTER_KEYS": f"k1:{new_master_key()}"})
        >>> vault = FileKeyVault(pathlib.Path(tempfile.mkdtemp()) / "vault.json", keyring)
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     registry = PostgresTenantRegistry(pool, vault=vault)
        ...     registry.setup()
        ...     _ = registry.create("acme", encryption=True)
        ...     encryption = TenantEncryption(vault, registry, plaintext_fields=["kind"])
        ...     with PostgresStore(pool, values=encryption) as store:
        ...         store.setup()
        ...         ns = ("tenants", "acme", "notes")
        ...         store.put(ns, "n1", {"kind": "note", "text": "the safe code is 4711"})
        ...         with pool.connection() as conn:
        ...             raw = conn.execute("SELECT value::text FROM langmem.items").fetchone()[0]
        ...         "4711" in raw, store.get(ns, "n1").value["text"]
        (False, 'the safe code is 4711')
    """

    def __init__(
        self,
        vault: KeyVault,
        registry: Registry,
        *,
        plaintext_fields: Iterable[str] = (),
        refresh_seconds: float = 5.0,
    ) -> None:
        self.envelope = Envelope(vault)
        self.registry = registry
        self.plaintext_fields = frozenset(plaintext_fields)
        if SEALED in self.plaintext_fields:
            raise InvalidInputError(f"{SEALED!r} cannot be a plaintext field")
        self.refresh_seconds = refresh_seconds
        self._settings: dict[str, _Settings] = {}
        self._lock = threading.Lock()

    @property
    def vault(self) -> KeyVault:
        """The key vault holding the tenants' data keys."""
        return self.envelope.vault

    # -- tenant settings ----------------------------------------------------------------

    def _setting(self, tenant: str) -> _Settings:
        with self._lock:
            found = self._settings.get(tenant)
        if found is None:
            raise DecryptionError(
                f"tenant {tenant!r}'s settings were not loaded; the store prepares them "
                "before each batch, so this value did not come through the store"
            )
        return found

    def _stale(self, namespaces: Iterable[Namespace]) -> set[str]:
        now = time.monotonic()
        tenants = {t for ns in namespaces if (t := tenant_of(tuple(ns))) is not None}
        with self._lock:
            return {
                t
                for t in tenants
                if (s := self._settings.get(t)) is None or now - s.read_at >= self.refresh_seconds
            }

    def _keep(self, tenant: str, found: Tenant | None) -> None:
        encrypts = found is not None and found.encryption
        index_sealed = found is not None and found.index_sealed
        with self._lock:
            self._settings[tenant] = _Settings(encrypts, index_sealed, time.monotonic())

    def prepare(self, namespaces: Iterable[Namespace]) -> None:
        """Read the settings of the tenants of `namespaces` that are not fresh."""
        for tenant in self._stale(namespaces):
            if self.registry.is_async:
                raise InvalidInputError(
                    "this TenantEncryption's registry is async; use it with an async store"
                )
            try:
                self._keep(tenant, self.registry.get(tenant))
            except TenantNotFoundError:
                self._keep(tenant, None)

    async def aprepare(self, namespaces: Iterable[Namespace]) -> None:
        """Async `prepare`."""
        stale = self._stale(namespaces)
        if stale and not self.registry.is_async:
            await asyncio.to_thread(self.prepare, [(TENANT_ROOT, t) for t in stale])
            return
        for tenant in stale:
            try:
                self._keep(tenant, await self.registry.aget(tenant))
            except TenantNotFoundError:
                self._keep(tenant, None)

    def forget(self, tenant: str) -> None:
        """Drop this process's copy of a tenant's settings (re-read at the next batch)."""
        with self._lock:
            self._settings.pop(tenant, None)

    def _enforced(self, tenant: str) -> bool:
        keys = self.envelope.tenant_keys(tenant)
        return keys is not None and keys.enforced

    def encrypts(self, namespace: Namespace) -> bool:
        """Whether values put in `namespace` are sealed (its tenant must be prepared)."""
        tenant = tenant_of(namespace)
        if tenant is None:
            return False
        return self._setting(tenant).encrypts or self._enforced(tenant)

    # -- values -------------------------------------------------------------------------

    def check_put(self, namespace: Namespace, key: str, value: Mapping[str, Any]) -> None:
        """Refuse a caller's value holding the reserved field, whatever the tenant."""
        if isinstance(value, Mapping) and SEALED in value:
            raise InvalidValueError(
                f"the value of {key!r} holds the field {SEALED!r}, which is reserved for "
                "encrypted values; rename the field"
            )

    def seal(
        self,
        namespace: Namespace,
        key: str,
        value: dict[str, Any],
        text: str,
        *,
        written_at: datetime,
        indexed: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """The stored form of `value` (JSON `text`): sealed if its tenant encrypts."""
        tenant = tenant_of(namespace)
        if tenant is None or not self.encrypts(namespace):
            return value
        self._check_index(tenant, indexed)
        return self.seal_for(
            tenant, namespace, key, text.encode(), value=value, written_at=written_at
        )

    def _check_index(self, tenant: str, indexed: frozenset[str]) -> None:
        sealed = sorted(indexed - self.plaintext_fields)
        if sealed and not self._setting(tenant).index_sealed:
            raise InvalidInputError(
                f"cannot index {sealed} for semantic search: tenant {tenant!r} encrypts its "
                "values, and a vector gives away the text it was made from (a dictionary "
                "attack on it recovers short secrets); put with index=False, index "
                "plaintext_fields only, or turn the tenant's index_sealed setting on"
            )

    def seal_for(
        self,
        tenant: str,
        namespace: Namespace,
        key: str,
        clear: bytes,
        *,
        value: Mapping[str, Any],
        written_at: datetime,
    ) -> dict[str, Any]:
        """Seal the JSON `clear` of `value` for `tenant`, written at `written_at`."""
        blob = self.envelope.seal(tenant, clear, aad(tenant, namespace, key, written_at))
        stored = {f: value[f] for f in self.plaintext_fields if f in value}
        stored[SEALED] = base64.b64encode(blob).decode()
        return stored

    def open(
        self, namespace: Namespace, key: str, stored: dict[str, Any], *, written_at: datetime
    ) -> dict[str, Any]:
        """The caller's value of a stored one (decrypted when sealed)."""
        tenant = tenant_of(namespace)
        blob = sealed_blob(stored)
        if blob is None:
            if tenant is not None and self._enforced(tenant):
                raise DecryptionError(
                    f"a value of tenant {tenant!r} is stored in clear, but the tenant's "
                    "values must be sealed: it was written around the store; it was not "
                    "returned"
                )
            return stored
        if tenant is None:
            raise DecryptionError(
                f"the value of {namespace!r}/{key!r} is sealed but lies outside any tenant"
            )
        clear = self.envelope.open(tenant, blob, aad(tenant, namespace, key, written_at))
        return decode_value(clear)

    def check_search(self, namespace_prefix: Namespace, fields: set[str]) -> None:
        """Refuse a filter on fields that an encrypting tenant stores sealed."""
        hidden = sorted(fields - self.plaintext_fields)
        if hidden and len(namespace_prefix) >= 2 and self.encrypts(namespace_prefix):
            raise InvalidInputError(
                f"cannot filter on {hidden}: tenant {namespace_prefix[1]!r} encrypts its "
                "values at rest, so the database cannot see them; declare the fields in "
                "TenantEncryption(plaintext_fields=...) to store them in clear, or filter "
                "the results after reading"
            )


def sealed_blob(stored: dict[str, Any]) -> bytes | None:
    """The ciphertext of a stored value, or None when it is stored in clear."""
    text = stored.get(SEALED)
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise DecryptionError("a stored value's ciphertext is not valid base64") from None


def aad(tenant: str, namespace: Namespace, key: str, written_at: datetime) -> bytes:
    r"""The associated data binding a sealed value to its owner and its write time.

    >>> aad("acme", ("tenants", "acme"), "k", datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC))
    b'acme\x00tenants.acme\x00k\x001000000'
    """
    micros = (written_at - _EPOCH) // _MICROSECOND
    return owner(tenant, encode_namespace(namespace), key, str(micros))
