"""The throwaway servers: they start, always stop, and orphans never block a later start."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import redis

from langmem_prod import embedded
from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis, embedded_postgres, embedded_redis


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_postgres_has_pgvector_and_stops() -> None:
    with EmbeddedPostgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
            assert conn.execute("SELECT '[1,2]'::vector <=> '[1,2]'::vector").fetchone() == (0.0,)
        port, directory = server.port, server.directory
    assert not listening(port)
    assert not directory.exists()


def test_servers_stop_after_an_exception() -> None:
    seen: dict[str, str] = {}
    with pytest.raises(RuntimeError), embedded_postgres() as pg_url, embedded_redis() as redis_url:
        seen.update(pg=pg_url, redis=redis_url)
        raise RuntimeError("boom")
    for url in seen.values():
        assert not listening(int(url.rsplit(":", 1)[1].split("/")[0]))


def test_redis_round_trip() -> None:
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.get("k") == b"v"
        client.close()


_ORPHAN_SCRIPT = """
import json, os, signal, sys
from langmem_prod.embedded import EmbeddedPostgres, EmbeddedRedis
pg = EmbeddedPostgres().start()
rd = EmbeddedRedis().start()
found = {"pg": [pg.port, str(pg.directory)], "redis": [rd.port, str(rd.directory)]}
print(json.dumps(found), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_orphans_of_a_killed_process_are_reaped() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _ORPHAN_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    orphans = json.loads(done.stdout.strip().splitlines()[-1])
    for port, _ in orphans.values():
        assert listening(port)  # the killed process left its servers running
    # The next start is not blocked, and reaps them.
    with EmbeddedPostgres() as server, psycopg.connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    deadline = time.monotonic() + 10
    while any(listening(port) for port, _ in orphans.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for port, directory in orphans.values():
        assert not listening(port)
        assert not Path(directory).exists()


def test_restart_keeps_port_and_data() -> None:
    with EmbeddedPostgres() as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE t (x int)")
        port = server.port
        server.restart()
        assert server.port == port
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert not listening(port)


def test_servers_of_another_pid_namespace_are_left_alone() -> None:
    """A dead-looking owner in another container's PID namespace may be alive: no reaping."""
    here = embedded._pid_namespace()
    if here is None:
        pytest.skip("no PID namespaces on this system")
    embedded._ROOT.mkdir(mode=0o1777, exist_ok=True)
    theirs = Path(tempfile.mkdtemp(prefix="pg-", dir=embedded._ROOT))
    ours = Path(tempfile.mkdtemp(prefix="pg-", dir=embedded._ROOT))
    try:
        for path, ns in ((theirs, here + 1), (ours, here)):
            owner = {"pid": 2**22 - 1, "started": 0.0, "ns": ns}  # no such process here
            (path / "owner.json").write_text(json.dumps(owner))
        embedded.reap_orphans()
        assert theirs.exists() and not ours.exists()
    finally:
        shutil.rmtree(theirs, ignore_errors=True)
        shutil.rmtree(ours, ignore_errors=True)
