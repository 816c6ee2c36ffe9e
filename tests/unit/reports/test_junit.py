"""`--format junit`: one suite per file, one case per resource x policy, with lines in the bodies."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from policyengine.reports.junit import xml_text
from tests.unit.reports.conftest import Workspace


def junit(workspace: Workspace) -> ET.Element:
    code, out, err = workspace.check("--format", "junit")
    assert code == 1, err
    assert out.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(out)


def test_suites_per_file_with_counts(workspace: Workspace) -> None:
    root = junit(workspace)
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "10",
        "failures": "3",
        "errors": "1",
        "skipped": "1",
    }
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == ["manifests/deploy.yaml", "manifests/jobs.yaml"]
    deploy = suites["manifests/deploy.yaml"]
    assert (deploy.get("tests"), deploy.get("failures"), deploy.get("errors"), deploy.get("skipped")) == (
        "9",
        "3",
        "0",
        "1",
    )
    assert len(deploy.findall("testcase")) == 9


def test_failures_carry_action_message_line_and_remediation(workspace: Workspace) -> None:
    root = junit(workspace)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    gpu = cases["Deployment/ml/big: gpu-cap"]
    assert gpu.get("classname") == "manifests/deploy.yaml" and gpu.get("line") == "33"
    failure = gpu.find("failure")
    assert failure is not None
    assert failure.get("type") == "deny" and failure.get("message") == "at most 4 GPUs per container"
    assert failure.text is not None
    assert "manifests/deploy.yaml:33:15: deny: at most 4 GPUs per container" in failure.text
    assert "fix: Lower resources.limits['nvidia.com/gpu'] to 4 or fewer." in failure.text
    warn = cases["Deployment/ml/big: owner-label"].find("failure")
    assert warn is not None and warn.get("type") == "warn"
    # "<team>" was escaped in the XML and reads back as written
    assert warn.text is not None and "fix: Add metadata.labels.owner: <team>." in warn.text
    audit = cases["Deployment/ml/legacy: replica-watch"].find("failure")
    assert audit is not None and audit.get("type") == "audit" and "deploy.yaml:42:3" in (audit.text or "")


def test_errors_skips_and_passes(workspace: Workspace) -> None:
    cases = {c.get("name"): c for c in junit(workspace).iter("testcase")}
    error = cases["Job/default/nightly: job-deadline"].find("error")
    assert error is not None and error.get("type") == "eval_error"
    assert "manifests/jobs.yaml:8: deny: evaluation error" in (error.text or "")
    skipped = cases["Deployment/ml/legacy: owner-label"].find("skipped")
    assert skipped is not None and "legacy-waiver" in (skipped.get("message") or "")
    passed = cases["Deployment/ml/good: gpu-cap"]
    assert list(passed) == [] and passed.get("line") == "1"


def test_characters_xml_cannot_carry_are_replaced() -> None:
    text = xml_text("colour \x1b[31mred\x00 tab\tok")
    assert text == "colour \ufffd[31mred\ufffd tab\tok"
    ET.fromstring(f"<a>{text}</a>")
