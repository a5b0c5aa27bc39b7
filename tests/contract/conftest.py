"""One async suite over every store flavour: sync stores are called in a worker thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.backends import Backend
from tests.conftest import PgServer, RedisServer

_PAIRS = {
    "put": "aput",
    "get": "aget",
    "search": "asearch",
    "delete": "adelete",
    "list_namespaces": "alist_namespaces",
    "batch": "abatch",
    "flush": "aflush",
    "sweep_ttl": "sweep_ttl",
    "setup": "setup",
}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Subject:
    """A store under test behind an async interface, whatever its backend and flavour."""

    def __init__(self, store: Any, flavour: str, backend: Backend) -> None:
        self.store = store
        self.flavour = flavour
        self.backend = backend

    async def stored_rows(self) -> int:
        """How many items the backend holds, expired or not (swept or not)."""
        return await self.backend.stored_items(self.store)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name not in _PAIRS:
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.flavour == "async":
                return await getattr(self.store, _PAIRS[name])(*args, **kwargs)
            return await asyncio.to_thread(getattr(self.store, name), *args, **kwargs)

        return call

    async def close(self) -> None:
        if self.flavour == "async":
            await self.store.aclose()
        else:
            await asyncio.to_thread(self.store.close)


MakeStore = Callable[..., Awaitable[Subject]]


@pytest.fixture
async def backend(backend_server: PgServer | RedisServer) -> AsyncIterator[Backend]:
    made = Backend(backend_server)
    yield made
    await made.cleanup()


@pytest.fixture
async def make_store(backend: Backend, flavour: str) -> AsyncIterator[MakeStore]:
    subjects: list[Subject] = []
    places: list[str] = []

    async def make(*, setup: bool = True, **kwargs: Any) -> Subject:
        if not places:
            places.append(backend.place())
        store = await backend.make(flavour, places[0], **kwargs)
        subject = Subject(store, flavour, backend)
        subjects.append(subject)
        if setup:
            await subject.setup()
        return subject

    yield make
    for subject in subjects:
        await subject.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Subject:
    return await make_store()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def vectors(backend: Backend) -> Backend:
    if not backend.has_vectors:
        pytest.skip(f"the {backend.server.name} PostgreSQL server has no pgvector")
    return backend


@pytest.fixture
def sync_store(backend_server: PgServer | RedisServer) -> Any:
    """A sync store for property tests (the flows are shared with the async store).

    It uses a single connection: a pool's maintenance threads draw from `random`,
    which hypothesis would take for nondeterministic data generation.
    """
    made = Backend(backend_server)
    with made.sync_store(made.place()) as store:
        store.setup()
        yield store
    asyncio.run(made.cleanup())
