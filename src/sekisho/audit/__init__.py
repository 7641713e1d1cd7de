"""Tamper-evident audit log, review queue and signed provenance.

    audit = AuditLog.from_settings(settings)
    audit.append("chat", {...}) -> AuditEntry(seq, hash); audit.verify() -> VerifyResult
    ReviewQueue(audit).hold / list / get / approve / edit / reject / release
    export_manifest(audit, seq, path); verify_manifest(path)
"""

from sekisho.audit.log import AuditEntry, AuditError, AuditLog, PruneResult, VerifyResult
from sekisho.audit.provenance import ProvenanceCheck, ProvenanceError, build_bundle, export_manifest, verify_manifest
from sekisho.audit.review import ReviewError, ReviewItem, ReviewPermissionError, ReviewQueue, ReviewStatus
from sekisho.audit.signing import SigningKeyError

__all__ = [
    "AuditEntry",
    "AuditError",
    "AuditLog",
    "ProvenanceCheck",
    "ProvenanceError",
    "PruneResult",
    "ReviewError",
    "ReviewItem",
    "ReviewPermissionError",
    "ReviewQueue",
    "ReviewStatus",
    "SigningKeyError",
    "VerifyResult",
    "build_bundle",
    "export_manifest",
    "verify_manifest",
]
