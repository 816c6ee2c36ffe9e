"""A run that stops at exit 2 still writes its machine-readable reports, naming each problem's file and line."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.helpers import run_cli, write

BROKEN = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: broken}
spec:
  validations:
    - expression: "object.spec.replicas >"
"""


def run_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *fmt: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "policies" / "p.yaml", BROKEN)
    write(tmp_path / "m.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    return run_cli(
        ["check", "--no-default-policies", "--policies", "policies", "m.yaml", *fmt], capsys, monkeypatch
    )


def test_sarif_and_junit_files_say_why_nothing_was_evaluated(
    tmp_path: Path, shared: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run_broken(
        tmp_path,
        capsys,
        monkeypatch,
        "--format",
        "sarif",
        "--output",
        "r.sarif",
        "--format",
        "junit",
        "--output",
        "r.xml",
    )
    assert code == 2 and "policies/p.yaml:6: cel_compile" in err
    log = json.loads((tmp_path / "r.sarif").read_text())
    schema = json.loads((shared / "vectors" / "sarif" / "sarif-schema-2.1.0.json").read_text())
    assert not list(jsonschema.Draft4Validator(schema).iter_errors(log))
    (invocation,) = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    (note,) = invocation["toolConfigurationNotifications"]
    assert note["descriptor"]["id"] == "cel_compile"
    location = note["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "policies/p.yaml", "uriBaseId": "%SRCROOT%"}
    assert location["region"]["startLine"] == 6
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    case = suite.find("testcase")
    assert case is not None and case.get("line") == "6" and case.find("error") is not None


def test_json_and_github_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run_broken(tmp_path, capsys, monkeypatch, "--format", "json")
    report = json.loads(out)
    assert code == 2 and report["summary"]["exitCode"] == 2 and report["results"] == []
    assert report["problems"][0] == {
        "file": "policies/p.yaml",
        "line": 6,
        "code": "cel_compile",
        "message": report["problems"][0]["message"],
        "path": "spec.validations[0].expression",
    }
    code, out, _ = run_broken(tmp_path, capsys, monkeypatch, "--format", "github")
    assert code == 2 and out.startswith("::error file=policies/p.yaml,line=6,title=cel_compile::")
