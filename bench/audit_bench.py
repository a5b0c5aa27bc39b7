"""Audit benchmark: verifying from a witnessed checkpoint against reading the whole chain.

Usage:
    python bench/audit_bench.py [--url postgresql://...] [--redis-url redis://...]
                                [--entries N] [--quick] [--out FILE.json]

Without URLs it starts the embedded PostgreSQL 18 and Valkey 9 (each pinned to CPU 0,
this process to CPU 1). For each backend it fills one tenant's keyed chain with N
entries, then times, interleaved: `verify` of the whole chain (the reference: what
every verify did before checkpoints), `verify(since=checkpoint)` from a checkpoint 100
entries before the end, and `witness_checkpoint` (the same, plus a `FileWitness`
write and fsync). On Redis it also times the longest single script of each: a whole
read in one script (how verify read the stream before paging) against one page, which
is what blocks the server (server time, from INFO commandstats).
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
from typing import Any

import psycopg
import redis
from _timing import publish
from psycopg_pool import ConnectionPool
from redis_bench import redis_server
from store_bench import server

from langmem_prod.compliance import FileWitness, PostgresAuditLog, RedisAuditLog
from langmem_prod.compliance.redis_audit import PAGE_ENTRIES

KEY = bytes(range(32))
BATCH = 1_000
_WHOLE_READ = "return {redis.call('HGETALL', KEYS[2]), redis.call('XRANGE', KEYS[1], '-', '+')}"
_ONE_PAGE = "return redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', ARGV[1])"


@contextmanager
def audit_log(kind: str, url: str) -> Iterator[tuple[Any, Any]]:
    """A keyed log on a fresh schema / prefix, and a raw client (Redis) or None."""
    place = f"bench_{uuid.uuid4().hex[:8]}"
    if kind == "postgres":
        with ConnectionPool(url, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
            log = PostgresAuditLog(pool, schema=place, key=KEY)
            log.setup()
            try:
                yield log, None
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA "{place}" CASCADE')
        return
    client = redis.Redis.from_url(url)
    try:
        yield RedisAuditLog(client, prefix=place, key=KEY), client
    finally:
        for key in client.scan_iter(match=f"{place}:*", count=1000):
            client.delete(key)
        client.close()


def fill(log: Any, entries: int) -> None:
    for start in range(0, entries, BATCH):
        events = [("put", ("notes", "n"), f"k{i}") for i in range(start, start + BATCH)]
        log.record("acme", events, agent="bench", user="ada")


def interleaved(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of one call of each case, the cases taking turns `repeats` times.

    (`_timing.compare` runs each case dozens of times: too many for whole-chain reads.)
    """
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def longest_script(client: Any, log: RedisAuditLog, repeats: int) -> dict[str, float]:
    """Server seconds of one whole-stream script against one page (best of `repeats`).

    Measured by the server (INFO commandstats, usec of EVAL), so that the client's
    parsing of the reply (pure-Python RESP without hiredis) is not counted: this is how
    long the server is blocked.
    """
    keys = log.keys("acme")
    cases = {
        "one script, whole stream": lambda: client.eval(_WHOLE_READ, 2, *keys),
        f"one page ({PAGE_ENTRIES} entries)": lambda: client.eval(
            _ONE_PAGE, 1, keys[0], PAGE_ENTRIES
        ),
    }
    best: dict[str, float] = {}
    for name, fn in cases.items():
        times = []
        for _ in range(repeats):
            before = _eval_usec(client)
            fn()
            times.append((_eval_usec(client) - before) / 1e6)
        best[name] = min(times)
    return best


def _eval_usec(client: Any) -> int:
    return int(client.info("commandstats").get("cmdstat_eval", {}).get("usec", 0))


def scenarios(kind: str, url: str, entries: int, repeats: int) -> dict[str, dict[str, float]]:
    with audit_log(kind, url) as (log, client), tempfile.TemporaryDirectory() as folder:
        fill(log, entries - 100)
        checkpoint = log.checkpoint("acme")
        fill_tail = [("get", ("notes", "n"), f"t{i}") for i in range(100)]
        log.record("acme", fill_tail, agent="bench")
        witness = FileWitness(os.path.join(folder, "witness.jsonl"))
        witness.write(checkpoint)
        assert log.verify("acme") == [] and log.verify("acme", since=checkpoint) == []
        cases: dict[str, Callable[[], Any]] = {
            "verify, whole chain": lambda: log.verify("acme"),
            "verify(since=checkpoint)": lambda: log.verify("acme", since=checkpoint),
            "witness_checkpoint": lambda: log.witness_checkpoint(
                "acme", _fresh(folder, checkpoint)
            ),
        }
        results = {kind: interleaved(cases, repeats)}
        if client is not None:
            results[f"{kind} longest script"] = longest_script(client, log, repeats * 3)
        return results


def _fresh(folder: str, checkpoint: Any) -> FileWitness:
    """A witness holding only `checkpoint`, so each call verifies the same 100 entries."""
    witness = FileWitness(os.path.join(folder, f"w-{uuid.uuid4().hex}.jsonl"))
    witness.write(checkpoint)
    return witness


def report(results: dict[str, dict[str, float]], entries: int) -> list[str]:
    lines = [f"audit verify, keyed chain of {entries:,} entries (median ms per call)"]
    for kind, cases in results.items():
        lines.append(f"\n{kind}")
        base = next(iter(cases.values()))
        for name, seconds in cases.items():
            lines.append(f"  {name:<32} {seconds * 1000:>10.2f} ms  {base / seconds:>8.1f}x")
    lines.append("\nx: the first row's time / this row's time")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="PostgreSQL URL (default: start the embedded server)")
    parser.add_argument("--redis-url", help="Redis URL (default: start an embedded Valkey)")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 entries, fewer repeats")
    parser.add_argument("--out", default="bench/results/audit_bench.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers to a CPU")
    args = parser.parse_args()
    entries, repeats = (20_000, 3) if args.quick else (args.entries, 5)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    results: dict[str, dict[str, float]] = {}
    for start, url, kind in (
        (server, args.url, "postgres"),
        (redis_server, args.redis_url, "redis"),
    ):
        with start(url, pin and not url) as live_url:
            results.update(scenarios(kind, live_url, entries, repeats))
    publish(
        args.out,
        {"entries": entries, "repeats": repeats, "pinned": pin, "scenarios": results},
        report(results, entries),
    )


if __name__ == "__main__":
    main()
