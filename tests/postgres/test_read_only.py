"""A read-only PostgreSQL connection: reads work, background work stops with one warning.

The connection belongs to an ordinary (non-superuser) role made read-only by
`ALTER ROLE ... SET default_transaction_read_only = on`, or by the connection's
`options`. Before, every maintenance round logged a traceback; a user's write said only
that PostgreSQL "rejected the operation".
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from psycopg import sql
from psycopg.conninfo import make_conninfo

from langmem_prod import AsyncPostgresStore, PostgresChatMessageHistory, PostgresStore, errors
from tests.conftest import PgServer

ROUNDS_SECONDS = 1.0
FAST = {
    "flush_interval": 0.05,
    "ttl": {"default_ttl": 60, "sweep_interval_minutes": 0.002},  # a sweep every 0.12 s
}


@pytest.fixture(params=["role", "options"])
def read_only_url(request: pytest.FixtureRequest, pg: PgServer, schema: str) -> Iterator[str]:
    """A URL of a non-superuser role that can write the schema's tables, read-only."""
    with PostgresStore.from_conn_string(pg.url, schema=schema) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "kept"})
    PostgresChatMessageHistory("setup", pg.url, schema=schema).setup()
    role = f"ro_{uuid.uuid4().hex[:10]}"
    ident, place = sql.Identifier(role), sql.Identifier(schema)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(ident))
        for grant in (
            "GRANT USAGE ON SCHEMA {s} TO {r}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}",
            "GRANT USAGE ON ALL SEQUENCES IN SCHEMA {s} TO {r}",
            "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {r}",
        ):
            conn.execute(sql.SQL(grant).format(s=place, r=ident))
        if request.param == "role":
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident)
            )
    options = {} if request.param == "role" else {"options": "-c default_transaction_read_only=on"}
    try:
        yield make_conninfo(pg.url, user=role, **options)
    finally:
        with psycopg.connect(pg.url, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (role,),
            )
            conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
            conn.execute(sql.SQL("DROP ROLE {}").format(ident))


def read_only_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def check_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    warnings = read_only_warnings(caplog)
    assert len(warnings) == 1, [r.getMessage()[:120] for r in warnings]
    message = warnings[0].getMessage()
    assert "read-only" in message and "access statistics" in message
    assert warnings[0].exc_info is None  # one line, no traceback


def count_items(pg: PgServer, schema: str) -> int:
    with psycopg.connect(pg.url) as conn:
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}.items").format(sql.Identifier(schema)))
        return int(row.fetchone()[0])  # type: ignore[index]


def test_sync_store_reads_and_stops_its_maintenance_once(
    pg: PgServer, schema: str, read_only_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with PostgresStore.from_conn_string(read_only_url, schema=schema, **FAST) as store:
        deadline = time.monotonic() + ROUNDS_SECONDS
        while time.monotonic() < deadline:  # reads keep asking for flushes; sweeps are due
            item = store.get(("docs",), "a")
            assert item is not None and item.value == {"text": "kept"}
            assert [i.key for i in store.search(("docs",))] == ["a"]
            time.sleep(0.05)
        with pytest.raises(errors.ReadOnlyServerError, match="read-only"):
            store.put(("docs",), "b", {"text": "refused"})
        assert len(store._runner.buffer) == 0  # reads are no longer recorded
    check_one_warning(caplog)
    assert count_items(pg, schema) == 1


async def test_async_store_reads_and_stops_its_maintenance_once(
    pg: PgServer, schema: str, read_only_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with AsyncPostgresStore.from_conn_string(read_only_url, schema=schema, **FAST) as store:
        deadline = time.monotonic() + ROUNDS_SECONDS
        while time.monotonic() < deadline:
            item = await store.aget(("docs",), "a")
            assert item is not None and item.value == {"text": "kept"}
            assert [i.key for i in await store.asearch(("docs",))] == ["a"]
            await asyncio.sleep(0.05)
        with pytest.raises(errors.ReadOnlyServerError, match="read-only"):
            await store.aput(("docs",), "b", {"text": "refused"})
    check_one_warning(caplog)
    assert count_items(pg, schema) == 1


def test_history_reads_refuses_writes_and_its_sweeper_stops_once(
    schema: str, read_only_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with psycopg.connect(read_only_url, autocommit=True) as conn:
        history = PostgresChatMessageHistory("s", conn, schema=schema)
        assert history.messages == []
        with pytest.raises(errors.ReadOnlyServerError, match="read-only"):
            history.add_messages([HumanMessage("refused")])
        sweeper = history.start_sweeper(interval=0.05)
        time.sleep(ROUNDS_SECONDS / 2)
        assert sweeper.stop()
    warnings = read_only_warnings(caplog)
    assert len(warnings) == 1 and "read-only" in warnings[0].getMessage()


def test_the_error_is_a_backend_error_that_retrying_cannot_fix() -> None:
    error: Any = errors.ReadOnlyServerError("x", retryable=False)
    assert isinstance(error, errors.BackendUnavailableError) and not error.retryable
    assert isinstance(error, errors.BackendError)  # what a rejected write raised before
