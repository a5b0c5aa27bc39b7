"""Access statistics stay off the read path: batched, synchronous, or off."""

from __future__ import annotations

import time

import psycopg
import pytest

from langmem_prod import PostgresStore, errors
from tests.conftest import PgServer
from tests.postgres.conftest import MakePgStore


def stats(sql: psycopg.Connection, schema: str, key: str) -> tuple:
    return sql.execute(
        f'SELECT access_count, accessed_at IS NOT NULL FROM "{schema}".items WHERE key = %s', (key,)
    ).fetchone()


def test_batched_tracking_writes_later(make_pg_store: MakePgStore, sql: psycopg.Connection) -> None:
    store = make_pg_store(flush_interval=3600)
    store.put(("a",), "k", {"v": 1})
    for _ in range(3):
        store.get(("a",), "k")
    store.search(("a",))
    assert stats(sql, store.schema, "k") == (0, False)
    assert store.flush() == 1
    assert stats(sql, store.schema, "k") == (4, True)


def test_batched_tracking_flushes_in_the_background(
    make_pg_store: MakePgStore, sql: psycopg.Connection
) -> None:
    store = make_pg_store(flush_interval=0.1)
    store.put(("a",), "k", {"v": 1})
    store.get(("a",), "k")
    deadline = time.monotonic() + 5
    while stats(sql, store.schema, "k")[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats(sql, store.schema, "k") == (1, True)


def test_sync_tracking(make_pg_store: MakePgStore, sql: psycopg.Connection) -> None:
    store = make_pg_store(track_access="sync")
    store.put(("a",), "k", {"v": 1})
    store.get(("a",), "k")
    assert stats(sql, store.schema, "k") == (1, True)


def test_tracking_off(make_pg_store: MakePgStore, sql: psycopg.Connection) -> None:
    store = make_pg_store(track_access="off")
    store.put(("a",), "k", {"v": 1})
    store.get(("a",), "k")
    store.flush()
    assert stats(sql, store.schema, "k") == (0, False)


def test_close_writes_what_is_buffered(pg: PgServer, schema: str, sql: psycopg.Connection) -> None:
    with PostgresStore.from_conn_string(pg.url, schema=schema, flush_interval=3600) as store:
        store.setup()
        store.put(("a",), "k", {"v": 1})
        store.get(("a",), "k")
    assert stats(sql, schema, "k") == (1, True)


def test_reads_work_on_a_read_only_connection(pg: PgServer, make_pg_store: MakePgStore) -> None:
    writer = make_pg_store(ttl={"default_ttl": 10})
    writer.put(("a",), "k", {"v": 1})
    with psycopg.connect(
        pg.url, autocommit=True, options="-c default_transaction_read_only=on"
    ) as conn:
        replica = PostgresStore(
            conn, schema=writer.schema, start_sweeper=False, flush_interval=3600
        )
        assert replica.get(("a",), "k").value == {"v": 1}
        assert [i.key for i in replica.search(("a",))] == ["k"]
        assert replica.list_namespaces() == [("a",)]
        with pytest.raises(errors.BackendError, match="read-only"):
            replica.put(("a",), "k2", {"v": 2})
        replica._runner.buffer.drain()  # buffered stats belong to a writer, not to a replica
        replica.close()
