r"""Stored values in Redis: pages under a prefix, compare-and-set replacements in Lua.

Rules:
- a page walks the shards that can hold the prefix, in each the registry's namespaces
  under it (lexicographic), and in each namespace its index by rank, reading records
  with MGET; the cursor is (shard, registry bound, rank), so every page costs two or
  three round trips whatever how far the job has got;
- a record is "<head>\n<value JSON>" (see `_lua`); a replacement rewrites the JSON part
  only if it still equals the one read, keeping the head and the key's expiry (KEEPTTL);
  it runs as one script per shard (`_lua.REPLACE`), atomically, and keeps the tenant's
  usage (see `_quota`) in step with the new size (no quota check: a replacement never
  adds an item).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any

from langmem_prod.store._stored import Replacement, StoredPage, StoredValue
from langmem_prod.store._tenant import tenant_of_text
from langmem_prod.store.redis._effects import Pipeline, script
from langmem_prod.store.redis._gen import RedisConfig, _bytes, _record, _text
from langmem_prod.store.redis._keys import KeyLayout, registry_range
from langmem_prod.store.redis._quota import jsonb_size

Cursor = tuple[int, str, int]  # shard position, registry bound, rank in the namespace


def page_gen(
    cfg: RedisConfig, prefix: str, cursor: Cursor | None, limit: int
) -> Generator[Pipeline, Any, StoredPage]:
    """Up to `limit` stored values of one namespace under `prefix`, from `cursor`."""
    bases = cfg.bases_under(prefix)
    low, high = registry_range(prefix)
    shard, bound, rank = cursor or (0, low, 0)
    while shard < len(bases):
        base = bases[shard]
        (members,) = yield Pipeline(
            (("ZRANGE", KeyLayout.registry(base), bound, high, "BYLEX", "LIMIT", 0, 1),)
        )
        if not members:
            shard, bound, rank = shard + 1, low, 0
            continue
        member = _text(members[0])
        namespace = member.replace("\x00", ".")
        (keys,) = yield Pipeline((("ZRANGE", f"{base}n:{namespace}", rank, rank + limit - 1),))
        if not keys:
            bound, rank = "(" + member, 0
            continue
        names = [_text(k) for k in keys]
        (records,) = yield Pipeline((("MGET", *(_record(cfg, namespace, k) for k in names)),))
        values = [
            _stored_value(namespace, k, _bytes(r))
            for k, r in zip(names, records, strict=True)
            if r is not None
        ]
        return StoredPage(values, (shard, "[" + member, rank + len(names)))
    return StoredPage([], None)


def _stored_value(namespace: str, key: str, record: bytes) -> StoredValue:
    head, _, value = record.partition(b"\n")
    updated = datetime.fromisoformat(head.split(b" ", 2)[1].decode())
    return StoredValue(namespace, key, value.decode(), updated)


def _replace_args(r: Replacement) -> tuple[str, ...]:
    size = "" if tenant_of_text(r.prefix) is None else str(jsonb_size(r.new_json))
    return (r.prefix, r.key, r.old_json, r.new_json, size)


def replace_gen(
    cfg: RedisConfig, replacements: Sequence[Replacement]
) -> Generator[Pipeline, Any, int]:
    """Apply compare-and-set replacements, one script per shard in one pipeline."""
    by_shard: dict[str, list[Replacement]] = defaultdict(list)
    for r in replacements:
        by_shard[cfg.base(r.prefix)].append(r)
    commands = tuple(
        script(
            "replace",
            tuple(_record(cfg, r.prefix, r.key) for r in group),
            (base, *(arg for r in group for arg in _replace_args(r))),
        )
        for base, group in by_shard.items()
    )
    if not commands:
        return 0
    counts = yield Pipeline(commands, scripted=True)
    return sum(int(c) for c in counts)
