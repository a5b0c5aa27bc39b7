"""Tenancy: tenants and plans, their registry, and per-tenant rate limits."""

from langmem_prod.tenancy.rate_limit import AsyncRateLimiter, RateLimiter
from langmem_prod.tenancy.registry import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantRegistry,
)
from langmem_prod.tenancy.tenant_store import TenantStore
from langmem_prod.tenancy.tenants import PLANS, Plan, Tenant

__all__ = [
    "PLANS",
    "AsyncRateLimiter",
    "Plan",
    "PostgresTenantRegistry",
    "RateLimiter",
    "RedisTenantRegistry",
    "Tenant",
    "TenantRegistry",
    "TenantStore",
]
