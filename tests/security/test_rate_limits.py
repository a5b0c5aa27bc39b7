"""Rate limits where the plans put them: every limiter, TenantStore and the histories.

The Redis and PostgreSQL buckets are raced by threads and tasks on every server (Redis,
Valkey, a Redis Cluster; PostgreSQL as an ordinary role), the in-process bucket on an
injected clock; hostile costs, keys and settings are refused before any I/O.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import HumanMessage
from langgraph.store.base import PutOp

from langmem_prod import errors
from langmem_prod.tenancy import (
    PLANS,
    LocalRateLimiter,
    PostgresRateLimiter,
    PostgresTenantRegistry,
    RateLimit,
    RateLimiter,
    RedisTenantRegistry,
    Tenant,
    TenantRateLimiter,
    TenantRegistry,
    TenantStore,
)
from langmem_prod.tenancy._bucket import Bucket, take
from tests.backends import Backend, unique_name
from tests.security.limits_support import backend, call, server

__all__ = ["backend", "server"]  # fixtures

S = "\ud800"
SLOW = 1e-6  # the slowest rate: no refill during a test
BAD_COSTS = [math.nan, math.inf, -math.inf, -1, 0, 0.0, True, False, "1", None, 10**400, 2e9]
BAD_KEYS = ["", "a{b", "a}b", "{acme}", "nul\x00", "x" + S, 7, None, "k" * 257]


# -- the sans-IO core ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    rate=st.floats(0.01, 100),
    burst=st.integers(1, 20),
    steps=st.lists(st.tuples(st.floats(0, 2), st.integers(1, 40)), min_size=1, max_size=40),
)
def test_the_bucket_never_grants_more_than_burst_plus_refill(
    rate: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    limit, state, now, granted = RateLimit(rate, burst), None, 0.0, 0.0
    for elapsed, cost in steps:
        now += elapsed
        state, wait = take(state, now, limit, cost)
        if wait == 0:
            granted += cost
        else:  # waiting exactly `wait` is enough, and a little less is not
            assert take(state, now + wait * (1 + 1e-9) + 1e-12, limit, cost)[1] == 0
            assert wait > 0
    biggest = max(cost for _, cost in steps)
    assert granted <= burst + rate * now + max(0, biggest - burst) + 1e-6


def test_a_request_larger_than_the_burst_goes_through_on_a_full_bucket_in_debt() -> None:
    limit = RateLimit(10, 3)
    state, wait = take(None, 0.0, limit, 5)
    assert (state, wait) == (Bucket(-2.0, 0.0), 0.0)
    assert take(state, 0.0, limit, 1)[1] == pytest.approx(0.3)  # pays the debt, then 1
    assert take(state, 0.1, limit, 5)[1] == pytest.approx(0.4)  # needs a full bucket


def test_plans_and_overrides_set_the_limits() -> None:
    assert Tenant("a", "A", "free").rate_limit == RateLimit(10, 20)
    assert Tenant("a", "A", "pro").rate_limit == RateLimit(100, 200)
    assert Tenant("a", "A", "enterprise").rate_limit is None
    assert PLANS["enterprise"].rate_per_second is None
    tenant = Tenant("a", "A", "enterprise", overrides={"rate_per_second": 2.5})
    assert tenant.rate_limit == RateLimit(2.5, 3)  # burst: one second's worth
    assert Tenant("a", "A", "free", overrides={"rate_per_second": None}).rate_limit is None
    bad_rates = [math.nan, math.inf, 0, -1, True, "9", 1e-9, 1e10]
    bad = [{"rate_per_second": r} for r in bad_rates] + [{"burst": b} for b in (0, 1.5, True)]
    for overrides in bad:
        with pytest.raises(errors.ConfigurationError, match=next(iter(overrides))):
            Tenant("a", "A", "free", overrides=overrides)


# -- the in-process bucket -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_local_buckets_refill_on_the_injected_clock() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(rate=4, burst=2, clock=clock)
    limiter.acquire("acme", 2)
    with pytest.raises(errors.RateLimitedError, match="'acme' is over its rate limit") as info:
        limiter.acquire("acme")
    assert info.value.retry_after == pytest.approx(0.25)
    limiter.acquire("globex")  # another tenant, another bucket
    clock.now += 0.24
    with pytest.raises(errors.RateLimitedError) as info:
        limiter.acquire("acme")
    assert info.value.retry_after == pytest.approx(0.01)
    clock.now += 0.01
    limiter.acquire("acme")
    limiter.acquire("initech", 20, limit=RateLimit(SLOW, 20))  # a per-call limit wins
    with pytest.raises(errors.RateLimitedError):
        limiter.acquire("initech", limit=RateLimit(SLOW, 20))


def test_local_buckets_forget_only_full_buckets() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(rate=1, burst=1, clock=clock, max_buckets=2)
    limiter.acquire("a")
    limiter.acquire("b")
    limiter.acquire("c")  # a and b are empty: kept
    with pytest.raises(errors.RateLimitedError):
        limiter.acquire("a")
    clock.now += 5
    limiter.acquire("d")  # a, b, c are full again: forgotten
    limiter.acquire("a")


def test_local_buckets_hold_under_racing_threads() -> None:
    limiter = LocalRateLimiter(rate=SLOW, burst=25)
    with ThreadPoolExecutor(8) as pool:
        granted = sum(pool.map(lambda _: _granted(lambda: limiter.acquire("acme")), range(200)))
    assert granted == 25


async def test_local_buckets_hold_under_racing_tasks() -> None:
    limiter = LocalRateLimiter(rate=SLOW, burst=25)
    results = await asyncio.gather(
        *(limiter.aacquire("acme") for _ in range(200)), return_exceptions=True
    )
    assert sum(r is None for r in results) == 25
    assert all(isinstance(r, errors.RateLimitedError) for r in results if r is not None)


def _granted(attempt: Callable[[], None]) -> bool:
    try:
        attempt()
    except errors.RateLimitedError as exc:
        assert exc.retry_after > 0
        return False
    return True


def test_hostile_input_to_the_in_process_limiter() -> None:
    limiter = LocalRateLimiter(rate=1, burst=1)
    for cost in BAD_COSTS:
        with pytest.raises(errors.InvalidInputError, match="cost"):
            limiter.acquire("acme", cost)  # type: ignore[arg-type]
    for key in BAD_KEYS:
        with pytest.raises(errors.InvalidInputError, match="key"):
            limiter.acquire(key)  # type: ignore[arg-type]
    limiter.acquire("acme")  # nothing above took a token
    with pytest.raises(errors.ConfigurationError, match="no rate limit"):
        LocalRateLimiter().acquire("acme")
    for rate, burst in [(math.nan, 1), (math.inf, 1), (0, 1), (-1, 1), (True, 1), ("1", 1),
                        (1, 0), (1, 1.5), (1, True), (None, 3), (1, 10**10)]:  # fmt: skip
        with pytest.raises(errors.ConfigurationError):
            LocalRateLimiter(rate=rate, burst=burst)  # type: ignore[arg-type]


# -- buckets on the servers ------------------------------------------------------------

MakeLimiter = Callable[..., Awaitable[Any]]


@pytest.fixture
async def limiters(backend: Backend, flavour: str) -> MakeLimiter:
    """Limiters of the server's kind, on a sync or an async client."""

    async def make(flavour: str = flavour, **kwargs: Any) -> Any:
        place = backend.place()
        if backend.kind == "redis":
            return RateLimiter(backend._redis_client(flavour), prefix=place, **kwargs)
        limiter = PostgresRateLimiter(await backend._pg_source(flavour), schema=place, **kwargs)
        await (limiter.asetup() if flavour == "async" else asyncio.to_thread(limiter.setup))
        return limiter

    return make


