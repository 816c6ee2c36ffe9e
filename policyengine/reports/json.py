"""``--format json``: one object, ``{"summary": {...}, "results": [...]}``, stable field names (SPEC §8)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

from policyengine.gate import Checked, CheckReport, resource_of
from policyengine.model import Result
from policyengine.reports import streamjson

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
    return {**_head(report, strict=strict), "results": list(_results(report)), "skipped": _skipped(report)}


def _head(report: CheckReport, *, strict: bool) -> dict[str, Any]:
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
    }


def _results(report: CheckReport) -> Iterator[dict[str, Any]]:
    return (result_dict(c, r) for c in report.checked for r in c.decision.violations)


def _skipped(report: CheckReport) -> list[dict[str, str]]:
    return [{"path": s.path, "kind": s.kind, "reason": s.reason} for s in report.skipped_files]


def write(report: CheckReport, out: IO[str], *, strict: bool = False) -> None:
    """The report as ``json.dumps(report_dict(...), indent=2)`` writes it, result by result."""
    value = {**_head(report, strict=strict), "results": streamjson.placeholder("results")}
    value["skipped"] = streamjson.placeholder("skipped")
    streamjson.write(out, value, {"results": lambda: _results(report), "skipped": lambda: _skipped(report)})


def render(report: CheckReport, *, strict: bool = False) -> str:
    buffer = io.StringIO()
    write(report, buffer, strict=strict)
    return buffer.getvalue()
