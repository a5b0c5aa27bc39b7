"""Schema and versioned migrations of the Postgres store, as data plus one setup generator.

Rules:
- migrations are numbered per track ("rls" first, "core", and "vectors" when an index is
  configured; the histories, tenancy and audit add theirs); each runs once, recorded in
  `{schema}.migrations`, and is never edited once released: a change is a new migration;
- once migrated, every function of the schema pins `search_path = pg_catalog, pg_temp`
  and names the schema of the functions and operators it calls, so no caller's
  search_path can substitute its own;
- `setup()` runs in one transaction under a database-wide advisory lock, so it is
  idempotent, all-or-nothing, and safe when several processes call it at once;
- the vectors table's type and width are fixed by the first setup; a later store with
  another `dims` is refused with a message instead of corrupting the table;
- pgvector is only needed when an index is configured; without it, setup says so.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from langmem_prod.errors import ConfigurationError, FeatureUnavailableError, SchemaNotReadyError
from langmem_prod.store._index import Distance, IndexSettings
from langmem_prod.store.postgres._distance import (
    CREATE_INDEX,
    DISTANCE_SQL,
    INDEX_NAME,
    INDEX_OPCLASS,
    check_opclass,
)
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._rls import (
    RLS_MEMBERSHIP_STATEMENTS,
    RLS_TRACK_STATEMENTS,
    policy_statements,
    tenant_column,
)
from langmem_prod.store.postgres._sql import Statement, lock_namespace, render
from langmem_prod.store.postgres._usage_sql import STATEMENT_ACCOUNTING

_HNSW_MAX_DIMS = {"vector": 2000, "halfvec": 4000}
_SETUP_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('langmem_prod:setup', 0))"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema change: statements with `{s}` (schema) and, for vectors, `{vt}` `{dims}`."""

    version: int
    description: str
    statements: tuple[str, ...]


_PRUNE_FUNCTION = """
CREATE FUNCTION {s}.prune_namespaces(candidates text[]) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
  candidate text;
  pruned integer := 0;
BEGIN
  -- Each DELETE below takes a fresh snapshot after the lock, so it sees every write
  -- that registered the namespace before; writes after it wait and re-register.
  FOREACH candidate IN ARRAY candidates LOOP
    IF pg_try_advisory_xact_lock(hashtextextended({lock} || candidate, 0)) THEN
      DELETE FROM {s}.namespaces n WHERE n.prefix = candidate
        AND NOT EXISTS (SELECT 1 FROM {s}.items i WHERE i.prefix = candidate);
      IF FOUND THEN pruned := pruned + 1; END IF;
    END IF;
  END LOOP;
  RETURN pruned;
END
$fn$
"""

# The pruner again, immune to the caller's search_path: every function and operator named
# with its schema, and the path pinned (core migration 5).
_PRUNE_FUNCTION_PINNED = """
CREATE OR REPLACE FUNCTION {s}.prune_namespaces(candidates text[]) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
  candidate text;
  pruned integer := 0;
BEGIN
  -- Each DELETE below takes a fresh snapshot after the lock, so it sees every write
  -- that registered the namespace before; writes after it wait and re-register.
  FOREACH candidate IN ARRAY candidates LOOP
    IF pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(
        {lock} OPERATOR(pg_catalog.||) candidate, 0)) THEN
      DELETE FROM {s}.namespaces n WHERE n.prefix OPERATOR(pg_catalog.=) candidate
        AND NOT EXISTS (SELECT 1 FROM {s}.items i WHERE i.prefix OPERATOR(pg_catalog.=) candidate);
      IF FOUND THEN pruned := pruned OPERATOR(pg_catalog.+) 1; END IF;
    END IF;
  END LOOP;
  RETURN pruned;
END
$fn$
"""

