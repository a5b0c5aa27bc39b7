"""Store benchmark: langmem_prod vs LangGraph's PostgresStore vs raw psycopg, same run.

Usage:
    python bench/store_bench.py [--url postgresql://...] [--quick] [--out FILE.json]
                                [--only postgres|redis]

Without --url it starts the embedded PostgreSQL 18. Every scenario runs the three
implementations interleaved on the same server and data, repeats, and reports the
median time per operation and the ratio of throughputs (higher is better for us):
`vs raw` = raw time / our time, `vs LangGraph` = LangGraph time / our time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from _timing import compare, pin_apart, publish
from langgraph.store.base import GetOp, PutOp
from langgraph.store.postgres import AsyncPostgresStore as LGAsyncStore
from langgraph.store.postgres import PostgresStore as LGStore
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool
from redis_bench import REDIS_TARGETS, redis_scenarios, redis_server

from langmem_prod import AsyncPostgresStore, PostgresStore
from langmem_prod.embedded import EmbeddedPostgres

SCHEMA = "langmem_bench"
LG_SCHEMA = "langmem_bench_langgraph"
ITEMS = f'"{SCHEMA}".items'
TARGETS = {
    "get": ("raw", 0.8),
    "batch_get_100": ("raw", 0.8),
    "batch_get_100_vs_langgraph": ("langgraph", 8.0),
    "async_get_50_concurrent": ("raw", 0.6),
    "put": ("raw", 0.9),
    "batch_put_100": ("raw", 0.9),
    "filtered_search_1000": ("raw", 0.85),
    # The default path: the stores as users build them, `from_conn_string` (a pool).
    "get_pooled": ("raw", 0.85),
    "put_pooled": ("langgraph", 1.0),
    "async_get_50_concurrent_pooled": ("raw", 0.7),
}


@contextlib.contextmanager
def server(url: str | None, pin: bool) -> Iterator[str]:
    """The server to measure: the given URL, or an embedded one.

    With `pin`, the embedded server runs on CPU 0 and this process on CPU 1, so on a
    small machine the client and the server do not take turns on the same core.
    """
    if url:
        yield url
        return
    with EmbeddedPostgres() as embedded:
        if pin:
            pin_apart(int((embedded.data / "postmaster.pid").read_text().split()[0]))
        yield embedded.url


def get_contenders(
    ours: Any, lg: Any, raw: psycopg.Connection[Any]
) -> dict[str, Callable[[], Any]]:
    """One `get` by each side: our store, LangGraph's, and the raw query it stands for."""
    return {
        "ours": lambda: ours.get(("bench", "user1"), "k1"),
        "langgraph": lambda: lg.get(("bench", "user1"), "k1"),
        "raw": lambda: raw.execute(
            f"SELECT prefix, key, value, created_at, updated_at FROM {ITEMS} "
            "WHERE prefix = %s AND key = %s",
            ("bench.user1", "k1"),
        ).fetchone(),
    }


def put_contenders(
    ours: Any, lg: Any, raw: psycopg.Connection[Any]
) -> dict[str, Callable[[], Any]]:
    """One `put` over 500 keys by each side; the raw side is a bare upsert."""
    counter = iter(range(10**9))
    value = {"score": 1, "text": "a new memory about the user"}
    return {
        "ours": lambda: ours.put(("bench", "w"), f"p{next(counter) % 500}", value),
        "langgraph": lambda: lg.put(("bench", "w"), f"p{next(counter) % 500}", value),
        "raw": lambda: raw.execute(
            f"INSERT INTO {ITEMS} (prefix, key, value, created_at, updated_at) "
            "VALUES (%s, %s, %s, now(), now()) ON CONFLICT (prefix, key) DO UPDATE "
            "SET value = excluded.value, updated_at = excluded.updated_at",
            ("bench.w", f"p{next(counter) % 500}", Jsonb(value)),
        ),
    }


