"""The audit package's public surface is small and pinned."""

from __future__ import annotations

import subprocess
import sys

import audit


def test_exported_members() -> None:
    assert sorted(audit.__all__) == [
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
    assert all(hasattr(audit, name) for name in audit.__all__)


def test_importing_audit_pulls_in_neither_webhook_nor_the_database_drivers() -> None:
    code = "import sys, audit, audit.cli, audit.api; print(sorted(m for m in sys.modules if m.split('.')[0] in ('webhook', 'psycopg')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
