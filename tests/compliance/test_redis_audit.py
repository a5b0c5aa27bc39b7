"""The Redis audit log (each target): one chain under concurrent writers; tampering found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
import redis
import redis.asyncio

from langmem_prod.compliance import AuditEntry, AuditLog, RedisAuditLog
from langmem_prod.compliance._chain import EMPTY, extend, link
from langmem_prod.errors import AuditChainError, ConfigurationError
from langmem_prod.store.redis._driver import close_client
from tests.backends import unique_name
from tests.compliance.helpers import (
    KEY,
    WRITERS,
    assert_every_event_once,
    awrite_concurrently,
    write_concurrently,
)
from tests.conftest import RedisServer

Raw = Any  # a sync redis-py client, used as someone with write access to the server


@pytest.fixture
def client(rs: RedisServer) -> Iterator[Raw]:
    made = redis.RedisCluster.from_url(rs.url) if rs.cluster else redis.Redis.from_url(rs.url)
    yield made
    close_client(made)


@pytest.fixture
def prefix(client: Raw) -> Iterator[str]:
    name = unique_name()
    yield name
    for key in client.scan_iter(match=f"{name}:*", count=1000):
        client.delete(key)


@pytest.fixture(params=["unkeyed", "keyed"])
def key(request: pytest.FixtureRequest) -> bytes | None:
    return KEY if request.param == "keyed" else None


@pytest.fixture
def audit(client: Raw, prefix: str, key: bytes | None) -> RedisAuditLog:
    return RedisAuditLog(client, prefix=prefix, key=key)


def fill(audit: RedisAuditLog) -> None:
    def write(n: int) -> None:
        audit.record(
            "acme",
            [("put", ("notes", str(n)), f"k{n}"), ("get", ("notes",), None)],
            agent="bot",
            user="ada",
        )

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(12)))
    audit.record("globex", [("delete", ("x",), "k")])


def stream(client: Raw, audit: RedisAuditLog, tenant: str = "acme") -> dict[int, Any]:
    """The raw entries by seq: (stream id, fields)."""
    rows = client.xrange(audit.keys(tenant)[0])
    return {int(fields[b"seq"]): (sid, fields) for sid, fields in rows}


def fields_of(entry: AuditEntry) -> dict[Any, Any]:
    """The stream fields a forger would write for `entry`."""
    fields = {
        "seq": str(entry.seq),
        "at": entry.at_text,
        "operation": entry.operation,
        "namespace": entry.namespace_text,
        "hash": entry.hash.hex(),
    }
    fields.update({n: v for n, v in (("agent", entry.agent), ("user", entry.user)) if v})
    return fields | ({"key": entry.key} if entry.key is not None else {})


def readd(client: Raw, audit: RedisAuditLog, *seqs: int, **changes: Any) -> None:
    """Delete entries and add them again at the stream's end, with `changes`."""
    entries = {e.seq: e for e in audit.entries("acme")}
    log = audit.keys("acme")[0]
    raw = stream(client, audit)
    for seq in seqs:
        client.xdel(log, raw[seq][0])
    for seq in seqs:
        client.xadd(log, fields_of(replace(entries[seq], **changes)))


def forge_tail(client: Raw, audit: RedisAuditLog) -> None:
    """Append entry 25 with a correct unkeyed hash, without moving the head."""
    last = audit.entries("acme")[-1]
    entry = replace(last, seq=25, operation="delete")
    client.xadd(audit.keys("acme")[0], fields_of(replace(entry, hash=link(last.hash, entry))))


def xdel(*seqs: int) -> Callable[[Raw, RedisAuditLog], None]:
    def tamper(client: Raw, audit: RedisAuditLog) -> None:
        raw = stream(client, audit)
        client.xdel(audit.keys("acme")[0], *(raw[s][0] for s in seqs))

    return tamper


