"""Which tenant owns a namespace: the label after "tenants" (no I/O).

Rules:
- a namespace ("tenants", <id>, ...) belongs to tenant <id>; any other namespace, and
  ("tenants",) itself, to none;
- its text form (labels joined by ".") says the same; the SQL and Lua twins
  (`postgres._rls.TENANT_OF_PREFIX`, the Redis prelude's `tenant_of`) agree with it.
"""

from __future__ import annotations

TENANT_ROOT = "tenants"
_TEXT_PREFIX = TENANT_ROOT + "."


def tenant_of(namespace: tuple[str, ...]) -> str | None:
    """The tenant owning a namespace, or None.

    >>> tenant_of(("tenants", "acme", "ada")), tenant_of(("tenants",)), tenant_of(("users",))
    ('acme', None, None)
    """
    if len(namespace) >= 2 and namespace[0] == TENANT_ROOT:
        return namespace[1]
    return None


def tenant_of_text(prefix: str) -> str | None:
    """The tenant owning a namespace given as its text form, or None.

    >>> tenant_of_text("tenants.acme.ada"), tenant_of_text("tenants"), tenant_of_text("users.u1")
    ('acme', None, None)
    """
    if not prefix.startswith(_TEXT_PREFIX):
        return None
    return prefix.split(".", 2)[1]
