"""Drive the Redis generators against redis-py: one sync runner, one async twin.

Rules:
- a `Pipeline` effect is sent as one redis-py pipeline (on a cluster, redis-py splits it
  by node); it is a MULTI/EXEC transaction when atomic and the server is not a cluster;
- scripts run by EVALSHA; they are loaded on first use (on every primary of a cluster)
  and again after a NOSCRIPT reply (a restarted or flushed server), then the pipeline is
  sent again: every write script is an idempotent upsert or delete;
- each round trip first takes one of the client's connection slots (`_slots`): past the
  pool's size, calls queue for up to `pool_timeout` seconds instead of failing, and a
  pool filled by code outside the store is waited for until the same deadline;
- connection drops, timeouts, cluster reconfigurations and a loading server are retried
  with backoff, as is a READONLY reply (a failover may promote the replica), which ends
  as `ReadOnlyServerError`; errors leave through `translate` (a write script's quota
  refusal becomes `QuotaExceededError`);
- the twins differ only in `await`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, TypeVar

import redis
import redis.asyncio
from langchain_core.embeddings import Embeddings
from redis import exceptions as rx

from langmem_prod.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigurationError,
    LangmemError,
    ReadOnlyServerError,
)
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._runner import AsyncRunnerBase, SyncRunnerBase
from langmem_prod.store.redis._effects import Command, Pipeline
from langmem_prod.store.redis._lua import SCRIPTS
from langmem_prod.store.redis._quota import quota_error
from langmem_prod.store.redis._server import check_server
from langmem_prod.store.redis._slots import (
    DEFAULT_POOL_TIMEOUT,
    FULL_POOL_PAUSE,
    async_slots,
    check_pool_timeout,
    pool_timeout_error,
    sync_slots,
)

T = TypeVar("T")
_RETRYABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.BusyLoadingError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.ReadOnlyError,
)
_BAD_DB = ("DB index is out of range", "ERR DB index is out of range", "ERR invalid DB index")


def translate(exc: BaseException) -> BaseException:
    """Return the langmem_prod error for a redis-py error (others pass through)."""
    if isinstance(exc, LangmemError):
        return exc
    if isinstance(exc, rx.AuthenticationError | rx.AuthenticationWrongNumberOfArgsError):
        return ConfigurationError(
            f"Redis refused the credentials: {exc}; check the user and password in the URL "
            "(retrying cannot help)"
        )
    if isinstance(exc, rx.ResponseError) and str(exc).startswith(_BAD_DB):
        return ConfigurationError(
            f"Redis refused the database number: {exc}; use a database the server has "
            "(redis://host:6379/0; a cluster has only 0)"
        )
    if isinstance(exc, rx.TimeoutError):
        return BackendTimeoutError(f"Redis did not answer in time: {exc}")
    if isinstance(exc, rx.ReadOnlyError):  # retried: a failover may promote the server
        return ReadOnlyServerError(
            "Redis refused a write: the server is a read-only replica (READONLY); nothing "
            "was written, write through the primary"
        )
    if isinstance(exc, _RETRYABLE):
        return BackendUnavailableError(f"Redis is unavailable: {type(exc).__name__}: {exc}")
    if isinstance(exc, rx.ResponseError) and (quota := quota_error(str(exc))) is not None:
        return quota
    if isinstance(exc, rx.RedisError):
        return BackendError(f"Redis rejected the operation: {type(exc).__name__}: {exc}")
    return exc


def close_client(client: redis.Redis | redis.RedisCluster) -> None:
    """Close a sync client; for a cluster, also every node's pool.

    A `RedisCluster.from_url` client gives its nodes pools that `close()` leaves open
    (redis-py 8.1), so their sockets would linger until garbage collection.
    """
    nodes = client.get_nodes() if isinstance(client, redis.RedisCluster) else []  # type: ignore[no-untyped-call]
    client.close()
    for node in nodes:
        if node.redis_connection is not None:
            node.redis_connection.connection_pool.disconnect()


def _wait_full_pool(exc: BackendUnavailableError, deadline: float, timeout: float) -> None:
    """Return if `exc` is a pool filled by others and time is left to wait; else raise."""
    if not isinstance(exc.__cause__, rx.MaxConnectionsError):
        raise exc
    if time.monotonic() >= deadline:
        raise pool_timeout_error(timeout) from exc


def _check(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _wants_scripts(replies: list[Any]) -> bool:
    return any(isinstance(r, rx.NoScriptError) for r in replies)


class SyncRedisRunner(SyncRunnerBase[Pipeline]):
    """Runs generators on a `redis.Redis` or `redis.RedisCluster` client."""

    backend = "Redis"

    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        embeddings: Embeddings | None,
        retry: RetryPolicy,
        scripts: Mapping[str, str] = SCRIPTS,
        *,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        super().__init__(embeddings, retry)
        self.client = client
        self.pool_timeout = check_pool_timeout(pool_timeout)
        self.scripts = scripts
        self.cluster = isinstance(client, redis.RedisCluster)
        self._slots = sync_slots(client)
        self._loaded = False

    def translate(self, exc: BaseException) -> BaseException:
        """The langmem_prod error for a redis-py error."""
        return translate(exc)

    def _send(self, effect: Pipeline) -> Any:
        """Send `effect` holding one of the client's slots (queued up to `pool_timeout`)."""
        slots, deadline = self._slots, time.monotonic() + self.pool_timeout
        if not slots.acquire(timeout=self.pool_timeout):
            raise pool_timeout_error(self.pool_timeout)
        try:
            while True:
                try:
                    return super()._send(effect)
                except BackendUnavailableError as exc:
                    _wait_full_pool(exc, deadline, self.pool_timeout)
                time.sleep(FULL_POOL_PAUSE)
        finally:
            slots.release()

    def _send_once(self, effect: Pipeline) -> list[Any]:
        if effect.scripted and not self._loaded:
            self.load_scripts()
        replies = self._pipeline(effect.commands, effect.atomic)
        if effect.scripted and _wants_scripts(replies):  # the server lost them: load, resend
            self.load_scripts()
            replies = self._pipeline(effect.commands, effect.atomic)
        return _check(replies)

    def _pipeline(self, commands: tuple[Command, ...], atomic: bool) -> list[Any]:
        if len(commands) == 1 and not atomic:
            try:
                return [self.client.execute_command(*commands[0])]  # type: ignore[no-untyped-call]
            except rx.ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=atomic and not self.cluster)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    def setup_server(self) -> None:
        """Check the server and load the scripts, retried and translated like any call."""
        self._retrying(self._setup_once)

    def _setup_once(self) -> None:
        check_server(self.client.info("server"))
        self.load_scripts()

    def load_scripts(self) -> None:
        """Load every script (on every primary of a cluster)."""
        for source in self.scripts.values():
            self.client.script_load(source)
        self._loaded = True


