"""`TenantRateLimiter`: a limiter whose limit for a key is that tenant's plan (or overrides).

Rules:
- a key is a tenant id; its limit is `Tenant.rate_limit`, read from the registry at most
  every `refresh_seconds` (so a change of plan or override takes effect within that
  time); a tenant without a limit (None) is not limited; an unknown tenant is
  `TenantNotFoundError`;
- a `limit=` passed to `acquire` wins (a `TenantStore` passes the limit of the tenant it
  has just read);
- the tokens are taken by the wrapped limiter (Redis, PostgreSQL or local), so histories
  and `TenantStore`s given limiters on the same buckets share each tenant's bucket.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from langmem_prod.tenancy._bucket import RateLimit, check_cost, check_key
from langmem_prod.tenancy.rate_limit import Limiter
from langmem_prod.tenancy.registry import TenantRegistry
from langmem_prod.tenancy.tenants import Tenant


class TenantRateLimiter:
    """Rate limits by tenant plan, for chat histories and anything keyed by tenant id.

    Example:
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.embedded import embedded_postgres
        >>> from langmem_prod.errors import RateLimitedError
        >>> from langmem_prod.tenancy import LocalRateLimiter, PostgresTenantRegistry
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     registry = PostgresTenantRegistry(pool)
        ...     registry.setup()
        ...     _ = registry.create("acme", rate_per_second=1, burst=1)
        ...     limiter = TenantRateLimiter(LocalRateLimiter(), registry)
        ...     limiter.acquire("acme")
        ...     try:
        ...         limiter.acquire("acme")
        ...     except RateLimitedError as exc:
        ...         print(0 < exc.retry_after <= 1)
        True

    Args:
        limiter: the buckets (`RateLimiter`, `PostgresRateLimiter`, `LocalRateLimiter`).
        registry: where tenants (and so their plans and overrides) are read.
        refresh_seconds: how long a tenant's limit is kept before it is read again.
        clock: seconds on a monotonic clock, for the refresh (inject one in tests).
    """

    def __init__(
        self,
        limiter: Limiter,
        registry: TenantRegistry,
        *,
        refresh_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._limits: dict[str, tuple[RateLimit | None, float]] = {}
        self._lock = threading.Lock()

    def _cached(self, tenant_id: str) -> tuple[bool, RateLimit | None]:
        with self._lock:
            held = self._limits.get(tenant_id)
        if held is None or self._clock() - held[1] >= self.refresh_seconds:
            return False, None
        return True, held[0]

    def _remember(self, tenant: Tenant) -> RateLimit | None:
        with self._lock:
            self._limits[tenant.id] = (tenant.rate_limit, self._clock())
        return tenant.rate_limit

    def limit_of(self, tenant_id: str) -> RateLimit | None:
        """The tenant's limit (None: unlimited), read at most every `refresh_seconds`."""
        known, limit = self._cached(check_key(tenant_id))
        return limit if known else self._remember(self.registry.get(tenant_id))

    async def alimit_of(self, tenant_id: str) -> RateLimit | None:
        """Async `limit_of`."""
        known, limit = self._cached(check_key(tenant_id))
        if known:
            return limit
        if self.registry.is_async:
            tenant = await self.registry.aget(tenant_id)
        else:
            tenant = await asyncio.to_thread(self.registry.get, tenant_id)
        return self._remember(tenant)

    def acquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Take `cost` tokens from tenant `key`'s bucket under its plan's limit."""
        check_cost(cost)  # refused even for a tenant without a limit
        chosen = limit or self.limit_of(key)
        if chosen is not None:
            self.limiter.acquire(key, cost, limit=chosen)

    async def aacquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Async `acquire`."""
        check_cost(cost)
        chosen = limit or await self.alimit_of(key)
        if chosen is not None:
            await self.limiter.aacquire(key, cost, limit=chosen)
