"""Master keys: the keyring that wraps the tenants' data keys, never stored with the data.

Rules:
- master keys are 32 random bytes each, named by an id (1-32 letters, digits, `.`, `_`
  or `-`); one is primary (new data keys are wrapped with it), the others only unwrap
  data keys wrapped earlier, until the key vault is re-wrapped (`rewrap`);
- they come from the environment (`LANGMEM_MASTER_KEYS="id:base64,..."` and
  `LANGMEM_PRIMARY_KEY_ID`) or from a provider callable (a secrets manager);
- a master key never encrypts data: it wraps (AES-256-GCM, with associated data naming
  the tenant and the data key) the random per-tenant data keys a `KeyVault` keeps;
- an error names a bad entry by its position (1-based) and its id, never by its
  text: no message, `repr` or `str` holds key material, nor a value that may be some
  (an id that does not look like one, and `LANGMEM_PRIMARY_KEY_ID`, are never echoed).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from langmem_prod.errors import ConfigurationError, DecryptionError

KEY_BYTES = 32
NONCE_BYTES = 12
ENV_KEYS = "LANGMEM_MASTER_KEYS"
ENV_PRIMARY = "LANGMEM_PRIMARY_KEY_ID"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_ID_RULE = "1-32 letters, digits, '.', '_' or '-'"


def new_master_key() -> str:
    """A fresh master key, base64-encoded (for `LANGMEM_MASTER_KEYS`).

    >>> len(base64.b64decode(new_master_key()))
    32
    """
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def _entry(position: int, item: str) -> tuple[str, bytes]:
    """One `id:base64` entry of `LANGMEM_MASTER_KEYS`, checked; errors never echo it."""
    where = f"{ENV_KEYS}: entry {position}"
    if ":" not in item:
        if any(c.isspace() for c in item):
            raise ConfigurationError(f"{where} has a space where ':' belongs; write 'id:base64key'")
        raise ConfigurationError(f"{where} has no ':' between its id and its key")
    key_id, _, encoded = (part.strip() for part in item.partition(":"))
    if not key_id:
        raise ConfigurationError(f"{where} has no key id before ':'; write 'id:base64key'")
    if not _ID.fullmatch(key_id):  # a key (44 characters) never fits: safe to refuse
        raise ConfigurationError(
            f"{where} does not start with a key id ({_ID_RULE}); are the id and the key "
            "swapped? (the text is not repeated here: it may be key material)"
        )
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where} (id {key_id!r}): the key is not valid base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigurationError(
            f"{where} (id {key_id!r}): the key is {len(key)} bytes; use {KEY_BYTES} random "
            "bytes (langmem_prod.security.new_master_key())"
        )
    return key_id, key


def _primary(environ: Mapping[str, str], keys: Mapping[str, bytes]) -> str:
    primary = environ.get(ENV_PRIMARY, "").strip()
    if not primary:
        return next(iter(keys))
    if primary in keys:
        return primary
    raise ConfigurationError(
        f"{ENV_PRIMARY} is not one of the key ids in {ENV_KEYS}, {sorted(keys)}; set it to "
        "one of them (its text is not repeated here: it may be key material pasted there)"
    )


class Keyring:
    """Master keys by id, one of them primary; it wraps and unwraps data keys.

    Example:
        >>> keyring = Keyring({"2026-01": bytes(32)}, primary="2026-01")
        >>> master_id, wrapped = keyring.wrap(b"a data key".ljust(32), b"acme")
        >>> master_id, keyring.unwrap(master_id, wrapped, b"acme").strip()
        ('2026-01', b'a data key')
        >>> keyring
        Keyring(ids=['2026-01'], primary='2026-01')
    """

    def __init__(self, keys: Mapping[str, bytes], primary: str) -> None:
        if not keys:
            raise ConfigurationError("a keyring needs at least one master key")
        for key_id, key in keys.items():
            if not isinstance(key_id, str) or not _ID.fullmatch(key_id):
                raise ConfigurationError(f"master key ids are {_ID_RULE}")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise ConfigurationError(
                    f"master key {key_id!r} is not {KEY_BYTES} bytes; use {KEY_BYTES} random "
                    "bytes (langmem_prod.security.new_master_key())"
                )
        if primary not in keys:
            raise ConfigurationError(
                f"the primary key id is not one of the keyring's ids {sorted(keys)}"
            )
        self._keys = dict(keys)
        self.primary_id = primary

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Keyring:
        """Read `LANGMEM_MASTER_KEYS` ("id:base64,...") and `LANGMEM_PRIMARY_KEY_ID`.

        Raises:
            ConfigurationError: an entry is malformed (named by position and id, never
                by its text), two entries share an id, or the primary id is unknown.
        """
        keys: dict[str, bytes] = {}
        seen: dict[str, int] = {}
        for position, item in enumerate(environ.get(ENV_KEYS, "").split(","), start=1):
            if not item.strip():
                continue
            key_id, key = _entry(position, item.strip())
            if key_id in seen:
                raise ConfigurationError(
                    f"{ENV_KEYS}: entries {seen[key_id]} and {position} both use the id "
                    f"{key_id!r}; give each master key its own id"
                )
            seen[key_id] = position
            keys[key_id] = key
        if not keys:
            raise ConfigurationError(
                f"{ENV_KEYS} is empty; set it to 'id:base64key' (make one with "
                "langmem_prod.security.new_master_key())"
            )
        return cls(keys, _primary(environ, keys))

    @classmethod
    def from_provider(cls, provider: Callable[[], Mapping[str, bytes]], primary: str) -> Keyring:
        """Keys from a callable (a secrets manager), read once."""
        return cls(provider(), primary)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:
        return f"Keyring(ids={sorted(self._keys)}, primary={self.primary_id!r})"

    __str__ = __repr__

    @property
    def ids(self) -> list[str]:
        """The master key ids, sorted."""
        return sorted(self._keys)

    def wrap(self, key: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt a data key under the primary master key: (master id, nonce + ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        return self.primary_id, nonce + AESGCM(self._keys[self.primary_id]).encrypt(nonce, key, aad)

    def unwrap(self, master_id: str, wrapped: bytes, aad: bytes) -> bytes:
        """Decrypt a data key wrapped by `wrap` under master key `master_id` for `aad`."""
        master = self._keys.get(master_id)
        if master is None:
            raise DecryptionError(
                f"a data key is wrapped under master key {master_id!r}, which is not in the "
                "keyring; add it back until the vault is re-wrapped (KeyVault.rewrap)"
            )
        try:
            return AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
        except InvalidTag:
            raise DecryptionError(
                "a wrapped data key failed authentication: it was altered, or moved to "
                "another tenant or key id in the vault; it was not unwrapped"
            ) from None
