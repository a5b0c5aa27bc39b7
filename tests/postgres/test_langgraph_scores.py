"""Side by side with LangGraph's own PostgresStore: the same scores for each distance type."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from langgraph.store.base import PutOp
from langgraph.store.postgres import PostgresStore as LangGraphPostgresStore
from psycopg import sql
from psycopg.rows import dict_row

from tests.conftest import PgServer, drop_schema, new_schema
from tests.postgres.conftest import MakePgStore

_RNG = np.random.default_rng(7)
_TABLE = {f"t{i}": _RNG.normal(size=6) * _RNG.uniform(0.2, 2.0) for i in range(30)}


def _embed(texts: list[str]) -> list[list[float]]:
    return [[float(x) for x in _TABLE[t]] for t in texts]


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_scores_equal_langgraphs_postgres_store(
    vector_pg: PgServer, make_pg_store: MakePgStore, distance: str
) -> None:
    index = {"dims": 6, "embed": _embed, "fields": ["text"], "distance_type": distance}
    ops = [PutOp(("docs", f"u{i % 3}"), f"k{i}", {"text": f"t{i}"}) for i in range(30)]
    ours = make_pg_store(index=index)
    ours.batch(ops)
    schema = new_schema()
    try:
        with psycopg.connect(vector_pg.url, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        with psycopg.connect(
            vector_pg.url,
            autocommit=True,
            row_factory=dict_row,
            prepare_threshold=0,
            options=f"-c search_path={schema},public",
        ) as conn:
            theirs = LangGraphPostgresStore(conn, index=index)  # type: ignore[arg-type]
            theirs.setup()
            theirs.batch(ops)
            for query in ("t0", "t11", "t29"):
                want = theirs.search(("docs",), query=query, limit=30)
                got = ours.search(("docs",), query=query, limit=30)
                assert [r.key for r in got] == [r.key for r in want]
                assert [r.score for r in got] == pytest.approx([r.score for r in want], abs=1e-6)
    finally:
        drop_schema(vector_pg.url, schema)