# Migration 2's accounting, kept as applied: items under ("tenants", <id>, ...) count
# towards the tenant's usage row, if it has one; the row lock serializes a tenant's
# writers. Migration 4 replaces it with statement-level triggers (`_usage_sql`). (Migration
# text goes through psycopg's placeholder parsing, hence every "%" is written "%%".)
QUOTA_SQLSTATE = "LMQ01"
_USAGE_FUNCTION = """
CREATE FUNCTION {s}.count_tenant_usage() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  tenant text;
  d_items integer := 0;
  d_bytes bigint := 0;
  usage record;
BEGIN
  IF TG_OP <> 'INSERT' AND OLD.prefix LIKE 'tenants.%%' THEN
    tenant := split_part(OLD.prefix, '.', 2);
    d_items := d_items - 1;
    d_bytes := d_bytes - octet_length(OLD.value::text);
  END IF;
  IF TG_OP <> 'DELETE' AND NEW.prefix LIKE 'tenants.%%' THEN
    tenant := split_part(NEW.prefix, '.', 2);
    d_items := d_items + 1;
    d_bytes := d_bytes + octet_length(NEW.value::text);
  END IF;
  IF tenant IS NULL OR (d_items = 0 AND d_bytes = 0) THEN
    RETURN NULL;
  END IF;
  UPDATE {s}.tenant_usage u SET items = u.items + d_items, bytes = u.bytes + d_bytes
    WHERE u.tenant_id = tenant RETURNING u.* INTO usage;
  IF FOUND AND ((d_items > 0 AND usage.items > usage.max_items)
             OR (d_bytes > 0 AND usage.bytes > usage.max_bytes)) THEN
    RAISE EXCEPTION 'tenant %% is over its quota: %% of %% items, %% of %% bytes', tenant,
      usage.items, coalesce(usage.max_items::text, 'unlimited'),
      usage.bytes, coalesce(usage.max_bytes::text, 'unlimited')
      USING ERRCODE = 'LMQ01';
  END IF;
  RETURN NULL;
END
$fn$
"""

CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "items, namespace registry and its pruner",
        (
            """CREATE TABLE {s}.items (
                prefix text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                value jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                ttl_minutes double precision,
                expires_at timestamptz,
                access_count bigint NOT NULL DEFAULT 0,
                accessed_at timestamptz,
                PRIMARY KEY (prefix, key))""",
            "CREATE INDEX items_expires_at_idx ON {s}.items (expires_at) "
            "WHERE expires_at IS NOT NULL",
            """CREATE TABLE {s}.namespaces (
                prefix text COLLATE "C" PRIMARY KEY,
                labels text[] COLLATE "C" NOT NULL,
                depth integer NOT NULL,
                expiring boolean NOT NULL DEFAULT false)""",
            "CREATE INDEX namespaces_labels_idx ON {s}.namespaces (labels)",
            _PRUNE_FUNCTION,
        ),
    ),
    Migration(
        2,
        "per-tenant usage, counted and capped by a trigger on items",
        (
            """CREATE TABLE {s}.tenant_usage (
                tenant_id text COLLATE "C" PRIMARY KEY,
                items bigint NOT NULL DEFAULT 0,
                bytes bigint NOT NULL DEFAULT 0,
                max_items bigint,
                max_bytes bigint)""",
            _USAGE_FUNCTION,
            "CREATE TRIGGER items_tenant_usage AFTER INSERT OR DELETE OR UPDATE OF value "
            "ON {s}.items FOR EACH ROW EXECUTE FUNCTION {s}.count_tenant_usage()",
        ),
    ),
    Migration(
        3,
        "row-level security: items and namespaces carry their tenant",
        (
            tenant_column("items"),
            *policy_statements("items", "tenant"),
            tenant_column("namespaces"),
            *policy_statements("namespaces", "tenant"),
            # Usage is counted by the owner whoever writes, and only read by others.
            "ALTER FUNCTION {s}.count_tenant_usage() SECURITY DEFINER "
            "SET search_path = pg_catalog, pg_temp",
            "ALTER TABLE {s}.tenant_usage ENABLE ROW LEVEL SECURITY",
            "CREATE POLICY tenant_isolation ON {s}.tenant_usage FOR SELECT "
            "USING (tenant_id = (SELECT {s}.visible_tenant()))",
        ),
    ),
    Migration(
        4,
        "tenant usage counted once per statement (transition tables), not once per row",
        STATEMENT_ACCOUNTING,
    ),
    Migration(
        5,
        "the namespace pruner pins its search_path and names its operators' schema",
        (_PRUNE_FUNCTION_PINNED,),
    ),
)

