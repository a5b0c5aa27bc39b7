"""What the audit log tests of both backends share: concurrent writers and their checks."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langmem_prod.compliance import AuditEntry

KEY = bytes(range(32))
WRITERS, EVENTS = 4, 50


def write_concurrently(logs: list[Any], tenant: str) -> None:
    """`WRITERS` threads, one log each (as separate processes), record `EVENTS` events."""

    def write(n: int) -> None:
        for i in range(EVENTS):
            logs[n].record(tenant, [("put", ("w", str(n)), f"k{i}")], agent=f"a{n}")

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(write, range(WRITERS)))


async def awrite_concurrently(logs: list[Any], tenant: str) -> None:
    """The async twin of `write_concurrently`: tasks instead of threads."""

    async def write(n: int) -> None:
        for i in range(EVENTS):
            await logs[n].arecord(tenant, [("put", ("w", str(n)), f"k{i}")], agent=f"a{n}")

    await asyncio.gather(*(write(n) for n in range(WRITERS)))


def assert_every_event_once(entries: list[AuditEntry]) -> None:
    """One unbroken sequence holding each writer's events once, in each writer's order."""
    assert [e.seq for e in entries] == list(range(1, WRITERS * EVENTS + 1))
    seen = Counter((e.agent, e.namespace, e.key) for e in entries)
    assert len(seen) == WRITERS * EVENTS and set(seen.values()) == {1}
    for n in range(WRITERS):
        keys = [e.key for e in entries if e.agent == f"a{n}"]
        assert keys == [f"k{i}" for i in range(EVENTS)]
