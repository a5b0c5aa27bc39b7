"""The tenant registry's operations on each backend, as generators of effects (no I/O).

Rules:
- PostgreSQL: one row per tenant in `{schema}.tenants` (migration track "tenancy");
  Redis: one hash per tenant and a sorted set of ids, all under the hash tag
  `{<prefix>:tenants}`, so a registry lives in one slot of a cluster;
- creating a tenant that exists is refused atomically (ON CONFLICT / a Lua script);
- the registry holds no key material: a tenant's data keys live in the key vault
  (`security.vault`), so no copy of the database can open its data once they are
  destroyed (the salt column of migration 1 is dropped by migration 2);
- what the registry reaches of a tenant's data, to report or erase it before the tenant
  is deleted: on PostgreSQL its items (and their vectors and namespaces), usage row and
  chat conversations in the registry's schema; on Redis its chat conversations under
  the history prefix (found with SCAN, on every node of a cluster);
- a missing tenant is `TenantNotFoundError`, with the id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from langmem_prod.errors import TenantExistsError, TenantNotFoundError
from langmem_prod.history._redis import DEFAULT_PREFIX as HISTORY_PREFIX
from langmem_prod.store._namespace import descendant_range
from langmem_prod.store._tenant import TENANT_ROOT
from langmem_prod.store._usage import usage_report
from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._rls import in_tenant
from langmem_prod.store.postgres._schema import Migration, track_setup_gen
from langmem_prod.store.postgres._schema import setup_gen as store_setup_gen
from langmem_prod.store.postgres._sql import Statement, render
from langmem_prod.store.redis._effects import Pipeline, script
from langmem_prod.tenancy.tenants import Tenant, settings_json, tenant_from

_GLOB = re.compile(r"[*?\[\]\\]")
TENANCY_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "tenant registry",
        (
            """CREATE TABLE {s}.tenants (
                id text COLLATE "C" PRIMARY KEY,
                name text NOT NULL,
                plan text NOT NULL,
                settings jsonb NOT NULL,
                status text NOT NULL,
                salt bytea,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "data keys live in the key vault: no salt in the database",
        ("ALTER TABLE {s}.tenants DROP COLUMN salt",),
    ),
)
_COLUMNS = "id, name, plan, settings::text, status, created_at"
# A new tenant's usage starts from what its namespaces already hold.
_INSERT = """
WITH t AS (
  INSERT INTO {s}.tenants (id, name, plan, settings, status, created_at, updated_at)
  VALUES (%(id)s, %(name)s, %(plan)s, %(settings)s::jsonb, %(status)s, %(now)s, %(now)s)
  ON CONFLICT (id) DO NOTHING RETURNING *
), usage AS (
  INSERT INTO {s}.tenant_usage (tenant_id, items, bytes, max_items, max_bytes)
  SELECT t.id, count(i.key), coalesce(sum(octet_length(i.value::text)), 0),
         %(max_items)s, %(max_bytes)s
  FROM t LEFT JOIN {s}.items i
    ON i.prefix = 'tenants.' || t.id OR starts_with(i.prefix, 'tenants.' || t.id || '.')
  GROUP BY t.id
  ON CONFLICT (tenant_id) DO UPDATE SET max_items = EXCLUDED.max_items,
    max_bytes = EXCLUDED.max_bytes, items = EXCLUDED.items, bytes = EXCLUDED.bytes
)
SELECT id, name, plan, settings::text, status, created_at FROM t"""
_UPDATE = """
WITH t AS (
  UPDATE {s}.tenants SET name = %(name)s, plan = %(plan)s, settings = %(settings)s::jsonb,
    status = %(status)s, updated_at = %(now)s
  WHERE id = %(id)s RETURNING *
), usage AS (
  UPDATE {s}.tenant_usage u SET max_items = %(max_items)s, max_bytes = %(max_bytes)s
  FROM t WHERE u.tenant_id = t.id
)
SELECT id, name, plan, settings::text, status, created_at FROM t"""
_USAGE = "SELECT items, bytes, max_items, max_bytes FROM {s}.tenant_usage WHERE tenant_id = %s"
_SELECT = "SELECT " + _COLUMNS + " FROM {s}.tenants WHERE id = %s"
_LIST = "SELECT " + _COLUMNS + " FROM {s}.tenants ORDER BY id"
_CHATS = "SELECT to_regclass(format('%%I.chat_sessions', %s::text)) IS NOT NULL"
_ITEMS = "(prefix = %(p)s OR (prefix >= %(low)s AND prefix < %(high)s))"
_HOLDINGS = "SELECT count(*) FROM {s}.items WHERE " + _ITEMS
_HOLDINGS_CHATS = "SELECT count(*) FROM {s}.chat_sessions WHERE tenant_id = %(id)s"
_ERASE = (
    "DELETE FROM {s}.items WHERE " + _ITEMS,
    "SELECT {s}.prune_namespaces(ARRAY(SELECT prefix FROM {s}.namespaces WHERE " + _ITEMS + "))",
)
_ERASE_CHATS = (
    "DELETE FROM {s}.chat_messages WHERE tenant_id = %(id)s",
    "DELETE FROM {s}.chat_sessions WHERE tenant_id = %(id)s",
)
_DELETE = """
WITH usage AS (DELETE FROM {s}.tenant_usage WHERE tenant_id = %(id)s)
DELETE FROM {s}.tenants WHERE id = %(id)s RETURNING id"""