TAMPERING: list[tuple[str, Callable[[Raw, RedisAuditLog], None], int, str]] = [
    ("rewritten", lambda c, a: readd(c, a, 3, operation="get"), 3, "hash does not follow"),
    ("rewritten-key", lambda c, a: readd(c, a, 7, key="other"), 7, "hash does not follow"),
    ("removed", xdel(5), 6, "sequence jumps from 4 to 6"),
    ("reordered", lambda c, a: readd(c, a, 3, 2), 3, "hash does not follow"),
    ("forged-tail", forge_tail, 25, "entries after the chain's head"),
    (
        "trimmed",
        lambda c, a: c.xtrim(a.keys("acme")[0], maxlen=20, approximate=False),
        5,
        "jumps from 0 to 5",
    ),
    ("truncated", xdel(24), 24, "last entries were removed"),
    ("head-deleted", lambda c, a: c.delete(a.keys("acme")[1]), 24, "head is missing"),
]


@pytest.mark.parametrize(
    ("tamper", "seq", "reason"), [t[1:] for t in TAMPERING], ids=[t[0] for t in TAMPERING]
)
def test_tampering_is_found(
    audit: RedisAuditLog,
    client: Raw,
    tamper: Callable[[Raw, RedisAuditLog], None],
    seq: int,
    reason: str,
) -> None:
    fill(audit)
    assert audit.verify("acme") == []
    tamper(client, audit)
    problems = audit.verify("acme")
    assert any(p.seq == seq and reason in p.reason for p in problems), problems
    assert audit.verify("globex") == []  # other tenants' chains are untouched


def test_concurrent_writers_make_one_intact_chain(audit: RedisAuditLog) -> None:
    fill(audit)
    entries = audit.entries("acme")
    assert [e.seq for e in entries] == list(range(1, 25))
    assert {e.operation for e in entries} == {"put", "get"}
    assert (entries[0].agent, entries[0].user) == ("bot", "ada")
    assert {e.key for e in entries if e.operation == "get"} == {None}


def test_four_writers_never_fork_the_chain(client: Raw, prefix: str, key: bytes | None) -> None:
    logs = [RedisAuditLog(client, prefix=prefix, key=key) for _ in range(WRITERS)]
    write_concurrently(logs, "acme")
    assert_every_event_once(logs[0].entries("acme"))
    assert logs[0].verify("acme") == []


async def test_the_async_twin(rs: RedisServer, prefix: str, key: bytes | None) -> None:
    aclient: Any = (
        redis.asyncio.RedisCluster.from_url(rs.url)
        if rs.cluster
        else redis.asyncio.Redis.from_url(rs.url)
    )
    try:
        logs = [RedisAuditLog(aclient, prefix=prefix, key=key) for _ in range(WRITERS)]
        audit = logs[0]
        assert isinstance(audit, AuditLog) and audit.is_async
        await audit.asetup()  # nothing to do on Redis
        await awrite_concurrently(logs, "acme")
        assert_every_event_once(await audit.aentries("acme"))
        assert await audit.averify("acme") == []
        with pytest.raises(ConfigurationError, match="use a-methods"):
            audit.record("acme", [("put", ("a",), "k")])
    finally:
        await aclient.aclose()


def test_a_full_rewrite_is_caught_only_by_the_keyed_chain(client: Raw, prefix: str) -> None:
    keyed = RedisAuditLog(client, prefix=prefix, key=KEY)
    fill(keyed)
    # Someone with write access alters entry 3, recomputes every hash, rewrites the stream
    # and the head.
    forged = [replace(e, operation="get") if e.seq == 3 else e for e in keyed.entries("acme")]
    rewritten = extend(EMPTY, forged)
    log, head = keyed.keys("acme")
    client.delete(log)
    for entry in rewritten:
        client.xadd(log, fields_of(entry))
    client.hset(head, mapping={"seq": 24, "hash": rewritten[-1].hash.hex()})
    assert RedisAuditLog(client, prefix=prefix).verify("acme") == []  # a consistent chain
    problems = keyed.verify("acme")
    assert [p.seq for p in problems if "hash does not follow" in p.reason] == list(range(1, 25))


