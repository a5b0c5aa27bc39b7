"""pgvector specifics: the planner uses the HNSW index, halfvec above 2000 dims, no pgvector."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from langgraph.store.base import PutOp, SearchOp

from langmem_prod import errors
from langmem_prod.embeddings import HashingEmbeddings
from langmem_prod.store._ops import plan_batch
from langmem_prod.store.postgres._gen import _vector_literal
from tests.conftest import PgServer
from tests.postgres.conftest import MakePgStore

EMBED = HashingEmbeddings(dims=64)
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
]


def explain(store, sql: psycopg.Connection, prefix: tuple, filter: dict | None) -> str:
    op = SearchOp(prefix, filter, 10, 0, "alpha beta")
    search = plan_batch([op], index=store._index, max_value_bytes=1 << 20).searches[0]
    vector = _vector_literal(EMBED.embed_query("alpha beta"))
    statement = store._cfg.sql.vector_search(search, vector, 21, datetime.now(UTC))
    return "\n".join(row[0] for row in sql.execute("EXPLAIN " + statement.sql, statement.params))


def index_opclass(sql: psycopg.Connection, schema: str) -> str | None:
    row = sql.execute(
        "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
        "WHERE i.indexrelid = to_regclass(%s)",
        (f'"{schema}".vectors_embedding_hnsw_idx',),
    ).fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize(
    ("distance", "opclass"),
    [("cosine", "vector_cosine_ops"), ("l2", "vector_l2_ops"), ("inner_product", "vector_ip_ops")],
)
def test_planner_uses_the_hnsw_index(
    vector_pg: PgServer,
    make_pg_store: MakePgStore,
    sql: psycopg.Connection,
    distance: str,
    opclass: str,
) -> None:
    store = make_pg_store(
        index={"dims": 64, "embed": EMBED, "fields": ["text"], "distance_type": distance}
    )
    assert index_opclass(sql, store.schema) == opclass
    for batch in range(4):
        store.batch(
            [
                PutOp(
                    ("docs", f"u{i % 50}"),
                    f"{batch}-{i}",
                    {"text": f"{WORDS[i % 12]} {WORDS[i * 7 % 12]}", "n": i},
                )
                for i in range(1000)
            ]
        )
    sql.execute(f'ANALYZE "{store.schema}".items')
    sql.execute(f'ANALYZE "{store.schema}".vectors')
    for prefix, filter in [((), None), (("docs",), None), (("docs",), {"n": {"$gte": 10}})]:
        plan = explain(store, sql, prefix, filter)
        assert "vectors_embedding_hnsw_idx" in plan, plan
    # A small namespace is ranked exactly instead (a sort over its few vectors).
    assert "vectors_embedding_hnsw_idx" not in explain(store, sql, ("docs", "u1"), None)
    results = store.search(("docs",), query="alpha beta", limit=5)
    assert len(results) == 5 and results[0].score >= results[-1].score


def test_switching_distance_type_rebuilds_a_dropped_index(
    vector_pg: PgServer, make_pg_store: MakePgStore, sql: psycopg.Connection
) -> None:
    index = {"dims": 64, "embed": EMBED, "fields": ["text"]}
    store = make_pg_store(index=index)
    store.put(("d",), "a", {"text": "pizza with cheese"})
    ip = make_pg_store(schema=store.schema, index={**index, "distance_type": "l2"}, setup=False)
    with pytest.raises(errors.ConfigurationError, match="DROP INDEX") as refused:
        ip.setup()
    assert "'cosine'" in str(refused.value) and "'l2'" in str(refused.value)
    assert index_opclass(sql, store.schema) == "vector_cosine_ops"  # nothing changed
    sql.execute(f'DROP INDEX "{store.schema}".vectors_embedding_hnsw_idx')
    ip.setup()
    assert index_opclass(sql, store.schema) == "vector_l2_ops"
    (hit,) = ip.search(("d",), query="pizza with cheese")
    assert (hit.key, hit.score) == ("a", pytest.approx(0.0, abs=1e-5))
    ip.setup()  # up to date: nothing to do
    with pytest.raises(errors.ConfigurationError, match="'l2'"):
        store.setup()  # the cosine store is now the one refused


@pytest.mark.parametrize("distance", ["cosine", "l2", "inner_product"])
def test_halfvec_above_2000_dims(
    vector_pg: PgServer, make_pg_store: MakePgStore, sql: psycopg.Connection, distance: str
) -> None:
    embed = HashingEmbeddings(dims=2048)
    store = make_pg_store(
        index={"dims": 2048, "embed": embed, "fields": ["text"], "distance_type": distance}
    )
    (column,) = sql.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = 'embedding'",
        (f'"{store.schema}".vectors',),
    ).fetchone()
    assert column == "halfvec(2048)"
    suffix = {"cosine": "cosine", "l2": "l2", "inner_product": "ip"}[distance]
    assert index_opclass(sql, store.schema) == f"halfvec_{suffix}_ops"
    store.put(("d",), "a", {"text": "pizza with cheese"})
    store.put(("d",), "b", {"text": "tax forms"})
    assert [r.key for r in store.search(("d",), query="cheese pizza")] == ["a", "b"]


def test_too_many_dims_is_refused_at_construction(make_pg_store: MakePgStore) -> None:
    with pytest.raises(errors.ConfigurationError, match="at most 4000"):
        make_pg_store(index={"dims": 4001, "embed": HashingEmbeddings(4001)}, setup=False)


def test_without_pgvector_setup_explains(pg: PgServer, make_pg_store: MakePgStore) -> None:
    if pg.has_vector:
        pytest.skip("this server has pgvector; the refusal is tested on one without it")
    store = make_pg_store(index={"dims": 64, "embed": EMBED}, setup=False)
    with pytest.raises(errors.FeatureUnavailableError, match="pgvector"):
        store.setup()
    plain = make_pg_store(schema=store.schema)  # the failed setup left nothing half-made
    plain.put(("a",), "k", {"v": 1})
    assert plain.get(("a",), "k").value == {"v": 1}
