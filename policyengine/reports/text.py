"""``--format text``: for people. Findings grouped by file and resource, remediation under each, one
summary line; coloured when writing to a terminal."""

from __future__ import annotations

import io
from typing import IO

from policyengine.gate import CheckReport
from policyengine.model import Action, Outcome, Result
from policyengine.requirements import NOT_CONFIGURED, needs_text

UNCONFIGURED_HINT = (
    "not-configured policies were not evaluated and denied nothing: give their keys with --config; "
    "--require-config makes them an error"
)
_COLOURS = {"red": "31", "yellow": "33", "green": "32", "dim": "2", "bold": "1", "cyan": "36"}


class _Paint:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, colour: str, text: str) -> str:
        return f"\033[{_COLOURS[colour]}m{text}\033[0m" if self.enabled else text


def _label(result: Result, paint: _Paint, baselined: bool) -> str:
    if baselined:
        return paint("dim", f"BASELINED ({result.action})")
    if result.outcome is Outcome.EXCEPTED:
        return paint("dim", f"EXCEPTED ({result.exception})")
    if result.outcome is Outcome.ERROR:
        return (
            paint("red", "ERROR")
            if result.action is Action.DENY
            else paint("yellow", f"ERROR ({result.action})")
        )
    if result.action is Action.DENY:
        return paint("red", "DENY")
    if result.action is Action.WARN:
        return paint("yellow", "WARN")
    return paint("cyan", "AUDIT")


def render(report: CheckReport, *, color: bool = False, strict: bool = False) -> str:
    buffer = io.StringIO()
    write(report, buffer, color=color, strict=strict)
    return buffer.getvalue()


def write(report: CheckReport, out: IO[str], *, color: bool = False, strict: bool = False) -> None:
    """The report, line by line as the findings are read."""
    paint = _Paint(color)
    lines = _Lines(out)
    current_file = None
    for checked in report.checked:
        findings = checked.decision.violations
        if not findings:
            continue
        doc, req = checked.document, checked.decision.request
        if doc.file != current_file:
            current_file = doc.file
            lines.append(paint("bold", doc.file))
        where = f"{req.namespace}/" if req.namespace else ""
        lines.append(f"  {req.kind.kind} {where}{req.name} {paint('dim', f'(line {doc.line})')}")
        for r in findings:
            line = checked.line_of(r)
            lines.append(
                f"    {_label(r, paint, checked.is_baselined(r))} {r.policy}: {r.message} {paint('dim', f'[{doc.file}:{line}]')}"
            )
            if r.remediation and r.outcome is not Outcome.EXCEPTED and not checked.is_baselined(r):
                lines.append(f"      {paint('dim', 'fix:')} {r.remediation}")
    expired = dict.fromkeys(name for c in report.checked for name in c.decision.exceptions_expired)
    for name in expired:
        lines.append(paint("yellow", f"note: policy exception {name!r} has expired and was ignored"))
    for chart in (s for s in report.skipped_files if s.kind == "chart"):
        lines.append(paint("yellow", f"note: {chart.path}: {chart.reason}"))
    for missing in report.unconfigured:
        lines.append(
            paint(
                "yellow",
                f"note: {NOT_CONFIGURED}: {missing.policy} needs GovernanceConfig {needs_text(missing.needs)}",
            )
        )
    if report.unconfigured:
        lines.append(paint("dim", UNCONFIGURED_HINT))
    files, _ = report.skipped_counts
    if files:
        lines.append(
            paint("dim", f"skipped {files} files that are not Kubernetes manifests (--verbose lists them)")
        )
    s = report.summary()
    verdict = report.exit_code(strict=strict)
    status = paint("green", "PASS") if verdict == 0 else paint("red", "FAIL")
    lines.append(
        f"{status}: {s.resources} resources, {s.evaluated} checks: {s.passed} passed, {s.failed} denied, "
        f"{s.warned} warnings, {s.errors} errors, {s.excepted} excepted"
        + (f", {s.baselined} baselined, {s.fixed} fixed" if report.baseline_fixed is not None else "")
    )


class _Lines:
    """Writes each line as it is appended."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def append(self, line: str) -> None:
        self.out.write(line + "\n")
