"""Compliance: the tamper-evident audit log, its checkpoints and witnesses (more to come)."""

from langmem_prod.compliance._chain import AuditEntry, Problem, verify_chain
from langmem_prod.compliance._checkpoint import Checkpoint
from langmem_prod.compliance._protocol import AuditLog
from langmem_prod.compliance.audit import PostgresAuditLog
from langmem_prod.compliance.redis_audit import RedisAuditLog
from langmem_prod.compliance.witness import FileWitness, Witness

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Checkpoint",
    "FileWitness",
    "PostgresAuditLog",
    "Problem",
    "RedisAuditLog",
    "Witness",
    "verify_chain",
]
