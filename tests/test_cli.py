"""The `langmem-prod` command, run as a user runs it: a subprocess, its output, its status."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import psycopg
import pytest

from langmem_prod import HashingEmbeddings, PostgresChatMessageHistory, PostgresStore
from langmem_prod.embedded import free_port
from langmem_prod.errors import ConfigurationError
from langmem_prod.history._pg import HISTORY_MIGRATIONS
from langmem_prod.security import Keyring
from langmem_prod.store.postgres._schema import CORE_MIGRATIONS, RLS_MIGRATIONS, VECTOR_MIGRATIONS
from tests.conftest import PgServer, RedisServer, drop_schema, new_schema

ROOT = Path(__file__).resolve().parent.parent
CORE, RLS = CORE_MIGRATIONS[-1].version, RLS_MIGRATIONS[-1].version
VECTORS, HISTORY = VECTOR_MIGRATIONS[-1].version, HISTORY_MIGRATIONS[-1].version


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `langmem-prod ARGS` from this checkout."""
    environment = {k: v for k, v in os.environ.items() if k != "LANGMEM_URL"}
    environment.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "langmem_prod.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=90,
        check=False,
    )


def tracks(url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT track, max(version) FROM "{schema}".migrations GROUP BY track'
        ).fetchall()
    return dict(rows)


