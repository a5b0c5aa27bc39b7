"""Compliance: the tamper-evident audit log, its checkpoints and witnesses (more to come).

What a verification catches, against someone who can write the audit tables (or keys)
but does not hold the audit key:
- always: an entry altered in place, removed, reordered or added after the head, a cut
  tail the head still counts, a head deleted while entries remain;
- with a key (HMAC chain, signed heads): a chain rewritten with recomputed hashes, forged
  entries, a tail cut with the head moved back to the new last entry (no MAC for it), a
  head with its MAC removed (reported as unsigned, never re-signed by the next append),
  a chain or head moved from another tenant;
- only with a witnessed checkpoint, keyed or not: a tail cut back to an old genuine head
  (kept by the insider; keyed, its MAC verifies), a wiped tenant (no entries, no head),
  and, unkeyed, any change at or before the checkpoint (the chain no longer reaches the
  witnessed hash). The window of exposure is what was appended after the last
  checkpoint: cut back to a point at or after it, the chain looks whole;
- from a checkpoint's window (the default with `since=`), entries before it are counted,
  not read: one changed in place there is seen by `verify(..., full=True)`.
An unkeyed log's checkpoints are unsigned, so they are worth what the witness's storage
is; a keyed log refuses a checkpoint it did not sign. The key's holder can rewrite
anything after the last checkpoint, and nothing before it unseen.
"""

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