def reset(url: str, *, again: bool = True) -> None:
    """Drop what the bench made (its own two schemas only); make LangGraph's schema again."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        conn.execute(f'DROP SCHEMA IF EXISTS "{LG_SCHEMA}" CASCADE')
        if again:
            conn.execute(f'CREATE SCHEMA "{LG_SCHEMA}"')


# LangGraph's store uses unqualified table names: its connections see only its schema.
LG_OPTIONS = {
    "prepare_threshold": 0,
    "row_factory": dict_row,
    "options": f"-c search_path={LG_SCHEMA}",
}


def sync_scenarios(url: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with (
        psycopg.connect(url, autocommit=True) as conn,
        psycopg.connect(url, autocommit=True) as raw,
        psycopg.connect(url, autocommit=True, **LG_OPTIONS) as lg_conn,
    ):
        ours = PostgresStore(conn, schema=SCHEMA, start_sweeper=False)
        ours.setup()
        lg = LGStore(lg_conn)
        lg.setup()
        namespaces = [("bench", f"user{i}") for i in range(64)]
        seed = [
            PutOp(namespaces[i % 64], f"k{i}", {"score": i, "text": f"memory {i}"})
            for i in range(1000)
        ]
        ours.batch(seed)
        lg.batch(seed)

        results["get"] = compare(get_contenders(ours, lg, raw), n, repeats)

        gets = [GetOp(namespaces[i % 64], f"k{i}") for i in range(100)]
        prefixes = [".".join(op.namespace) for op in gets]
        keys = [op.key for op in gets]
        results["batch_get_100"] = compare(
            {
                "ours": lambda: ours.batch(gets),
                "langgraph": lambda: lg.batch(gets),
                "raw": lambda: raw.execute(
                    f"SELECT i.prefix, i.key, i.value, i.created_at, i.updated_at "
                    f"FROM unnest(%s::text[], %s::text[]) AS q(prefix, key) "
                    f"JOIN {ITEMS} i ON i.prefix = q.prefix AND i.key = q.key",
                    (prefixes, keys),
                ).fetchall(),
            },
            max(10, n // 10),
            repeats,
        )

        results["put"] = compare(put_contenders(ours, lg, raw), n, repeats)

        puts = [
            PutOp(namespaces[i % 64], f"b{i}", {"score": i, "text": f"batch {i}"})
            for i in range(100)
        ]

        def raw_batch_put() -> None:
            raw.execute(
                f"INSERT INTO {ITEMS} (prefix, key, value, created_at, updated_at) "
                "SELECT p, k, v, now(), now() FROM unnest(%s::text[], %s::text[], %s::jsonb[]) "
                "AS t(p, k, v) ON CONFLICT (prefix, key) DO UPDATE "
                "SET value = excluded.value, updated_at = excluded.updated_at",
                (
                    [".".join(op.namespace) for op in puts],
                    [op.key for op in puts],
                    [Jsonb(op.value) for op in puts],
                ),
            )

        results["batch_put_100"] = compare(
            {
                "ours": lambda: ours.batch(puts),
                "langgraph": lambda: lg.batch(puts),
                "raw": raw_batch_put,
            },
            max(10, n // 10),
            repeats,
        )

        search_ns = ("search", "docs")
        docs = [
            PutOp(search_ns, f"d{i}", {"score": i, "kind": "note" if i % 2 else "fact"})
            for i in range(1000)
        ]
        ours.batch(docs)
        lg.batch(docs)
        flt = {"score": {"$gte": 500}, "kind": "note"}
        results["filtered_search_1000"] = compare(
            {
                "ours": lambda: ours.search(search_ns, filter=flt, limit=10),
                "langgraph": lambda: lg.search(search_ns, filter=flt, limit=10),
                "raw": lambda: raw.execute(
                    f"SELECT prefix, key, value, created_at, updated_at FROM {ITEMS} "
                    "WHERE (prefix = %s OR (prefix >= %s AND prefix < %s)) "
                    "AND (CASE WHEN jsonb_typeof(value -> 'score') = 'number' "
                    "THEN (value -> 'score')::numeric END) >= %s "
                    "AND value -> 'kind' = %s::jsonb "
                    "ORDER BY updated_at DESC LIMIT 10",
                    ("search.docs", "search.docs.", "search.docs/", 500, '"note"'),
                ).fetchall(),
            },
            max(20, n // 5),
            repeats,
        )
        ours.close()
        results["batch_get_100_vs_langgraph"] = dict(results["batch_get_100"])
    return results


def pooled_scenarios(url: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    """`get` and `put` through `from_conn_string` (a pool), and the pool's own cost.

    Runs on the data `sync_scenarios` left. `raw` is psycopg on one connection;
    LangGraph's store is built as its `from_conn_string` builds it (one connection).
    """
    results: dict[str, dict[str, float]] = {}
    with (
        PostgresStore.from_conn_string(url, schema=SCHEMA, start_sweeper=False) as ours,
        psycopg.connect(url, autocommit=True) as raw,
        psycopg.connect(url, autocommit=True, **LG_OPTIONS) as lg_conn,
    ):
        lg = LGStore(lg_conn)
        results["get_pooled"] = compare(get_contenders(ours, lg, raw), n, repeats)
        results["put_pooled"] = compare(put_contenders(ours, lg, raw), n, repeats)
        pool = ours.conn
        assert isinstance(pool, ConnectionPool)

        def checkout() -> None:
            pool.putconn(pool.getconn())

        def checkout_with() -> None:
            with pool.connection():
                pass

        results["pool_checkout"] = compare(
            {"ours": checkout, "connection_context_manager": checkout_with}, n, repeats
        )
    return results


async def async_scenario(
    url: str, n: int, repeats: int, *, pooled: bool = False
) -> dict[str, float]:
    """50 gathered `aget`s vs raw psycopg's one query for the 50, on one connection.

    With `pooled`, our store is built by `from_conn_string` (a pool), as users build it.
    """
    async with contextlib.AsyncExitStack() as stack:
        if pooled:
            ours = await stack.enter_async_context(
                AsyncPostgresStore.from_conn_string(url, schema=SCHEMA, start_sweeper=False)
            )
        else:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
            stack.push_async_callback(conn.close)
            ours = AsyncPostgresStore(conn, schema=SCHEMA, start_sweeper=False)
            stack.push_async_callback(ours.aclose)
        return await _async_gets(ours, url, n, repeats)


async def _async_gets(ours: AsyncPostgresStore, url: str, n: int, repeats: int) -> dict[str, float]:
    raw = await psycopg.AsyncConnection.connect(url, autocommit=True)
    lg_conn = await psycopg.AsyncConnection.connect(url, autocommit=True, **LG_OPTIONS)
    lg = LGAsyncStore(lg_conn)
    keys = [(("bench", f"user{i % 64}"), f"k{i}") for i in range(50)]

    async def raw_coalesced() -> None:
        cur = await raw.execute(
            f"SELECT i.prefix, i.key, i.value, i.created_at, i.updated_at "
            f"FROM unnest(%s::text[], %s::text[]) AS q(prefix, key) "
            f"JOIN {ITEMS} i ON i.prefix = q.prefix AND i.key = q.key",
            ([".".join(ns) for ns, _ in keys], [k for _, k in keys]),
        )
        await cur.fetchall()

    cases = {
        "ours": lambda: asyncio.gather(*(ours.aget(ns, k) for ns, k in keys)),
        "langgraph": lambda: asyncio.gather(*(lg.aget(ns, k) for ns, k in keys)),
        "raw": raw_coalesced,
    }
    rounds = max(2, n // 100)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        for _ in range(5):
            await fn()
    for _ in range(repeats * 10):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(rounds):
                await fn()
            samples[name].append((time.perf_counter() - start) / rounds)
    for c in (raw, lg_conn):
        await c.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def list_namespaces_scenario(url: str, n: int, repeats: int, items: int) -> dict[str, float]:
    with (
        psycopg.connect(url, autocommit=True) as conn,
        psycopg.connect(url, autocommit=True, **LG_OPTIONS) as lg_conn,
    ):
        ours = PostgresStore(conn, schema=SCHEMA, start_sweeper=False)
        lg = LGStore(lg_conn)
        for start in range(0, items, 2000):
            ops = [
                PutOp(("tenant", f"t{i % 50}", f"user{i % 1000}"), f"m{i}", {"i": i})
                for i in range(start, start + 2000)
            ]
            ours.batch(ops)
            lg.batch(ops)
        conn.execute("ANALYZE")
        timings = compare(
            {
                "ours": lambda: ours.list_namespaces(prefix=("tenant",), limit=100),
                "langgraph": lambda: lg.list_namespaces(prefix=("tenant",), limit=100),
                "ours_max_depth_2": lambda: ours.list_namespaces(max_depth=2, limit=100),
            },
            max(5, n // 20),
            repeats,
        )
        (count,) = conn.execute(f"SELECT count(*) FROM {ITEMS}").fetchone()  # type: ignore[misc]
        timings["items_in_table"] = count
        ours.close()
        return timings


def report(results: dict[str, Any]) -> list[str]:
    head = f"{'scenario':30} {'ours µs':>10} {'raw µs':>10} {'LangGraph µs':>13}"
    lines = [f"{head} {'vs raw':>8} {'vs LG':>8}  target"]
    verdicts = []
    for name, t in results["scenarios"].items():
        ours, raw, lg = t["ours"], t.get("raw"), t.get("langgraph")
        vs_raw = raw / ours if raw else None
        vs_lg = lg / ours if lg else None
        base, goal = (TARGETS | REDIS_TARGETS).get(name, (None, None))
        got = vs_raw if base == "raw" else vs_lg
        verdict = (
            "" if goal is None else f"{'PASS' if got and got >= goal else 'MISS'} >= {goal}x {base}"
        )
        verdicts.append(verdict)
        lines.append(
            f"{name:30} {ours * 1e6:10.1f} {raw * 1e6 if raw else float('nan'):10.1f} "
            f"{lg * 1e6 if lg else float('nan'):13.1f} {vs_raw or float('nan'):8.2f} "
            f"{vs_lg or float('nan'):8.2f}  {verdict}"
        )
        if "ours_tenant" in t:  # the same, under ("tenants", <id>, ...)
            tenant = t["ours_tenant"]
            lines.append(
                f"{name + ' (tenant)':30} {tenant * 1e6:10.1f} {raw * 1e6 if raw else 0:10.1f} "
                f"{'':13} {(raw or 0) / tenant:8.2f} {'':8}  {ours / tenant:.2f}x ours"
            )
    checkout = results["scenarios"].get("pool_checkout")
    if checkout:
        lines.append(
            f"pool cost per operation (checkout + return): getconn/putconn "
            f"{checkout['ours'] * 1e6:.1f} µs, connection() context manager "
            f"{checkout['connection_context_manager'] * 1e6:.1f} µs"
        )
    if "list_namespaces" not in results:
        return lines
    ln = results["list_namespaces"]
    lines.append(
        f"list_namespaces over {ln['items_in_table']} items: ours {ln['ours'] * 1e3:.3f} ms "
        f"(max_depth=2: {ln['ours_max_depth_2'] * 1e3:.3f} ms), "
        f"LangGraph {ln['langgraph'] * 1e3:.3f} ms"
        f"  {'PASS' if ln['ours'] < 0.002 and ln['ours_max_depth_2'] < 0.002 else 'MISS'} < 2 ms"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="PostgreSQL URL (default: start the embedded server)")
    parser.add_argument("--redis-url", help="Redis URL (default: start an embedded Valkey)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations and items")
    parser.add_argument(
        "--only", choices=("postgres", "redis"), help="run one backend's scenarios only"
    )
    parser.add_argument("--out", default="bench/results/store_bench.json")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin the embedded server and the client to separate CPUs",
    )
    args = parser.parse_args()
    n, repeats, items = (200, 3, 20_000) if args.quick else (2000, 7, 100_000)
    can_pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    pin = can_pin and not args.url and args.only != "redis"
    results: dict[str, Any] = {"iterations": n, "repeats": repeats, "pinned": pin}
    scenarios: dict[str, dict[str, float]] = {}
    if args.only != "redis":
        with server(args.url, pin) as url:
            scenarios, listing, version = postgres_scenarios(url, n, repeats, items)
        results |= {"server": version, "list_namespaces": listing}
    if args.only != "postgres":
        with redis_server(args.redis_url, can_pin and not args.redis_url) as redis_url:
            redis_results, results["redis_server"] = redis_scenarios(redis_url, n, repeats)
        scenarios.update(redis_results)
    results["scenarios"] = scenarios
    publish(args.out, results, report(results))


def postgres_scenarios(
    url: str, n: int, repeats: int, items: int
) -> tuple[dict[str, dict[str, float]], dict[str, float], str]:
    """The PostgreSQL scenarios, the namespace listing and the server's version."""
    reset(url)
    scenarios = sync_scenarios(url, n, repeats)
    scenarios["async_get_50_concurrent"] = asyncio.run(async_scenario(url, n, repeats))
    scenarios |= pooled_scenarios(url, n, repeats)
    scenarios["async_get_50_concurrent_pooled"] = asyncio.run(
        async_scenario(url, n, repeats, pooled=True)
    )
    reset(url)
    with (
        psycopg.connect(url, autocommit=True) as conn,
        psycopg.connect(url, autocommit=True, **LG_OPTIONS) as lg_conn,
        PostgresStore(conn, schema=SCHEMA, start_sweeper=False) as ours,
    ):
        ours.setup()
        LGStore(lg_conn).setup()
    listing = list_namespaces_scenario(url, n, repeats, items)
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version()").fetchone()[0]  # type: ignore[index]
    reset(url, again=False)
    return scenarios, listing, version


if __name__ == "__main__":
    main()
