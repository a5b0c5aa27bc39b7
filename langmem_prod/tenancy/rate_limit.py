"""Per-tenant rate limits: the `Limiter` protocol and its token buckets (Redis, PostgreSQL, local).

Rules:
- a limiter takes `cost` tokens from the bucket of a key (a tenant id) under a
  `RateLimit` (`rate` tokens a second, `burst` at most), or raises `RateLimitedError`
  with `retry_after` in seconds; the math and the checks are `_bucket`'s, so a NaN,
  infinite, negative, zero, bool or non-numeric cost is an `InvalidInputError` and a
  key holding `{`, `}`, NUL or a lone surrogate too, before any I/O;
- the limit is the one passed to `acquire`, else the limiter's own (`rate`, `burst`);
  with neither, `ConfigurationError`;
- `RateLimiter` keeps the buckets in Redis and `PostgresRateLimiter` in PostgreSQL:
  shared by every process, one atomic round trip on the server's clock (`_rate_flows`);
  `LocalRateLimiter` keeps them in this process (thread- and asyncio-safe, but each
  process has its own buckets: N processes allow N times the rate);
- every limiter has `acquire` and `aacquire`; built on a sync client, `aacquire` runs
  `acquire` in a worker thread; built on an async client, `acquire` is refused with a
  `ConfigurationError` naming `aacquire`; transient server failures are retried as the
  stores retry them (a retried take may count twice: never less than was used).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Generator
from typing import Any, Protocol, runtime_checkable

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.postgres._base import DEFAULT_SCHEMA
from langmem_prod.store.postgres._driver import AsyncRunner, SyncRunner
from langmem_prod.store.postgres._driver import runner_for as pg_runner_for
from langmem_prod.store.postgres._errors import SetupHint
from langmem_prod.store.redis._driver import runner_for as redis_runner_for
from langmem_prod.tenancy._bucket import (
    Bucket,
    RateLimit,
    check_cost,
    check_key,
    rate_limit,
    refusal,
    take,
)
from langmem_prod.tenancy._rate_flows import SCRIPTS, PgBuckets, RedisBuckets

DEFAULT_PREFIX = "langmem:rate"
_SETUP = SetupHint("the rate limiter", "limiter.setup()", "await limiter.asetup()")


@runtime_checkable
class Limiter(Protocol):
    """Something that takes tokens for a key or raises `RateLimitedError`."""

    def acquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Take `cost` tokens from `key`'s bucket under `limit`, or raise `RateLimitedError`."""
        ...

    async def aacquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Async `acquire`."""
        ...


def _default(rate: float | None, burst: int | None) -> RateLimit | None:
    if rate is None and burst is not None:
        raise ConfigurationError("burst needs a rate: pass rate= (tokens a second) too")
    return rate_limit(rate, burst)


def _request(
    key: str, cost: float, limit: RateLimit | None, default: RateLimit | None
) -> tuple[str, RateLimit, float]:
    """A request's key, limit and cost, checked before any I/O."""
    chosen = limit or default
    if chosen is None:
        raise ConfigurationError(
            "no rate limit: give the limiter rate= (and burst=) or pass limit= to acquire"
        )
    return check_key(key), chosen, check_cost(cost)