class AsyncRedisRunner(AsyncRunnerBase[Pipeline]):
    """Runs generators on a `redis.asyncio.Redis` or `redis.asyncio.RedisCluster` client."""

    backend = "Redis"

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        embeddings: Embeddings | None,
        retry: RetryPolicy,
        scripts: Mapping[str, str] = SCRIPTS,
        *,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
    ) -> None:
        super().__init__(embeddings, retry)
        self.client = client
        self.pool_timeout = check_pool_timeout(pool_timeout)
        self.scripts = scripts
        self.cluster = isinstance(client, redis.asyncio.RedisCluster)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._loaded = False

    def translate(self, exc: BaseException) -> BaseException:
        """The langmem_prod error for a redis-py error."""
        return translate(exc)

    def _loop_slots(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, async_slots(self.client))
        return self._slots[1]

    async def _send(self, effect: Pipeline) -> Any:
        """Send `effect` holding one of the client's slots (queued up to `pool_timeout`)."""
        slots, deadline = self._loop_slots(), time.monotonic() + self.pool_timeout
        if slots.locked():
            try:
                async with asyncio.timeout(self.pool_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise pool_timeout_error(self.pool_timeout) from None
        else:
            await slots.acquire()
        try:
            while True:
                try:
                    return await super()._send(effect)
                except BackendUnavailableError as exc:
                    _wait_full_pool(exc, deadline, self.pool_timeout)
                await asyncio.sleep(FULL_POOL_PAUSE)
        finally:
            slots.release()

    async def _send_once(self, effect: Pipeline) -> list[Any]:
        if effect.scripted and not self._loaded:
            await self.load_scripts()
        replies = await self._pipeline(effect.commands, effect.atomic)
        if effect.scripted and _wants_scripts(replies):  # the server lost them: load, resend
            await self.load_scripts()
            replies = await self._pipeline(effect.commands, effect.atomic)
        return _check(replies)

    async def _pipeline(self, commands: tuple[Command, ...], atomic: bool) -> list[Any]:
        if len(commands) == 1 and not atomic:
            try:
                return [await self.client.execute_command(*commands[0])]
            except rx.ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=atomic and not self.cluster)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    async def setup_server(self) -> None:
        """Check the server and load the scripts, retried and translated like any call."""
        await self._retrying(self._setup_once)

    async def _setup_once(self) -> None:
        check_server(await self.client.info("server"))
        await self.load_scripts()

    async def load_scripts(self) -> None:
        """Load every script (on every primary of a cluster)."""
        for source in self.scripts.values():
            await self.client.script_load(source)
        self._loaded = True


def runner_for(
    client: Any, retry: RetryPolicy | None, scripts: Mapping[str, str], *, owner: str
) -> SyncRedisRunner | AsyncRedisRunner:
    """A sync runner on a sync redis-py client (or cluster), an async one on an asyncio one.

    `owner` names what needs the client, for the error on anything else.
    """
    policy = retry or RetryPolicy()
    if isinstance(client, redis.Redis | redis.RedisCluster):
        return SyncRedisRunner(client, None, policy, scripts)
    if isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
        return AsyncRedisRunner(client, None, policy, scripts)
    if isinstance(client, str):
        raise ConfigurationError(
            f"{owner} takes a redis-py client, not a URL; make one on the URL, "
            "e.g. `redis.Redis.from_url(url)`"
        )
    raise ConfigurationError(f"{owner} needs a redis-py client (sync or asyncio)")
