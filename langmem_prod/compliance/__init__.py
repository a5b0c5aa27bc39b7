"""Compliance: the tamper-evident audit log (and, to come, retention, erase and export)."""

from langmem_prod.compliance._chain import AuditEntry, Problem, verify_chain
from langmem_prod.compliance._log import AuditLog
from langmem_prod.compliance.audit import PostgresAuditLog
from langmem_prod.compliance.redis_audit import RedisAuditLog

__all__ = [
    "AuditEntry",
    "AuditLog",
    "PostgresAuditLog",
    "Problem",
    "RedisAuditLog",
    "verify_chain",
]
