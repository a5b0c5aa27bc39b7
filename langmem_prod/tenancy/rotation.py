"""Re-sealing a tenant's stored values under its current data key, in batches.

Rules:
- a pass pages through the tenant's stored values (`stored_values`) and replaces, by
  compare and set, each value sealed with another data key, and each value stored in
  clear while the tenant encrypts, by the same value sealed with the current key (bound
  to the item's unchanged `updated_at`);
- a replacement that lost to a concurrent write is skipped: that write sealed with the
  current key already; passes repeat until one finds nothing to do (or `max_passes`);
- when a pass finds nothing to do and the tenant's `encryption` setting is on, the
  vault is told to enforce the tenant: from then on a value found in clear is refused
  (this ends the migration of a tenant that turned encryption on while it had data;
  start it once every process has seen the new setting, i.e. `refresh_seconds` after);
- only the value changes: timestamps, TTLs and vectors stay, and nothing is re-embedded;
- the store serves reads and writes throughout: each page and each batch of
  replacements is one short round trip. Data-key rotation is `vault.rotate(tenant)`
  then this job; master-key rotation is `vault.rewrap()` and touches no data;
- the job is one generator of requests, driven by `rotate` and `arotate`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from langmem_prod.errors import KeyShreddedError
from langmem_prod.security.envelope import split
from langmem_prod.store._namespace import decode_namespace
from langmem_prod.store._stored import Replacement, StoredPage, StoredValue
from langmem_prod.store._tenant import TENANT_ROOT
from langmem_prod.store._values import decode_value
from langmem_prod.tenancy.encryption import TenantEncryption, aad, sealed_blob
from langmem_prod.tenancy.tenants import check_tenant_id


@dataclass
class RotationReport:
    """What a rotation did: items read, re-sealed, sealed from clear, lost to writers.

    `enforced`: whether the vault now enforces the tenant (nothing of it left in clear).
    """

    tenant: str
    scanned: int = 0
    resealed: int = 0
    sealed_from_clear: int = 0
    skipped: int = 0
    passes: int = 0
    enforced: bool = False


@dataclass(frozen=True, slots=True)
class _Page:
    cursor: Any


@dataclass(frozen=True, slots=True)
class _Replace:
    replacements: list[Replacement]


@dataclass(frozen=True, slots=True)
class _Prepare:
    pass


@dataclass(frozen=True, slots=True)
class _Enforce:
    pass


def _rotated(
    encryption: TenantEncryption, tenant: str, current: str, row: StoredValue
) -> tuple[Replacement, bool] | None:
    """The replacement of one stored value, and whether it was in clear; None if current."""
    stored = decode_value(row.value_json)
    namespace = decode_namespace(row.prefix)
    blob = sealed_blob(stored)
    if blob is not None:
        if split(blob)[0] == current:
            return None
        bound = aad(tenant, namespace, row.key, row.updated_at)
        clear = encryption.envelope.open(tenant, blob, bound)
        value = decode_value(clear)
    elif encryption.encrypts(namespace):
        value, clear = stored, row.value_json.encode()
    else:
        return None
    new = encryption.seal_for(
        tenant, namespace, row.key, clear, value=value, written_at=row.updated_at
    )
    replacement = Replacement(
        row.prefix,
        row.key,
        row.value_json,
        json.dumps(new, ensure_ascii=False, separators=(",", ":")),
    )
    return replacement, blob is None


def _current_key(encryption: TenantEncryption, tenant: str) -> str:
    keys = encryption.envelope.tenant_keys(tenant)
    if keys is None or keys.current is None:
        raise KeyShreddedError(
            f"tenant {tenant!r} has no current data key (shredded, or never created): "
            "there is nothing to re-seal its values with"
        )
    return keys.current


def rotation_gen(
    encryption: TenantEncryption, tenant: str, max_passes: int
) -> Generator[_Page | _Replace | _Prepare | _Enforce, Any, RotationReport]:
    """The rotation of one tenant, as requests for pages, replacements and key loading."""
    report = RotationReport(tenant)
    while report.passes < max_passes:
        report.passes += 1
        yield _Prepare()
        current = _current_key(encryption, tenant)
        found, cursor = 0, None
        while True:
            page: StoredPage = yield _Page(cursor)
            report.scanned += len(page.values)
            todo = [r for row in page.values if (r := _rotated(encryption, tenant, current, row))]
            if todo:
                found += len(todo)
                done = yield _Replace([r for r, _ in todo])
                report.skipped += len(todo) - done
                report.resealed += sum(1 for _, clear in todo if not clear)
                report.sealed_from_clear += sum(1 for _, clear in todo if clear)
            cursor = page.cursor
            if cursor is None:
                break
        if not found:
            report.enforced = bool((yield _Enforce()))
            break
    return report


def _enforce(encryption: TenantEncryption, tenant: str) -> bool:
    """Have the vault enforce the tenant if its setting encrypts; whether it now does."""
    keys = encryption.vault.keys(tenant)
    if keys is not None and keys.enforced:
        return True
    if not encryption.encrypts((TENANT_ROOT, tenant)):
        return False
    return encryption.vault.enforce(tenant, True).enforced


def rotate(
    store: Any,
    encryption: TenantEncryption,
    tenant: str,
    *,
    batch_size: int = 200,
    max_passes: int = 5,
) -> RotationReport:
    """Re-seal every value of `tenant` in a sync store under its current data key."""
    prefix = (TENANT_ROOT, check_tenant_id(tenant))
    gen = rotation_gen(encryption, tenant, max_passes)
    reply: Any = None
    try:
        while True:
            request = gen.send(reply)
            if isinstance(request, _Prepare):
                encryption.forget(tenant)
                encryption.prepare([prefix])
                reply = None
            elif isinstance(request, _Enforce):
                reply = _enforce(encryption, tenant)
            elif isinstance(request, _Page):
                reply = store.stored_values(prefix, cursor=request.cursor, limit=batch_size)
            else:
                reply = store.replace_stored_values(request.replacements)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arotate(
    store: Any,
    encryption: TenantEncryption,
    tenant: str,
    *,
    batch_size: int = 200,
    max_passes: int = 5,
) -> RotationReport:
    """Async `rotate`, for an async store."""
    prefix = (TENANT_ROOT, check_tenant_id(tenant))
    gen = rotation_gen(encryption, tenant, max_passes)
    reply: Any = None
    try:
        while True:
            request = gen.send(reply)
            if isinstance(request, _Prepare):
                encryption.forget(tenant)
                await encryption.aprepare([prefix])
                reply = None
            elif isinstance(request, _Enforce):
                reply = await asyncio.to_thread(_enforce, encryption, tenant)
            elif isinstance(request, _Page):
                reply = await store.stored_values(prefix, cursor=request.cursor, limit=batch_size)
            else:
                reply = await store.replace_stored_values(request.replacements)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
