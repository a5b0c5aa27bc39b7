"""Attacks on the audit log by an insider with raw write access but without the audit key.

Every test runs on each PostgreSQL and Redis target. The insider (`audit_insider`) is a
NOSUPERUSER role granted only DML on the audit tables, or raw Redis commands; the log
under attack is the application's, with a `FileWitness` in a directory the insider
cannot reach. Some tests pin down what stays invisible without a witness (or without a
key): those limits are documented, and a change in them must be a decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from langmem_prod.compliance import (
    Checkpoint,
    FileWitness,
    PostgresAuditLog,
    Problem,
    RedisAuditLog,
)
from langmem_prod.compliance._chain import Head, link
from langmem_prod.errors import AuditChainError, InvalidInputError
from tests.conftest import PgServer, RedisServer, drop_schema, new_schema
from tests.security.audit_insider import (
    Insider,
    PgInsider,
    RedisInsider,
    close,
    forged_chain,
    pg_insider,
    redis_client,
)

KEY = bytes(range(32))


@dataclass
class World:
    """The application's audit log, an insider on its storage, and a witness."""

    log: Any
    insider: Insider
    witness: FileWitness
    another: Callable[[], Any]  # the same log in another process (nothing cached)


@pytest.fixture
def make_world(backend_server: PgServer | RedisServer, tmp_path: Path) -> Iterator[Any]:
    with ExitStack() as stack:

        def make(key: bytes | None) -> World:
            witness = FileWitness(tmp_path / f"witness-{new_schema()}.jsonl")
            place = new_schema()
            if isinstance(backend_server, PgServer):
                stack.callback(drop_schema, backend_server.url, place)
                pool: ConnectionPool[Any] = stack.enter_context(
                    ConnectionPool(backend_server.url, max_size=4, kwargs={"autocommit": True})
                )
                log: Any = PostgresAuditLog(pool, schema=place, key=key)
                log.setup()
                insider: Insider = stack.enter_context(pg_insider(backend_server, place))
                return World(
                    log, insider, witness, lambda: PostgresAuditLog(pool, schema=place, key=key)
                )
            client = redis_client(backend_server)
            stack.callback(_drop_redis, client, place)
            log = RedisAuditLog(client, prefix=place, key=key)
            return World(
                log,
                RedisInsider(client, log),
                witness,
                lambda: RedisAuditLog(client, prefix=place, key=key),
            )

        yield make


def _drop_redis(client: Any, prefix: str) -> None:
    for name in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(name)
    close(client)


def fill(log: Any, count: int, tenant: str = "acme") -> None:
    for n in range(count):
        log.record(tenant, [("put", ("notes",), f"k{n}")], agent="bot", user="ada")


def has(problems: list[Problem], seq: int, reason: str) -> bool:
    return any(p.seq == seq and reason in p.reason for p in problems)


@pytest.fixture(params=["keyed", "unkeyed"])
def key(request: pytest.FixtureRequest) -> bytes | None:
    return KEY if request.param == "keyed" else None


def test_cutting_the_tail_and_moving_the_head_back_is_caught_by_the_signed_head(
    make_world: Any,
) -> None:
    world = make_world(KEY)
    fill(world.log, 10)
    sixth = world.log.entries("acme")[5]
    world.insider.cut("acme", 6)
    world.insider.move_head("acme", Head(6, sixth.hash))  # its time and MAC are 10's
    problems = world.log.verify("acme")
    assert has(problems, 6, "head MAC does not verify"), problems
    with pytest.raises(AuditChainError, match="not signed by this log's key"):
        world.another().record("acme", [("put", ("notes",), "after")])  # never built upon
    assert [e.seq for e in world.log.entries("acme")] == list(range(1, 7))


def test_a_removed_mac_is_never_laundered_by_the_next_append(make_world: Any) -> None:
    world = make_world(KEY)
    fill(world.log, 10)
    sixth = world.log.entries("acme")[5]
    world.insider.cut("acme", 6)
    world.insider.move_head("acme", Head(6, sixth.hash), strip_mac=True)
    assert has(world.log.verify("acme"), 6, "head is not signed")
    fill(world.another(), 2)  # the application keeps recording over the unsigned head
    problems = world.log.verify("acme")
    assert has(problems, 8, "head is not signed"), problems
    with pytest.raises(AuditChainError, match="cannot be vouched for"):
        world.log.checkpoint("acme")
    assert world.log.sign_head("acme") == []  # trust on upgrade: the chain is consistent
    assert world.log.verify("acme") == []


