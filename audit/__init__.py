"""The signed, tamper-evident audit trail: every decision as an entry of an RFC 6962 Merkle log.

Public API (everything else is internal)::

    make_entry(*, time, source, uid, operation, resource, verdict, user="", groups=(),
               policy_set_digest="", results=(), exceptions=(), dry_run=False, commit=None) -> dict
    canonical(entry) -> bytes                         # RFC 8785, the bytes that are hashed
    audit.git.git_commit(directory) -> str | None      # for ``commit`` of ci entries

    log = AuditLog.open(path_or_url, signer=load_signer("audit.key"))   # SQLite path or postgresql://
    log.append(entry) -> int                          # index, once durable (group commit)
    log.query(Query(verdict="denied", namespace="ml", after=-1, limit=100)) -> list[LoggedEntry]
    log.checkpoint() -> str | None                    # latest C2SP checkpoint note
    log.prove(index) -> str                           # C2SP tlog-proof (entry bytes in `extra`)
    log.verify(verifier) -> VerifyReport              # re-hash all, check every checkpoint
    export(log, out_dir); verify_export(out_dir) -> VerifyReport
    log.close()

    keygen(origin, out_dir) -> KeyFiles               # audit.key (0600), audit.pub, audit.vkey
    load_signer(key_file, origin=None); load_verifier(pub_or_vkey_file, origin=None)
    verify_proof(proof_text, verifier, entry=None) -> (Checkpoint, entry bytes)

``log.submit(entry)`` returns a future instead of blocking; ``log.queue_depth`` feeds the queue metric.
``audit.cli.add_commands`` adds the ``audit`` verbs to an argparse sub-parser group and
``audit.api.create_app`` builds the auditors' read-only HTTP API. Errors are ``audit.errors.AuditError``
subclasses with stable ``code`` strings.
"""

from __future__ import annotations

from audit.checkpoint import Checkpoint
from audit.entry import canonical, make_entry
from audit.errors import AuditError
from audit.export import export, verify_export
from audit.keys import KeyFiles, keygen, load_signer, load_verifier
from audit.log import AuditLog, LoggedEntry
from audit.note import Signer, Verifier
from audit.proof import verify_proof
from audit.stores import Query
from audit.verify import VerifyReport

__all__ = [
    "AuditError",
    "AuditLog",
    "Checkpoint",
    "KeyFiles",
    "LoggedEntry",
    "Query",
    "Signer",
    "Verifier",
    "VerifyReport",
    "canonical",
    "export",
    "keygen",
    "load_signer",
    "load_verifier",
    "make_entry",
    "verify_export",
    "verify_proof",
]
