"""LangGraph's `BaseStore` methods on top of `batch`/`abatch`, validated up front.

Rules:
- each public method builds one op and runs it through `batch` or `abatch`, which
  validate every op before any I/O (so errors are langmem_prod's own);
- `ttl` and `refresh_ttl` default from the store's `TTLConfig` exactly as LangGraph's
  `BaseStore` does; a delete is a put of None;
- a concrete store only implements `batch` and `abatch`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Literal, cast

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NamespacePath,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
)

from langmem_prod.store._namespace import as_namespace, check_op_labels, check_put_root
from langmem_prod.store._ttl import TTLSettings, check_ttl


class StoreApi(BaseStore):
    """The public `BaseStore` methods, shared by every langmem_prod store."""

    supports_ttl: bool = True
    _ttl: TTLSettings

    def _refresh(self, refresh_ttl: bool | None) -> bool:
        return self._ttl.refresh_on_read if refresh_ttl is None else refresh_ttl

    def _get_op(self, namespace: tuple[str, ...], key: str, refresh_ttl: bool | None) -> GetOp:
        return GetOp(as_namespace(namespace), str(key), self._refresh(refresh_ttl))

    def _search_op(
        self,
        namespace_prefix: tuple[str, ...],
        *,
        query: str | None,
        filter: dict[str, Any] | None,
        limit: int,
        offset: int,
        refresh_ttl: bool | None,
    ) -> SearchOp:
        return SearchOp(
            as_namespace(namespace_prefix), filter, limit, offset, query, self._refresh(refresh_ttl)
        )

    def _put_op(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any] | None,
        index: Literal[False] | list[str] | None = None,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> PutOp:
        chosen = self._ttl.default_ttl if isinstance(ttl, NotProvided) else check_ttl(ttl)
        return PutOp(
            as_namespace(namespace), str(key), value, index, ttl=None if value is None else chosen
        )

    def _list_op(
        self,
        prefix: NamespacePath | None,
        suffix: NamespacePath | None,
        max_depth: int | None,
        limit: int,
        offset: int,
    ) -> ListNamespacesOp:
        conditions = (
            *([MatchCondition(match_type="prefix", path=as_namespace(prefix))] if prefix else []),
            *([MatchCondition(match_type="suffix", path=as_namespace(suffix))] if suffix else []),
        )
        return ListNamespacesOp(conditions, max_depth, limit, offset)

    def _read(self, op: Op) -> Result:
        """Run one read op (its labels checked before it is batched, as LangGraph does)."""
        check_op_labels(op)
        return self.batch([op])[0]

    def _aread(self, op: Op) -> Awaitable[Result]:
        """Run one read op; an async store may coalesce reads awaited together.

        Returns an awaitable rather than being a coroutine, so an override can hand back
        a future directly: one frame less per read when many are gathered.
        """
        check_op_labels(op)
        return self._abatch_one(op)

    async def _abatch_one(self, op: Op) -> Result:
        return (await self.abatch([op]))[0]

    # Sync ------------------------------------------------------------------

    def get(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """Return the live item at (namespace, key), or None."""
        return cast(Item | None, self._read(self._get_op(namespace, key, refresh_ttl)))

    def search(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Search a namespace subtree by filter and, with an index, by meaning."""
        op = self._search_op(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )
        return cast(list[SearchItem], self._read(op))

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Create or replace an item (the root label "langgraph" is reserved)."""
        op = self._put_op(namespace, key, value, index, ttl)
        check_put_root(op.namespace)
        self.batch([op])

    def delete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete an item (a no-op when it does not exist)."""
        op = self._put_op(namespace, key, None)
        check_op_labels(op)
        self.batch([op])

    def list_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """List namespaces holding live items, in label order."""
        op = self._list_op(prefix, suffix, max_depth, limit, offset)
        return cast(list[tuple[str, ...]], self._read(op))

    # Async -----------------------------------------------------------------

    async def aget(
        self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool | None = None
    ) -> Item | None:
        """Return the live item at (namespace, key), or None."""
        return cast(Item | None, await self._aread(self._get_op(namespace, key, refresh_ttl)))

    async def asearch(
        self,
        namespace_prefix: tuple[str, ...],
        /,
        *,
        query: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        refresh_ttl: bool | None = None,
    ) -> list[SearchItem]:
        """Search a namespace subtree by filter and, with an index, by meaning."""
        op = self._search_op(
            namespace_prefix,
            query=query,
            filter=filter,
            limit=limit,
            offset=offset,
            refresh_ttl=refresh_ttl,
        )
        return cast(list[SearchItem], await self._aread(op))

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
    ) -> None:
        """Create or replace an item (the root label "langgraph" is reserved)."""
        op = self._put_op(namespace, key, value, index, ttl)
        check_put_root(op.namespace)
        await self.abatch([op])

    async def adelete(self, namespace: tuple[str, ...], key: str) -> None:
        """Delete an item (a no-op when it does not exist)."""
        op = self._put_op(namespace, key, None)
        check_op_labels(op)
        await self.abatch([op])

    async def alist_namespaces(
        self,
        *,
        prefix: NamespacePath | None = None,
        suffix: NamespacePath | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[tuple[str, ...]]:
        """List namespaces holding live items, in label order."""
        op = self._list_op(prefix, suffix, max_depth, limit, offset)
        return cast(list[tuple[str, ...]], await self._aread(op))
