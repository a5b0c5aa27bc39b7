"""A tenant's PII policy as a `security.Redactor` (no I/O).

Rules:
- a tenant whose `pii` setting is "off" gets no redactor;
- "hash" mode needs a secret: the tenant's HMAC key is HMAC-SHA256(secret, tenant id),
  so hashes link equal values within a tenant and never across tenants.
"""

from __future__ import annotations

import hashlib
import hmac

from langmem_prod.errors import ConfigurationError
from langmem_prod.security.pii import Redactor
from langmem_prod.tenancy.tenants import Tenant


def tenant_redactor(tenant: Tenant, secret: bytes | None = None) -> Redactor | None:
    """The redactor of a tenant's PII policy, or None when it redacts nothing.

    >>> from langmem_prod.tenancy import Tenant
    >>> redactor = tenant_redactor(Tenant("acme", "Acme", "free", overrides={"pii": "mask"}))
    >>> redactor.redact("write to ada@example.com")
    'write to [EMAIL]'
    >>> tenant_redactor(Tenant("acme", "Acme", "free")) is None
    True
    """
    if tenant.pii == "off":
        return None
    if tenant.pii == "hash" and not secret:
        raise ConfigurationError(
            f"tenant {tenant.id!r} hashes PII, which needs a secret: pass pii_secret "
            "(bytes kept outside the database)"
        )
    key = hmac.new(secret or b"", tenant.id.encode(), hashlib.sha256).digest()
    return Redactor(tenant.pii_kinds, mode=tenant.pii, secret=key)