def test_an_unkeyed_chain_cut_back_is_caught_only_with_a_witness(make_world: Any) -> None:
    world = make_world(None)
    fill(world.log, 10)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    sixth = world.log.entries("acme")[5]
    world.insider.cut("acme", 6)
    world.insider.move_head("acme", Head(6, sixth.hash))
    assert world.log.verify("acme") == []  # without a key nor a witness: invisible
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 6, "behind the witnessed checkpoint"), problems
    assert has(problems, 10, "checkpoint witnessed is missing"), problems


def test_replaying_an_old_genuine_head_is_caught_only_with_a_witness(
    make_world: Any, key: bytes | None
) -> None:
    world = make_world(key)
    fill(world.log, 6)
    old_head = world.insider.head("acme")  # kept by the insider
    fill(world.log, 4)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    world.insider.cut("acme", 6)
    world.insider.put_head("acme", old_head)
    assert world.log.verify("acme") == []  # a genuine head: the MAC cannot tell
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 6, "behind the witnessed checkpoint"), problems
    assert has(problems, 10, "checkpoint witnessed is missing"), problems

    fill(world.log, 6)  # the application records on, past the witnessed seq again
    assert world.log.verify("acme") == []
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 10, "not the one it witnessed"), problems
    assert world.log.witness_checkpoint("acme", world.witness) == problems  # nothing written
    assert world.witness.latest("acme").seq == 10  # type: ignore[union-attr]
    rolled_back = replace(world.log.checkpoint("acme"), seq=9)
    with pytest.raises(AuditChainError, match="behind the one the witness holds"):
        world.witness.write(rolled_back)


def test_wiping_a_tenant_is_caught_only_with_a_witness(make_world: Any, key: bytes | None) -> None:
    world = make_world(key)
    fill(world.log, 5)
    fill(world.log, 3, tenant="globex")
    for tenant in ("acme", "globex"):
        assert world.log.witness_checkpoint(tenant, world.witness) == []
    world.insider.wipe("acme")
    assert world.log.verify("acme") == []  # nothing left to verify
    assert world.witness.tenants() == ["acme", "globex"]
    problems = world.log.verify_witnessed("acme", world.witness)
    assert problems == [Problem(5, problems[0].reason)] and "chain was wiped" in problems[0].reason
    assert world.log.verify_witnessed("globex", world.witness) == []

    fill(world.another(), 2)  # a fresh chain under the same tenant
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 2, "behind the witnessed checkpoint"), problems


@pytest.mark.parametrize(
    ("seq", "full", "found"),
    [(10, False, True), (3, False, False), (3, True, True), (12, False, True)],
    ids=["the-checkpoints-entry", "before-it-from-the-window", "before-it-read-whole", "after"],
)
def test_an_altered_entry_is_caught_from_the_checkpoint_or_reading_whole(
    make_world: Any, seq: int, full: bool, found: bool
) -> None:
    world = make_world(KEY)
    fill(world.log, 10)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    fill(world.log, 3)
    entry = world.log.entries("acme")[seq - 1]
    world.insider.rewrite([replace(entry, operation="get")])  # its hash kept
    problems = world.log.verify_witnessed("acme", world.witness, full=full)
    # From the window, entries before the checkpoint's are counted, not read (documented).
    assert has(problems, seq, "hash does not follow") is found, problems
    assert (problems == []) is not found


@pytest.mark.parametrize("full", [False, True], ids=["window", "whole"])
def test_an_unkeyed_chain_rewritten_is_caught_only_with_a_witness(
    make_world: Any, full: bool
) -> None:
    world = make_world(None)
    fill(world.log, 10)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    forged = forged_chain(world.log.entries("acme"), operation="delete")
    world.insider.rewrite(forged)  # entry 2 changed, every hash recomputed (no key needed)
    world.insider.move_head("acme", Head(10, forged[-1].hash))
    assert world.log.verify("acme") == []  # a consistent unkeyed chain
    problems = world.log.verify_witnessed("acme", world.witness, full=full)
    assert has(problems, 10, "not the one it witnessed"), problems


def test_entries_removed_before_the_checkpoint_are_counted(
    make_world: Any, key: bytes | None
) -> None:
    world = make_world(key)
    fill(world.log, 10)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    fill(world.log, 2)
    world.insider.delete("acme", 3)
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 10, "entries before it were removed or added"), problems
    assert has(world.log.verify("acme"), 4, "sequence jumps from 2 to 4")


