"""Tenants and plans: who a tenant is and what it may do, as values (no I/O).

Rules:
- a tenant has an id (a namespace label: letters, digits, `_` and `-`, at most 64), a
  name, a plan, overrides of the plan's settings, allowed agents (None: any), a
  data-residency label and a status ("active" or "suspended");
- a setting is the tenant's override when it has one, else its plan's default;
- with `audit` on, the operations in `audit_ops` are recorded (default: writes);
- PII redaction ("off", "mask" or "hash", of `pii_kinds` or every kind) applies to
  values and messages before they are stored;
- `index_sealed` lets an encrypting tenant's sealed fields feed semantic-search
  vectors, which give their text away (see `tenancy.encryption`): off in every plan;
- isolation decides the namespace prefix every operation is scoped to: "strict" is
  tenant + agent + user, "moderate" tenant + user, "minimal" the tenant alone; a missing
  agent or user is the label `NO_ID` ("_"), which no agent or user id may be (nor "*",
  a wildcard of namespace listings, nor anything that is not a namespace label), so the
  partition of "no user" is nobody else's;
- `rate_per_second` and `burst` are the tenant's rate limit (None: unlimited), which
  `TenantStore` and tenant-aware histories enforce through a limiter;
- settings and ids are checked when a tenant is made, with messages naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, get_args

import orjson

from langmem_prod.errors import ConfigurationError, InvalidInputError
from langmem_prod.security.pii import RULES
from langmem_prod.store._tenant import TENANT_ROOT
from langmem_prod.tenancy._bucket import RateLimit, check_rate_settings, rate_limit
from langmem_prod.tenancy._scope import NO_ID, check_scope_id

Isolation = Literal["strict", "moderate", "minimal"]
PiiMode = Literal["off", "mask", "hash"]
Status = Literal["active", "suspended"]
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class Plan:
    """Default settings of the tenants on a plan (None: unlimited / kept forever)."""

    name: str
    max_items: int | None
    max_bytes: int | None
    retention_days: int | None
    isolation: Isolation
    encryption: bool
    audit: bool
    pii: PiiMode = "off"
    pii_kinds: tuple[str, ...] | None = None
    audit_ops: tuple[str, ...] = ("put", "delete")
    index_sealed: bool = False
    rate_per_second: float | None = None
    burst: int | None = None


PLANS: dict[str, Plan] = {
    "free": Plan(
        "free", 1_000, 10 * MiB, 30, "moderate", False, False, rate_per_second=10, burst=20
    ),
    "pro": Plan(
        "pro", 100_000, 1024 * MiB, 365, "moderate", True, True, rate_per_second=100, burst=200
    ),
    "enterprise": Plan("enterprise", None, None, None, "strict", True, True),
}
SETTINGS = (
    "max_items",
    "max_bytes",
    "retention_days",
    "isolation",
    "encryption",
    "audit",
    "pii",
    "pii_kinds",
    "audit_ops",
    "index_sealed",
    "rate_per_second",
    "burst",
)
AUDITABLE = ("get", "search", "list", "put", "delete")
# Quotas are PostgreSQL bigints (and Redis integers); retention is at most 100 years.
_COUNT_LIMITS = {"max_items": 2**63 - 1, "max_bytes": 2**63 - 1, "retention_days": 36_500}


def check_tenant_id(value: object) -> str:
    """A tenant id, checked (it becomes a namespace label).

    >>> check_tenant_id("acme-eu_1")
    'acme-eu_1'
    """
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInputError(
            "a tenant id is 1-64 letters, digits, '_' or '-', starting with a letter or digit"
        )
    return value


def check_settings(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Plan overrides, checked by name and type."""
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise ConfigurationError(f"unknown tenant settings {sorted(unknown)}; use {list(SETTINGS)}")
    for name, most in _COUNT_LIMITS.items():
        value = overrides.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most
        ):
            raise ConfigurationError(f"{name} must be an int from 0 to {most}, or None")
    if "isolation" in overrides and overrides["isolation"] not in get_args(Isolation):
        raise ConfigurationError(f"isolation must be one of {list(get_args(Isolation))}")
    for name in ("encryption", "audit", "index_sealed"):
        if name in overrides and not isinstance(overrides[name], bool):
            raise ConfigurationError(f"{name} must be a bool")
    if "pii" in overrides and overrides["pii"] not in get_args(PiiMode):
        raise ConfigurationError(f"pii must be one of {list(get_args(PiiMode))}")
    check_rate_settings(overrides.get("rate_per_second"), overrides.get("burst"))
    checked = dict(overrides)
    kinds = overrides.get("pii_kinds")
    if kinds is not None:
        known = sorted({rule.kind for rule in RULES})
        if isinstance(kinds, str) or not set(kinds) <= set(known):
            raise ConfigurationError(f"pii_kinds must be a list of {known}, or None for all")
        checked["pii_kinds"] = sorted(kinds)
    ops = overrides.get("audit_ops")
    if ops is not None:
        if isinstance(ops, str) or not set(ops) <= set(AUDITABLE):
            raise ConfigurationError(f"audit_ops must be a list of {list(AUDITABLE)}")
        checked["audit_ops"] = sorted(ops)
    return checked


