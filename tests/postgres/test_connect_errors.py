"""Connection mistakes fail fast and say why; an unreachable server within connect_timeout.

Each case is timed: nothing waits for the pool's timeout (30 s by default).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.messages import HumanMessage
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool

from langmem_prod import AsyncPostgresStore, PostgresChatMessageHistory, PostgresStore, errors
from langmem_prod.embedded import EmbeddedPostgres
from langmem_prod.store.postgres._connect import conninfo_for
from tests.conftest import PgServer


def _with(url: str, **changes: Any) -> str:
    return make_conninfo(url, **changes)


def _open_sync(url: str, **kwargs: Any) -> None:
    with PostgresStore.from_conn_string(url, **kwargs) as store:
        store.setup()


async def _open_async(url: str, **kwargs: Any) -> None:
    async with AsyncPostgresStore.from_conn_string(url, **kwargs) as store:
        await store.setup()


async def _open(flavour: str, url: str, **kwargs: Any) -> float:
    """Open a store of `flavour` on `url`; return the seconds it took to fail."""
    started = time.monotonic()
    if flavour == "async":
        await _open_async(url, **kwargs)
    else:
        await asyncio.to_thread(_open_sync, url, **kwargs)
    return time.monotonic() - started


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _refused(flavour: str, url: str, match: str) -> errors.ConfigurationError:
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match=match) as info:
        await _open(flavour, url, pool_timeout=30)
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value.__cause__, psycopg.Error)
    return info.value


async def test_unknown_database_fails_at_once_with_the_servers_message(
    pg: PgServer, flavour: str
) -> None:
    error = await _refused(flavour, _with(pg.url, dbname="no_such_db_x"), "does not exist")
    assert 'database "no_such_db_x" does not exist' in str(error)


async def test_unknown_role_fails_at_once(pg: PgServer, flavour: str) -> None:
    await _refused(flavour, _with(pg.url, user="no_such_role_x"), 'role "no_such_role_x"')


@pytest.mark.parametrize(
    "bad", ["postgresql://u@h:5432/db?nonsense=1", "host=localhost port", "dbname='unclosed"]
)
async def test_malformed_connection_string_fails_at_once(flavour: str, bad: str) -> None:
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match="malformed"):
        await _open(flavour, bad)
    assert time.monotonic() - started < 0.5


async def test_closed_port_is_unavailable_at_once(flavour: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    started = time.monotonic()
    with pytest.raises(errors.BackendUnavailableError, match="Connection refused") as info:
        await _open(flavour, url)
    assert time.monotonic() - started < 1.5
    assert info.value.retryable and not isinstance(info.value, errors.BackendTimeoutError)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung or firewalled server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


async def test_silent_server_is_unavailable_within_connect_timeout(silent_server: int) -> None:
    flavour = "async"  # the sync twin waits the same way (libpq's connect_timeout); 2 s each
    url = f"postgresql://postgres@127.0.0.1:{silent_server}/postgres"
    started = time.monotonic()
    with pytest.raises(errors.BackendUnavailableError, match="connect_timeout"):
        await _open(flavour, url, connect_timeout=2, pool_timeout=30)
    assert 1.5 <= time.monotonic() - started < 4.5


def _scram_role(server: EmbeddedPostgres) -> Iterator[str]:
    """A role that must give a password (the embedded server trusts everyone else)."""
    role = f"pw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        try:
            original = hba.read_text()
            hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n{original}")
        except OSError:
            pytest.skip("the embedded server's pg_hba.conf is not writable here")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'right-one'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.2)
    try:
        yield role
    finally:
        hba.write_text(original)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def scram_role(embedded_pg: EmbeddedPostgres) -> Iterator[str]:
    yield from _scram_role(embedded_pg)


async def test_wrong_password_fails_at_once_without_the_password(
    embedded_pg: EmbeddedPostgres, scram_role: str, flavour: str
) -> None:
    url = _with(embedded_pg.url, user=scram_role, password="wrong-secret")
    error = await _refused(flavour, url, "password authentication failed")
    assert "wrong-secret" not in str(error)
    good = _with(embedded_pg.url, user=scram_role, password="right-one")
    with psycopg.connect(good):  # the role itself works with its password
        pass


def test_history_from_a_wrong_url_fails_at_once(pg: PgServer) -> None:
    url = _with(pg.url, dbname="no_such_db_x")
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match="does not exist"):
        PostgresChatMessageHistory("s", url).add_messages([HumanMessage("hi")])
    assert time.monotonic() - started < 1.5


def test_pool_held_by_others_times_out_in_time(pg: PgServer) -> None:
    pool: ConnectionPool[Any] = ConnectionPool(
        pg.url, min_size=1, max_size=1, timeout=0.5, kwargs={"autocommit": True}, open=True
    )
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with PostgresStore(pool, schema=schema, start_sweeper=False) as store:
            store.setup()
            with pool.connection():  # someone else holds the only connection
                started = time.monotonic()
                with pytest.raises(errors.BackendTimeoutError, match="pool_timeout"):
                    store.put(("a",), "k", {"v": 1})
                assert 0.45 <= time.monotonic() - started < 2.0
            store.put(("a",), "k", {"v": 1})
            with pool.connection() as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        pool.close()


def test_conninfo_keeps_connect_timeout(pg: PgServer) -> None:
    assert conninfo_to_dict(conninfo_for(pg.url, 3.2))["connect_timeout"] == "4"
