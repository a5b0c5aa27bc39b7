"""Tenant quotas on Redis, the flows: set a tenant's limits, report its usage.

Rules:
- a tenant's usage and limits live in the shard of its namespaces (see `_lua_prelude`),
  where the write script enforces them atomically; that needs all of a tenant's
  namespaces in one shard, i.e. `shard_depth` <= 2 (or a single shard); otherwise
  limits are refused with `ConfigurationError`, and usage is summed over the shards;
- every write of this store keeps usage, limits or not; items written before usage was
  kept (by an older version) are counted once per shard, the first time limits are set
  or usage is read: the tenant's namespaces and records are read, and the backfill
  script adds each item that still exists and has no size yet (writes and deletes in
  between keep usage right by themselves); a `counted` mark records that it was done;
- limits are set after that count, with one HSET ('' for unlimited).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from langmem_prod.errors import ConfigurationError
from langmem_prod.store._tenant import TENANT_ROOT
from langmem_prod.store._usage import usage_report
from langmem_prod.store.redis._effects import Pipeline, script
from langmem_prod.store.redis._gen import RedisConfig, _bytes, _text
from langmem_prod.store.redis._keys import KeyLayout, registry_range
from langmem_prod.store.redis._quota import (
    check_limit,
    check_tenant_id,
    jsonb_size,
)

BACKFILL_CHUNK = 500


def _sizes(base: str, tenant: str) -> str:
    return f"{base}u:{tenant}"


def _usage(base: str, tenant: str) -> str:
    return f"{base}q:{tenant}"


def _limit(value: bytes | str | None) -> int | None:
    return int(value) if value else None


def set_limits_gen(
    cfg: RedisConfig, tenant_id: str, max_items: int | None, max_bytes: int | None
) -> Generator[Pipeline, Any, None]:
    """Replace a tenant's limits (None: unlimited), counting its older items first."""
    tenant = check_tenant_id(tenant_id)
    limits = (check_limit("max_items", max_items), check_limit("max_bytes", max_bytes))
    bases = cfg.bases_under(f"{TENANT_ROOT}.{tenant}")
    if len(bases) > 1:
        if limits == (None, None):
            return  # nothing to enforce
        raise ConfigurationError(
            f"this store's shard_depth={cfg.shard_depth} spreads tenant {tenant!r} over "
            f"{len(bases)} shards, so one script cannot see all of its items and its quota "
            "cannot be enforced atomically; use shard_depth <= 2 for stores with quotas"
        )
    yield from count_gen(cfg, tenant, bases)
    items, size = ("" if n is None else n for n in limits)
    yield Pipeline((("HSET", _usage(bases[0], tenant), "max_items", items, "max_bytes", size),))


def usage_gen(cfg: RedisConfig, tenant_id: str) -> Generator[Pipeline, Any, dict[str, Any]]:
    """A tenant's items, bytes and limits, as `PostgresTenantRegistry.usage` reports them."""
    tenant = check_tenant_id(tenant_id)
    bases = cfg.bases_under(f"{TENANT_ROOT}.{tenant}")
    yield from count_gen(cfg, tenant, bases)
    commands = []
    for base in bases:
        commands += [
            ("HLEN", _sizes(base, tenant)),
            ("HMGET", _usage(base, tenant), "bytes", "max_items", "max_bytes"),
        ]
    replies = yield Pipeline(tuple(commands))
    items = sum(int(n) for n in replies[0::2])
    size = sum(int(fields[0] or 0) for fields in replies[1::2])
    _, max_items, max_bytes = replies[1]
    return usage_report(items, size, _limit(max_items), _limit(max_bytes))


def count_gen(
    cfg: RedisConfig, tenant: str, bases: Sequence[str]
) -> Generator[Pipeline, Any, None]:
    """Count, once per shard, the tenant's items that no write of this version counted."""
    marks = yield Pipeline(tuple(("HGET", _usage(base, tenant), "counted") for base in bases))
    todo = [base for base, mark in zip(bases, marks, strict=True) if mark is None]
    if not todo:
        return
    low, high = registry_range(f"{TENANT_ROOT}.{tenant}")
    found = yield Pipeline(tuple(("ZRANGEBYLEX", KeyLayout.registry(b), low, high) for b in todo))
    for base, members in zip(todo, found, strict=True):
        namespaces = [_text(m).replace("\x00", ".") for m in members]
        yield from _backfill(base, tenant, namespaces)
    yield Pipeline(tuple(("HSET", _usage(base, tenant), "counted", 1) for base in todo))


def _backfill(base: str, tenant: str, namespaces: list[str]) -> Generator[Pipeline, Any, None]:
    if not namespaces:
        return
    keys = yield Pipeline(tuple(("ZRANGE", f"{base}n:{ns}", 0, -1) for ns in namespaces))
    items = [(ns, _text(k)) for ns, found in zip(namespaces, keys, strict=True) for k in found]
    for start in range(0, len(items), BACKFILL_CHUNK):
        chunk = items[start : start + BACKFILL_CHUNK]
        (records,) = yield Pipeline((("MGET", *(f"{base}r:{ns}\x00{k}" for ns, k in chunk)),))
        args: list[Any] = []
        for (ns, key), record in zip(chunk, records, strict=True):
            if record is not None:
                args += [ns, key, jsonb_size(_bytes(record).partition(b"\n")[2].decode())]
        if args:
            keys_ = (_sizes(base, tenant), _usage(base, tenant))
            yield Pipeline((script("backfill", keys_, (base, *args)),), scripted=True)
