"""Reports for a run that could not evaluate (exit 2): the load and input problems, in the format asked for.

A CI job that uploads SARIF or reads JUnit still gets a file, saying why nothing was evaluated and where
each problem is, instead of a missing file and a second, confusing failure. Text goes to stderr as before,
so ``render`` returns None for it.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from policyengine.errors import Problem
from policyengine.reports.finding import STDIN_FILE, file_uri, relative_path
from policyengine.reports.github import escape_data, escape_property
from policyengine.reports.json import SCHEMA_VERSION
from policyengine.reports.junit import xml_text
from policyengine.reports.sarif import (
    INFORMATION_URI,
    SARIF_SCHEMA,
    SARIF_VERSION,
    SRCROOT,
    TOOL_NAME,
    tool_version,
)

EXIT_ERROR = 2


def _file(problem: Problem, base: str) -> str:
    return relative_path(problem.file, base) or problem.file


def json_report(problems: Sequence[Problem]) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "summary": {"resources": 0, "evaluated": 0, "exitCode": EXIT_ERROR, "problems": len(problems)},
        "results": [],
        "problems": [
            {"file": p.file, "line": p.line, "code": p.code, "message": p.message, "path": p.path}
            for p in problems
        ],
    }


def _location(problem: Problem, base: str) -> dict[str, Any]:
    where = relative_path(problem.file, base)
    if where is not None:
        artifact: dict[str, Any] = {"uri": quote(where), "uriBaseId": SRCROOT}
    elif problem.file == STDIN_FILE:
        artifact = {"uri": "stdin"}
    else:
        artifact = {"uri": file_uri(problem.file, base)}
    return {"physicalLocation": {"artifactLocation": artifact, "region": {"startLine": max(1, problem.line)}}}


def sarif_report(problems: Sequence[Problem], base: str) -> dict[str, Any]:
    notifications = [
        {
            "level": "error",
            "descriptor": {"id": p.code},
            "message": {"text": f"{p.message} (at {p.path})" if p.path else p.message},
            "locations": [_location(p, base)],
        }
        for p in problems
    ]
    driver = {"name": TOOL_NAME, "version": tool_version(), "informationUri": INFORMATION_URI, "rules": []}
    invocation = {
        "executionSuccessful": False,
        "exitCode": EXIT_ERROR,
        "toolConfigurationNotifications": notifications,
    }
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [{"tool": {"driver": driver}, "results": [], "invocations": [invocation]}],
    }


def junit_report(problems: Sequence[Problem], base: str) -> ET.Element:
    root = ET.Element("testsuites", name="policyengine", tests=str(len(problems)), errors=str(len(problems)))
    suite = ET.SubElement(
        root,
        "testsuite",
        name="policyengine load",
        tests=str(len(problems)),
        errors=str(len(problems)),
        failures="0",
    )
    for p in problems:
        case = ET.SubElement(
            suite,
            "testcase",
            classname=_file(p, base),
            name=f"{p.code}: {p.path or 'document'}",
            file=_file(p, base),
        )
        case.set("line", str(p.line))
        error = ET.SubElement(case, "error", type=p.code, message=xml_text(p.message))
        error.text = xml_text(p.render())
    return root


def github_lines(problems: Sequence[Problem], base: str) -> str:
    return "".join(
        f"::error file={escape_property(_file(p, base))},line={p.line},title={escape_property(p.code)}::"
        f"{escape_data(p.message + (f' (at {p.path})' if p.path else ''))}\n"
        for p in problems
    )


def render(problems: Sequence[Problem], fmt: str, *, base: str) -> str | None:
    """The report of ``problems`` in format ``fmt``; None for text (the CLI prints those to stderr)."""
    if fmt == "json":
        return json.dumps(json_report(problems), indent=2) + "\n"
    if fmt == "sarif":
        return json.dumps(sarif_report(problems, base), indent=2) + "\n"
    if fmt == "junit":
        element = junit_report(problems, base)
        ET.indent(element)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode") + "\n"
    if fmt == "github":
        return github_lines(problems, base)
    return None