@dataclass(frozen=True, slots=True)
class Tenant:
    """A registered tenant; settings resolve to the overrides, else the plan's defaults.

    Example:
        >>> acme = Tenant("acme", "Acme", "free", overrides={"max_items": 50})
        >>> acme.max_items, acme.isolation, acme.scope(agent_id="bot", user_id="ada")
        (50, 'moderate', ('tenants', 'acme', 'ada'))
    """

    id: str
    name: str
    plan: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    allowed_agents: frozenset[str] | None = None
    residency: str | None = None
    status: Status = "active"
    created_at: datetime | None = None

    def __post_init__(self) -> None:
        check_tenant_id(self.id)
        if self.plan not in PLANS:
            raise ConfigurationError(f"unknown plan {self.plan!r}; use one of {sorted(PLANS)}")
        if self.status not in get_args(Status):
            raise ConfigurationError("status must be 'active' or 'suspended'")
        object.__setattr__(self, "overrides", check_settings(self.overrides))

    def setting(self, name: str) -> Any:
        """The tenant's value of a plan setting."""
        if name in self.overrides:
            return self.overrides[name]
        return getattr(PLANS[self.plan], name)

    @property
    def max_items(self) -> int | None:
        """How many items the tenant may keep (None: unlimited)."""
        return self.setting("max_items")  # type: ignore[no-any-return]

    @property
    def max_bytes(self) -> int | None:
        """How many bytes of values the tenant may keep (None: unlimited)."""
        return self.setting("max_bytes")  # type: ignore[no-any-return]

    @property
    def retention_days(self) -> int | None:
        """How long the tenant's data is kept (None: forever)."""
        return self.setting("retention_days")  # type: ignore[no-any-return]

    @property
    def isolation(self) -> Isolation:
        """How finely the tenant's data is partitioned."""
        return self.setting("isolation")  # type: ignore[no-any-return]

    @property
    def encryption(self) -> bool:
        """Whether the tenant's values are encrypted at rest."""
        return bool(self.setting("encryption"))

    @property
    def index_sealed(self) -> bool:
        """Whether sealed fields may feed semantic-search vectors (they reveal the text)."""
        return bool(self.setting("index_sealed"))

    @property
    def audit(self) -> bool:
        """Whether the tenant's operations are audited."""
        return bool(self.setting("audit"))

    @property
    def audit_ops(self) -> frozenset[str]:
        """The operations audited when `audit` is on (default: puts and deletes)."""
        return frozenset(self.setting("audit_ops"))

    @property
    def pii(self) -> PiiMode:
        """How PII is redacted before the tenant's data is stored ("off": kept)."""
        return self.setting("pii")  # type: ignore[no-any-return]

    @property
    def pii_kinds(self) -> tuple[str, ...] | None:
        """The kinds of PII redacted (None: every kind)."""
        kinds = self.setting("pii_kinds")
        return None if kinds is None else tuple(kinds)

    @property
    def rate_limit(self) -> RateLimit | None:
        """The tenant's rate limit (None: unlimited); burst defaults to one second's worth."""
        return rate_limit(self.setting("rate_per_second"), self.setting("burst"))

    def scope(self, *, agent_id: str | None = None, user_id: str | None = None) -> tuple[str, ...]:
        """The namespace prefix an agent acting for a user is confined to.

        A missing agent or user is `NO_ID`, a label no id may take (`check_scope_id`).
        """
        agent = check_scope_id("agent_id", agent_id) or NO_ID
        user = check_scope_id("user_id", user_id) or NO_ID
        parts: list[str] = [TENANT_ROOT, self.id]
        if self.isolation == "strict":
            parts += [agent, user]
        elif self.isolation == "moderate":
            parts.append(user)
        return tuple(parts)

    def with_changes(self, **changes: Any) -> Tenant:
        """A copy with fields or settings changed (settings go to the overrides)."""
        settings = {k: changes.pop(k) for k in list(changes) if k in SETTINGS}
        if "allowed_agents" in changes and changes["allowed_agents"] is not None:
            changes["allowed_agents"] = frozenset(changes["allowed_agents"])
        return replace(self, overrides={**self.overrides, **settings}, **changes)


def agents(value: Iterable[str] | None) -> frozenset[str] | None:
    """Allowed agents as a frozen set (None: any agent)."""
    return None if value is None else frozenset(value)


def settings_json(tenant: Tenant) -> bytes:
    """What a registry stores of a tenant besides its id, name, plan and status."""
    return orjson.dumps(
        {
            "overrides": dict(tenant.overrides),
            "allowed_agents": None
            if tenant.allowed_agents is None
            else sorted(tenant.allowed_agents),
            "residency": tenant.residency,
        }
    )


def tenant_from(row: Sequence[Any]) -> Tenant:
    """A tenant from a registry row: (id, name, plan, settings JSON, status, created_at)."""
    tenant_id, name, plan, settings, status, created_at = row
    data = orjson.loads(settings) if isinstance(settings, bytes | str) else settings
    return Tenant(
        tenant_id,
        name,
        plan,
        overrides=data.get("overrides") or {},
        allowed_agents=agents(data.get("allowed_agents")),
        residency=data.get("residency"),
        status=status,
        created_at=created_at,
    )
