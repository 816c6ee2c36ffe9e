"""``--format junit``: JUnit XML as Jenkins, GitLab and Azure DevOps read it.

``<testsuites>`` holds one ``<testsuite>`` per manifest file and one ``<testcase>`` per resource and
policy evaluated on it (classname: the file; name: ``Kind/namespace/name: policy``). A failed validation
is a ``<failure>`` (type: the action), an evaluation error an ``<error>``, and a policy whose failures
were all excepted or are recorded in the baseline (``check --baseline``), or whose matchConditions
excluded the resource, is ``<skipped>``. Files and Helm charts the directory walk left out are
``<skipped>`` cases of a last suite, ``skipped files``, each with the reason. Bodies name the
line of each finding and the remediation. Built with ``xml.etree`` so every value is escaped.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from policyengine.gate import Checked, CheckReport
from policyengine.model import Outcome, Result
from policyengine.reports.finding import Finding, locate, relative_path, resource_id
from policyengine.requirements import NOT_CONFIGURED, needs_text

SUITES_NAME = "policyengine check"
SKIPPED_SUITE = "skipped files"
UNCONFIGURED_SUITE = "policies not configured"
# Characters XML 1.0 cannot carry even escaped; a message built from a manifest value may hold them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


@dataclass(frozen=True)
class Case:
    """One resource x policy: its results, and the findings among them."""

    checked: Checked
    policy: str
    results: tuple[Result, ...]
    findings: tuple[Finding, ...]

    @property
    def baselined(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if self.checked.is_baselined(r))

    @property
    def status(self) -> str:
        """error | failure | skipped | passed (baselined findings fail nothing: they read as skipped)."""
        outcomes = {r.outcome for r in self.results if not self.checked.is_baselined(r)}
        if self.baselined:
            outcomes.add(Outcome.SKIP)
        if Outcome.ERROR in outcomes:
            return "error"
        if Outcome.FAIL in outcomes:
            return "failure"
        if outcomes & {Outcome.EXCEPTED, Outcome.SKIP}:
            return "skipped"
        return "passed"


def cases(checked: Checked, base: str) -> list[Case]:
    by_policy: dict[str, list[Result]] = {}
    for r in checked.decision.results:
        by_policy.setdefault(r.policy, []).append(r)
    return [
        Case(
            checked,
            policy,
            tuple(results),
            tuple(
                locate(checked, r, base)
                for r in results
                if r.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.EXCEPTED)
            ),
        )
        for policy, results in by_policy.items()
    ]


def _body(case: Case, outcomes: tuple[Outcome, ...]) -> str:
    lines = []
    for f in case.findings:
        if f.result.outcome not in outcomes or f.is_baselined:
            continue
        col = f":{f.column}" if f.column is not None else ""
        lines.append(f"{f.display_path}:{f.line}{col}: {f.result.action}: {f.text}")
        if f.result.field_path:
            lines.append(f"  field: {f.result.field_path}")
        if f.result.remediation:
            lines.append(f"  fix: {f.result.remediation}")
    return "\n".join(lines) + "\n" if lines else ""


def _first(case: Case, outcome: Outcome) -> Finding:
    return next(f for f in case.findings if f.result.outcome is outcome and not f.is_baselined)


def _case_element(case: Case, file: str) -> ET.Element:
    first_line = case.findings[0].line if case.findings else case.checked.document.line
    el = ET.Element(
        "testcase",
        {
            "classname": file,
            "name": f"{resource_id(case.checked)}: {case.policy}",
            "file": file,
            "line": str(first_line),
        },
    )
    status = case.status
    if status == "error":
        first = _first(case, Outcome.ERROR)
        child = ET.SubElement(el, "error", {"type": first.result.code or "eval_error", "message": first.text})
        child.text = _body(case, (Outcome.ERROR, Outcome.FAIL))
    elif status == "failure":
        first = _first(case, Outcome.FAIL)
        child = ET.SubElement(el, "failure", {"type": str(first.result.action), "message": first.text})
        child.text = _body(case, (Outcome.FAIL,))
    elif status == "skipped":
        excepted = [r for r in case.results if r.outcome is Outcome.EXCEPTED]
        if case.baselined:
            message = f"baselined: {case.baselined[0].message}"
        elif excepted:
            message = f"excepted by PolicyException {excepted[0].exception}"
        else:
            message = next(r.message for r in case.results if r.outcome is Outcome.SKIP)
        ET.SubElement(el, "skipped", {"message": message})
    return el


def _counts(statuses: list[str]) -> dict[str, str]:
    return {
        "tests": str(len(statuses)),
        "failures": str(statuses.count("failure")),
        "errors": str(statuses.count("error")),
        "skipped": str(statuses.count("skipped")),
    }


def report_element(report: CheckReport, *, base: str) -> ET.Element:
    root = ET.Element("testsuites", {"name": SUITES_NAME, **_totals(report, base)})
    root.extend(_suites(report, base))
    return root


def _by_file(report: CheckReport) -> dict[str, list[Checked]]:
    files: dict[str, list[Checked]] = {}
    for checked in report.checked:
        files.setdefault(checked.document.file, []).append(checked)
    return files


def _totals(report: CheckReport, base: str) -> dict[str, str]:
    """The counts of every suite together, read before any suite is made (they open the document)."""
    statuses = {"failure": 0, "error": 0, "skipped": 0}
    tests = len(report.skipped_files) + len(report.unconfigured)
    statuses["skipped"] += tests
    for checked in report.checked:
        for case in cases(checked, base):
            tests += 1
            if case.status in statuses:
                statuses[case.status] += 1
    return {
        "tests": str(tests),
        "failures": str(statuses["failure"]),
        "errors": str(statuses["error"]),
        "skipped": str(statuses["skipped"]),
    }


def _suites(report: CheckReport, base: str) -> Iterator[ET.Element]:
    """Each suite in document order, made when it is reached."""
    for file, checked in _by_file(report).items():
        shown = relative_path(file, base) or file
        file_cases = [case for c in checked for case in cases(c, base)]
        suite = ET.Element("testsuite", {"name": shown, **_counts([c.status for c in file_cases])})
        suite.extend(_case_element(case, shown) for case in file_cases)
        yield suite
    if report.skipped_files:
        yield _skipped_suite(report, base)
    if report.unconfigured:
        yield _unconfigured_suite(report)


def _skipped_suite(report: CheckReport, base: str) -> ET.Element:
    """One skipped testcase per file or Helm chart the walk left out, with the reason: Jenkins and GitLab
    list skipped cases with their message, so what was not checked stays visible."""
    statuses = ["skipped"] * len(report.skipped_files)
    suite = ET.Element("testsuite", {"name": SKIPPED_SUITE, **_counts(statuses)})
    for skipped in report.skipped_files:
        shown = relative_path(skipped.path, base) or skipped.path
        what = "Helm chart" if skipped.kind == "chart" else "not a manifest"
        case = ET.SubElement(
            suite, "testcase", {"classname": shown, "name": f"{what}: {shown}", "file": shown}
        )
        ET.SubElement(case, "skipped", {"message": skipped.reason})
    return suite


def _unconfigured_suite(report: CheckReport) -> ET.Element:
    """One skipped testcase per policy not evaluated for want of config facts, naming the keys it needs."""
    statuses = ["skipped"] * len(report.unconfigured)
    suite = ET.Element("testsuite", {"name": UNCONFIGURED_SUITE, **_counts(statuses)})
    for missing in report.unconfigured:
        case = ET.SubElement(suite, "testcase", {"classname": NOT_CONFIGURED, "name": missing.policy})
        message = f"not evaluated: it needs GovernanceConfig {needs_text(missing.needs)}"
        ET.SubElement(case, "skipped", {"message": message})
    return suite


def indent(elem: ET.Element, level: int = 0) -> None:
    """What ``ET.indent(elem, level=level)`` does (two spaces a level), without the reference cycle that
    its nested function makes on every call: garbage only the cycle collector frees, one per suite."""
    if not len(elem):
        return
    inner = _indentation(level + 1)
    if not elem.text or not elem.text.strip():
        elem.text = inner
    for child in elem:
        if len(child):
            indent(child, level + 1)
        if not child.tail or not child.tail.strip():
            child.tail = inner
    if not (child.tail or "").strip():  # the last child: the parent's closing tag is one level out
        child.tail = _indentation(level)


def _indentation(level: int) -> str:
    return _INDENTATIONS[level] if level < len(_INDENTATIONS) else "\n" + "  " * level


_INDENTATIONS = tuple("\n" + "  " * level for level in range(8))

_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'
_CLOSE = "\n</testsuites>"
_CHILD_BREAK = "\n  "  # what ``ET.indent`` puts before each child of the root


def render(report: CheckReport, *, base: str) -> str:
    buffer = io.StringIO()
    write(report, buffer, base=base)
    return buffer.getvalue()


def write(report: CheckReport, out: IO[str], *, base: str) -> None:
    """The document ``ET.indent`` and ``ET.tostring`` make of ``report_element``, one suite at a time:
    each suite is indented and serialised under a root of its own with the same attributes, and its
    text is cut out of that (its place in the whole is the same, one level down)."""
    attributes = {"name": SUITES_NAME, **_totals(report, base)}
    opened = False
    for suite in _suites(report, base):
        alone = ET.Element("testsuites", attributes)
        alone.append(suite)
        indent(alone)
        text = ET.tostring(alone, encoding="unicode")
        head = text.index(">") + 1  # attribute values are escaped: the first ">" closes the root's tag
        if not opened:
            out.write(_DECLARATION + xml_text(text[:head]))
            opened = True
        out.write(_CHILD_BREAK + xml_text(text[head + len(_CHILD_BREAK) : -len(_CLOSE)]))
    if opened:
        out.write(_CLOSE + "\n")
    else:
        out.write(
            _DECLARATION
            + xml_text(ET.tostring(ET.Element("testsuites", attributes), encoding="unicode"))
            + "\n"
        )
