"""Per-tenant rate limiting on Redis: a token bucket checked and updated in one Lua call.

Rules:
- a tenant's bucket holds up to `burst` tokens and refills at `rate` tokens a second;
  a request takes `cost` tokens, or none and is refused with the wait until it could;
- the bucket is one hash per tenant (`<prefix>:{<tenant>}`, so it runs on a cluster),
  read, refilled and written by one script on the server's clock (`TIME`), so every
  client and process shares the same bucket without races;
- an idle bucket expires once it would be full again.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from langmem_prod.errors import ConfigurationError, RateLimitedError

TOKEN_BUCKET = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
else
  wait = math.ceil((cost - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return wait
"""


class _Limits:
    """The settings both limiters share, checked once."""

    def __init__(self, rate: float, burst: int, prefix: str) -> None:
        if not rate > 0 or isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ConfigurationError("rate must be > 0 tokens a second and burst an int >= 1")
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError("prefix must not contain '{' or '}'")
        self.rate, self.burst, self.prefix = float(rate), burst, prefix

    def key(self, tenant: str) -> str:
        return f"{self.prefix}:{{{tenant}}}"

    def args(self, cost: int) -> tuple[Any, ...]:
        if cost < 1 or cost > self.burst:
            raise ConfigurationError(f"cost must be between 1 and the burst ({self.burst})")
        return (self.rate, self.burst, cost)

    def refuse(self, tenant: str, wait_ms: int) -> None:
        if wait_ms > 0:
            seconds = wait_ms / 1000
            raise RateLimitedError(
                f"tenant {tenant!r} is over its rate limit ({self.rate:g}/s, burst "
                f"{self.burst}); retry in {seconds:.3f} s",
                retry_after=seconds,
            )


class RateLimiter:
    """A per-tenant token bucket on a sync Redis client (or cluster).

    Example:
        >>> import redis
        >>> from langmem_prod.embedded import embedded_redis
        >>> with embedded_redis() as url:
        ...     limiter = RateLimiter(redis.Redis.from_url(url), rate=1, burst=2)
        ...     limiter.acquire("acme"); limiter.acquire("acme")
        ...     try:
        ...         limiter.acquire("acme")
        ...     except RateLimitedError as exc:
        ...         print(0 < exc.retry_after <= 1)
        True
    """

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        *,
        rate: float,
        burst: int,
        prefix: str = "langmem:rate",
    ) -> None:
        self._limits = _Limits(rate, burst, prefix)
        self._script = client.register_script(TOKEN_BUCKET)

    def acquire(self, tenant: str, cost: int = 1) -> None:
        """Take `cost` tokens from the tenant's bucket, or raise `RateLimitedError`."""
        wait = self._script(keys=[self._limits.key(tenant)], args=self._limits.args(cost))
        self._limits.refuse(tenant, int(wait))


class AsyncRateLimiter:
    """The async twin of `RateLimiter`, on a `redis.asyncio` client."""

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        rate: float,
        burst: int,
        prefix: str = "langmem:rate",
    ) -> None:
        self._limits = _Limits(rate, burst, prefix)
        self._script = client.register_script(TOKEN_BUCKET)

    async def acquire(self, tenant: str, cost: int = 1) -> None:
        """Take `cost` tokens from the tenant's bucket, or raise `RateLimitedError`."""
        wait = await self._script(keys=[self._limits.key(tenant)], args=self._limits.args(cost))
        self._limits.refuse(tenant, int(wait))
