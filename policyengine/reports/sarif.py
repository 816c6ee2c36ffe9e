"""``--format sarif``: a SARIF 2.1.0 log for code-scanning tools (GitHub code scanning, GitLab, Azure DevOps).

One run: ``tool.driver.rules`` are the loaded policies; every failure, evaluation error and excepted
failure is a result at the line (and column) of the field it concerns, with a fingerprint that does not
move with line numbers, so alerts stay the same alert across commits. Excepted failures carry a SARIF
suppression naming the PolicyException. Files and Helm charts the directory walk left out are
``toolExecutionNotifications`` of level note, each saying why.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import IO, Any
from urllib.parse import quote

from policyengine import errors
from policyengine.discovery import Skipped
from policyengine.gate import CheckReport, resource_of
from policyengine.model import Outcome, Policy, Result
from policyengine.reports import streamjson
from policyengine.reports.finding import Finding, file_uri, findings, relative_path, severity_word
from policyengine.requirements import Unconfigured, needs_text
from policyengine.results import primary_action

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
TOOL_NAME = "policyengine"
INFORMATION_URI = "https://policyengine.io"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "policyengine/v1"


@functools.cache  # a scan of the installed distributions (a millisecond, most of a megabyte held meanwhile)
def tool_version() -> str:
    try:
        return metadata.version("policyengine")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def fingerprint(rule_id: str, path: str, resource: str, validation: int | None, message: str) -> str:
    """Stable across runs and line moves: what is wrong, in which file, on which resource."""
    parts = (rule_id, path, resource, "" if validation is None else str(validation), message)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _text_and_markdown(text: str, markdown: str | None = None) -> dict[str, str]:
    return {"text": text, "markdown": markdown if markdown is not None else text}


def rule(policy: Policy, base: str) -> dict[str, Any]:
    """A reportingDescriptor for one policy (``base``: the folder its file is named relative to)."""
    description = policy.description or f"Policy {policy.name}"
    help_text = policy.remediation or description
    markdown = f"**{policy.name}**\n\n{description}"
    if policy.remediation:
        markdown += f"\n\n**Remediation:** {policy.remediation}"
    where = relative_path(policy.source.file, base)
    if where is not None:  # bundled packs live in site-packages: a path that differs on every machine
        markdown += f"\n\nDefined in `{where}` (line {policy.source.line})."
    tags = [t for t in ("policyengine", policy.category) if t]
    properties: dict[str, Any] = {"tags": tags, "precision": "very-high"}
    if policy.category:
        properties["category"] = policy.category
    if policy.severity:
        properties["severity"] = policy.severity
    actions = sorted(str(a) for a in policy.actions)
    properties["actions"] = actions
    return {
        "id": policy.name,
        "name": policy.name,
        "shortDescription": {"text": policy.description.split("\n", 1)[0] or policy.name},
        "fullDescription": {"text": description},
        "help": _text_and_markdown(help_text, markdown),
        "defaultConfiguration": {"level": severity_word(primary_action(policy.actions))},
        "properties": properties,
    }


def _rule_from_result(result: Result) -> dict[str, Any]:
    """A rule for a result whose policy is not among the loaded policies (it should not happen)."""
    return {
        "id": result.policy,
        "shortDescription": {"text": result.policy},
        "defaultConfiguration": {"level": severity_word(result.action)},
        "properties": {"tags": ["policyengine"]},
    }


def _artifact_location(finding: Finding, base: str) -> dict[str, Any]:
    if finding.path is not None:
        return {"uri": quote(finding.path), "uriBaseId": SRCROOT}
    if finding.file == "<stdin>":
        return {"uri": quote("stdin")}
    return {"uri": file_uri(finding.file, base)}


def sarif_result(finding: Finding, rule_index: int, base: str, baseline: bool = False) -> dict[str, Any]:
    r, checked = finding.result, finding.checked
    resource = resource_of(checked.document.data, checked.decision.request)
    region: dict[str, int] = {"startLine": finding.line}
    if finding.column is not None:
        region["startColumn"] = finding.column
    logical_name = resource["name"] or resource["kind"]
    out: dict[str, Any] = {
        "ruleId": r.policy,
        "ruleIndex": rule_index,
        "level": severity_word(r.action),
        "kind": "fail",
        "message": {"text": finding.text or f"policy {r.policy} failed"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact_location(finding, base),
                    "region": region,
                },
                "logicalLocations": [
                    {
                        "name": logical_name,
                        "fullyQualifiedName": finding.resource,
                        "kind": "resource",
                    }
                ],
            }
        ],
        "partialFingerprints": {
            FINGERPRINT_KEY: fingerprint(
                r.policy, finding.path or finding.file, finding.resource, r.validation, r.message
            )
        },
        "properties": {
            "action": str(r.action),
            "outcome": "baselined" if finding.is_baselined else str(r.outcome),
            "resource": resource,
            **({"fieldPath": r.field_path} if r.field_path else {}),
            **({"code": r.code} if r.code else {}),
            **({"category": r.category} if r.category else {}),
            **({"severity": r.severity} if r.severity else {}),
        },
    }
    if baseline:
        out["baselineState"] = "unchanged" if finding.is_baselined else "new"
    if r.outcome is Outcome.EXCEPTED:
        out["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": f"PolicyException {r.exception}"}
        ]
    return out


def _notification(finding: Finding, base: str) -> dict[str, Any]:
    region: dict[str, int] = {"startLine": finding.line}
    if finding.column is not None:
        region["startColumn"] = finding.column
    return {
        "level": "error",
        "message": {"text": f"{finding.result.policy} on {finding.resource}: {finding.text}"},
        "descriptor": {"id": finding.result.code or "eval_error"},
        "locations": [
            {"physicalLocation": {"artifactLocation": _artifact_location(finding, base), "region": region}}
        ],
    }


def _skip_notification(skipped: Skipped, base: str) -> dict[str, Any]:
    where = relative_path(skipped.path, base)
    artifact = (
        {"uri": quote(where), "uriBaseId": SRCROOT}
        if where is not None
        else {"uri": file_uri(skipped.path, base)}
    )
    return {
        "level": "note",
        "descriptor": {"id": "helm_chart" if skipped.kind == "chart" else "not_a_manifest"},
        "message": {"text": f"skipped: {skipped.reason}"},
        "locations": [{"physicalLocation": {"artifactLocation": artifact}}],
    }


def _unconfigured_notification(missing: Unconfigured, rule_index: int | None) -> dict[str, Any]:
    """A policy not evaluated for want of config facts: a note, pointing at its rule."""
    rule_ref: dict[str, Any] = {"id": missing.policy}
    if rule_index is not None:
        rule_ref["index"] = rule_index
    return {
        "level": "note",
        "descriptor": {"id": errors.NOT_CONFIGURED},
        "associatedRule": rule_ref,
        "message": {
            "text": f"{missing.policy} was not evaluated: it needs GovernanceConfig {needs_text(missing.needs)}"
        },
        "properties": {"needs": list(missing.needs)},
    }


def _unique(policies: Iterable[Policy]) -> list[Policy]:
    seen: dict[str, Policy] = {}
    for p in policies:
        seen.setdefault(p.name, p)
    return list(seen.values())


def report_dict(report: CheckReport, *, base: str, strict: bool = False) -> dict[str, Any]:
    """The SARIF log as a JSON value. ``base`` is the absolute folder file URIs are relative to."""
    rules, index = _rules(report, base)
    return _log(
        report,
        base,
        strict,
        rules,
        notifications=list(_notifications(report, base, index)),
        results=list(_results(report, base, index)),
    )


def write(report: CheckReport, out: IO[str], *, base: str, strict: bool = False) -> None:
    """The log as ``json.dumps(report_dict(...), indent=2)`` writes it, notification by notification
    and result by result: the findings are read once for the rules, then once for each list."""
    rules, index = _rules(report, base)
    value = _log(
        report,
        base,
        strict,
        rules,
        notifications=streamjson.placeholder("notifications"),
        results=streamjson.placeholder("results"),
    )
    lists = {
        "notifications": lambda: _notifications(report, base, index),
        "results": lambda: _results(report, base, index),
    }
    streamjson.write(out, value, lists)


def render(report: CheckReport, *, base: str, strict: bool = False) -> str:
    buffer = io.StringIO()
    write(report, buffer, base=base, strict=strict)
    return buffer.getvalue()


def _rules(report: CheckReport, base: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The loaded policies' rules, then one for each other policy a finding names, with their indexes."""
    rules = [rule(p, base) for p in _unique(report.policies)]
    index = {r["id"]: i for i, r in enumerate(rules)}
    for finding in findings(report, base):
        name = finding.result.policy
        if name not in index:
            index[name] = len(rules)
            rules.append(_rule_from_result(finding.result))
    return rules, index


