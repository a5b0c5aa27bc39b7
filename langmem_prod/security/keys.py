"""Master keys and per-tenant data keys: the keyring, never stored with the data.

Rules:
- master keys are 32 random bytes each, named by an id; one is primary (new data is
  sealed with it), the others only open older data until a rotation re-seals it;
- they come from the environment (`LANGMEM_MASTER_KEYS="id:base64,..."` and
  `LANGMEM_PRIMARY_KEY_ID`) or from a provider callable (a KMS, a secrets manager);
- a tenant's data key is HKDF-SHA256(master, salt=the tenant's random salt,
  info="langmem_prod/v1/data-key/<tenant>"); the salt lives in the tenant registry, so
  destroying it makes the tenant's data key impossible to derive again (crypto-shredding)
  while every other tenant keeps working.
"""

from __future__ import annotations

import base64
import binascii
import os
import threading
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from langmem_prod.errors import ConfigurationError, DecryptionError

KEY_BYTES = 32
ENV_KEYS = "LANGMEM_MASTER_KEYS"
ENV_PRIMARY = "LANGMEM_PRIMARY_KEY_ID"


def new_master_key() -> str:
    """A fresh master key, base64-encoded (for `LANGMEM_MASTER_KEYS`)."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class Keyring:
    """Master keys by id, one of them primary.

    Example:
        >>> keyring = Keyring({"2026-01": bytes(32)}, primary="2026-01")
        >>> keyring.primary_id, len(keyring.data_key("2026-01", "acme", b"salt" * 8))
        ('2026-01', 32)
    """

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not keys:
            raise ConfigurationError("a keyring needs at least one master key")
        for key_id, key in keys.items():
            if not key_id or len(key_id.encode()) > 255 or not isinstance(key, bytes):
                raise ConfigurationError("master key ids are 1-255 bytes; keys are bytes")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"master key {key_id!r} is {len(key)} bytes; use {KEY_BYTES} random bytes "
                    "(langmem_prod.security.new_master_key())"
                )
        if primary not in keys:
            raise ConfigurationError(f"the primary key id {primary!r} is not in the keyring")
        self._keys = dict(keys)
        self.primary_id = primary
        self._derived: dict[tuple[str, str, bytes], bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Keyring:
        """Read `LANGMEM_MASTER_KEYS` ("id:base64,...") and `LANGMEM_PRIMARY_KEY_ID`."""
        text = environ.get(ENV_KEYS, "")
        keys: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key_id, _, encoded = item.partition(":")
            try:
                keys[key_id] = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ConfigurationError(f"{ENV_KEYS}: key {key_id!r} is not base64") from exc
        if not keys:
            raise ConfigurationError(
                f"{ENV_KEYS} is empty; set it to 'id:base64key' (make one with "
                "langmem_prod.security.new_master_key())"
            )
        return cls(keys, environ.get(ENV_PRIMARY) or next(iter(keys)))

    @classmethod
    def from_provider(cls, provider: Callable[[], Mapping[str, bytes]], primary: str) -> Keyring:
        """Keys from a callable (a KMS or a secrets manager), read once."""
        return cls(provider(), primary)

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._keys

    def data_key(self, key_id: str, tenant: str, salt: bytes) -> bytes:
        """The tenant's data key under master key `key_id` (derived once, then cached)."""
        cached = (key_id, tenant, salt)
        with self._lock:
            found = self._derived.get(cached)
        if found is not None:
            return found
        master = self._keys.get(key_id)
        if master is None:
            raise DecryptionError(
                f"the data was sealed with master key {key_id!r}, which is not in the keyring; "
                "add it back (old keys stay until a rotation has re-sealed their data)"
            )
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=salt,
            info=b"langmem_prod/v1/data-key/" + tenant.encode(),
        ).derive(master)
        with self._lock:
            self._derived[cached] = derived
        return derived

    def forget(self, tenant: str) -> None:
        """Drop the tenant's cached data keys (after shredding its salt)."""
        with self._lock:
            for cached in [c for c in self._derived if c[1] == tenant]:
                del self._derived[cached]