# Applied before any other track: the policies of the others call its functions.
RLS_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "tenant roles and the current tenant, for row-level security", RLS_TRACK_STATEMENTS
    ),
    Migration(
        2,
        "bindings by role OID that follow role membership; pinned, schema-qualified functions",
        RLS_MEMBERSHIP_STATEMENTS,
    ),
)

VECTOR_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "vectors table with an HNSW index for the store's distance type",
        (
            """CREATE TABLE {s}.vectors (
                prefix text COLLATE "C" NOT NULL,
                key text COLLATE "C" NOT NULL,
                field text NOT NULL,
                embedding {vt}({dims}) NOT NULL,
                PRIMARY KEY (prefix, key, field),
                FOREIGN KEY (prefix, key) REFERENCES {s}.items (prefix, key) ON DELETE CASCADE)""",
            CREATE_INDEX,
        ),
    ),
    Migration(
        2,
        "row-level security: vectors carry their tenant",
        (tenant_column("vectors"), *policy_statements("vectors", "tenant")),
    ),
)


@dataclass(frozen=True, slots=True)
class VectorSpec:
    """How vectors are stored: pgvector type, width, distance and HNSW build parameters."""

    dims: int
    vector_type: str
    m: int = 16
    ef_construction: int = 64
    distance: Distance = "cosine"

    @property
    def column_type(self) -> str:
        """The column type as PostgreSQL prints it, e.g. 'vector(1536)'."""
        return f"{self.vector_type}({self.dims})"


def vector_spec(settings: IndexSettings) -> VectorSpec:
    """Choose the vector type (halfvec above 2000 dims) and check pgvector options.

    >>> from langmem_prod.store._index import index_settings
    >>> vector_spec(index_settings({"dims": 3072, "embed": lambda t: []})).vector_type
    'halfvec'
    """
    options: Mapping[str, Any] = settings.options
    ann = dict(options.get("ann_index_config") or {})
    if ann.get("kind", "hnsw") != "hnsw":
        raise ConfigurationError("ann_index_config kind must be 'hnsw'")
    vector_type = ann.get("vector_type") or ("vector" if settings.dims <= 2000 else "halfvec")
    if vector_type not in _HNSW_MAX_DIMS:
        raise ConfigurationError("ann_index_config vector_type must be 'vector' or 'halfvec'")
    if settings.dims > _HNSW_MAX_DIMS[vector_type]:
        raise ConfigurationError(
            f"pgvector's HNSW index takes at most {_HNSW_MAX_DIMS[vector_type]} dims as "
            f"{vector_type}; reduce dims (e.g. OpenAI's `dimensions=`) to at most 4000"
        )
    m, ef = ann.get("m", 16), ann.get("ef_construction", 64)
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 1 for x in (m, ef)):
        raise ConfigurationError("ann_index_config m and ef_construction must be ints > 1")
    return VectorSpec(settings.dims, vector_type, m, ef, settings.distance)


def _migration_sql(statement: str, schema: str, spec: VectorSpec | None) -> str:
    text = statement.replace("{lock}", sql.Literal(lock_namespace(schema)).as_string(None))
    if spec is not None:
        text = (
            text.replace("{vt}", spec.vector_type)
            .replace("{ops}", DISTANCE_SQL[spec.distance].opclass_suffix)
            .replace("{dims}", str(spec.dims))
            .replace("{m}", str(spec.m))
            .replace("{ef}", str(spec.ef_construction))
        )
    return render(text, schema)


def pending(
    track: str,
    migrations: tuple[Migration, ...],
    current: int,
    schema: str,
    spec: VectorSpec | None,
) -> list[Statement]:
    """The statements applying `migrations` newer than `current`, each recorded."""
    latest = migrations[-1].version
    if current > latest:
        raise SchemaNotReadyError(
            f"schema {schema!r} is at {track} version {current}, newer than this "
            f"langmem_prod ({latest}); upgrade langmem_prod"
        )
    record = render(
        "INSERT INTO {s}.migrations (track, version, description) VALUES (%s, %s, %s)", schema
    )
    statements: list[Statement] = []
    for migration in migrations:
        if migration.version > current:
            statements += [Statement(_migration_sql(s, schema, spec)) for s in migration.statements]
            statements.append(Statement(record, (track, migration.version, migration.description)))
    return statements


