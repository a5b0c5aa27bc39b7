"""Encryption at rest (keyring, per-tenant data keys, AES-256-GCM) and PII redaction."""

from langmem_prod.security.envelope import EncryptionCodec, Envelope, owner
from langmem_prod.security.keys import Keyring, new_master_key
from langmem_prod.security.pii import Finding, Redactor

__all__ = [
    "EncryptionCodec",
    "Envelope",
    "Finding",
    "Keyring",
    "Redactor",
    "new_master_key",
    "owner",
]