def test_forged_entries_are_caught_on_a_keyed_chain(make_world: Any) -> None:
    world = make_world(KEY)
    fill(world.log, 5)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    last = world.log.entries("acme")[-1]
    sixth = replace(last, seq=6, operation="delete", key="evidence")
    sixth = replace(sixth, hash=link(last.hash, sixth))  # SHA-256: the insider has no key
    world.insider.add([sixth])
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 6, "hash does not follow") and has(problems, 6, "after the chain's head")
    world.insider.move_head("acme", Head(6, sixth.hash))
    problems = world.log.verify_witnessed("acme", world.witness)
    assert has(problems, 6, "hash does not follow") and has(problems, 6, "head MAC"), problems


def test_an_unkeyed_chain_can_be_extended_after_its_last_checkpoint(make_world: Any) -> None:
    """The limit of a log without a key: what follows the last checkpoint is unsigned."""
    world = make_world(None)
    fill(world.log, 5)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    last = world.log.entries("acme")[-1]
    sixth = replace(last, seq=6, operation="delete", key="evidence")
    sixth = replace(sixth, hash=link(last.hash, sixth))
    world.insider.add([sixth])
    world.insider.move_head("acme", Head(6, sixth.hash))
    assert world.log.verify_witnessed("acme", world.witness) == []


def test_a_checkpoint_moved_to_another_tenant_is_caught(
    make_world: Any, key: bytes | None, tmp_path: Path
) -> None:
    world = make_world(key)
    fill(world.log, 5)
    fill(world.log, 7, tenant="globex")
    acme = world.log.checkpoint("acme")
    with pytest.raises(InvalidInputError, match="another tenant's"):
        world.log.verify("globex", since=acme)
    moved = FileWitness(tmp_path / "moved.jsonl")  # whoever can write the witness
    moved.write(replace(acme, tenant="globex"))
    problems = world.log.verify_witnessed("globex", moved)
    reason = "MAC does not verify" if key else "not the one it witnessed"
    assert has(problems, 5, reason), problems
    if key:  # a checkpoint made without the key is refused too
        unsigned = FileWitness(tmp_path / "unsigned.jsonl")
        unsigned.write(replace(acme, mac=None, key_id=None))
        assert has(world.log.verify_witnessed("acme", unsigned), 5, "checkpoint is not signed")
        problems = world.log.verify("acme", since=replace(acme, seq=4))
        assert has(problems, 4, "MAC does not verify"), problems


def test_a_head_copied_from_another_tenant_is_caught(make_world: Any) -> None:
    world = make_world(KEY)
    fill(world.log, 5)
    fill(world.log, 5, tenant="globex")
    world.insider.put_head("globex", world.insider.head("acme"))
    problems = world.log.verify("globex")
    assert has(problems, 5, "head MAC does not verify"), problems
    assert has(problems, 5, "hash is not the chain head's"), problems


def test_checkpoint_refuses_a_head_it_cannot_vouch_for(make_world: Any) -> None:
    world = make_world(KEY)
    fill(world.log, 4)
    world.insider.cut("acme", 3)  # the head says 4
    with pytest.raises(AuditChainError, match="cannot be vouched for"):
        world.log.checkpoint("acme")
    with pytest.raises(AuditChainError, match="cannot be vouched for"):
        world.log.checkpoint_all()


def test_the_async_twins_catch_a_replayed_head(
    backend_server: PgServer | RedisServer, make_world: Any
) -> None:
    world = make_world(KEY)
    fill(world.log, 3)
    old_head = world.insider.head("acme")
    fill(world.log, 3)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    world.insider.cut("acme", 3)
    world.insider.put_head("acme", old_head)
    problems = asyncio.run(_averify(backend_server, world))
    assert has(problems, 3, "behind the witnessed checkpoint"), problems


async def _averify(server: PgServer | RedisServer, world: World) -> list[Problem]:
    if isinstance(world.insider, PgInsider):
        async with AsyncConnectionPool(server.url, min_size=1, max_size=2, open=False) as pool:
            log = PostgresAuditLog(pool, schema=world.log.schema, key=KEY)
            return await log.averify_witnessed("acme", world.witness)
    assert isinstance(server, RedisServer)
    client: Any = (
        redis.asyncio.RedisCluster.from_url(server.url)
        if server.cluster
        else redis.asyncio.Redis.from_url(server.url)
    )
    try:
        log = RedisAuditLog(client, prefix=world.log.prefix, key=KEY)
        return await log.averify_witnessed("acme", world.witness)
    finally:
        await client.aclose()


def test_a_checkpoint_round_trips_through_the_witness(make_world: Any) -> None:
    world = make_world(KEY)
    fill(world.log, 3)
    assert world.log.witness_checkpoint("acme", world.witness) == []
    kept = world.witness.latest("acme")
    assert isinstance(kept, Checkpoint) and kept.seq == 3 and kept.mac is not None
    assert world.log.verify("acme", since=kept) == []
