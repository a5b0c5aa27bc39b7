"""Chat history specifics: exact round trips (hypothesis), round trips on the wire,
retried appends, the codec hook, what is stored, connections and the Postgres sweeper."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_to_dict

from langmem_prod import PostgresChatMessageHistory, RedisChatMessageHistory, errors
from langmem_prod.history._shared import aclose_shared_connections, apg_pool, pg_pool
from langmem_prod.store.redis._driver import close_client
from tests.backends import Backend, unique_name
from tests.conftest import PgServer, RedisServer
from tests.history.conftest import History, MakeHistory
from tests.history.messages import messages
from tests.postgres.test_round_trips import count_round_trips
from tests.redis.test_redis_specifics import CountingConnection, keys_of


@pytest.fixture
def sync_backend(backend_server: PgServer | RedisServer) -> Iterator[tuple[Backend, str]]:
    """A backend and a place made once per test (hypothesis runs many examples in it)."""
    backend = Backend(backend_server)
    place = backend.place()
    if backend.kind == "postgres":
        asyncio.run(backend.make_history("sync", place, "setup")).setup()
    yield backend, place
    asyncio.run(backend.cleanup())


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(messages, min_size=1, max_size=6))
def test_generated_messages_round_trip_exactly(
    sync_backend: tuple[Backend, str], batch: list[BaseMessage]
) -> None:
    backend, place = sync_backend
    history: Any = asyncio.run(backend.make_history("sync", place, unique_name()))
    history.add_messages(batch)
    got = history.messages
    assert got == batch
    assert [type(m) for m in got] == [type(m) for m in batch]
    assert messages_to_dict(got) == messages_to_dict(batch)
    assert [m.content_blocks for m in got] == [m.content_blocks for m in batch]
    assert [m.pretty_repr() for m in got] == [m.pretty_repr() for m in batch]
    history.clear()


async def test_a_retried_append_is_applied_once(history: History) -> None:
    """Replaying an append's effect (as a retry after a lost reply would) adds nothing."""
    h = history.history
    gen = h._append([HumanMessage("once"), AIMessage("only once")])
    effect = next(gen)
    runner = h._sync if history.flavour == "sync" else h._async
    for _ in range(3):
        if history.flavour == "sync":
            await asyncio.to_thread(runner._send, effect)
        else:
            await runner._send(effect)
    assert [m.content for m in await history.get_messages()] == ["once", "only once"]


class Xor:
    """A codec that scrambles bytes and checks they come back to their owner."""

    def encode(self, data: bytes, context: bytes) -> bytes:
        return context + b"|" + bytes(b ^ 0x5A for b in data)

    def decode(self, data: bytes, context: bytes) -> bytes:
        owner, _, body = data.partition(b"|")
        if owner != context:
            raise errors.LangmemError("these bytes belong to another conversation")
        return bytes(b ^ 0x5A for b in body)


async def pg_rows(history: History, query: str) -> list[tuple[Any, ...]]:
    """Rows of raw SQL over the history's schema (`{s}` stands for it)."""
    async with await psycopg.AsyncConnection.connect(history.backend.server.url) as conn:
        cur = await conn.execute(query.replace("{s}", f'"{history.place}"'))  # type: ignore[arg-type]
        return await cur.fetchall()


async def raw_bytes(history: History) -> bytes:
    """Everything the backend stores for the conversation, concatenated."""
    h = history.history
    if isinstance(h, PostgresChatMessageHistory):
        rows = await pg_rows(
            history,
            "SELECT message FROM {s}.chat_messages UNION ALL SELECT state FROM {s}.chat_sessions",
        )
        return b"".join(bytes(r[0]) for r in rows if r[0] is not None)
    client = history.backend._redis()
    try:
        messages_key, session_key = h._conversation.keys
        return b"".join(client.lrange(messages_key, 0, -1)) + (
            client.hget(session_key, "state") or b""
        )
    finally:
        close_client(client)


async def test_the_codec_sees_every_stored_byte(make_history: MakeHistory) -> None:
    history = await make_history(tenant_id="acme", codec=Xor())
    await history.add_messages([HumanMessage("my secret is 1234")])
    await history.save_state({"summary": "secret 1234"})
    assert (await history.load()).state == {"summary": "secret 1234"}
    assert [m.content for m in await history.get_messages()] == ["my secret is 1234"]
    stored = await raw_bytes(history)
    assert b"1234" not in stored and b"history\x00acme\x00session-1|" in stored


async def test_the_user_and_tenant_are_stored_with_the_messages(
    make_history: MakeHistory,
) -> None:
    history = await make_history("s-user", tenant_id="acme", user_id="ada")
    await history.add_messages([HumanMessage("hi")])
    h = history.history
    if isinstance(h, PostgresChatMessageHistory):
        rows = await pg_rows(
            history,
            "SELECT s.tenant_id, s.user_id, m.tenant_id, m.user_id "
            "FROM {s}.chat_sessions s JOIN {s}.chat_messages m USING (session_id)",
        )
        assert rows == [("acme", "ada", "acme", "ada")]
        return
    client = history.backend._redis()
    try:
        fields = client.hgetall(h._conversation.keys[1])
        assert fields[b"tenant"] == b"acme" and fields[b"user"] == b"ada"
    finally:
        close_client(client)