async def acquire(limiter: Any, flavour: str, *args: Any, **kwargs: Any) -> None:
    if flavour == "async":
        await limiter.aacquire(*args, **kwargs)
    else:
        await asyncio.to_thread(limiter.acquire, *args, **kwargs)


async def test_the_wait_is_right_and_the_bucket_refills(
    limiters: MakeLimiter, flavour: str
) -> None:
    limiter = await limiters(rate=4, burst=2)
    await acquire(limiter, flavour, "acme", 2)
    with pytest.raises(errors.RateLimitedError) as info:
        await acquire(limiter, flavour, "acme")
    assert 0.2 < info.value.retry_after <= 0.25  # (1 - refill since) / 4 per second
    await acquire(limiter, flavour, "globex")  # another tenant, another bucket
    await asyncio.sleep(info.value.retry_after)
    await acquire(limiter, flavour, "acme")
    for _ in range(2):  # a per-call limit wins over the limiter's own
        await acquire(limiter, flavour, "initech", 5, limit=RateLimit(SLOW, 10))
    with pytest.raises(errors.RateLimitedError):
        await acquire(limiter, flavour, "initech", limit=RateLimit(SLOW, 10))


async def test_exactly_burst_of_racing_acquires_succeed(
    limiters: MakeLimiter, flavour: str
) -> None:
    limiter = await limiters(rate=SLOW, burst=10)
    if flavour == "async":
        results = await asyncio.gather(
            *(limiter.aacquire("acme") for _ in range(50)), return_exceptions=True
        )
        assert all(r is None or isinstance(r, errors.RateLimitedError) for r in results)
        granted = sum(r is None for r in results)
    else:

        def race() -> int:
            with ThreadPoolExecutor(8) as pool:
                return sum(pool.map(lambda _: _granted(lambda: limiter.acquire("acme")), range(50)))

        granted = await asyncio.to_thread(race)
    assert granted == 10