def _missing(tenant_id: str) -> TenantNotFoundError:
    return TenantNotFoundError(f"no tenant {tenant_id!r} is registered; create it first")


def _one(rows: list[Any], tenant_id: str) -> Any:
    if not rows:
        raise _missing(tenant_id)
    return rows[0]


@dataclass(frozen=True, slots=True)
class PgRegistryFlows:
    """The registry's operations on PostgreSQL."""

    schema: str

    def _sql(self, template: str) -> str:
        return render(template, self.schema)

    def setup_gen(self) -> Generator[Execute, Any, None]:
        """Create or upgrade the store's tables (usage is counted on them) and the registry."""
        yield from store_setup_gen(self.schema, None)
        yield from track_setup_gen(self.schema, "tenancy", TENANCY_MIGRATIONS)

    @staticmethod
    def _params(tenant: Tenant, now: datetime) -> dict[str, Any]:
        return {
            "id": tenant.id,
            "name": tenant.name,
            "plan": tenant.plan,
            "settings": settings_json(tenant).decode(),
            "status": tenant.status,
            "now": now,
            "max_items": tenant.max_items,
            "max_bytes": tenant.max_bytes,
        }

    def create_gen(self, tenant: Tenant, now: datetime) -> Generator[Execute, Any, Tenant]:
        """Register a new tenant (refused if the id is taken), with its usage row."""
        (rows,) = yield Execute((Statement(self._sql(_INSERT), self._params(tenant, now)),))
        if not rows:
            raise TenantExistsError(f"tenant {tenant.id!r} already exists; update it instead")
        return tenant_from(rows[0])

    def update_gen(self, tenant: Tenant, now: datetime) -> Generator[Execute, Any, Tenant]:
        """Replace a tenant's name, plan, settings and status (and its quota limits)."""
        (rows,) = yield Execute((Statement(self._sql(_UPDATE), self._params(tenant, now)),))
        return tenant_from(_one(rows, tenant.id))

    def usage_gen(self, tenant_id: str) -> Generator[Execute, Any, dict[str, Any]]:
        """The tenant's items and bytes, and its limits."""
        (rows,) = yield Execute((Statement(self._sql(_USAGE), (tenant_id,)),))
        items, size, max_items, max_bytes = _one(rows, tenant_id)
        return usage_report(items, size, max_items, max_bytes)

    def get_gen(self, tenant_id: str) -> Generator[Execute, Any, Tenant]:
        """One tenant."""
        (rows,) = yield Execute((Statement(self._sql(_SELECT), (tenant_id,)),))
        return tenant_from(_one(rows, tenant_id))

    def list_gen(self) -> Generator[Execute, Any, list[Tenant]]:
        """Every tenant, by id."""
        (rows,) = yield Execute((Statement(self._sql(_LIST)),))
        return [tenant_from(row) for row in rows]

    def _tenant_params(self, tenant_id: str) -> dict[str, str]:
        prefix = f"{TENANT_ROOT}.{tenant_id}"
        low, high = descendant_range(prefix)
        return {"id": tenant_id, "p": prefix, "low": low, "high": high}

    def _statements(self, *templates: str, tenant_id: str) -> Execute:
        params = self._tenant_params(tenant_id)
        return in_tenant(tenant_id, [Statement(self._sql(t), params) for t in templates])

    def holdings_gen(self, tenant_id: str) -> Generator[Execute, Any, tuple[int, int]]:
        """How many items and chat conversations of the tenant the schema holds."""
        ((has_chats,),), *_ = yield Execute((Statement(_CHATS, (self.schema,)),))
        templates = (_HOLDINGS, _HOLDINGS_CHATS) if has_chats else (_HOLDINGS,)
        answers = yield self._statements(*templates, tenant_id=tenant_id)
        counts = [int(rows[0][0]) for rows in answers[1:]]  # after the tenant's setting
        return counts[0], counts[1] if has_chats else 0

    def erase_gen(self, tenant_id: str) -> Generator[Execute, Any, None]:
        """Delete the tenant's items (vectors and namespaces too) and chat conversations."""
        ((has_chats,),), *_ = yield Execute((Statement(_CHATS, (self.schema,)),))
        yield self._statements(*_ERASE, *(_ERASE_CHATS if has_chats else ()), tenant_id=tenant_id)

    def delete_gen(self, tenant_id: str) -> Generator[Execute, Any, None]:
        """Remove the tenant from the registry."""
        (rows,) = yield Execute((Statement(self._sql(_DELETE), {"id": tenant_id}),))
        _one(rows, tenant_id)


