"""Tenancy: per-tenant rate limits (and, to come, tenants, quotas and isolation)."""

from langmem_prod.tenancy.rate_limit import AsyncRateLimiter, RateLimiter

__all__ = ["AsyncRateLimiter", "RateLimiter"]
