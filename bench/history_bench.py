"""Chat history benchmark: langmem_prod vs the reference histories vs raw drivers, same run.

Usage:
    python bench/history_bench.py [--url postgresql://...] [--redis-url redis://...]
                                  [--quick] [--out FILE.json]

Without URLs it starts the embedded PostgreSQL 18 and Valkey 9 (each pinned to CPU 0,
this process to CPU 1). References: langchain-postgres' `PostgresChatMessageHistory`
(on a psycopg connection, as its documentation shows) and langchain-community's
`RedisChatMessageHistory`; raw: one INSERT / RPUSH of the two JSON messages and one
SELECT / LRANGE decoded with `messages_from_dict`. Every scenario runs the three
interleaved and reports medians and ratios of throughput (ref time / our time).
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import psycopg
import redis
from _timing import compare, publish
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    message_to_dict,
    messages_from_dict,
)
from redis_bench import redis_server
from store_bench import server

from langmem_prod import PostgresChatMessageHistory, RedisChatMessageHistory

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # langchain-community warns that it is being sunset
    from langchain_community.chat_message_histories import (
        RedisChatMessageHistory as CommunityRedisHistory,
    )
from langchain_postgres import PostgresChatMessageHistory as LangchainPostgresHistory

SCHEMA = "langmem_bench_history"
REF_TABLE = "langmem_bench_ref_history"
RAW_TABLE = "langmem_bench_raw_history"
REDIS_PREFIX = "langmem_bench_history"
TARGETS = {"append_2": 1.4, "read_200": 1.2}


def turn(n: int) -> list[BaseMessage]:
    """A realistic turn: a question and an answer with usage and response metadata."""
    return [
        HumanMessage(f"Turn {n}: can you check invoice INV-{n:05d} and tell me what is due?"),
        AIMessage(
            f"Invoice INV-{n:05d} has 3 lines; 1,240.50 EUR is due on 2026-12-{n % 28 + 1:02d}. "
            "The customer asked for a payment plan last month.",
            id=f"run-{n}",
            response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "stop"},
            usage_metadata={"input_tokens": 812, "output_tokens": 41, "total_tokens": 853},
        ),
    ]


def raw_pg_setup(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    conn.execute(
        f"CREATE TABLE {RAW_TABLE} (id bigserial PRIMARY KEY, session_id text NOT NULL, "
        "message jsonb NOT NULL)"
    )
    conn.execute(f"CREATE INDEX ON {RAW_TABLE} (session_id, id)")


def pg_scenarios(url: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Append 2 messages, and read 200, on our history, langchain-postgres' and raw psycopg."""
    with (
        psycopg.connect(url, autocommit=True) as ours_conn,
        psycopg.connect(url) as ref_conn,  # langchain-postgres commits itself
        psycopg.connect(url, autocommit=True) as raw_conn,
    ):
        ours_conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        ref_conn.execute(f"DROP TABLE IF EXISTS {REF_TABLE}")
        ref_conn.commit()
        LangchainPostgresHistory.create_tables(ref_conn, REF_TABLE)
        raw_pg_setup(raw_conn)

        def histories() -> tuple[Any, Any, str]:
            sid = str(uuid.uuid4())
            ours = PostgresChatMessageHistory(sid, ours_conn, schema=SCHEMA)
            ref = LangchainPostgresHistory(REF_TABLE, sid, sync_connection=ref_conn)
            return ours, ref, sid

        ours, ref, sid = histories()
        ours.setup()
        messages = turn(1)
        insert = f"INSERT INTO {RAW_TABLE} (session_id, message) VALUES (%s, %s), (%s, %s)"

        def raw_append() -> None:
            a, b = (json.dumps(message_to_dict(m)) for m in messages)
            raw_conn.execute(insert, (sid, a, sid, b))

        append = compare(
            {
                "ours": lambda: ours.add_messages(messages),
                "reference": lambda: ref.add_messages(messages),
                "raw": raw_append,
            },
            n,
            repeats,
        )
        ours, ref, sid = histories()
        for i in range(100):
            ours.add_messages(turn(i))
            ref.add_messages(turn(i))
            a, b = (json.dumps(message_to_dict(m)) for m in turn(i))
            raw_conn.execute(insert, (sid, a, sid, b))
        select = f"SELECT message FROM {RAW_TABLE} WHERE session_id = %s ORDER BY id"

        def raw_read() -> list[BaseMessage]:
            rows = raw_conn.execute(select, (sid,)).fetchall()
            return messages_from_dict([row[0] for row in rows])

        assert len(ours.messages) == len(ref.messages) == len(raw_read()) == 200
        read = compare(
            {"ours": lambda: ours.messages, "reference": lambda: ref.messages, "raw": raw_read},
            max(20, n // 10),
            repeats,
        )
        ours_conn.execute(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE')
        raw_conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        ref_conn.execute(f"DROP TABLE IF EXISTS {REF_TABLE}")
        ref_conn.commit()
    return {"postgres_append_2": append, "postgres_read_200": read}


def redis_scenarios(url: str, n: int, repeats: int) -> dict[str, dict[str, float]]:
    """Append 2 messages, and read 200, on ours, langchain-community's and raw redis-py."""
    client = redis.Redis.from_url(url)

    def histories() -> tuple[Any, Any, str]:
        sid = uuid.uuid4().hex
        ours = RedisChatMessageHistory(sid, client, prefix=REDIS_PREFIX)
        ref = CommunityRedisHistory(sid, url=url, key_prefix=f"{REDIS_PREFIX}:ref:")
        return ours, ref, f"{REDIS_PREFIX}:raw:{sid}"

    ours, ref, raw_key = histories()
    messages = turn(1)

    def raw_append() -> None:
        client.rpush(raw_key, *(json.dumps(message_to_dict(m)) for m in messages))

    append = compare(
        {
            "ours": lambda: ours.add_messages(messages),
            "reference": lambda: ref.add_messages(messages),
            "raw": raw_append,
        },
        n,
        repeats,
    )
    ours, ref, raw_key = histories()
    for i in range(100):
        ours.add_messages(turn(i))
        ref.add_messages(turn(i))
        client.rpush(raw_key, *(json.dumps(message_to_dict(m)) for m in turn(i)))

    def raw_read() -> list[BaseMessage]:
        return messages_from_dict([json.loads(b) for b in client.lrange(raw_key, 0, -1)])

    assert len(ours.messages) == len(ref.messages) == len(raw_read()) == 200
    read = compare(
        {"ours": lambda: ours.messages, "reference": lambda: ref.messages, "raw": raw_read},
        max(20, n // 10),
        repeats,
    )
    for key in client.scan_iter(match=f"{REDIS_PREFIX}:*", count=1000):
        client.delete(key)
    ref.redis_client.close()
    client.close()
    return {"redis_append_2": append, "redis_read_200": read}


def report(scenarios: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        f"{'scenario':<22}{'ours µs':>10}{'ref µs':>10}{'raw µs':>10}{'vs ref':>9}{'vs raw':>9}"
        "  target"
    ]
    for name, t in scenarios.items():
        vs_ref, vs_raw = t["reference"] / t["ours"], t["raw"] / t["ours"]
        target = TARGETS[name.split("_", 1)[1]]
        verdict = "PASS" if vs_ref >= target else "MISS"
        lines.append(
            f"{name:<22}{t['ours'] * 1e6:>10.1f}{t['reference'] * 1e6:>10.1f}"
            f"{t['raw'] * 1e6:>10.1f}{vs_ref:>9.2f}{vs_raw:>9.2f}  {verdict} >= {target}x ref"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="PostgreSQL URL (default: start the embedded server)")
    parser.add_argument("--redis-url", help="Redis URL (default: start an embedded Valkey)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", default="bench/results/history_bench.json")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers to a CPU")
    args = parser.parse_args()
    n, repeats = (200, 3) if args.quick else (2000, 7)
    pin = not args.no_pin and (os.cpu_count() or 1) >= 2
    scenarios: dict[str, dict[str, float]] = {}
    run: list[tuple[Callable[..., Any], str | None, Callable[..., Any]]] = [
        (server, args.url, pg_scenarios),
        (redis_server, args.redis_url, redis_scenarios),
    ]
    for start, url, measure in run:
        with start(url, pin and not url) as live_url:
            scenarios.update(measure(live_url, n, repeats))
    results = {"iterations": n, "repeats": repeats, "pinned": pin, "scenarios": scenarios}
    publish(args.out, results, report(scenarios))


if __name__ == "__main__":
    main()
