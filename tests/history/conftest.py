"""One async suite over every chat history: backend x sync/async (sync runs in a thread)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.backends import Backend
from tests.conftest import PgServer, RedisServer

_PAIRS = {
    "add_messages": "aadd_messages",
    "get_messages": "aget_messages",
    "clear": "aclear",
    "load": "aload",
    "save_state": "asave_state",
    "setup": "asetup",
    "sweep": "asweep",
}


class History:
    """A chat history under test behind an async interface."""

    def __init__(self, history: Any, flavour: str, backend: Backend, place: str) -> None:
        self.history = history
        self.flavour = flavour
        self.backend = backend
        self.place = place

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name not in _PAIRS:
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.flavour == "async":
                return await getattr(self.history, _PAIRS[name])(*args, **kwargs)
            return await asyncio.to_thread(getattr(self.history, name), *args, **kwargs)

        return call


MakeHistory = Callable[..., Awaitable[History]]


@pytest.fixture
async def history_backend(backend_server: PgServer | RedisServer) -> AsyncIterator[Backend]:
    made = Backend(backend_server)
    yield made
    await made.cleanup()


@pytest.fixture
async def make_history(history_backend: Backend, flavour: str) -> MakeHistory:
    place = history_backend.place()
    ready: list[bool] = []

    async def make(session_id: str = "session-1", **kwargs: Any) -> History:
        made = History(
            await history_backend.make_history(flavour, place, session_id, **kwargs),
            flavour,
            history_backend,
            place,
        )
        if history_backend.kind == "postgres" and not ready:
            await made.setup()
            ready.append(True)
        return made

    return make


@pytest.fixture
async def history(make_history: MakeHistory) -> History:
    return await make_history()
