"""Sealing and opening stored bytes with AES-256-GCM under a tenant's data key.

Rules:
- a sealed blob is: version byte 1, the master key id (length byte + UTF-8), a 12-byte
  random nonce, then the ciphertext with its 16-byte tag;
- the associated data binds the blob to its owner (tenant and, e.g., namespace and key):
  a blob copied to another row or tenant fails to open, with a clear error, never garbage;
- opening works with any master key still in the keyring, so rotation can proceed while
  the store is in use; `needs_rotation` tells blobs not sealed with the primary key;
- a tenant without a salt (shredded) cannot open or seal anything.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from langmem_prod.errors import DecryptionError, KeyShreddedError
from langmem_prod.security.keys import Keyring

VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
SaltOf = Callable[[str], bytes | None]


def owner(*parts: str) -> bytes:
    r"""The associated data naming a blob's owner.

    >>> owner("acme", "memories.ada", "m1")
    b'acme\x00memories.ada\x00m1'
    """
    return "\x00".join(parts).encode()


class Envelope:
    """Seals bytes for a tenant and opens them again, only for the same owner.

    Example:
        >>> from langmem_prod.security.keys import Keyring
        >>> envelope = Envelope(Keyring({"k1": bytes(32)}, "k1"), lambda tenant: b"s" * 32)
        >>> sealed = envelope.seal("acme", b"my secret", owner("acme", "ns", "key"))
        >>> envelope.open("acme", sealed, owner("acme", "ns", "key"))
        b'my secret'
        >>> envelope.open("acme", sealed, owner("acme", "ns", "other"))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langmem_prod.errors.DecryptionError: ... it does not belong to this tenant, ...
    """

    def __init__(self, keyring: Keyring, salt_of: SaltOf) -> None:
        self.keyring = keyring
        self._salt_of = salt_of

    def _key(self, key_id: str, tenant: str) -> bytes:
        salt = self._salt_of(tenant)
        if salt is None:
            raise KeyShreddedError(
                f"tenant {tenant!r}'s data key was destroyed (crypto-shredded); its data "
                "cannot be read or written any more"
            )
        return self.keyring.data_key(key_id, tenant, salt)

    def seal(self, tenant: str, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt `plaintext` for `tenant`, bound to `aad`, under the primary key."""
        key_id = self.keyring.primary_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self._key(key_id, tenant)).encrypt(nonce, plaintext, aad)
        head = bytes([VERSION, len(key_id.encode())]) + key_id.encode()
        return head + nonce + sealed

    def open(self, tenant: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a sealed blob of `tenant` bound to `aad`, or raise `DecryptionError`."""
        key_id, nonce, sealed = split(blob)
        try:
            return AESGCM(self._key(key_id, tenant)).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise DecryptionError(
                "a stored value failed authentication: it does not belong to this tenant, "
                "namespace and key, or it was altered; it was not decrypted"
            ) from None

    def needs_rotation(self, blob: bytes) -> bool:
        """Whether a blob was sealed with a master key other than the primary one."""
        return split(blob)[0] != self.keyring.primary_id


def split(blob: bytes) -> tuple[str, bytes, bytes]:
    """The master key id, nonce and ciphertext of a sealed blob."""
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != VERSION:
        raise DecryptionError("a stored value is not a langmem_prod ciphertext (unencrypted?)")
    end = 2 + blob[1]
    if len(blob) < end + NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("a stored ciphertext is truncated")
    return blob[2:end].decode(), blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


class EncryptionCodec:
    """The `Codec` that encrypts a chat history's stored bytes for one tenant.

    The history's context (tenant and session) is the associated data, so a message
    copied to another conversation or tenant fails to decrypt.
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
