"""The Redis part of the store benchmark: RedisStore vs raw redis-py, same server and data.

Raw baselines, each returning decoded values as the store does:
- get: HGET of the item's JSON, then json.loads;
- batch of 100 gets: a pipeline of 100 HGETs;
- put / batch of 100 puts: HSET of the item's JSON (json.dumps), one or a pipeline of
  100; ours twice, under a plain namespace and under ("tenants", <id>, ...), where each
  write also keeps the tenant's usage (item sizes) for quotas;
- filtered search (limit 10) over 1,000 items: the usual module-free way, HVALS of a
  namespace hash holding every item, then decode and filter in Python; once with a
  filter that a quarter of the items match, once with one that 2 match (the worst
  case for the store, whose script then reads every item).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import redis
from _timing import compare, pin_apart
from langgraph.store.base import GetOp, PutOp

from langmem_prod import RedisStore
from langmem_prod.embedded import EmbeddedRedis

PREFIX = "langmem_bench"
RAW_HASH = "langmem_bench_raw:{search.docs}"
REDIS_TARGETS = {
    "redis_get": ("raw", 0.8),
    "redis_batch_get_100": ("raw", 0.8),
    "redis_filtered_search_1000": ("raw", 3.0),
}
TENANT = ("tenants", "acme", "ada", "notes")


@contextlib.contextmanager
def redis_server(url: str | None, pin: bool) -> Iterator[str]:
    """The given Redis URL, or an embedded Valkey (pinned to CPU 0 with `pin`)."""
    if url:
        yield url
        return
    with EmbeddedRedis() as embedded:
        if pin:
            assert embedded.directory is not None
            pin_apart(int((embedded.directory / "server.pid").read_text()))
        yield embedded.url


def _clean(client: redis.Redis) -> None:
    for pattern in (f"{PREFIX}:*", "langmem_bench_raw:*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


def _raw_key(i: int) -> str:
    return f"langmem_bench_raw:item:{i}"


def _put_scenarios(
    ours: RedisStore, raw: redis.Redis, n: int, repeats: int
) -> dict[str, dict[str, float]]:
    """Puts and batches of 100 puts (updates after the warm-up), plain and of a tenant."""
    value = {"score": 7, "text": "a memory worth keeping"}
    batch = [PutOp(("bench", "batch"), f"k{i}", value) for i in range(100)]
    tenant_batch = [PutOp(TENANT, f"k{i}", value) for i in range(100)]

    def raw_put() -> None:
        raw.hset(_raw_key(0), "v", json.dumps(value))

    def raw_batch_put() -> None:
        pipe = raw.pipeline(transaction=False)
        for i in range(100):
            pipe.hset(_raw_key(i), "v", json.dumps(value))
        pipe.execute()

    puts = compare(
        {
            "ours": lambda: ours.put(("bench", "user1"), "p", value),
            "raw": raw_put,
            "ours_tenant": lambda: ours.put(TENANT, "p", value),
        },
        n,
        repeats,
    )
    batches = compare(
        {
            "ours": lambda: ours.batch(batch),
            "raw": raw_batch_put,
            "ours_tenant": lambda: ours.batch(tenant_batch),
        },
        max(10, n // 10),
        repeats,
    )
    return {"redis_put": puts, "redis_batch_put_100": batches}


def redis_scenarios(url: str, n: int, repeats: int) -> tuple[dict[str, dict[str, float]], str]:
    """Time the Redis scenarios (every case returns decoded values), and name the server."""
    client = redis.Redis.from_url(url)
    raw = redis.Redis.from_url(url)
    _clean(client)
    results: dict[str, dict[str, float]] = {}
    with RedisStore(client, prefix=PREFIX, start_sweeper=False) as ours:
        ours.setup()
        namespaces = [("bench", f"user{i}") for i in range(64)]
        values = [{"score": i, "text": f"memory {i}"} for i in range(1000)]
        ours.batch([PutOp(namespaces[i % 64], f"k{i}", v) for i, v in enumerate(values)])
        pipe = raw.pipeline(transaction=False)
        for i, v in enumerate(values):
            pipe.hset(_raw_key(i), "v", json.dumps(v))
        pipe.execute()

        results["redis_get"] = compare(
            {
                "ours": lambda: ours.get(("bench", "user1"), "k1"),
                "raw": lambda: json.loads(raw.hget(_raw_key(1), "v")),  # type: ignore[arg-type]
            },
            n,
            repeats,
        )

        gets = [GetOp(namespaces[i % 64], f"k{i}") for i in range(100)]
        keys = [_raw_key(i) for i in range(100)]

        def raw_batch() -> list[Any]:
            pipe = raw.pipeline(transaction=False)
            for key in keys:
                pipe.hget(key, "v")
            return [json.loads(v) for v in pipe.execute()]

        results["redis_batch_get_100"] = compare(
            {"ours": lambda: ours.batch(gets), "raw": raw_batch}, max(10, n // 10), repeats
        )

        results.update(_put_scenarios(ours, raw, n, repeats))

        docs = {f"d{i}": {"score": i, "kind": "note" if i % 2 else "fact"} for i in range(1000)}
        ours.batch([PutOp(("search", "docs"), k, v) for k, v in docs.items()])
        raw.hset(RAW_HASH, mapping={k: json.dumps(v) for k, v in docs.items()})
        flt = {"score": {"$gte": 500}, "kind": "note"}
        rare = {"score": {"$gte": 998}}

        def raw_search(test: Callable[[dict[str, Any]], bool]) -> list[Any]:
            values = [json.loads(v) for v in raw.hvals(RAW_HASH)]
            return [v for v in values if test(v)][:10]

        results["redis_filtered_search_1000"] = compare(
            {
                "ours": lambda: ours.search(("search", "docs"), filter=flt, limit=10),
                "raw": lambda: raw_search(lambda v: v["score"] >= 500 and v["kind"] == "note"),
            },
            max(20, n // 5),
            repeats,
        )
        # The worst case, no target: 2 matches, so the script reads every item.
        results["redis_selective_search_1000"] = compare(
            {
                "ours": lambda: ours.search(("search", "docs"), filter=rare, limit=10),
                "raw": lambda: raw_search(lambda v: v["score"] >= 998),
            },
            max(20, n // 5),
            repeats,
        )
        info = client.info("server")
    _clean(client)
    client.close()
    raw.close()
    if "valkey_version" in info:
        server = f"Valkey {info['valkey_version']}"
    else:
        server = f"Redis {info['redis_version']}"
    return results, server