CREATE = """
-- KEYS: tenant hash, id set; ARGV: id, name, plan, settings, status, created
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[2], 'plan', ARGV[3], 'settings', ARGV[4],
  'status', ARGV[5], 'created_at', ARGV[6])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""
UPDATE = """
-- KEYS: tenant hash; ARGV: name, plan, settings, status
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'plan', ARGV[2], 'settings', ARGV[3],
  'status', ARGV[4])
return 1
"""
SCRIPTS = {"tenant_create": CREATE, "tenant_update": UPDATE}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
_FIELDS = ("name", "plan", "settings", "status", "created_at")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class RedisRegistryFlows:
    """The registry's operations on Redis."""

    prefix: str
    history_prefix: str = HISTORY_PREFIX

    def _key(self, tenant_id: str) -> str:
        return f"{self.prefix}:{{{self.prefix}:tenants}}:t:{tenant_id}"

    @property
    def _ids(self) -> str:
        return f"{self.prefix}:{{{self.prefix}:tenants}}:ids"

    def _tenant(self, tenant_id: str, values: list[Any]) -> Tenant:
        if values[0] is None:
            raise _missing(tenant_id)
        name, plan, settings, status, created = (_text(v) for v in values)
        return tenant_from(
            (tenant_id, name, plan, settings, status, datetime.fromisoformat(created))
        )

    def create_gen(self, tenant: Tenant, now: datetime) -> Generator[Pipeline, Any, Tenant]:
        """Register a new tenant (refused if the id is taken)."""
        settings = settings_json(tenant)
        args = (tenant.id, tenant.name, tenant.plan, settings, tenant.status, now.isoformat())
        command = script("tenant_create", (self._key(tenant.id), self._ids), args, SHAS)
        (created,) = yield Pipeline((command,), scripted=True)
        if not created:
            raise TenantExistsError(f"tenant {tenant.id!r} already exists; update it instead")
        return tenant.with_changes(created_at=now)

    def update_gen(self, tenant: Tenant, now: datetime) -> Generator[Pipeline, Any, Tenant]:
        """Replace a tenant's name, plan, settings and status."""
        del now
        args = (tenant.name, tenant.plan, settings_json(tenant), tenant.status)
        command = script("tenant_update", (self._key(tenant.id),), args, SHAS)
        (updated,) = yield Pipeline((command,), scripted=True)
        if not updated:
            raise _missing(tenant.id)
        return (yield from self.get_gen(tenant.id))

    def get_gen(self, tenant_id: str) -> Generator[Pipeline, Any, Tenant]:
        """One tenant."""
        (values,) = yield Pipeline((("HMGET", self._key(tenant_id), *_FIELDS),))
        return self._tenant(tenant_id, values)

    def list_gen(self) -> Generator[Pipeline, Any, list[Tenant]]:
        """Every tenant, by id."""
        (ids,) = yield Pipeline((("ZRANGE", self._ids, 0, -1),))
        names = [_text(i) for i in ids]
        if not names:
            return []
        rows = yield Pipeline(tuple(("HMGET", self._key(n), *_FIELDS) for n in names))
        return [self._tenant(n, values) for n, values in zip(names, rows, strict=True) if values[0]]

    def history_pattern(self, tenant_id: str) -> str:
        """The SCAN pattern of the tenant's chat-history keys."""
        prefix = _GLOB.sub(r"\\\g<0>", self.history_prefix)
        return f"{prefix}:{{{tenant_id}\x00*"

    @staticmethod
    def drop_gen(keys: list[bytes]) -> Generator[Pipeline, Any, None]:
        """Delete keys (one command each: on a cluster they lie in many slots)."""
        if keys:
            yield Pipeline(tuple(("DEL", key) for key in keys))

    def delete_gen(self, tenant_id: str) -> Generator[Pipeline, Any, None]:
        """Remove the tenant from the registry."""
        (deleted, _) = yield Pipeline(
            (("DEL", self._key(tenant_id)), ("ZREM", self._ids, tenant_id)), atomic=True
        )
        if not deleted:
            raise _missing(tenant_id)
