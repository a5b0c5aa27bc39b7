"""What `PostgresStore` and `AsyncPostgresStore` share: construction and the schema name."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from langgraph.store.base import IndexConfig, TTLConfig

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._access import TrackAccess
from langmem_prod.store._base import StoreBase
from langmem_prod.store._flows import Flows
from langmem_prod.store._retry import RetryPolicy
from langmem_prod.store._transform import ValueTransform
from langmem_prod.store._values import DEFAULT_MAX_VALUE_BYTES
from langmem_prod.store.postgres import _stored
from langmem_prod.store.postgres._gen import PgConfig, batch_gen, flush_gen, sweep_gen
from langmem_prod.store.postgres._schema import VectorSpec, vector_spec
from langmem_prod.store.postgres._sql import PgSql

DEFAULT_SCHEMA = "langmem"
C = TypeVar("C")
_MAX_IDENTIFIER_BYTES = 63
_URL_GIVEN = (
    "{cls} takes a psycopg connection or pool, not a URL; open the store on a URL with "
    "`with {cls}.from_conn_string(url) as store:` (`async with` for AsyncPostgresStore)"
)


class PostgresStoreBase(StoreBase, Generic[C]):
    """Construction shared by the sync and async Postgres stores.

    A concrete store says how to run generators on its connection (`_new_runner`); the
    sync or async surface (`SyncStore`, `AsyncStore`) provides the rest.
    """

    _cfg: PgConfig
    _vector: VectorSpec | None

    def __init__(
        self,
        conn: C,
        *,
        schema: str = DEFAULT_SCHEMA,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        track_access: TrackAccess = "batched",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        start_sweeper: bool = True,
        flush_interval: float = 1.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] | None = None,
        values: ValueTransform | None = None,
    ) -> None:
        super().__init__()
        if isinstance(conn, str):
            raise ConfigurationError(_URL_GIVEN.format(cls=type(self).__name__))
        if not isinstance(schema, str) or not 0 < len(schema.encode()) <= _MAX_IDENTIFIER_BYTES:
            raise ConfigurationError("schema must be a non-empty name of at most 63 bytes")
        self._init_common(
            index=index,
            ttl=ttl,
            track_access=track_access,
            max_value_bytes=max_value_bytes,
            start_sweeper=start_sweeper,
            flush_interval=flush_interval,
            retry=retry,
            clock=clock,
            values=values,
        )
        self._vector = vector_spec(self._index) if self._index else None
        vector_type = self._vector.vector_type if self._vector else None
        distance = self._vector.distance if self._vector else "cosine"
        self._cfg = PgConfig(PgSql(schema, vector_type, distance), self._index, track_access)
        self._flows = Flows(
            functools.partial(batch_gen, self._cfg),
            functools.partial(flush_gen, self._cfg),
            functools.partial(sweep_gen, self._cfg),
            functools.partial(_stored.page_gen, self._cfg),
            functools.partial(_stored.replace_gen, self._cfg),
        )
        self._worker_name = f"langmem-postgres-{schema}"
        self._schema = schema
        self.conn = conn
        self._new_runner()
        self._new_worker()

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self._schema
