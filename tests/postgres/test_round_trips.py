"""One round trip per batch, counted as libpq Sync messages on the wire (libpq trace)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator

import psycopg
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp
from psycopg.pq import Trace

from langmem_prod import AsyncPostgresStore, PostgresStore, errors
from tests.conftest import PgServer


@contextlib.contextmanager
def count_round_trips(conn: psycopg.Connection | psycopg.AsyncConnection) -> Iterator[list[int]]:
    """Count the Sync messages the client sends: each one waits for the server once."""
    counter: list[int] = []
    with tempfile.TemporaryFile("w+") as trace:
        conn.pgconn.trace(trace.fileno())
        conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)
        try:
            yield counter
        finally:
            conn.pgconn.untrace()
            trace.seek(0)
            counter.append(sum(1 for line in trace if line.rstrip().split("\t")[2:3] == ["Sync"]))


def test_sync_store_round_trips(pg: PgServer, schema: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        store = PostgresStore(conn, schema=schema, start_sweeper=False)
        store.setup()
        store.batch([PutOp(("ns", str(i % 60)), f"k{i}", {"i": i}) for i in range(100)])
        with count_round_trips(conn) as trips:
            results = store.batch([GetOp(("ns", str(i % 60)), f"k{i}") for i in range(100)])
        assert trips == [1] and all(r is not None for r in results)
        with count_round_trips(conn) as trips:
            store.get(("ns", "1"), "k1")
        assert trips == [1]
        with count_round_trips(conn) as trips:
            store.batch([PutOp(("w", str(i)), "k", {"i": i}) for i in range(50)])
        assert trips == [1]
        with count_round_trips(conn) as trips:
            store.batch(
                [
                    GetOp(("ns", "1"), "k1"),
                    SearchOp(("ns",), {"i": {"$gte": 3}}),
                    ListNamespacesOp(),
                    PutOp(("w", "1"), "k", {"i": 2}),
                    PutOp(("w", "2"), "k", None),
                ]
            )
        assert trips == [1]
        store.close()


async def test_concurrent_async_gets_share_one_query(pg: PgServer, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        store = AsyncPostgresStore(conn, schema=schema, start_sweeper=False)
        await store.setup()
        await store.abatch([PutOp(("ns", str(i % 7)), f"k{i}", {"i": i}) for i in range(50)])
        with count_round_trips(conn) as trips:
            items = await asyncio.gather(
                *(store.aget(("ns", str(i % 7)), f"k{i}") for i in range(50))
            )
        assert trips == [1]
        assert [item.value["i"] for item in items] == list(range(50))
        await store.aclose()


async def test_concurrent_async_reads_of_every_kind_share_one_round_trip(
    pg: PgServer, schema: str
) -> None:
    async with await psycopg.AsyncConnection.connect(pg.url, autocommit=True) as conn:
        store = AsyncPostgresStore(conn, schema=schema, start_sweeper=False)
        await store.setup()
        await store.abatch([PutOp(("ns", str(i % 3)), f"k{i}", {"i": i}) for i in range(9)])
        with count_round_trips(conn) as trips:
            got, found, listed, bad = await asyncio.gather(
                store.aget(("ns", "0"), "k0"),
                store.asearch(("ns",), filter={"i": {"$gte": 7}}),
                store.alist_namespaces(prefix=("ns",)),
                store.asearch(("ns",), filter={"i": {"$regex": "x"}}),
                return_exceptions=True,
            )
        assert trips == [1]
        assert got.value == {"i": 0}
        assert sorted(item.key for item in found) == ["k7", "k8"]
        assert listed == [("ns", "0"), ("ns", "1"), ("ns", "2")]
        assert isinstance(bad, errors.InvalidFilterError)  # fails alone, before the batch
        await store.aclose()
