"""Per-tenant token buckets on every Redis target: bursts, refills, races, the async twin."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
import redis.asyncio

from langmem_prod.errors import ConfigurationError, InvalidInputError, RateLimitedError
from langmem_prod.store.redis._driver import close_client
from langmem_prod.tenancy import RateLimiter
from tests.backends import unique_name
from tests.conftest import RedisServer


def client_of(rs: RedisServer) -> Any:
    return redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)


def test_a_burst_then_a_refusal_with_the_wait_then_a_refill(rs: RedisServer) -> None:
    client = client_of(rs)
    limiter = RateLimiter(client, rate=20, burst=3, prefix=unique_name())
    for _ in range(3):
        limiter.acquire("acme")
    with pytest.raises(RateLimitedError, match="'acme' is over its rate limit") as refused:
        limiter.acquire("acme")
    assert 0 < refused.value.retry_after <= 0.05
    limiter.acquire("globex")  # another tenant has its own bucket
    time.sleep(refused.value.retry_after + 0.01)
    limiter.acquire("acme")
    close_client(client)


def test_concurrent_requests_never_exceed_the_bucket(rs: RedisServer) -> None:
    client = client_of(rs)
    limiter = RateLimiter(client, rate=0.01, burst=10, prefix=unique_name())

    def attempt(_: int) -> bool:
        try:
            limiter.acquire("acme")
        except RateLimitedError:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        granted = sum(pool.map(attempt, range(50)))
    assert granted == 10
    close_client(client)


async def test_the_async_twin(rs: RedisServer) -> None:
    client: Any = (
        redis.asyncio.RedisCluster.from_url(rs.url)
        if rs.cluster
        else redis.asyncio.Redis.from_url(rs.url)
    )
    limiter = RateLimiter(client, rate=1, burst=2, prefix=unique_name())
    await limiter.aacquire("acme", cost=2)
    with pytest.raises(RateLimitedError) as refused:
        await limiter.aacquire("acme")
    assert 0.9 <= refused.value.retry_after <= 1.0
    await client.aclose()


def test_bad_settings() -> None:
    client = redis.Redis()
    for kwargs in (
        {"rate": 0, "burst": 1},
        {"rate": 1, "burst": 0},
        {"rate": 1, "burst": 1, "prefix": "{x}"},
    ):
        with pytest.raises(ConfigurationError):
            RateLimiter(client, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="cost must be a number of tokens > 0"):
        RateLimiter(client, rate=1, burst=2).acquire("acme", cost=0)
