"""``--format json``: one object, ``{"summary": {...}, "results": [...]}``, stable field names (SPEC §8)."""

from __future__ import annotations

import json
from typing import Any

from policyengine.gate import Checked, CheckReport, resource_of
from policyengine.model import Result

SCHEMA_VERSION = 1


def result_dict(checked: Checked, result: Result) -> dict[str, Any]:
    doc = checked.document
    out: dict[str, Any] = {
        "policy": result.policy,
        "action": str(result.action),
        "outcome": "baselined" if checked.is_baselined(result) else str(result.outcome),
        "message": result.message,
        "category": result.category,
        "severity": result.severity,
        "resource": resource_of(doc.data, checked.decision.request),
        "source": {"file": doc.file, "line": checked.line_of(result)},
    }
    column = checked.column_of(result)
    if column is not None:
        out["source"]["column"] = column
    optional = {
        "validation": result.validation,
        "reason": result.reason,
        "code": result.code,
        "exception": result.exception,
        "fieldPath": result.field_path,
        "remediation": result.remediation or None,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out


def report_dict(report: CheckReport, *, strict: bool = False) -> dict[str, Any]:
    expired = sorted({e for c in report.checked for e in c.decision.exceptions_expired})
    files, charts = report.skipped_counts
    return {
        "version": SCHEMA_VERSION,
        "summary": {
            **report.summary().as_dict(),
            "exitCode": report.exit_code(strict=strict),
            "policySetDigest": report.policy_set_digest,
            "expiredExceptions": expired,
            "skippedFiles": files,
            "skippedCharts": charts,
            "unconfigured": [u.as_dict() for u in report.unconfigured],
        },
        "results": [result_dict(c, r) for c in report.checked for r in c.decision.violations],
        "skipped": [{"path": s.path, "kind": s.kind, "reason": s.reason} for s in report.skipped_files],
    }


def render(report: CheckReport, *, strict: bool = False) -> str:
    return json.dumps(report_dict(report, strict=strict), indent=2) + "\n"
