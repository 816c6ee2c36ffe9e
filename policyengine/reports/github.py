"""``--format github``: GitHub Actions workflow commands that annotate the pull request, and a job summary.

Each deny failure is an ``::error``, each warn failure a ``::warning`` and each audit failure a ``::notice``
at the file, line and column of the field concerned (evaluation errors take the level of their action;
excepted failures are not annotated; findings recorded in the baseline are ``::notice``s titled
"baselined"). Values are escaped as the Actions runner expects. ``summary``
renders the Markdown table the CLI appends to ``$GITHUB_STEP_SUMMARY``; this module reads no environment.
"""

from __future__ import annotations

import io
from typing import IO

from policyengine.gate import CheckReport
from policyengine.model import Action, Outcome
from policyengine.reports.finding import Finding, findings, relative_path
from policyengine.requirements import NOT_CONFIGURED, needs_text

COMMANDS = {Action.DENY: "error", Action.WARN: "warning", Action.AUDIT: "notice"}
SUMMARY_ROWS = 500  # a job summary is limited to 1 MiB; past this many rows, say how many are left out


def escape_data(text: str) -> str:
    """The message part of a workflow command (after ``::``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (``file=``, ``title=``...): data escaping plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    r = finding.result
    baselined = finding.is_baselined
    props = [f"file={escape_property(finding.display_path)}", f"line={finding.line}"]
    if finding.column is not None:
        props.append(f"col={finding.column}")
    title = f"{r.policy} (evaluation error)" if finding.is_error else r.policy
    title += " (baselined)" if baselined else ""
    props.append(f"title={escape_property(title)}")
    message = f"{finding.resource}: {finding.text}"
    if r.remediation:
        message += f"\nFix: {r.remediation}"
    command = "notice" if baselined else COMMANDS[r.action]
    return f"::{command} {','.join(props)}::{escape_data(message)}"


def render(report: CheckReport, *, base: str) -> str:
    buffer = io.StringIO()
    write(report, buffer, base=base)
    return buffer.getvalue()


def write(report: CheckReport, out: IO[str], *, base: str) -> None:
    """The annotations, one line each as the findings are read, then the summary line."""
    for finding in findings(report, base):
        if not finding.is_excepted:
            out.write(annotation(finding) + "\n")
    lines = [
        f"::notice title={escape_property(NOT_CONFIGURED + ': ' + u.policy)}::"
        + escape_data(f"{u.policy} was not evaluated: it needs GovernanceConfig {needs_text(u.needs)}")
        for u in report.unconfigured
    ]
    s = report.summary()
    lines.append(
        f"policyengine: {s.resources} resources, {s.evaluated} checks: {s.passed} passed, {s.failed} denied, "
        f"{s.warned} warnings, {s.errors} errors, {s.excepted} excepted"
        + (f", {s.baselined} baselined, {s.fixed} fixed" if report.baseline_fixed is not None else "")
    )
    out.write("\n".join(lines) + "\n")


def _cell(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\r", "")
        .replace("\n", "<br>")
    )


def _label(finding: Finding) -> str:
    r = finding.result
    if finding.is_baselined:
        return f"baselined ({r.action})"
    if r.outcome is Outcome.EXCEPTED:
        return f"excepted ({r.exception})"
    if r.outcome is Outcome.ERROR:
        return f"{r.action} error"
    return str(r.action)


def summary(report: CheckReport, *, base: str, strict: bool = False) -> str:
    """The Markdown job summary: verdict, counts, and one row per finding."""
    s = report.summary()
    verdict = "passed" if report.exit_code(strict=strict) == 0 else "failed"
    counts = (s.resources, s.evaluated, s.passed, s.failed, s.warned, s.errors, s.excepted)
    out = [
        f"## policyengine check {verdict}",
        "",
        "| Resources | Checks | Passed | Denied | Warnings | Errors | Excepted |",
        "|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join(str(n) for n in counts) + " |",
        "",
    ]
    if report.baseline_fixed is not None:
        out += [f"{s.baselined} findings are baselined; {s.fixed} baseline entries are fixed.", ""]
    out += _skipped_lines(report, base)
    rows = list(findings(report, base))
    if rows:
        out += ["| Result | Policy | Resource | Location | Message |", "|---|---|---|---|---|"]
        for f in rows[:SUMMARY_ROWS]:
            out.append(
                f"| {_cell(_label(f))} | {_cell(f.result.policy)} | {_cell(f.resource)} "
                f"| {_cell(f.display_path)}:{f.line} | {_cell(f.text)} |"
            )
        if len(rows) > SUMMARY_ROWS:
            out.append(f"\n{len(rows) - SUMMARY_ROWS} more findings are not shown.")
        out.append("")
    return "\n".join(out) + "\n"


def _skipped_lines(report: CheckReport, base: str) -> list[str]:
    """A line counting the files and Helm charts the walk left out, and the list of them, folded."""
    if not report.skipped_files:
        return []
    files, charts = report.skipped_counts
    out = [f"Skipped {files} files that are not Kubernetes manifests and {charts} Helm charts.", ""]
    out += ["<details><summary>Skipped files</summary>", ""]
    for s in report.skipped_files[:SUMMARY_ROWS]:
        out.append(f"- `{_cell(relative_path(s.path, base) or s.path)}`: {_cell(s.reason)}")
    if len(report.skipped_files) > SUMMARY_ROWS:
        out.append(f"- and {len(report.skipped_files) - SUMMARY_ROWS} more")
    return [*out, "", "</details>", ""]
