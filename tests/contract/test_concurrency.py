"""Many concurrent writes never exhaust a pool: every one lands, none raises.

Async stores get gathered tasks; sync stores get threads (more than redis-py's default
pool of 100 connections). Histories take concurrent appends the same way.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from tests.backends import Backend
from tests.contract.conftest import MakeStore

_THREADS = 150  # more than redis-py's default pool (100 connections)


async def _concurrently(flavour: str, calls: list[Any]) -> list[BaseException]:
    """Run every `(sync_fn, async_fn, args)` at once; return the errors raised."""
    if flavour == "async":
        results = await asyncio.gather(
            *(afn(*args) for _, afn, args in calls), return_exceptions=True
        )
        return [r for r in results if isinstance(r, BaseException)]

    def run_all() -> list[BaseException]:
        with ThreadPoolExecutor(max_workers=min(_THREADS, len(calls))) as pool:
            futures = [pool.submit(fn, *args) for fn, _, args in calls]
            return [e for f in futures if (e := f.exception()) is not None]

    return await asyncio.to_thread(run_all)


async def _writes_land(make_store: MakeStore, flavour: str, n: int) -> None:
    subject = await make_store(track_access="off")
    store = subject.store
    ns = ("load", "w")
    calls = [(store.put, getattr(store, "aput", None), (ns, f"k{i}", {"i": i})) for i in range(n)]
    errors = await _concurrently(flavour, calls)
    assert errors == [], f"{len(errors)} of {n} writes failed, first: {errors[0]!r}"
    items = await subject.search(ns, limit=n + 10)
    assert sorted(item.value["i"] for item in items) == list(range(n))


@pytest.mark.parametrize("n", [100, 1000])
async def test_concurrent_writes_all_land(make_store: MakeStore, flavour: str, n: int) -> None:
    await _writes_land(make_store, flavour, n)


@pytest.mark.slow
async def test_ten_thousand_concurrent_writes_all_land(
    request: pytest.FixtureRequest, make_store: MakeStore, flavour: str
) -> None:
    _skip_unless_slow_selected(request, 10_000)
    await _writes_land(make_store, flavour, 10_000)


def _skip_unless_slow_selected(request: pytest.FixtureRequest, n: int) -> None:
    if n >= 10_000 and "slow" not in str(request.config.getoption("markexpr")):
        pytest.skip("10,000 concurrent calls take ~10 s per backend: run with -m slow")


@pytest.mark.parametrize("n", [100, 1000, pytest.param(10_000, marks=pytest.mark.slow)])
async def test_concurrent_history_appends_all_land(
    request: pytest.FixtureRequest, backend: Backend, flavour: str, n: int
) -> None:
    _skip_unless_slow_selected(request, n)
    place = backend.place()
    history = await backend.make_history(flavour, place, "crowded")
    if hasattr(history, "setup"):
        if flavour == "async":
            await history.asetup()
        else:
            await asyncio.to_thread(history.setup)
    calls = [
        (history.add_messages, history.aadd_messages, ([HumanMessage(f"m{i}")],)) for i in range(n)
    ]
    errors = await _concurrently(flavour, calls)
    assert errors == [], f"{len(errors)} of {n} appends failed, first: {errors[0]!r}"
    if flavour == "async":
        messages = await history.aget_messages()
    else:
        messages = await asyncio.to_thread(lambda: history.messages)
    assert sorted(m.content for m in messages) == sorted(f"m{i}" for i in range(n))
