"""What every backend's runner shares: the access buffer, embedding, the retry loop.

Rules:
- the access buffer is guarded by a lock (sync stores read from many threads);
- `on_record` is called when the buffer stops being empty or becomes full, so the
  background worker can schedule a flush; `stop_recording()` (a read-only server)
  empties the buffer and makes reads record nothing;
- a failure is translated by the backend's `translate`; retryable failures are retried
  until the policy's attempts are spent; a closed single connection is not retried;
- `SyncRunnerBase` and `AsyncRunnerBase` are twins that differ only in `await`; a
  backend's runner adds how to send its effects.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, TypeVar

from langchain_core.embeddings import Embeddings

from langmem_prod.errors import BackendUnavailableError, EmbeddingError, LangmemError
from langmem_prod.store._access import AccessBuffer
from langmem_prod.store._effects import DrainAccess, Embed, RecordAccess
from langmem_prod.store._retry import RetryPolicy

T = TypeVar("T")
E = TypeVar("E")  # the backend's I/O effect
logger = logging.getLogger("langmem_prod.store")


def _nothing() -> None:
    """The default `on_record` hook."""


class RunnerBase:
    """The access buffer and the retry decision of a runner."""

    backend = "the backend"

    def __init__(self, embeddings: Embeddings | None, retry: RetryPolicy) -> None:
        self.embeddings = embeddings
        self.retry = retry
        self.buffer = AccessBuffer()
        self.on_record: Callable[[], None] = _nothing
        self.recording = True
        self._buffer_lock = threading.Lock()

    def stop_recording(self) -> None:
        """Drop buffered reads and record no more (the server is read-only)."""
        with self._buffer_lock:
            self.recording = False
            self.buffer.drain()

    def _buffer_effect(self, effect: RecordAccess | DrainAccess) -> Any:
        with self._buffer_lock:
            if isinstance(effect, DrainAccess):
                return self.buffer.drain()
            if not self.recording:
                return None
            wake = self.buffer.record(effect.reads, effect.at)
        if wake:
            self.on_record()
        return None

    def translate(self, exc: BaseException) -> BaseException:
        """The langmem_prod error for a driver error."""
        raise NotImplementedError

    def _closed(self) -> bool:
        """Whether the store's only connection is closed (pools reconnect)."""
        return False

    def _failure(self, exc: BaseException, attempt: int) -> BaseException | None:
        """The error to raise after failed attempt number `attempt`, or None to retry."""
        err = self.translate(exc)
        if not (isinstance(err, BackendUnavailableError) and err.retryable):
            return err
        if self._closed():
            return BackendUnavailableError(
                f"the store's {self.backend} connection is closed; pass a connection pool, "
                "or use from_conn_string() / from_url(), so the store can reconnect",
                retryable=False,
            )
        if attempt >= self.retry.attempts:
            return err
        logger.info("retrying after a transient %s error: %s", self.backend, err)
        return None


def embed_failed(exc: Exception, effect: Embed) -> EmbeddingError:
    """The error for a failed embedding call."""
    kind = "query" if effect.query else "document"
    return EmbeddingError(
        f"embedding {len(effect.texts)} {kind} text(s) failed: {type(exc).__name__}: {exc}"
    )


class SyncRunnerBase(RunnerBase, Generic[E]):
    """Drives generators: embeds, buffers reads, sends the backend's effects with retries.

    A backend implements `_send_once`, one attempt at its I/O effect.
    """

    def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive `gen` to its end, answering each effect."""
        try:
            effect = next(gen)
            while True:
                kind = type(effect)
                if kind is Embed:
                    effect = gen.send(self._embed(effect))
                elif kind is RecordAccess or kind is DrainAccess:
                    effect = gen.send(self._buffer_effect(effect))
                else:
                    effect = gen.send(self._send(effect))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, effect: E) -> Any:
        try:  # the first attempt inline: no closure on the hot path
            return self._send_once(effect)
        except Exception as exc:
            return self._retrying(lambda: self._send_once(effect), exc)

    def _send_once(self, effect: E) -> Any:
        """One attempt at an I/O effect; returns its answer."""
        raise NotImplementedError

    def _discard_broken(self) -> None:
        """Between attempts, drop what a failure may have broken (a backend's hook)."""

    def _embed(self, effect: Embed) -> list[list[float]]:
        assert self.embeddings is not None
        try:
            if effect.query:
                return [self.embeddings.embed_query(t) for t in effect.texts]
            return self.embeddings.embed_documents(list(effect.texts))
        except LangmemError:
            raise
        except Exception as exc:
            raise embed_failed(exc, effect) from exc

    def _retrying(self, attempt: Callable[[], T], failure: Exception | None = None) -> T:
        """Run `attempt` (unless it already failed with `failure`), retrying with backoff."""
        if failure is None:
            try:
                return attempt()
            except Exception as exc:
                failure = exc
        delays = self.retry.delays()
        for n in range(1, self.retry.attempts + 1):
            err = self._failure(failure, n)
            if err is not None:
                raise err from failure
            time.sleep(next(delays))
            self._discard_broken()
            try:
                return attempt()
            except Exception as exc:
                failure = exc
        raise AssertionError("unreachable")


class AsyncRunnerBase(RunnerBase, Generic[E]):
    """The async twin of `SyncRunnerBase`."""

    async def run(self, gen: Generator[Any, Any, T]) -> T:
        """Drive `gen` to its end, answering each effect."""
        try:
            effect = next(gen)
            while True:
                kind = type(effect)
                if kind is Embed:
                    effect = gen.send(await self._embed(effect))
                elif kind is RecordAccess or kind is DrainAccess:
                    effect = gen.send(self._buffer_effect(effect))
                else:
                    effect = gen.send(await self._send(effect))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, effect: E) -> Any:
        try:  # the first attempt inline: no closure on the hot path
            return await self._send_once(effect)
        except Exception as exc:
            return await self._retrying(lambda: self._send_once(effect), exc)

    async def _send_once(self, effect: E) -> Any:
        """One attempt at an I/O effect; returns its answer."""
        raise NotImplementedError

    async def _discard_broken(self) -> None:
        """Between attempts, drop what a failure may have broken (a backend's hook)."""

    async def _embed(self, effect: Embed) -> list[list[float]]:
        assert self.embeddings is not None
        try:
            if effect.query:
                return list(
                    await asyncio.gather(*(self.embeddings.aembed_query(t) for t in effect.texts))
                )
            return await self.embeddings.aembed_documents(list(effect.texts))
        except LangmemError:
            raise
        except Exception as exc:
            raise embed_failed(exc, effect) from exc

    async def _retrying(
        self, attempt: Callable[[], Awaitable[T]], failure: Exception | None = None
    ) -> T:
        """Run `attempt` (unless it already failed with `failure`), retrying with backoff."""
        if failure is None:
            try:
                return await attempt()
            except Exception as exc:
                failure = exc
        delays = self.retry.delays()
        for n in range(1, self.retry.attempts + 1):
            err = self._failure(failure, n)
            if err is not None:
                raise err from failure
            await asyncio.sleep(next(delays))
            await self._discard_broken()
            try:
                return await attempt()
            except Exception as exc:
                failure = exc
        raise AssertionError("unreachable")
