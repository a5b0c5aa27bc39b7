"""TTL: per-put and default TTLs, refresh on read, never returning expired items, sweeping."""

from __future__ import annotations

import asyncio

from langgraph.store.base import GetOp

from tests.contract.conftest import FakeClock, MakeStore


async def test_expired_items_are_never_returned(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, start_sweeper=False)
    await store.put(("t",), "short", {"v": 1}, ttl=1)
    await store.put(("t",), "forever", {"v": 2})
    clock.advance(seconds=59)
    assert (await store.get(("t",), "short", refresh_ttl=False)) is not None
    clock.advance(seconds=2)
    assert await store.get(("t",), "short") is None
    assert [i.key for i in await store.search(("t",))] == ["forever"]
    assert (await store.batch([GetOp(("t",), "short")]))[0] is None


async def test_default_ttl_and_explicit_none(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, ttl={"default_ttl": 5}, start_sweeper=False)
    await store.put(("t",), "default", {"v": 1})
    await store.put(("t",), "never", {"v": 1}, ttl=None)
    await store.put(("t",), "longer", {"v": 1}, ttl=60)
    clock.advance(minutes=6)
    assert sorted(i.key for i in await store.search(("t",))) == ["longer", "never"]


async def test_reads_refresh_the_ttl(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, ttl={"default_ttl": 10}, start_sweeper=False)
    for key in ("got", "searched", "untouched", "not_refreshed"):
        await store.put(("t",), key, {"key": key})
    clock.advance(minutes=8)
    await store.get(("t",), "got")
    await store.search(("t",), filter={"key": "searched"})
    await store.get(("t",), "not_refreshed", refresh_ttl=False)
    await store.flush()
    clock.advance(minutes=8)
    assert sorted(i.key for i in await store.search(("t",), refresh_ttl=False)) == [
        "got",
        "searched",
    ]


async def test_refresh_on_read_false(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(
        clock=clock, ttl={"default_ttl": 10, "refresh_on_read": False}, start_sweeper=False
    )
    await store.put(("t",), "k", {"v": 1})
    clock.advance(minutes=8)
    await store.get(("t",), "k")
    await store.flush()
    clock.advance(minutes=8)
    assert await store.get(("t",), "k") is None
    await store.put(("t",), "k2", {"v": 1})
    clock.advance(minutes=8)
    await store.get(("t",), "k2", refresh_ttl=True)
    await store.flush()
    clock.advance(minutes=8)
    assert await store.get(("t",), "k2") is not None


async def test_a_write_restarts_the_ttl(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, start_sweeper=False)
    await store.put(("t",), "k", {"v": 1}, ttl=10)
    clock.advance(minutes=8)
    await store.put(("t",), "k", {"v": 2}, ttl=10)
    clock.advance(minutes=8)
    assert (await store.get(("t",), "k")).value == {"v": 2}


async def test_sweep_deletes_expired_items(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, start_sweeper=False)
    for i in range(5):
        await store.put(("t", str(i % 2)), str(i), {"v": i}, ttl=1)
    await store.put(("t", "kept"), "k", {"v": 1})
    assert await store.sweep_ttl() == 0
    clock.advance(minutes=2)
    assert await store.sweep_ttl() == 5
    assert await store.sweep_ttl() == 0
    assert await store.list_namespaces() == [("t", "kept")]


async def test_the_sweeper_starts_with_the_store(make_store: MakeStore, clock: FakeClock) -> None:
    store = await make_store(clock=clock, ttl={"sweep_interval_minutes": 0.005})
    await store.put(("t",), "k", {"v": 1}, ttl=1)
    await store.put(("t",), "kept", {"v": 1})
    clock.advance(minutes=2)
    assert await store.stored_rows() == 2
    for _ in range(50):
        await asyncio.sleep(0.1)
        if await store.stored_rows() == 1:
            break
    assert await store.stored_rows() == 1
    assert await store.list_namespaces() == [("t",)]


async def test_no_background_sweep_when_told_not_to(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = await make_store(
        clock=clock, ttl={"sweep_interval_minutes": 0.005}, start_sweeper=False
    )
    await store.put(("t",), "k", {"v": 1}, ttl=1)
    clock.advance(minutes=2)
    await asyncio.sleep(0.8)
    assert await store.stored_rows() == 1
    assert await store.sweep_ttl() == 1