async def test_hostile_input_is_refused_before_any_io(
    limiters: MakeLimiter, backend: Backend, flavour: str
) -> None:
    limiter = await limiters(rate=1, burst=1)
    for cost in BAD_COSTS:
        with pytest.raises(errors.InvalidInputError, match="cost"):
            await acquire(limiter, flavour, "acme", cost)
    for key in BAD_KEYS:
        with pytest.raises(errors.InvalidInputError, match="key"):
            await acquire(limiter, flavour, key)
    assert await _buckets(backend, limiter) == 0, "a refused call wrote a bucket"
    await acquire(limiter, flavour, "acme")  # nothing above took a token
    with pytest.raises(errors.ConfigurationError, match="no rate limit"):
        await acquire(await limiters(), flavour, "acme")


async def _buckets(backend: Backend, limiter: Any) -> int:
    """How many buckets the limiter holds on its server."""
    if backend.kind == "redis":
        dump = await backend.raw_dump(limiter._buckets.prefix)
        return dump.count(b"tokens")
    async with await psycopg.AsyncConnection.connect(backend.server.url) as conn:
        schema = limiter._buckets.schema
        cur = await conn.execute(f'SELECT count(*) FROM "{schema}".rate_buckets')
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_sync_and_async_clients(limiters: MakeLimiter, flavour: str) -> None:
    if flavour == "sync":  # a sync client's aacquire runs in a thread
        limiter = await limiters(rate=SLOW, burst=1)
        await limiter.aacquire("acme")
        with pytest.raises(errors.RateLimitedError):
            await limiter.aacquire("acme")
    else:
        limiter = await limiters(rate=1, burst=1)
        with pytest.raises(errors.ConfigurationError, match="aacquire"):
            limiter.acquire("acme")


def test_bad_limiter_settings() -> None:
    client = redis.Redis()
    for kwargs in ({"rate": math.nan}, {"rate": 0}, {"rate": 1, "burst": 0}, {"burst": 5},
                   {"rate": 1, "prefix": "{x}"}, {"rate": 1, "prefix": ""}):  # fmt: skip
        with pytest.raises(errors.ConfigurationError):
            RateLimiter(client, **kwargs)
    with pytest.raises(errors.ConfigurationError, match="redis-py client"):
        RateLimiter(object(), rate=1)
    with pytest.raises(errors.ConfigurationError, match="psycopg"):
        PostgresRateLimiter(client, rate=1)


