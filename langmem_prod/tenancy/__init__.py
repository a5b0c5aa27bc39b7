"""Tenancy: tenants and plans, their registry, per-tenant rate limits, tenant-scoped roles."""

from langmem_prod.tenancy._bucket import RateLimit
from langmem_prod.tenancy.encryption import TenantEncryption
from langmem_prod.tenancy.rate_limit import (
    Limiter,
    LocalRateLimiter,
    PostgresRateLimiter,
    RateLimiter,
)
from langmem_prod.tenancy.redaction import tenant_redactor
from langmem_prod.tenancy.registry import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantRegistry,
)
from langmem_prod.tenancy.rls import (
    agrant_tenant_role,
    arevoke_tenant_role,
    grant_tenant_role,
    revoke_tenant_role,
)
from langmem_prod.tenancy.rotation import RotationReport, arotate, rotate
from langmem_prod.tenancy.tenant_limiter import TenantRateLimiter
from langmem_prod.tenancy.tenant_store import TenantStore
from langmem_prod.tenancy.tenants import PLANS, Plan, Tenant

__all__ = [
    "PLANS",
    "Limiter",
    "LocalRateLimiter",
    "Plan",
    "PostgresRateLimiter",
    "PostgresTenantRegistry",
    "RateLimit",
    "RateLimiter",
    "RedisTenantRegistry",
    "RotationReport",
    "Tenant",
    "TenantEncryption",
    "TenantRateLimiter",
    "TenantRegistry",
    "TenantStore",
    "agrant_tenant_role",
    "arevoke_tenant_role",
    "arotate",
    "grant_tenant_role",
    "revoke_tenant_role",
    "rotate",
    "tenant_redactor",
]
