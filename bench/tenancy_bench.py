"""Tenancy benchmark: what a tenant's policies cost over the bare store, same run.

Usage:
    python bench/tenancy_bench.py [--url postgresql://...] [--redis-url redis://...]
                                  [--quick] [--out FILE.json]
                                  [--only ops|batch] [--batch-sizes 1000,10000,100000]

Without URLs it starts the embedded PostgreSQL 18 and Valkey 9 (each pinned to CPU 0,
this process to CPU 1). For each backend it times, interleaved: the bare store on a
namespace under ("tenants", <id>, ...) (the reference), `TenantStore` for a plain
tenant (scoping and, on PostgreSQL, the quota trigger; on Redis, the size hash), and
`TenantStore` for a tenant with encryption, PII masking and audited writes, on a store
built with `TenantEncryption`. Ratios are throughput against the bare store
(bare time / this time).

The batch scenario (PostgreSQL) times one `batch()` of N new puts into a tenant with a
usage row and limits (counted and checked by the quota triggers) against the same batch
into a tenant without one (the triggers find nothing to count), alternating which goes
first, each into a fresh namespace. Its ratio is quota time / free time: the cost of
quota accounting on a batch (the target is at most 1.5 at every N).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from _timing import compare, publish
from langgraph.store.base import PutOp
from psycopg_pool import ConnectionPool
from redis_bench import redis_server
from store_bench import server

from langmem_prod import PostgresStore, RedisStore
from langmem_prod.compliance import PostgresAuditLog, RedisAuditLog
from langmem_prod.security import FileKeyVault, Keyring
from langmem_prod.tenancy import (
    PostgresTenantRegistry,
    RedisTenantRegistry,
    TenantEncryption,
    TenantStore,
)

VALUE = {"kind": "note", "text": "the customer prefers e-mail follow-ups on Tuesdays", "n": 7}
KEYRING = Keyring({"bench": bytes(range(32))}, "bench")


@contextmanager
def new_vault() -> Iterator[FileKeyVault]:
    """A key vault in a temporary folder (the data keys of the bench's tenants)."""
    with tempfile.TemporaryDirectory(prefix="bench-vault-") as folder:
        vault = FileKeyVault(Path(folder) / "vault.json", KEYRING)
        yield vault
        vault.close()


@contextmanager
def world(kind: str, url: str) -> Iterator[tuple[Any, Any, Any, Any]]:
    """(bare store, encrypting store, registry, audit log) on a fresh schema / prefix."""
    place = f"bench_{uuid.uuid4().hex[:8]}"
    if kind == "postgres":
        with ConnectionPool(url, kwargs={"autocommit": True}) as pool, new_vault() as vault:
            registry: Any = PostgresTenantRegistry(pool, schema=place, vault=vault)
            audit: Any = PostgresAuditLog(pool, schema=place)
            registry.setup()
            audit.setup()
            encryption = TenantEncryption(vault, registry, plaintext_fields=["kind"])
            with (
                PostgresStore(pool, schema=place, start_sweeper=False) as bare,
                PostgresStore(pool, schema=place, start_sweeper=False, values=encryption) as enc,
            ):
                bare.setup()
                yield bare, enc, registry, audit
            with pool.connection() as conn:
                conn.execute(f'DROP SCHEMA "{place}" CASCADE')
        return
    client = redis.Redis.from_url(url)
    with new_vault() as vault:
        yield from _redis_world(client, place, vault)
    for key in client.scan_iter(match=f"{place}:*", count=1000):
        client.delete(key)
    client.close()


def _redis_world(client: Any, place: str, vault: FileKeyVault) -> Iterator[tuple[Any, ...]]:
    registry = RedisTenantRegistry(client, prefix=place, vault=vault)
    audit = RedisAuditLog(client, prefix=place)
    encryption = TenantEncryption(vault, registry, plaintext_fields=["kind"])
    with (
        RedisStore(client, prefix=place, start_sweeper=False) as bare,
        RedisStore(client, prefix=place, start_sweeper=False, values=encryption) as enc,
    ):
        bare.setup()
        yield bare, enc, registry, audit


def scenarios(kind: str, url: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    with world(kind, url) as (bare, enc, registry, audit):
        # Limits high enough never to refuse, so the bench pays the default limiter's cost.
        limits = {"max_items": None, "max_bytes": None, "rate_per_second": 1e9}
        registry.create("plain", plan="free", **limits)
        registry.create("guarded", plan="pro", pii="mask", **limits)
        plain = TenantStore(bare, registry, "plain", user_id="ada")
        guarded = TenantStore(enc, registry, "guarded", user_id="ada", audit=audit)
        bare_ns = ("tenants", "bare", "ada", "notes")
        for store, ns in ((bare, bare_ns), (plain, ("notes",)), (guarded, ("notes",))):
            store.put(ns, "k", VALUE)
        counter = iter(range(10**9))

        def puts(store: Any, ns: tuple[str, ...]) -> Callable[[], None]:
            return lambda: store.put(ns, f"k{next(counter) % 500}", VALUE)

        def gets(store: Any, ns: tuple[str, ...]) -> Callable[[], None]:
            return lambda: store.get(ns, "k")

        out: dict[str, dict[str, float]] = {}
        for name, make in (("put", puts), ("get", gets)):
            out[f"{kind}_{name}"] = compare(
                {
                    "bare": make(bare, bare_ns),
                    "tenant": make(plain, ("notes",)),
                    "guarded": make(guarded, ("notes",)),
                },
                n,
                repeats,
            )
        return out


def batch_scenarios(url: str, sizes: list[int], repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds of one batch of N puts, with and without quota accounting.

    Small batches get more rounds (up to 25), so each median rests on enough samples.
    """
    with world("postgres", url) as (bare, _, registry, _):
        registry.create("quota", plan="free", max_items=10**12, max_bytes=10**15)
        out: dict[str, dict[str, float]] = {}
        written = {"quota": 0, "free": 0}

        def batch(tenant: str, n: int) -> float:
            ns = ("tenants", tenant, "ada", f"batch{sum(written.values())}")
            ops = [PutOp(ns, f"k{i}", VALUE) for i in range(n)]
            start = time.perf_counter()
            bare.batch(ops)
            elapsed = time.perf_counter() - start
            written[tenant] += n
            return elapsed

        for n in sizes:
            batch("quota", min(n, 1000))  # warm up: plans, caches
            batch("free", min(n, 1000))
            samples: dict[str, list[float]] = {"quota": [], "free": []}
            for r in range(max(repeats, min(25, 100_000 // n))):
                for tenant in ("quota", "free") if r % 2 == 0 else ("free", "quota"):
                    samples[tenant].append(batch(tenant, n))
            out[f"batch_{n}"] = {k: statistics.median(v) for k, v in samples.items()}
        if registry.usage("quota")["items"] != written["quota"]:
            raise RuntimeError("the quota tenant's usage does not count every item written")
        return out


def batch_report(results: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"{'batch of N puts':<18}{'free s':>10}{'quota s':>10}{'quota/free':>12}"]
    for name, t in results.items():
        lines.append(
            f"{name.removeprefix('batch_'):<18}{t['free']:>10.3f}{t['quota']:>10.3f}"
            f"{t['quota'] / t['free']:>12.2f}"
        )
    lines.append("quota: a tenant with a usage row and limits; free: a tenant without one")
    return lines


def report(results: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        f"{'scenario':<16}{'bare µs':>10}{'tenant µs':>11}{'guarded µs':>12}"
        f"{'tenant':>9}{'guarded':>9}"
    ]
    for name, t in results.items():
        lines.append(
            f"{name:<16}{t['bare'] * 1e6:>10.1f}{t['tenant'] * 1e6:>11.1f}"
            f"{t['guarded'] * 1e6:>12.1f}{t['bare'] / t['tenant']:>9.2f}"
            f"{t['bare'] / t['guarded']:>9.2f}"
        )
    lines.append("ratios: throughput against the bare store (bare time / this time)")
    lines.append("guarded: encryption + PII masking + audited puts (one more round trip)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="PostgreSQL URL (default: start the embedded server)")
    parser.add_argument("--redis-url", help="Redis URL (default: start an embedded Valkey)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", default="bench/results/tenancy_bench.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers to a CPU")
    parser.add_argument("--only", choices=("ops", "batch"), help="run one part of the bench")
    parser.add_argument("--batch-sizes", default="1000,10000,100000", help="N of each batch")
    args = parser.parse_args()
    n, repeats = (200, 3) if args.quick else (1000, 5)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    results: dict[str, dict[str, float]] = {}
    batches: dict[str, dict[str, float]] = {}
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    with server(args.url, pin and not args.url) as live_url:
        if args.only != "ops":
            batches = batch_scenarios(live_url, sizes, 3 if args.quick else 5)
        if args.only != "batch":
            results.update(scenarios("postgres", live_url, n, repeats))
    if args.only != "batch":
        with redis_server(args.redis_url, pin and not args.redis_url) as live_url:
            results.update(scenarios("redis", live_url, n, repeats))
    lines = (report(results) if results else []) + (batch_report(batches) if batches else [])
    publish(
        args.out,
        {
            "iterations": n,
            "repeats": repeats,
            "pinned": pin,
            "scenarios": results,
            "batches": batches,
        },
        lines,
    )


if __name__ == "__main__":
    main()