# -- TenantStore and the histories -----------------------------------------------------


class World:
    """A store, a registry and limiters on one server, and tenant stores and histories."""

    def __init__(self, backend: Backend, store: Any, registry: TenantRegistry) -> None:
        self.backend, self.store, self.registry = backend, store, registry
        self.place = store.schema if backend.kind == "postgres" else store.prefix


@pytest.fixture
async def world(backend: Backend, flavour: str, limiters: MakeLimiter) -> AsyncIterator[World]:
    place = backend.place()
    store = await backend.make(flavour, place, start_sweeper=False)
    registry: TenantRegistry
    if backend.kind == "postgres":
        registry = PostgresTenantRegistry(await backend._pg_source("sync"), schema=place)
        setup = await backend.make_history("sync", place, "setup")
        await asyncio.to_thread(setup.setup)
    else:
        registry = RedisTenantRegistry(backend._redis_client("sync"), prefix=place)
    await asyncio.to_thread(registry.setup)
    await (store.setup() if flavour == "async" else asyncio.to_thread(store.setup))
    yield World(backend, store, registry)
    await (store.aclose() if flavour == "async" else asyncio.to_thread(store.close))


async def test_tenant_store_takes_one_token_per_op_before_the_store(
    world: World, limiters: MakeLimiter, flavour: str
) -> None:
    await asyncio.to_thread(world.registry.create, "acme", rate_per_second=10, burst=3)
    limiter = await limiters()
    acme = TenantStore(world.store, world.registry, "acme", user_id="ada", limiter=limiter)
    await call(acme, flavour, "batch", [PutOp(("n",), "k1", {"v": 1}), PutOp(("n",), "k2", {})])
    with pytest.raises(errors.RateLimitedError) as info:
        await call(acme, flavour, "batch", [PutOp(("n",), "k3", {}), PutOp(("n",), "k4", {})])
    assert 0 < info.value.retry_after <= 0.1
    assert await _stored(world, flavour) == {"k1", "k2"}  # the refused batch wrote nothing
    await asyncio.sleep(0.35)  # full again (3 tokens at 10/s)
    big = [PutOp(("n",), f"b{i}", {}) for i in range(5)]  # over the burst: goes, in debt
    await call(acme, flavour, "batch", big)
    with pytest.raises(errors.RateLimitedError) as info:
        await call(acme, flavour, "get", ("n",), "k1")
    assert 0.2 < info.value.retry_after <= 0.3  # 2 of debt and 1 to take, at 10/s


async def test_tenant_stores_enforce_the_plan_without_being_given_a_limiter(
    world: World, flavour: str
) -> None:
    await asyncio.to_thread(world.registry.create, "acme", rate_per_second=SLOW, burst=2)
    first = TenantStore(world.store, world.registry, "acme", user_id="ada")
    second = TenantStore(world.store, world.registry, "acme", user_id="bob")  # same bucket
    await call(first, flavour, "put", ("n",), "k1", {})
    await call(second, flavour, "get", ("n",), "k1")
    with pytest.raises(errors.RateLimitedError):
        await call(first, flavour, "put", ("n",), "k2", {})
    with pytest.raises(errors.RateLimitedError):
        await call(second, flavour, "get", ("n",), "k1")
    assert await _stored(world, flavour) == {"k1"}
    off = TenantStore(world.store, world.registry, "acme", user_id="ada", limiter=None)
    for n in range(5):  # None: not enforced
        await call(off, flavour, "put", ("n",), f"k{n}", {})


async def _stored(world: World, flavour: str) -> set[str]:
    namespace = ("tenants", "acme", "ada", "n")
    if flavour == "async":
        found = await world.store.asearch(namespace, limit=100)
    else:
        found = await asyncio.to_thread(world.store.search, namespace, limit=100)
    return {item.key for item in found}


