"""Sealing and opening stored bytes with AES-256-GCM under a tenant's data key.

Rules:
- a sealed blob is: version byte 2, the data key id (length byte + ASCII), a 12-byte
  random nonce, then the ciphertext with its 16-byte tag; the data key comes from the
  `KeyVault`, never from the database; blobs of version 1 (keys derived from a salt in
  the registry, before 0.1 was released) are refused with a message saying so;
- the associated data is the blob's head plus the owner's: a blob copied to another
  row or tenant, or whose head was edited, fails to open with `DecryptionError`, never
  garbage;
- a blob opens with any data key the tenant still has, so data-key rotation proceeds
  while the store is in use; `needs_rotation` tells blobs not sealed with the current key;
- a shredded tenant can neither open nor seal (`KeyShreddedError`); a blob naming a key
  the tenant does not have (retired, or from an earlier tenant of the same id) does
  not open either;
- the vault is asked on every seal and open (it answers from memory), so a shred in any
  process sharing the vault takes effect at this process's next operation.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from langmem_prod.errors import ConfigurationError, DecryptionError, KeyShreddedError
from langmem_prod.security.vault import KeyVault, TenantKeys

VERSION = 2
NONCE_BYTES = 12
TAG_BYTES = 16


def owner(*parts: str) -> bytes:
    r"""The associated data naming a blob's owner.

    >>> owner("acme", "memories.ada", "m1")
    b'acme\x00memories.ada\x00m1'
    """
    return "\x00".join(parts).encode()


def _shredded(tenant: str) -> KeyShreddedError:
    return KeyShreddedError(
        f"tenant {tenant!r}'s data keys were destroyed (crypto-shredded); its data cannot "
        "be read or written any more"
    )


class Envelope:
    """Seals bytes for a tenant and opens them again, only for the same owner.

    Example:
        >>> import tempfile, pathlib
        >>> from langmem_prod.security import FileKeyVault, Keyring
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "vault.json"
        >>> vault = FileKeyVault(path, Keyring({"m1": bytes(32)}, "m1"))
        >>> _ = vault.create("acme")
        >>> envelope = Envelope(vault)
        >>> sealed = envelope.seal("acme", b"my secret", owner("acme", "ns", "key"))
        >>> envelope.open("acme", sealed, owner("acme", "ns", "key"))
        b'my secret'
        >>> envelope.open("acme", sealed, owner("acme", "ns", "other"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langmem_prod.errors.DecryptionError: ... it does not belong to this owner, ...
    """

    def __init__(self, vault: KeyVault) -> None:
        self.vault = vault

    def tenant_keys(self, tenant: str) -> TenantKeys | None:
        """The tenant's keys as the vault holds them now (None: it has none)."""
        return self.vault.keys(tenant)

    def seal(self, tenant: str, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt `plaintext` for `tenant`, bound to `aad`, under its current data key."""
        keys = self.vault.keys(tenant)
        if keys is None:
            raise ConfigurationError(
                f"tenant {tenant!r} has no data key in the key vault; register tenants "
                "through a registry built with vault=..., or call vault.create(tenant)"
            )
        if keys.current is None:
            raise _shredded(tenant)
        head = bytes([VERSION, len(keys.current)]) + keys.current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(keys.keys[keys.current]).encrypt(nonce, plaintext, head + aad)
        return head + nonce + sealed

    def open(self, tenant: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed blob of `tenant` bound to `aad`, or raise `DecryptionError`."""
        key_id, head, nonce, sealed = split(blob)
        keys = self.vault.keys(tenant)
        if keys is not None and keys.current is None:
            raise _shredded(tenant)
        key = None if keys is None else keys.keys.get(key_id)
        if key is None:
            raise DecryptionError(
                f"a stored value of tenant {tenant!r} was sealed with a data key it does not "
                "have (retired, or an earlier tenant's of the same id); it cannot be opened"
            )
        try:
            return AESGCM(key).decrypt(nonce, sealed, head + aad)
        except InvalidTag:
            raise DecryptionError(
                "a stored value failed authentication: it does not belong to this owner, "
                "it was written at another time (an older copy put back), or it was altered; "
                "it was not decrypted"
            ) from None

    def needs_rotation(self, tenant: str, blob: bytes) -> bool:
        """Whether a blob was sealed with a data key other than the tenant's current one."""
        keys = self.vault.keys(tenant)
        return keys is None or split(blob)[0] != keys.current


def split(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    """The data key id, head, nonce and ciphertext of a sealed blob."""
    blob = bytes(blob)
    if blob[:1] == b"\x01":
        raise DecryptionError(
            "a stored value was sealed by an earlier langmem_prod (keys derived from a salt "
            "in the database), which this version does not open: data keys now live in the "
            "key vault; re-write the value"
        )
    if len(blob) < 2 or blob[0] != VERSION:
        raise DecryptionError("a stored value is not a langmem_prod ciphertext (unencrypted?)")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("a stored ciphertext is truncated")
    try:
        key_id = blob[2:end].decode("ascii")
    except UnicodeDecodeError:
        raise DecryptionError("a stored ciphertext's key id is not ASCII (altered?)") from None
    return key_id, blob[:end], blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


class EncryptionCodec:
    """The `Codec` that encrypts a chat history's stored bytes for one tenant.

    The history's context (tenant and session) is the associated data, so a message
    copied to another conversation or tenant fails to decrypt; once the tenant is
    shredded, its messages raise `KeyShreddedError`.

    Example:
        >>> import tempfile, pathlib
        >>> from langmem_prod.security import FileKeyVault, Keyring
        >>> vault = FileKeyVault(pathlib.Path(tempfile.mkdtemp()) / "v.json",
        ...                      Keyring({"m1": bytes(32)}, "m1"))
        >>> _ = vault.create("acme")
        >>> codec = EncryptionCodec(Envelope(vault), "acme")
        >>> codec.decode(codec.encode(b"hi", b"ctx"), b"ctx")
        b'hi'
    """

    def __init__(self, envelope: Envelope, tenant: str) -> None:
        self.envelope = envelope
        self.tenant = tenant

    def encode(self, data: bytes, context: bytes) -> bytes:
        """Seal `data` for this tenant, bound to `context`."""
        return self.envelope.seal(self.tenant, data, context)

    def decode(self, data: bytes, context: bytes) -> bytes:
        """Open `data` sealed for this tenant and `context`."""
        return self.envelope.open(self.tenant, data, context)