def test_bad_arguments_are_refused() -> None:
    url = "redis://127.0.0.1:1/0"
    for bad in ("", None, 5, "a\x00b", "x" * 513):
        with pytest.raises(errors.InvalidInputError, match="session_id"):
            RedisChatMessageHistory(bad, url)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidInputError, match="tenant_id"):
        RedisChatMessageHistory("s", url, tenant_id="")
    with pytest.raises(errors.ConfigurationError, match="max_messages"):
        RedisChatMessageHistory("s", url, max_messages=0)
    with pytest.raises(errors.ConfigurationError, match="ttl"):
        RedisChatMessageHistory("s", url, ttl=-1)
    with pytest.raises(errors.ConfigurationError, match="prefix"):
        RedisChatMessageHistory("s", url, prefix="a{b}")
    with pytest.raises(errors.ConfigurationError, match="connection must be"):
        RedisChatMessageHistory("s", object())  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="connection must be"):
        PostgresChatMessageHistory("s", redis.Redis())  # type: ignore[arg-type]


async def test_methods_of_the_other_kind_say_what_to_pass(rs: RedisServer) -> None:
    client = redis.asyncio.Redis.from_url(rs.url) if not rs.cluster else None
    if client is None:
        pytest.skip("a standalone server is needed")
    history = RedisChatMessageHistory("s", client, prefix=unique_name())
    with pytest.raises(errors.ConfigurationError, match="async connection; use the a-methods"):
        history.add_messages([HumanMessage("x")])
    sync = RedisChatMessageHistory("s", redis.Redis.from_url(rs.url), prefix=unique_name())
    with pytest.raises(errors.ConfigurationError, match="sync connection; use the sync"):
        await sync.aget_messages()
    await client.aclose()
    sync._sync.client.close()  # type: ignore[union-attr]


def test_postgres_round_trips(pg: PgServer, schema: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        history = PostgresChatMessageHistory("s", conn, schema=schema, max_messages=50, ttl=60)
        history.setup()
        with count_round_trips(conn) as trips:
            history.add_messages([HumanMessage("q"), AIMessage("a")])
        assert trips == [1]
        with count_round_trips(conn) as trips:
            history.add_messages([HumanMessage(str(n)) for n in range(200)])
        assert trips == [1]
        with count_round_trips(conn) as trips:
            assert len(history.get_messages(last=20)) == 20
        assert trips == [1]
        with count_round_trips(conn) as trips:
            assert len(history.load().messages) == 50
        assert trips == [1]


def test_redis_round_trips(rs: RedisServer) -> None:
    if rs.cluster:
        pytest.skip("counted on a standalone server")
    pool = redis.ConnectionPool.from_url(rs.url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    prefix = unique_name()
    history = RedisChatMessageHistory("s", client, prefix=prefix, max_messages=50, ttl=60)
    history.add_messages([HumanMessage("warm")])  # loads the scripts
    for call in (
        lambda: history.add_messages([HumanMessage("q"), AIMessage("a")]),
        lambda: history.add_messages([HumanMessage(str(n)) for n in range(2500)]),
        lambda: history.get_messages(last=20),
        history.load,
    ):
        CountingConnection.sends = 0
        call()
        assert CountingConnection.sends == 1
    assert len(history.messages) == 50
    for key in keys_of(client, prefix):
        client.delete(key)
    close_client(client)


def test_one_expiry_for_the_whole_conversation(rs: RedisServer) -> None:
    client: Any = (
        redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)
    )
    history = RedisChatMessageHistory("s", client, prefix=unique_name(), ttl=timedelta(hours=1))
    history.add_messages([HumanMessage("q")])
    messages_key, session_key = history._conversation.keys
    assert 3_590_000 < client.pttl(messages_key) <= 3_600_000
    assert 3_590_000 < client.pttl(session_key) <= 3_600_000
    if rs.cluster:
        assert client.keyslot(messages_key) == client.keyslot(session_key)
    history.clear()
    close_client(client)


def test_postgres_sweeper_deletes_expired_conversations(pg: PgServer, schema: str) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    with psycopg.connect(pg.url, autocommit=True) as conn:

        def make(sid: str, ttl: float | None) -> PostgresChatMessageHistory:
            return PostgresChatMessageHistory(
                sid, conn, schema=schema, ttl=ttl, clock=lambda: now[0]
            )

        short, long, forever = make("short", 60), make("long", 3600), make("forever", None)
        short.setup()
        for h in (short, long, forever):
            h.add_messages([HumanMessage("q"), AIMessage("a")])
        now[0] += timedelta(minutes=2)
        assert short.messages == [] and len(long.messages) == 2
        assert short.sweep() == 1
        count = conn.execute(f'SELECT count(*) FROM "{schema}".chat_messages').fetchone()
        assert count == (4,)
        now[0] += timedelta(days=1)
        assert short.sweep() == 1
        assert len(forever.messages) == 2


async def test_histories_on_one_url_share_connections(pg: PgServer, schema: str) -> None:
    first = PostgresChatMessageHistory("a", pg.url, schema=schema)
    second = PostgresChatMessageHistory("b", pg.url, schema=schema)
    await first.asetup()
    await first.aadd_messages([HumanMessage("a")])
    await second.aadd_messages([HumanMessage("b")])
    assert [m.content for m in second.messages] == ["b"]
    assert first._sync is not None and second._sync is not None
    assert first._sync.source is second._sync.source is pg_pool(pg.url)
    assert first._async.source is second._async.source is await apg_pool(pg.url)  # type: ignore[union-attr]
    await aclose_shared_connections()


def test_the_background_sweeper_deletes_expired_conversations(pg: PgServer, schema: str) -> None:
    with psycopg.connect(pg.url, autocommit=True) as conn:
        history = PostgresChatMessageHistory("brief", conn, schema=schema, ttl=0.2)
        history.setup()
        history.add_messages([HumanMessage("q"), AIMessage("a")])
        sweeper = history.start_sweeper(interval=0.1)
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                rows = conn.execute(f'SELECT count(*) FROM "{schema}".chat_messages').fetchone()
                if rows == (0,):
                    break
                time.sleep(0.05)
            assert rows == (0,)
        finally:
            assert sweeper.stop()