def _results(report: CheckReport, base: str, index: dict[str, int]) -> Iterator[dict[str, Any]]:
    baseline = report.baseline_fixed is not None
    for finding in findings(report, base):
        yield sarif_result(finding, index[finding.result.policy], base, baseline)


def _notifications(report: CheckReport, base: str, index: dict[str, int]) -> Iterator[dict[str, Any]]:
    for finding in findings(report, base):
        if finding.is_error:
            yield _notification(finding, base)
    yield from (_skip_notification(s, base) for s in report.skipped_files)
    yield from (_unconfigured_notification(u, index.get(u.policy)) for u in report.unconfigured)


def _log(
    report: CheckReport,
    base: str,
    strict: bool,
    rules: list[dict[str, Any]],
    *,
    notifications: Any,
    results: Any,
) -> dict[str, Any]:
    base_uri = file_uri(".", base).rstrip("/") + "/"
    invocation: dict[str, Any] = {
        "executionSuccessful": True,
        "exitCode": report.exit_code(strict=strict),
        "toolExecutionNotifications": notifications,
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": TOOL_NAME,
                        "version": tool_version(),
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "invocations": [invocation],
                "originalUriBaseIds": {SRCROOT: {"uri": base_uri}},
                "columnKind": "unicodeCodePoints",
                "results": results,
                "properties": {
                    "policySetDigest": report.policy_set_digest,
                    "summary": report.summary().as_dict(),
                },
            }
        ],
    }
