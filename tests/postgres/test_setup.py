"""Migrations: versioned, idempotent, transactional, safe under concurrent setup()."""

from __future__ import annotations

import threading

import psycopg
import pytest

from langmem_prod import AsyncPostgresStore, PostgresStore, errors
from langmem_prod.store.postgres._schema import CORE_MIGRATIONS, RLS_MIGRATIONS
from tests.conftest import PgServer, drop_schema, new_schema
from tests.postgres.conftest import MakePgStore


def versions(sql: psycopg.Connection, schema: str) -> list[tuple[str, int]]:
    return sql.execute(f'SELECT track, version FROM "{schema}".migrations ORDER BY 1, 2').fetchall()


# The store's setup applies the "rls" track (tenant roles for row-level security) too.
STORE_VERSIONS = [("core", m.version) for m in CORE_MIGRATIONS] + [
    ("rls", m.version) for m in RLS_MIGRATIONS
]


def test_setup_is_idempotent(make_pg_store: MakePgStore, sql: psycopg.Connection) -> None:
    store = make_pg_store()
    store.setup()
    store.setup()
    assert versions(sql, store.schema) == STORE_VERSIONS


def test_concurrent_setup_from_many_sessions(pg: PgServer, sql: psycopg.Connection) -> None:
    schema = new_schema()
    barrier = threading.Barrier(8)
    failures: list[BaseException] = []

    def race() -> None:
        try:
            with PostgresStore.from_conn_string(
                pg.url, schema=schema, start_sweeper=False
            ) as store:
                barrier.wait()
                store.setup()
                store.put(("race",), threading.current_thread().name, {"ok": True})
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=race, name=f"t{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert failures == []
        assert versions(sql, schema) == STORE_VERSIONS
        assert sql.execute(f'SELECT count(*) FROM "{schema}".items').fetchone() == (8,)
    finally:
        drop_schema(pg.url, schema)


def test_setup_runs_on_a_connection_without_autocommit(pg: PgServer, schema: str) -> None:
    with psycopg.connect(pg.url) as conn:
        store = PostgresStore(conn, schema=schema, start_sweeper=False)
        store.setup()
        store.put(("a",), "k", {"v": 1})
        assert store.get(("a",), "k").value == {"v": 1}
        store.close()
    with psycopg.connect(pg.url) as other:
        assert other.execute(f'SELECT count(*) FROM "{schema}".items').fetchone() == (1,)


async def test_async_setup_matches_sync(pg: PgServer, schema: str) -> None:
    async with AsyncPostgresStore.from_conn_string(pg.url, schema=schema) as store:
        await store.setup()
        await store.setup()
        await store.aput(("a",), "k", {"v": 1})
    with psycopg.connect(pg.url) as sql:
        assert versions(sql, schema) == STORE_VERSIONS


def test_schema_names_are_quoted(make_pg_store: MakePgStore) -> None:
    store = make_pg_store(schema='My "odd" Schema-1')
    store.put(("a",), "k", {"v": 1})
    assert store.get(("a",), "k").value == {"v": 1}
    assert store.list_namespaces() == [("a",)]


def test_use_before_setup_says_what_to_do(make_pg_store: MakePgStore) -> None:
    store = make_pg_store(setup=False)
    with pytest.raises(errors.SchemaNotReadyError, match="setup"):
        store.get(("a",), "k")


def test_a_newer_schema_is_refused(make_pg_store: MakePgStore, sql: psycopg.Connection) -> None:
    store = make_pg_store()
    sql.execute(
        f'INSERT INTO "{store.schema}".migrations (track, version, description) '
        "VALUES ('core', 999, 'from the future')"
    )
    with pytest.raises(errors.SchemaNotReadyError, match="newer"):
        store.setup()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schema": ""}, "schema"),
        ({"track_access": "sometimes"}, "track_access"),
        ({"max_value_bytes": 0}, "max_value_bytes"),
        ({"ttl": {"default_ttl": -1}}, "default_ttl"),
        ({"ttl": {"sweep_interval": 5}}, "unknown TTLConfig"),
        ({"index": {"dims": 0, "embed": lambda t: t}}, "dims"),
        ({"index": {"dims": 3}}, "embed"),
        ({"index": {"dims": 3, "embed": lambda t: t, "distance_type": "dot"}}, "distance_type"),
        ({"flush_interval": 0}, "flush_interval"),
    ],
)
def test_bad_configuration_fails_at_construction(
    make_pg_store: MakePgStore, kwargs: dict, match: str
) -> None:
    with pytest.raises(errors.ConfigurationError, match=match):
        make_pg_store(setup=False, **kwargs)


def test_unreachable_server(schema: str) -> None:
    with (
        pytest.raises(errors.BackendUnavailableError),
        PostgresStore.from_conn_string(
            "postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=1", pool_timeout=1.0
        ),
    ):
        pass
