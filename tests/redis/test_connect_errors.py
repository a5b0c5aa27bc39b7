"""Redis connection mistakes fail fast and say why; a down server is BackendUnavailableError."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from langchain_core.messages import HumanMessage

from langmem_prod import AsyncRedisStore, RedisChatMessageHistory, RedisStore, errors
from langmem_prod.embedded import EmbeddedRedis


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _setup_sync(url: str, **kwargs: Any) -> None:
    with RedisStore.from_url(url, start_sweeper=False, **kwargs) as store:
        store.setup()


async def _setup_async(url: str, **kwargs: Any) -> None:
    async with AsyncRedisStore.from_url(url, **kwargs) as store:
        await store.setup()


async def _setup(flavour: str, url: str, **kwargs: Any) -> None:
    if flavour == "async":
        await _setup_async(url, **kwargs)
    else:
        await asyncio.to_thread(_setup_sync, url, **kwargs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_setup_with_the_server_down_is_backend_unavailable(flavour: str) -> None:
    started = time.monotonic()
    with pytest.raises(errors.BackendUnavailableError, match="Error 111") as info:
        await _setup(flavour, f"redis://127.0.0.1:{_free_port()}/0")
    assert time.monotonic() - started < 2.0
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)


@pytest.mark.parametrize("bad", ["http://127.0.0.1:6379/0", "redis://127.0.0.1:port/0"])
async def test_malformed_url_is_a_configuration_error(flavour: str, bad: str) -> None:
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match="malformed"):
        await _setup(flavour, bad)
    assert time.monotonic() - started < 0.5


async def test_missing_database_number_fails_at_once(
    embedded_valkey: EmbeddedRedis, flavour: str
) -> None:
    url = embedded_valkey.url.rsplit("/", 1)[0] + "/999"
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match="DB index is out of range"):
        await _setup(flavour, url)
    assert time.monotonic() - started < 1.5


@pytest.fixture
def acl_user(embedded_valkey: EmbeddedRedis) -> Iterator[str]:
    """A user of the embedded server whose password is 'right-one'."""
    name = f"u_{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(embedded_valkey.url)
    admin.execute_command("ACL", "SETUSER", name, "on", ">right-one", "~*", "+@all")
    try:
        yield name
    finally:
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


async def test_wrong_password_fails_at_once_without_the_password(
    embedded_valkey: EmbeddedRedis, acl_user: str, flavour: str
) -> None:
    where = urlsplit(embedded_valkey.url)
    url = f"redis://{acl_user}:wrong-secret@{where.hostname}:{where.port}/0"
    started = time.monotonic()
    with pytest.raises(errors.ConfigurationError, match="credentials") as info:
        await _setup(flavour, url)
    assert time.monotonic() - started < 1.5
    assert "wrong-secret" not in str(info.value)
    await _setup(flavour, url.replace("wrong-secret", "right-one"))  # the user works


def test_history_on_a_malformed_url_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="malformed"):
        RedisChatMessageHistory("s", "http://127.0.0.1:6379/0").add_messages([HumanMessage("hi")])


def test_connect_timeout_and_pool_size_are_checked() -> None:
    with pytest.raises(errors.ConfigurationError, match="connect_timeout"):
        _setup_sync("redis://127.0.0.1:6379/0", connect_timeout=0)
    with pytest.raises(errors.ConfigurationError, match="pool_size"):
        _setup_sync("redis://127.0.0.1:6379/0", pool_size=0)
