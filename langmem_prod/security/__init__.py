"""Encryption at rest (keyring, key vault of per-tenant data keys, AES-256-GCM) and PII."""

from langmem_prod.security.envelope import EncryptionCodec, Envelope, owner
from langmem_prod.security.file_vault import FileKeyVault
from langmem_prod.security.keys import Keyring, new_master_key
from langmem_prod.security.pii import Finding, Redactor
from langmem_prod.security.vault import KeyVault, TenantKeys

__all__ = [
    "EncryptionCodec",
    "Envelope",
    "FileKeyVault",
    "Finding",
    "KeyVault",
    "Keyring",
    "Redactor",
    "TenantKeys",
    "new_master_key",
    "owner",
]
