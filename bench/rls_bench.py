"""Row-level security benchmark: what the tenant policy costs a `get`, before and after.

Usage:
    python bench/rls_bench.py [--url postgresql://...] [--quick] [--bindings N ...]
                              [--out FILE.json]

Without --url it starts the embedded PostgreSQL 18 (pinned to CPU 0, this process to
CPU 1). The URL's role must be able to CREATE ROLE. On one schema it times
`PostgresStore.get` of a tenant's item through three pools: as the tables' owner (RLS
leaves it alone: the reference), as an unbound application role (the store sets
`langmem.tenant` in the same round trip, and the policy's function runs once per
statement) and as a role bound to the tenant. It does so with the policy functions
`setup()` installs ("current") and with those of the first "rls" migration swapped in
("rls v1", the functions before role membership was followed), in alternating rounds on
the same data. With `--bindings N` the bindings table also holds N other roles' bindings,
to show whether the policy's cost grows with it.

Each case reports the median wall time per get and, when the server runs on this
machine, the median CPU time its backend spent per get (from /proc), which a busy shared
machine disturbs far less. Ratios are throughput against the owner (owner / this).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
from _timing import publish
from psycopg import sql
from psycopg_pool import ConnectionPool
from store_bench import server

from langmem_prod import PostgresStore
from langmem_prod.store.postgres._rls import RLS_MEMBERSHIP_STATEMENTS, RLS_TRACK_STATEMENTS
from langmem_prod.store.postgres._sql import render
from langmem_prod.tenancy import grant_tenant_role

NAMESPACE = ("tenants", "acme", "notes")
ROLES = ("owner", "app role", "bound role")


def _functions(statements: tuple[str, ...], schema: str) -> list[str]:
    texts = [s for s in statements if "FUNCTION" in s and "tenant()" in s]
    return [
        render(s.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"), schema) for s in texts
    ]


@contextmanager
def _world(url: str) -> Iterator[tuple[psycopg.Connection[Any], str, str, str]]:
    """A schema with two tenants' items, an app role and a role bound to acme."""
    schema = f"bench_rls_{uuid.uuid4().hex[:8]}"
    app, bound = f"bench_app_{schema[-8:]}", f"bench_bound_{schema[-8:]}"
    s = sql.Identifier(schema)
    with psycopg.connect(url, autocommit=True) as admin:
        try:
            with PostgresStore.from_conn_string(url, schema=schema) as store:
                store.setup()
                for tenant in ("acme", "globex"):
                    for n in range(100):
                        store.put(("tenants", tenant, "notes"), f"k{n}", {"t": tenant, "n": n})
            for role in (app, bound):
                admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            admin.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, sql.Identifier(app)))
            admin.execute(sql.SQL("GRANT SELECT ON {}.items TO {}").format(s, sql.Identifier(app)))
            grant_tenant_role(admin, bound, "acme", schema=schema)
            yield admin, schema, app, bound
        finally:
            admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(s))
            for role in (app, bound):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _add_bindings(admin: psycopg.Connection[Any], schema: str, count: int) -> None:
    """`count` more bindings, of roles that do not exist (the policy cannot tell)."""
    admin.execute(
        sql.SQL(
            "INSERT INTO {}.tenant_roles (role, tenant_id, role_oid) "
            "SELECT 'ghost_' || g, 'tenant_' || g, 4000000000 - g FROM generate_series(1, %s) g"
        ).format(sql.Identifier(schema)),
        (count,),
    )
    admin.execute(sql.SQL("ANALYZE {}.tenant_roles").format(sql.Identifier(schema)))


def _cpu(pid: int) -> int | None:
    """Nanoseconds a local server process has run on a CPU (Linux), else None."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _slice(store: PostgresStore, pid: int, n: int) -> tuple[float, float | None]:
    """Wall and backend CPU seconds per get over n gets."""
    cpu_before, start = _cpu(pid), time.perf_counter()
    for _ in range(n):
        item = store.get(NAMESPACE, "k7")
        assert item is not None and item.value["t"] == "acme"
    wall = (time.perf_counter() - start) / n
    cpu_after = _cpu(pid)
    cpu = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / 1e9 / n
    return wall, cpu


def run(url: str, bindings: list[int], n: int, repeats: int) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with _world(url) as (admin, schema, app, bound), ExitStack() as stack:
        variants = {
            "rls v1": _functions(RLS_TRACK_STATEMENTS, schema),
            "current": _functions(RLS_MEMBERSHIP_STATEMENTS, schema),
        }
        stores, pids = {}, {}
        for who, role in zip(ROLES, (None, app, bound), strict=True):
            conninfo = psycopg.conninfo.make_conninfo(url, **({"user": role} if role else {}))
            pool = stack.enter_context(
                ConnectionPool(conninfo, min_size=1, max_size=1, kwargs={"autocommit": True})
            )
            stores[who] = stack.enter_context(
                PostgresStore(pool, schema=schema, start_sweeper=False, track_access="off")
            )
            with pool.connection() as conn:
                pids[who] = conn.info.backend_pid
        added = 0
        for count in bindings:
            _add_bindings(admin, schema, count - added)
            added = count
            samples: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
            for _ in range(repeats * 4):
                for variant, functions in variants.items():
                    for statement in functions:
                        admin.execute(statement)
                    for who in ROLES:
                        _slice(stores[who], pids[who], max(5, n // 40))  # warm up
                        sample = _slice(stores[who], pids[who], max(1, n // 4))
                        samples.setdefault((variant, who), []).append(sample)
            for (variant, who), values in samples.items():
                cpus = [c for _, c in values if c is not None]
                results[f"{count}|{variant}|{who}"] = {
                    "wall": statistics.median(w for w, _ in values),
                    "cpu": statistics.median(cpus) if cpus else None,
                }
    return results


def report(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| other bindings | functions | role | wall per get | vs owner | server CPU | vs owner |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for key, value in results.items():
        count, variant, who = key.split("|")
        owner = results[f"{count}|{variant}|owner"]
        cpu = value["cpu"]
        cpu_text = "" if cpu is None else f"{cpu * 1e6:,.0f} µs | {owner['cpu'] / cpu:.2f}x"
        lines.append(
            f"| {count} | {variant} | {who} | {value['wall'] * 1e6:,.0f} µs | "
            f"{owner['wall'] / value['wall']:.2f}x | {cpu_text or ' | '} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="PostgreSQL URL (default: embedded PostgreSQL 18)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--bindings", type=int, nargs="*", default=[0, 1000])
    parser.add_argument("--no-pin", action="store_true", help="do not pin CPUs")
    parser.add_argument("--out", default="bench/results/rls.json")
    args = parser.parse_args()
    n, repeats = (400, 2) if args.quick else (1000, 5)
    with server(args.url, pin=not args.no_pin) as url:
        results = run(url, sorted(args.bindings), n, repeats)
    publish(args.out, {"seconds_per_get": results}, report(results))


if __name__ == "__main__":
    main()