class _ServerLimiter:
    """A limiter whose buckets live on a server, driven by a runner."""

    _runner: SyncRunnerBase[Any] | AsyncRunnerBase[Any]
    _default: RateLimit | None
    _buckets: RedisBuckets | PgBuckets

    def _take(self, key: str, cost: float, limit: RateLimit | None) -> tuple[str, RateLimit, float]:
        return _request(key, cost, limit, self._default)

    def _flow(self, key: str, limit: RateLimit, cost: float) -> Generator[Any, Any, float]:
        return self._buckets.take_gen(key, limit, cost)

    @property
    def is_async(self) -> bool:
        """Whether the limiter runs on an async client (its `aacquire` is native)."""
        return isinstance(self._runner, AsyncRunnerBase)

    def acquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Take `cost` tokens from `key`'s bucket, or raise `RateLimitedError`."""
        key, chosen, tokens = self._take(key, cost, limit)
        if not isinstance(self._runner, SyncRunnerBase):
            raise ConfigurationError(
                "this limiter was built on an async client; use `await limiter.aacquire(...)`"
            )
        wait = self._runner.run(self._flow(key, chosen, tokens))
        if wait > 0:
            raise refusal(key, chosen, wait)

    async def aacquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Async `acquire` (in a worker thread when the limiter has a sync client)."""
        key, chosen, tokens = self._take(key, cost, limit)
        if not isinstance(self._runner, AsyncRunnerBase):
            await asyncio.to_thread(self.acquire, key, tokens, limit=chosen)
            return
        wait = await self._runner.run(self._flow(key, chosen, tokens))
        if wait > 0:
            raise refusal(key, chosen, wait)


class RateLimiter(_ServerLimiter):
    """Per-tenant token buckets in Redis (a sync or asyncio client, or a cluster).

    Example:
        >>> import redis
        >>> from langmem_prod.embedded import embedded_redis
        >>> from langmem_prod.errors import RateLimitedError
        >>> with embedded_redis() as url:
        ...     limiter = RateLimiter(redis.Redis.from_url(url), rate=1, burst=2)
        ...     limiter.acquire("acme"); limiter.acquire("acme")
        ...     try:
        ...         limiter.acquire("acme")
        ...     except RateLimitedError as exc:
        ...         print(0 < exc.retry_after <= 1)
        True

    Args:
        client: a `redis.Redis` / `redis.RedisCluster` (use `acquire`) or a
            `redis.asyncio` client (use `aacquire`).
        rate: the default limit's tokens a second (None: pass `limit=` to each call).
        burst: the default limit's bucket size (None: one second's worth).
        prefix: the prefix of the buckets' keys.
        retry: how transient connection failures are retried.
    """

    def __init__(
        self,
        client: Any,
        *,
        rate: float | None = None,
        burst: int | None = None,
        prefix: str = DEFAULT_PREFIX,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise ConfigurationError("prefix must be a non-empty string without '{' or '}'")
        self._default = _default(rate, burst)
        self._buckets = RedisBuckets(prefix)
        self._runner = redis_runner_for(client, retry, SCRIPTS, owner="RateLimiter")


class PostgresRateLimiter(_ServerLimiter):
    """Per-tenant token buckets in PostgreSQL, for deployments without Redis.

    One statement per `acquire` on the server's clock (`clock_timestamp()`), atomic
    across processes; call `setup()` once (it creates `{schema}.rate_buckets`).

    Example:
        >>> from psycopg_pool import ConnectionPool
        >>> from langmem_prod.embedded import embedded_postgres
        >>> from langmem_prod.errors import RateLimitedError
        >>> with embedded_postgres() as url, ConnectionPool(url) as pool:
        ...     limiter = PostgresRateLimiter(pool, rate=1, burst=1)
        ...     limiter.setup()
        ...     limiter.acquire("acme")
        ...     try:
        ...         limiter.acquire("acme")
        ...     except RateLimitedError as exc:
        ...         print(0 < exc.retry_after <= 1)
        True

    Args:
        conn: a psycopg `Connection` / `ConnectionPool` (use `acquire`) or an
            `AsyncConnection` / `AsyncConnectionPool` (use `aacquire`).
        rate: the default limit's tokens a second (None: pass `limit=` to each call).
        burst: the default limit's bucket size (None: one second's worth).
        schema: the schema of the buckets table (the store's, by default).
        retry: how transient connection failures are retried.
    """

    _buckets: PgBuckets

    def __init__(
        self,
        conn: Any,
        *,
        rate: float | None = None,
        burst: int | None = None,
        schema: str = DEFAULT_SCHEMA,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._default = _default(rate, burst)
        self._buckets = PgBuckets(schema)
        self._runner = pg_runner_for(
            conn, schema, retry, owner="PostgresRateLimiter", setup_hint=_SETUP
        )

    def setup(self) -> None:
        """Create or upgrade the buckets table (idempotent, safe under concurrent starts)."""
        if not isinstance(self._runner, SyncRunner):
            raise ConfigurationError("setup() needs a sync connection; use `await asetup()`")
        self._runner.run_in_transaction(self._buckets.setup_gen)

    async def asetup(self) -> None:
        """Async `setup`."""
        if not isinstance(self._runner, AsyncRunner):
            raise ConfigurationError("asetup() needs an async connection; use setup()")
        await self._runner.run_in_transaction(self._buckets.setup_gen)


class LocalRateLimiter:
    """Per-tenant token buckets in this process's memory (no server).

    Thread- and asyncio-safe; each process has its own buckets, so with N processes a
    tenant gets N times the rate: for one process, tests, or a limit per worker.

    Example:
        >>> from langmem_prod.errors import RateLimitedError
        >>> now = [0.0]
        >>> limiter = LocalRateLimiter(rate=2, burst=1, clock=lambda: now[0])
        >>> limiter.acquire("acme")
        >>> try:
        ...     limiter.acquire("acme")
        ... except RateLimitedError as exc:
        ...     print(exc.retry_after)
        0.5
        >>> now[0] = 0.5
        >>> limiter.acquire("acme")

    Args:
        rate: the default limit's tokens a second (None: pass `limit=` to each call).
        burst: the default limit's bucket size (None: one second's worth).
        clock: seconds on a monotonic clock (inject a fake one in tests).
        max_buckets: how many buckets to keep before dropping those that are full again.
    """

    def __init__(
        self,
        *,
        rate: float | None = None,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 10_000,
    ) -> None:
        self._default = _default(rate, burst)
        self._clock = clock
        self._max = max_buckets
        self._buckets: dict[str, tuple[Bucket, RateLimit]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Take `cost` tokens from `key`'s bucket, or raise `RateLimitedError`."""
        key, chosen, tokens = _request(key, cost, limit, self._default)
        with self._lock:
            now = self._clock()
            held = self._buckets.get(key)
            bucket, wait = take(held[0] if held else None, now, chosen, tokens)
            if key not in self._buckets and len(self._buckets) >= self._max:
                self._drop_full(now)
            self._buckets[key] = (bucket, chosen)
        if wait > 0:
            raise refusal(key, chosen, wait)

    async def aacquire(self, key: str, cost: float = 1, *, limit: RateLimit | None = None) -> None:
        """Async `acquire` (the lock is held for microseconds: no thread needed)."""
        self.acquire(key, cost, limit=limit)

    def _drop_full(self, now: float) -> None:
        """Forget the buckets that have refilled: they would start full anyway."""
        for key, (bucket, limit) in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.at) * limit.rate >= limit.burst:
                del self._buckets[key]