def test_a_keyed_chain_copied_to_another_tenant_is_caught(client: Raw, prefix: str) -> None:
    keyed = RedisAuditLog(client, prefix=prefix, key=KEY)
    keyed.record("acme", [("put", ("a",), "k"), ("delete", ("a",), "k")])
    for entry in keyed.entries("acme"):  # by hand: COPY cannot cross a cluster's slots
        client.xadd(keyed.keys("globex")[0], fields_of(entry))
    client.hset(keyed.keys("globex")[1], mapping=client.hgetall(keyed.keys("acme")[1]))
    assert RedisAuditLog(client, prefix=prefix).verify("globex")  # unkeyed: wrong, anyway
    problems = keyed.verify("globex")
    assert [p.seq for p in problems if "hash does not follow" in p.reason] == [1, 2], problems
    assert any("head MAC does not verify" in p.reason for p in problems)  # acme's head
    assert RedisAuditLog(client, prefix=prefix, key=bytes(32)).verify("acme")  # wrong key


def test_a_headless_stream_is_never_restarted(audit: RedisAuditLog, client: Raw) -> None:
    audit.record("acme", [("put", ("a",), "k")])
    client.delete(audit.keys("acme")[1])
    with pytest.raises(AuditChainError, match="head of tenant 'acme' is missing"):
        audit.record("acme", [("put", ("a",), "k2")])
    assert [e.seq for e in audit.entries("acme")] == [1]


def test_one_round_trip_per_record_and_none_appended_twice(
    audit: RedisAuditLog, client: Raw, prefix: str, key: bytes | None
) -> None:
    sent: list[Any] = []
    runner: Any = audit._runner
    send_once = runner._send_once

    def counting(effect: Any) -> Any:
        sent.append(effect)
        return send_once(effect)

    runner._send_once = counting
    audit.record("acme", [("put", ("a",), "k1"), ("put", ("a",), "k2")])
    audit.record("acme", [("get", ("a",), "k1")])
    assert len(sent) == 2  # the head it appended last is the head it chains from

    other = RedisAuditLog(client, prefix=prefix, key=key)
    other_runner: Any = other._runner
    other_send = other_runner._send_once

    def lost_reply(effect: Any) -> Any:  # the script ran, its answer was lost: resent
        other_send(effect)
        sent.append(effect)
        return other_send(effect)

    other_runner._send_once = lost_reply
    other.record("acme", [("delete", ("a",), "k1")])  # its head is stale: one conflict
    assert len(sent) == 4
    assert [e.seq for e in audit.entries("acme")] == [1, 2, 3, 4] and audit.verify("acme") == []


def test_no_value_is_ever_recorded(audit: RedisAuditLog, client: Raw) -> None:
    audit.record("acme", [("put", ("a", "b"), "k")], agent="bot", user="ada")
    audit.record("acme", [("search", ("a",), None)])
    (_, first), (_, second) = client.xrange(audit.keys("acme")[0])
    assert set(first) == {
        b"seq",
        b"at",
        b"agent",
        b"user",
        b"operation",
        b"namespace",
        b"key",
        b"hash",
    }
    assert set(second) == {b"seq", b"at", b"operation", b"namespace", b"hash"}  # None: left out


def test_verifying_while_others_write_reports_nothing(audit: RedisAuditLog) -> None:
    audit.record("acme", [("put", ("a",), "k0")])
    stop = False

    def write() -> None:
        n = 0
        while not stop:
            n += 1
            audit.record("acme", [("put", ("a",), f"k{n}")])

    with ThreadPoolExecutor(2) as pool:
        writers = [pool.submit(write) for _ in range(2)]
        try:
            reports = [audit.verify("acme") for _ in range(40)]
        finally:
            stop = True
        for writer in writers:
            writer.result()
    assert all(report == [] for report in reports), [r for r in reports if r][:1]


def test_bad_settings(client: Raw) -> None:
    with pytest.raises(ConfigurationError, match="must not contain"):
        RedisAuditLog(client, prefix="{x}")
    with pytest.raises(ConfigurationError, match="at least 32 random bytes"):
        RedisAuditLog(client, key="not bytes" * 8)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="redis-py client"):
        RedisAuditLog(object())
