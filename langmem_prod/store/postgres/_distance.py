"""pgvector's distance types: operator, index opclass and score, as LangGraph's PostgresStore.

Rules:
- each `distance_type` has one pgvector operator, ordered ascending (best first), and
  the opclass of the same family for the HNSW index, so the index serves the ORDER BY;
- scores are LangGraph's: cosine `1 - (a <=> b)` (the cosine similarity), l2
  `-(a <-> b)` (minus the Euclidean distance), inner_product `-(a <#> b)` (the dot
  product); higher is better for all three;
- vectors are stored as the model returns them (not normalized), so the distance type
  of a schema is only its index's opclass: switching type means rebuilding that index,
  never re-embedding. `setup()` refuses a store whose distance type differs from the
  index's (the search would still be right, but not use the index), and recreates the
  index when it was dropped, for the configured type.
"""

from __future__ import annotations

from typing import NamedTuple

from psycopg import sql

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._index import Distance


class DistanceSql(NamedTuple):
    """How one distance type is written in SQL."""

    operator: str
    opclass_suffix: str
    score: str  # an expression of `distance`, the operator's result


DISTANCE_SQL: dict[Distance, DistanceSql] = {
    "cosine": DistanceSql("<=>", "cosine_ops", "1 - {d}"),
    "l2": DistanceSql("<->", "l2_ops", "-{d}"),
    "inner_product": DistanceSql("<#>", "ip_ops", "-{d}"),
}

INDEX_NAME = "vectors_embedding_hnsw_idx"

# The opclass of the vectors index's column (no row: the index is gone).
INDEX_OPCLASS = (
    "SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = i.indclass[0] "
    "WHERE i.indexrelid = to_regclass(%s)"
)

CREATE_INDEX = (
    "CREATE INDEX " + INDEX_NAME + " ON {s}.vectors "
    "USING hnsw (embedding {vt}_{ops}) WITH (m = {m}, ef_construction = {ef})"
)


def opclass(vector_type: str, distance: Distance) -> str:
    """The HNSW opclass of `vector_type` for `distance`.

    >>> opclass("halfvec", "inner_product")
    'halfvec_ip_ops'
    """
    return f"{vector_type}_{DISTANCE_SQL[distance].opclass_suffix}"


def check_opclass(found: str, vector_type: str, distance: Distance, schema: str) -> None:
    """Refuse a store whose distance type is not the one its schema's index serves.

    >>> check_opclass("vector_cosine_ops", "vector", "cosine", "s")
    """
    if found == opclass(vector_type, distance):
        return
    names = {opclass(vector_type, d): d for d in DISTANCE_SQL}
    was = names.get(found, "another distance")
    quoted = sql.Identifier(schema).as_string(None)
    raise ConfigurationError(
        f"schema {schema!r} indexes vectors for distance_type {was!r}, but this store is "
        f"configured for {distance!r}; use the same distance_type as before, or switch: "
        f"DROP INDEX {quoted}.{INDEX_NAME}, then setup() rebuilds it for the new type "
        "(vectors are kept), or use another schema"
    )