async def test_racing_tenant_stores_store_exactly_burst_items(
    world: World, limiters: MakeLimiter, flavour: str
) -> None:
    await asyncio.to_thread(world.registry.create, "acme", rate_per_second=SLOW, burst=5)
    limiter = await limiters()
    acme = TenantStore(world.store, world.registry, "acme", user_id="ada", limiter=limiter)
    await call(acme, flavour, "get", ("n",), "warm")  # read the tenant once: 1 token
    puts = [call(acme, flavour, "put", ("n",), f"k{i}", {"i": i}) for i in range(20)]
    results = await asyncio.gather(*puts, return_exceptions=True)
    assert all(r is None or isinstance(r, errors.RateLimitedError) for r in results)
    assert sum(r is None for r in results) == 4
    assert len(await _stored(world, flavour)) == 4


async def test_limits_follow_the_tenant_and_unlimited_tenants_are_not_limited(
    world: World, limiters: MakeLimiter, flavour: str
) -> None:
    registry = world.registry
    await asyncio.to_thread(registry.create, "acme", rate_per_second=SLOW, burst=1)
    await asyncio.to_thread(registry.create, "big", plan="enterprise")
    limiter = await limiters()

    def tenant_store(tenant: str) -> TenantStore:
        return TenantStore(world.store, registry, tenant, refresh_seconds=0, limiter=limiter)

    acme, big = tenant_store("acme"), tenant_store("big")
    await call(acme, flavour, "get", ("n",), "k")
    with pytest.raises(errors.RateLimitedError):
        await call(acme, flavour, "get", ("n",), "k")
    for _ in range(30):
        await call(big, flavour, "get", ("n",), "k")
    await asyncio.to_thread(registry.update, "acme", rate_per_second=1e6)  # re-read at once
    await call(acme, flavour, "get", ("n",), "k")
    await asyncio.to_thread(registry.update, "acme", rate_per_second=None)  # unlimited
    for _ in range(5):
        await call(acme, flavour, "get", ("n",), "k")


async def test_histories_draw_on_their_tenants_bucket(
    world: World, limiters: MakeLimiter, flavour: str
) -> None:
    backend, registry = world.backend, world.registry
    await asyncio.to_thread(registry.create, "acme", rate_per_second=SLOW, burst=3)
    await asyncio.to_thread(registry.create, "big", plan="enterprise")
    limiter = TenantRateLimiter(await limiters(), registry, refresh_seconds=0)
    session = unique_name()

    async def history(tenant: str, **kwargs: Any) -> Any:
        return await backend.make_history(flavour, world.place, session, tenant_id=tenant, **kwargs)

    limited = await history("acme", limiter=limiter)
    await call(limited, flavour, "add_messages", [HumanMessage("one"), HumanMessage("two")])
    acme = TenantStore(world.store, registry, "acme", user_id="ada", limiter=limiter)
    await call(acme, flavour, "get", ("n",), "k")  # the same bucket: 2 of 3 tokens used
    assert [m.content for m in await call(limited, flavour, "get_messages")] == ["one", "two"]
    for method, args in [("add_messages", [[HumanMessage("three")]]), ("load", []),
                         ("clear", []), ("save_state", [{"s": 1}])]:  # fmt: skip
        with pytest.raises(errors.RateLimitedError):
            await call(limited, flavour, method, *args)
    plain = await history("acme")
    assert [m.content for m in await call(plain, flavour, "get_messages")] == ["one", "two"]
    unlimited = await history("big", limiter=limiter)
    for _ in range(10):
        await call(unlimited, flavour, "get_messages")
    with pytest.raises(errors.InvalidInputError, match="cost"):
        await acquire(limiter, flavour, "big", math.nan)
    with pytest.raises(errors.ConfigurationError, match="tenant_id"):
        await backend.make_history(flavour, world.place, session, limiter=limiter)
