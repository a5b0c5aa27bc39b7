"""Store values encrypted at rest, per tenant: the `ValueTransform` a store is built with.

Rules:
- a value under ("tenants", <id>, ...) of a tenant whose `encryption` setting is on is
  stored as {"__sealed__": base64 AES-256-GCM blob of the whole value, plus the declared
  `plaintext_fields` copied in clear}; other values are stored as they are;
- the blob is bound to the tenant, the namespace and the key (associated data), so a
  value copied to another item or tenant fails to open with `DecryptionError`;
- a sealed value opens whatever the tenant's setting is now (turning encryption off
  does not strand data); a value stored in clear opens as itself, so a tenant can turn
  encryption on while it has data (`rotate` then seals it);
- what stays visible: namespaces, keys, timestamps, the size of values, vectors (they
  are computed from the clear value, so semantic search keeps working) and the
  plaintext fields; a filter on any other field of an encrypted tenant's values is
  refused (the database cannot see it) instead of silently matching nothing;
- a tenant's setting and data-key salt are read from the registry at most every
  `refresh_seconds`; after `registry.shred(...)` call `forget(tenant)` in this process,
  other processes stop within `refresh_seconds`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from langmem_prod.errors import DecryptionError, InvalidInputError, TenantNotFoundError
from langmem_prod.security.envelope import Envelope, owner
from langmem_prod.security.keys import Keyring
from langmem_prod.store._namespace import encode_namespace
from langmem_prod.store._tenant import TENANT_ROOT, tenant_of
from langmem_prod.store._values import decode_value
from langmem_prod.tenancy.tenants import Tenant

SEALED = "__sealed__"
Namespace = tuple[str, ...]


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

    def salt(self, tenant_id: str) -> bytes | None:
        """The tenant's data-key salt; None once shredded."""
        ...

    async def asalt(self, tenant_id: str) -> bytes | None:
        """Async `salt`."""
        ...


@dataclass(frozen=True, slots=True)
class _Material:
    encrypts: bool
    salt: bytes | None
    read_at: float


class TenantEncryption:
    """Encrypts the store values of the tenants whose plan or overrides ask for it.

    Example:
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod import PostgresStore
        >>> from langmem_prod.embedded import embedded_postgres
        >>> from langmem_prod.security import Keyring, new_master_key
        >>> from langmem_prod.tenancy import PostgresTenantRegistry, TenantEncryption
        >>> keyring = Keyring.from_env({"LANGMEM_MASTER_KEYS": f"k1:{new_master_key()}"})
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     registry = PostgresTenantRegistry(pool)
        ...     registry.setup()
        ...     _ = registry.create("acme", encryption=True)
        ...     encryption = TenantEncryption(keyring, registry, plaintext_fields=["kind"])
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
        keyring: Keyring,
        registry: Registry,
        *,
        plaintext_fields: Iterable[str] = (),
        refresh_seconds: float = 5.0,
    ) -> None:
        self.envelope = Envelope(keyring, self._salt)
        self.registry = registry
        self.plaintext_fields = frozenset(plaintext_fields)
        if SEALED in self.plaintext_fields:
            raise InvalidInputError(f"{SEALED!r} cannot be a plaintext field")
        self.refresh_seconds = refresh_seconds
        self._materials: dict[str, _Material] = {}
        self._lock = threading.Lock()

    # -- key material -------------------------------------------------------------------

    def _salt(self, tenant: str) -> bytes | None:
        return self._material(tenant).salt

    def _material(self, tenant: str) -> _Material:
        with self._lock:
            material = self._materials.get(tenant)
        if material is None:
            raise DecryptionError(
                f"tenant {tenant!r}'s keys were not loaded; the store prepares them before "
                "each batch, so this value did not come through the store"
            )
        return material

    def _stale(self, namespaces: Iterable[Namespace]) -> set[str]:
        now = time.monotonic()
        tenants = {t for ns in namespaces if (t := tenant_of(tuple(ns))) is not None}
        with self._lock:
            return {
                t
                for t in tenants
                if (m := self._materials.get(t)) is None or now - m.read_at >= self.refresh_seconds
            }

    def _keep(self, tenant: str, encrypts: bool, salt: bytes | None) -> None:
        with self._lock:
            self._materials[tenant] = _Material(encrypts, salt, time.monotonic())

    def prepare(self, namespaces: Iterable[Namespace]) -> None:
        """Read the setting and salt of the tenants of `namespaces` that are not fresh."""
        for tenant in self._stale(namespaces):
            if self.registry.is_async:
                raise InvalidInputError(
                    "this TenantEncryption's registry is async; use it with an async store"
                )
            try:
                encrypts = self.registry.get(tenant).encryption
            except TenantNotFoundError:
                self._keep(tenant, False, None)
                continue
            self._keep(tenant, encrypts, self.registry.salt(tenant))

    async def aprepare(self, namespaces: Iterable[Namespace]) -> None:
        """Async `prepare`."""
        stale = self._stale(namespaces)
        if stale and not self.registry.is_async:
            await asyncio.to_thread(self.prepare, [(TENANT_ROOT, t) for t in stale])
            return
        for tenant in stale:
            try:
                encrypts = (await self.registry.aget(tenant)).encryption
            except TenantNotFoundError:
                self._keep(tenant, False, None)
                continue
            self._keep(tenant, encrypts, await self.registry.asalt(tenant))

    def forget(self, tenant: str) -> None:
        """Drop what this process knows of a tenant's keys (after shredding them)."""
        with self._lock:
            self._materials.pop(tenant, None)
        self.envelope.keyring.forget(tenant)

    # -- values -------------------------------------------------------------------------

    def encrypts(self, namespace: Namespace) -> bool:
        """Whether values put in `namespace` are sealed (its tenant must be prepared)."""
        tenant = tenant_of(namespace)
        return tenant is not None and self._material(tenant).encrypts

    def seal(
        self, namespace: Namespace, key: str, value: dict[str, Any], text: str
    ) -> dict[str, Any]:
        """The stored form of `value` (JSON `text`): sealed if its tenant encrypts."""
        tenant = tenant_of(namespace)
        if tenant is None or not self._material(tenant).encrypts:
            return value
        return self.seal_for(tenant, namespace, key, text.encode(), value)

    def seal_for(
        self, tenant: str, namespace: Namespace, key: str, clear: bytes, value: dict[str, Any]
    ) -> dict[str, Any]:
        """Seal the JSON `clear` of `value` for `tenant` under the primary master key."""
        blob = self.envelope.seal(tenant, clear, aad(tenant, namespace, key))
        stored = {f: value[f] for f in self.plaintext_fields if f in value}
        stored[SEALED] = base64.b64encode(blob).decode()
        return stored

    def open(self, namespace: Namespace, key: str, stored: dict[str, Any]) -> dict[str, Any]:
        """The caller's value of a stored one (decrypted when sealed)."""
        blob = sealed_blob(stored)
        if blob is None:
            return stored
        tenant = tenant_of(namespace)
        if tenant is None:
            raise DecryptionError(
                f"the value of {namespace!r}/{key!r} is sealed but lies outside any tenant"
            )
        return decode_value(self.envelope.open(tenant, blob, aad(tenant, namespace, key)))

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


def aad(tenant: str, namespace: Namespace, key: str) -> bytes:
    """The associated data binding a sealed value to its tenant, namespace and key."""
    return owner(tenant, encode_namespace(namespace), key)
