"""Faults: dropped connections and restarts are retried; timeouts surface as our errors."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from langgraph.store.base import PutOp
from psycopg import sql as pgsql

from langmem_prod import PostgresStore, errors
from langmem_prod.embedded import EmbeddedPostgres
from langmem_prod.store._retry import RetryPolicy
from tests.conftest import PgServer
from tests.postgres.conftest import MakePgStore


def terminate(sql: psycopg.Connection, application_name: str) -> int:
    rows = sql.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (application_name,),
    ).fetchall()
    return len(rows)


def test_dropped_pool_connections_are_retried(
    pg: PgServer, schema: str, sql: psycopg.Connection
) -> None:
    url = f"{pg.url}?application_name=langmem_fault_{schema}"
    with PostgresStore.from_conn_string(url, schema=schema, start_sweeper=False) as store:
        store.setup()
        for i in range(3):
            store.put(("a",), "k", {"v": i})
            assert terminate(sql, f"langmem_fault_{schema}") >= 1
            assert store.get(("a",), "k").value == {"v": i}
            assert terminate(sql, f"langmem_fault_{schema}") >= 1
            store.put(("a",), "k", {"v": i + 1})
            assert store.get(("a",), "k").value == {"v": i + 1}


def test_server_restart_is_survived() -> None:
    with (
        EmbeddedPostgres() as server,
        PostgresStore.from_conn_string(server.url, start_sweeper=False) as store,
    ):
        store.setup()
        store.put(("a",), "k", {"v": 1})
        server.restart()
        assert store.get(("a",), "k").value == {"v": 1}
        store.put(("a",), "k2", {"v": 2})
        assert store.get(("a",), "k2").value == {"v": 2}


def test_a_dead_single_connection_says_to_use_a_pool(
    pg: PgServer, schema: str, sql: psycopg.Connection
) -> None:
    name = f"langmem_single_{schema}"
    with psycopg.connect(pg.url, autocommit=True, application_name=name) as conn:
        store = PostgresStore(conn, schema=schema, start_sweeper=False)
        store.setup()
        terminate(sql, name)
        with pytest.raises(errors.BackendUnavailableError) as info:
            store.get(("a",), "k")
        with pytest.raises(errors.BackendUnavailableError, match="pool") as info:
            store.get(("a",), "k")
        assert info.value.retryable is False
        store.close()


def test_statement_timeout_is_a_timeout_error(
    pg: PgServer, make_pg_store: MakePgStore, sql: psycopg.Connection
) -> None:
    store = make_pg_store()
    store.put(("a",), "k", {"v": 1})
    url = f"{pg.url}?options=-c%20statement_timeout%3D200"
    with psycopg.connect(pg.url) as locker:
        locker.execute(
            pgsql.SQL("LOCK TABLE {}.items IN ACCESS EXCLUSIVE MODE").format(
                pgsql.Identifier(store.schema)
            )
        )
        with (
            PostgresStore.from_conn_string(url, schema=store.schema, start_sweeper=False) as slow,
            pytest.raises(errors.BackendTimeoutError),
        ):
            slow.get(("a",), "k")
        locker.rollback()


def test_unavailable_after_retries() -> None:
    server = EmbeddedPostgres().start()
    try:
        store_cm = PostgresStore.from_conn_string(
            server.url,
            start_sweeper=False,
            pool_timeout=2,
            retry=RetryPolicy(attempts=3, base_delay=0.01),
        )
        with store_cm as store:
            store.setup()
            server.stop()
            started = time.monotonic()
            with pytest.raises(errors.BackendUnavailableError):
                store.get(("a",), "k")
            assert time.monotonic() - started < 10
    finally:
        server.stop()


def test_registry_stays_complete_under_concurrent_puts_and_deletes(
    make_pg_store: MakePgStore, sql: psycopg.Connection
) -> None:
    store = make_pg_store(start_sweeper=False)
    errors_seen: list[BaseException] = []

    def churn(seed: int) -> None:
        try:
            for i in range(200):
                ns = ("churn", str((seed + i) % 4))
                other = ("churn", str((seed + i + 1) % 4))
                key = str(i % 2)
                if (seed + i) % 3:
                    store.put(ns, key, {"i": i})
                elif i % 2:
                    store.delete(ns, key)
                else:  # a batch mixing a delete and a put in two namespaces
                    store.batch([PutOp(ns, key, None), PutOp(other, key, {"i": i})])
        except BaseException as exc:
            errors_seen.append(exc)

    threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors_seen == []
    missing = sql.execute(
        pgsql.SQL(
            "SELECT DISTINCT prefix FROM {s}.items EXCEPT SELECT prefix FROM {s}.namespaces"
        ).format(s=pgsql.Identifier(store.schema))
    ).fetchall()
    assert missing == []
    with_items = {
        tuple(p.split("."))
        for (p,) in sql.execute(
            pgsql.SQL("SELECT DISTINCT prefix FROM {s}.items").format(
                s=pgsql.Identifier(store.schema)
            )
        )
    }
    assert set(store.list_namespaces()) == with_items