def versions_gen(schema: str) -> Generator[Execute, Any, dict[str, int]]:
    """Take the setup lock, create the schema and its migrations table, read the versions.

    The first step of every setup (the store's, the chat histories'), inside its
    transaction; returns the installed version of each migration track.
    """
    (exists,) = (yield Execute((Statement(_SETUP_LOCK), Statement(_SCHEMA_EXISTS, (schema,)))))[1]
    head = [] if exists[0] else [Statement(render("CREATE SCHEMA {s}", schema))]
    head += [Statement(render(_MIGRATIONS_TABLE, schema)), Statement(render(_VERSIONS, schema))]
    return dict((yield Execute(tuple(head)))[-1])


def track_setup_gen(
    schema: str, track: str, migrations: tuple[Migration, ...], *, rls: bool = False
) -> Generator[Execute, Any, None]:
    """Apply a feature's migration track (chat histories, tenancy, audit) to `schema`.

    With `rls`, the "rls" track (tenant roles, `current_tenant()`) is applied first.
    """
    versions = yield from versions_gen(schema)
    todo = _rls_pending(versions, schema) if rls else []
    todo += pending(track, migrations, versions.get(track, 0), schema, None)
    if todo:
        yield Execute(tuple(todo))


def _rls_pending(versions: dict[str, int], schema: str) -> list[Statement]:
    return pending("rls", RLS_MIGRATIONS, versions.get("rls", 0), schema, None)


def setup_gen(schema: str, spec: VectorSpec | None) -> Generator[Execute, Any, None]:
    """Create or upgrade the schema; run by the driver inside one transaction."""
    versions = yield from versions_gen(schema)
    todo = _rls_pending(versions, schema)
    todo += pending("core", CORE_MIGRATIONS, versions.get("core", 0), schema, None)
    if spec is not None:
        installed, available = (yield Execute((Statement(_PGVECTOR),)))[0][0]
        if installed is None and not available:
            raise FeatureUnavailableError(
                "semantic search needs the pgvector extension, which this PostgreSQL server "
                "does not have; install pgvector (https://github.com/pgvector/pgvector) or "
                "create the store without `index=`"
            )
        if installed is None:
            todo.insert(0, Statement("CREATE EXTENSION IF NOT EXISTS vector"))
        current = versions.get("vectors", 0)
        if current:
            todo += yield from _check_vectors(schema, spec)
        todo += pending("vectors", VECTOR_MIGRATIONS, current, schema, spec)
    if todo:
        yield Execute(tuple(todo))


def _check_vectors(schema: str, spec: VectorSpec) -> Generator[Execute, Any, list[Statement]]:
    """Check the vectors' column type and index distance; recreate a dropped index."""
    table, index = render("{s}.vectors", schema), render("{s}." + INDEX_NAME, schema)
    column, opclasses = yield Execute(
        (Statement(_EMBEDDING_TYPE, (table,)), Statement(INDEX_OPCLASS, (index,)))
    )
    _check_vector_column(column[0][0] if column else "no vectors table", spec, schema)
    if not opclasses:
        return [Statement(_migration_sql(CREATE_INDEX, schema, spec))]
    check_opclass(opclasses[0][0], spec.vector_type, spec.distance, schema)
    return []


def _check_vector_column(found: str, spec: VectorSpec, schema: str) -> None:
    if found != spec.column_type:
        raise ConfigurationError(
            f"schema {schema!r} stores vectors as {found}, but this store is configured for "
            f"{spec.column_type}; use the same dims as before, or another schema"
        )


_SCHEMA_EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = %s)"
_MIGRATIONS_TABLE = """CREATE TABLE IF NOT EXISTS {s}.migrations (
    track text NOT NULL,
    version integer NOT NULL,
    description text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track, version))"""
_VERSIONS = "SELECT track, max(version) FROM {s}.migrations GROUP BY track"
_PGVECTOR = (
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
    "EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')"
)
_EMBEDDING_TYPE = (
    "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = to_regclass(%s) AND attname = 'embedding'"
)
