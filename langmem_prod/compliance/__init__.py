"""Compliance: the tamper-evident audit log (and, to come, retention, erase and export)."""

from langmem_prod.compliance._chain import AuditEntry, Problem, verify_chain
from langmem_prod.compliance.audit import PostgresAuditLog

__all__ = ["AuditEntry", "PostgresAuditLog", "Problem", "verify_chain"]