def schema_exists(url: str, schema: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        found = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()
    return bool(found and found[0])


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The process failed with status 1 and exactly one line on stderr, no traceback."""
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("langmem-prod: error: ")
    return lines[0]


def test_version() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"langmem-prod {metadata.version('langmem_prod')}"
    assert re.fullmatch(r"langmem-prod \d+\.\d+\.\d+\S*", result.stdout.strip())


def test_setup_says_created_then_up_to_date(pg: PgServer) -> None:
    schema = new_schema()
    try:
        first = cli("setup", "--url", pg.url, "--schema", schema)
        assert first.returncode == 0, first.stderr
        assert first.stdout == f"created schema {schema!r} (core {CORE}, rls {RLS})\n"
        assert tracks(pg.url, schema) == {"core": CORE, "rls": RLS}
        again = cli("setup", "--url", pg.url, "--schema", schema)
        assert again.stdout == f"schema {schema!r} is up to date (core {CORE}, rls {RLS})\n"
    finally:
        drop_schema(pg.url, schema)


def test_setup_says_upgraded_when_it_adds_history_tables(pg: PgServer) -> None:
    schema = new_schema()
    try:
        assert cli("setup", "--url", pg.url, "--schema", schema).returncode == 0
        result = cli("setup", "--url", pg.url, "--schema", schema, "--history")
        assert result.stdout == (
            f"upgraded schema {schema!r} (core {CORE}, history 0 -> {HISTORY}, rls {RLS})\n"
        )
        with psycopg.connect(pg.url, autocommit=True) as conn:
            history = PostgresChatMessageHistory("s1", conn, schema=schema)
            history.add_user_message("no setup() needed any more")
            assert len(history.messages) == 1
    finally:
        drop_schema(pg.url, schema)


def test_setup_creates_the_vector_tables_before_the_app_runs(vector_pg: PgServer) -> None:
    schema = new_schema()
    try:
        result = cli("setup", "--url", vector_pg.url, "--schema", schema, "--index-dims", "64")
        assert result.stdout == (
            f"created schema {schema!r} (core {CORE}, rls {RLS}, vectors {VECTORS})\n"
        )
        index = {"dims": 64, "embed": HashingEmbeddings(64), "fields": ["text"]}
        with PostgresStore.from_conn_string(vector_pg.url, schema=schema, index=index) as store:
            # the application's own setup() finds nothing to do, and search works
            store.setup()
            store.put(("docs",), "d1", {"text": "peanut allergy"})
            assert [i.key for i in store.search(("docs",), query="allergy")] == ["d1"]
        again = cli("setup", "--url", vector_pg.url, "--schema", schema, "--index-dims", "64")
        assert "is up to date" in again.stdout
        with (
            pytest.raises(ConfigurationError, match="use the same dims"),
            PostgresStore.from_conn_string(
                vector_pg.url, schema=schema, index={**index, "dims": 32}
            ) as other,
        ):
            other.setup()
    finally:
        drop_schema(vector_pg.url, schema)


def test_setup_takes_the_distance_type(vector_pg: PgServer) -> None:
    schema = new_schema()
    args = ("setup", "--url", vector_pg.url, "--schema", schema, "--index-dims", "64")
    try:
        assert cli(*args, "--distance", "inner_product").returncode == 0
        (opclass,) = _one_row(
            vector_pg.url,
            "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
            "WHERE i.indexrelid = to_regclass(%s)",
            (f'"{schema}".vectors_embedding_hnsw_idx',),
        )
        assert opclass == "vector_ip_ops"
        assert "is up to date" in cli(*args, "--distance", "inner_product").stdout
        line = one_line_error(cli(*args))  # cosine, the default, is not what was set up
        assert "distance_type 'inner_product'" in line and "DROP INDEX" in line
        with psycopg.connect(vector_pg.url, autocommit=True) as conn:
            conn.execute(f'DROP INDEX "{schema}".vectors_embedding_hnsw_idx')
        rebuilt = cli(*args, "--distance", "inner_product").stdout
        assert "up to date" in rebuilt and "rebuilt its vector index" in rebuilt
        index = {"dims": 64, "embed": HashingEmbeddings(64), "distance_type": "inner_product"}
        with PostgresStore.from_conn_string(vector_pg.url, schema=schema, index=index) as store:
            store.setup()
    finally:
        drop_schema(vector_pg.url, schema)


def test_distance_needs_index_dims_and_a_known_type(pg: PgServer) -> None:
    line = one_line_error(cli("setup", "--url", pg.url, "--distance", "l2"))
    assert "--index-dims" in line
    bad = cli("setup", "--url", pg.url, "--index-dims", "8", "--distance", "hamming")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def _one_row(url: str, query: str, params: tuple[str, ...]) -> tuple[str, ...]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return tuple(row)


def test_setup_adds_vectors_to_an_existing_schema(vector_pg: PgServer) -> None:
    schema = new_schema()
    try:
        assert cli("setup", "--url", vector_pg.url, "--schema", schema).returncode == 0
        result = cli("setup", "--url", vector_pg.url, "--schema", schema, "--index-dims", "8")
        assert result.stdout == (
            f"upgraded schema {schema!r} (core {CORE}, rls {RLS}, vectors 0 -> {VECTORS})\n"
        )
    finally:
        drop_schema(vector_pg.url, schema)


def test_setup_without_pgvector_says_so_and_creates_nothing(pg: PgServer) -> None:
    if pg.has_vector:
        pytest.skip(f"the {pg.name} server has pgvector")
    schema = new_schema()
    try:
        line = one_line_error(
            cli("setup", "--url", pg.url, "--schema", schema, "--index-dims", "8")
        )
        assert "pgvector" in line
        assert not schema_exists(pg.url, schema)  # one transaction: nothing half-made
    finally:
        drop_schema(pg.url, schema)


def test_the_url_may_come_from_the_environment(pg: PgServer) -> None:
    schema = new_schema()
    try:
        result = cli("setup", "--schema", schema, env={"LANGMEM_URL": pg.url})
        assert result.stdout.startswith(f"created schema {schema!r}")
    finally:
        drop_schema(pg.url, schema)


def test_setup_without_a_url_says_what_to_pass() -> None:
    assert "--url (or $LANGMEM_URL)" in one_line_error(cli("setup"))


def connection_mistake(url: str) -> str:
    started = time.monotonic()
    line = one_line_error(cli("setup", "--url", url, "--timeout", "3"))
    assert time.monotonic() - started < 20
    assert "s3cret-pw" not in line  # the password is never printed
    return line


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://postgres:s3cret-pw@127.0.0.1:{free_port()}/db", "Connection refused"),
        ("postgresql://u:s3cret-pw@[::1/db", "not a valid PostgreSQL URL"),
        ("host=localhost s3cret-pw", "not a valid PostgreSQL URL"),
    ],
    ids=["refused", "bad-url", "bad-dsn"],
)
def test_connection_mistakes_are_one_line_and_fast(url: str, expected: str) -> None:
    assert expected in connection_mistake(url)


def test_server_refusals_are_one_line_with_the_servers_reason(pg: PgServer) -> None:
    unknown_database = pg.url.rsplit("/", 1)[0] + "/no_such_db_x"
    assert 'database "no_such_db_x" does not exist' in connection_mistake(unknown_database)
    unknown_role = pg.url.replace("postgres@", "no_such_role_x:s3cret-pw@", 1)
    assert 'role "no_such_role_x" does not exist' in connection_mistake(unknown_role)


def test_redis_url_is_checked(rs: RedisServer) -> None:
    if rs.cluster:
        pytest.skip("the CLI checks one Redis server")
    result = cli("setup", "--url", rs.url)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"(Redis|Valkey) [\d.]+ is ready for the store .*\n", result.stdout)


def test_redis_unreachable_is_one_line() -> None:
    line = one_line_error(cli("setup", "--url", f"redis://127.0.0.1:{free_port()}/0"))
    assert "refused" in line.lower()


def test_redis_takes_no_index_dims() -> None:
    line = one_line_error(cli("setup", "--url", "redis://127.0.0.1:1/0", "--index-dims", "8"))
    assert "for PostgreSQL" in line


def test_new_master_key_prints_an_entry_the_keyring_reads() -> None:
    first, second = cli("new-master-key", "--id", "2026-12"), cli("new-master-key", "--id", "k2")
    assert first.returncode == 0, first.stderr
    entry = first.stdout.strip()
    assert re.fullmatch(r"2026-12:[A-Za-z0-9+/]{43}=", entry)
    keyring = Keyring.from_env({"LANGMEM_MASTER_KEYS": f"{entry},{second.stdout.strip()}"})
    assert keyring.primary_id == "2026-12"
    assert entry.split(":")[1] != second.stdout.strip().split(":")[1]  # random each time


def test_new_master_key_refuses_an_id_the_keyring_would_not_read() -> None:
    line = one_line_error(cli("new-master-key", "--id", "no spaces allowed"))
    assert "--id must be" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--url", "host=localhost port"), "malformed"),
        (("--url", f"postgresql://postgres@127.0.0.1:{free_port()}/db"), "Connection refused"),
        (("--store", "redis", "--url", "http://127.0.0.1:6379/0"), "Redis URL is malformed"),
        (("--store", "redis", "--url", f"redis://127.0.0.1:{free_port()}/0"), "Error 111"),
    ],
    ids=["pg-bad-dsn", "pg-refused", "redis-bad-url", "redis-refused"],
)
def test_demo_connection_mistakes_are_one_line_and_fast(
    args: tuple[str, ...], expected: str
) -> None:
    started = time.monotonic()
    line = one_line_error(cli("demo", *args))
    assert time.monotonic() - started < 20  # the interpreter's start included
    assert expected in line


def test_demo_on_an_unknown_database_names_it(pg: PgServer) -> None:
    unknown_database = pg.url.rsplit("/", 1)[0] + "/no_such_db_x"
    line = one_line_error(cli("demo", "--url", unknown_database))
    assert 'database "no_such_db_x" does not exist' in line
