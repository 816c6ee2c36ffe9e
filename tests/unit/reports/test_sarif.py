"""`--format sarif`: valid SARIF 2.1.0, rules from the policies, results at the real line and column,
fingerprints that survive line moves."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest

from policyengine.reports.finding import absolute_path, file_uri
from policyengine.reports.sarif import FINGERPRINT_KEY
from tests.unit.reports.conftest import DEPLOY, Workspace


def sarif(workspace: Workspace, *args: str) -> dict[str, Any]:
    code, out, err = workspace.check("--format", "sarif", *args)
    assert code == 1, err
    log: dict[str, Any] = json.loads(out)
    return log


def results_by(log: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    run = log["runs"][0]
    return {
        (r["ruleId"], r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]): r
        for r in run["results"]
    }


def test_the_log_validates_against_the_sarif_schema(workspace: Workspace, shared: Path) -> None:
    schema = json.loads((shared / "vectors" / "sarif" / "sarif-schema-2.1.0.json").read_text())
    log = sarif(workspace)
    jsonschema.Draft4Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(log), key=str)
    assert not errors, errors[0]
    assert log["version"] == "2.1.0"


def test_stdin_findings_validate_and_keep_their_lines(workspace: Workspace, shared: Path) -> None:
    schema = json.loads((shared / "vectors" / "sarif" / "sarif-schema-2.1.0.json").read_text())
    code, out, err = workspace.check("--format", "sarif", paths=["-"], stdin=DEPLOY)
    assert code == 1, err
    log = json.loads(out)
    assert not list(jsonschema.Draft4Validator(schema).iter_errors(log))
    physical = results_by(log)[("gpu-cap", "Deployment/ml/big")]["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "stdin"}, "region": {"startLine": 33, "startColumn": 15}}


def test_rules_describe_every_loaded_policy(workspace: Workspace) -> None:
    driver = sarif(workspace)["runs"][0]["tool"]["driver"]
    assert (
        driver["name"] == "policyengine"
        and driver["version"]
        and driver["informationUri"].startswith("https://")
    )
    rules = {r["id"]: r for r in driver["rules"]}
    assert list(rules) == ["gpu-cap", "owner-label", "replica-watch", "job-deadline"]
    gpu = rules["gpu-cap"]
    assert gpu["shortDescription"]["text"] == "A container asks for at most 4 GPUs."
    assert gpu["fullDescription"]["text"] == "A container asks for at most 4 GPUs."
    assert gpu["help"]["text"] == "Lower resources.limits['nvidia.com/gpu'] to 4 or fewer."
    assert (
        "**Remediation:** Lower resources.limits['nvidia.com/gpu'] to 4 or fewer." in gpu["help"]["markdown"]
    )
    assert gpu["properties"]["category"] == "gpu-quotas" and gpu["properties"]["severity"] == "high"
    assert "gpu-quotas" in gpu["properties"]["tags"]
    levels = {name: r["defaultConfiguration"]["level"] for name, r in rules.items()}
    assert levels == {
        "gpu-cap": "error",
        "owner-label": "warning",
        "replica-watch": "note",
        "job-deadline": "error",
    }


def test_results_point_at_the_field_in_a_later_document(workspace: Workspace) -> None:
    log = sarif(workspace)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    found = results_by(log)
    gpu = found[("gpu-cap", "Deployment/ml/big")]
    assert gpu["level"] == "error" and gpu["message"]["text"] == "at most 4 GPUs per container"
    assert rules[gpu["ruleIndex"]]["id"] == "gpu-cap"
    physical = gpu["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": "manifests/deploy.yaml", "uriBaseId": "%SRCROOT%"}
    assert physical["region"] == {"startLine": 33, "startColumn": 15}
    assert gpu["locations"][0]["logicalLocations"][0] == {
        "name": "big",
        "fullyQualifiedName": "Deployment/ml/big",
        "kind": "resource",
    }
    warn = found[("owner-label", "Deployment/ml/big")]
    assert (
        warn["level"] == "warning" and warn["locations"][0]["physicalLocation"]["region"]["startLine"] == 23
    )
    audit = found[("replica-watch", "Deployment/ml/legacy")]
    assert audit["level"] == "note" and audit["locations"][0]["physicalLocation"]["region"]["startLine"] == 42
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == workspace.root.as_uri() + "/"


def test_excepted_failures_are_suppressed_and_errors_reported(workspace: Workspace) -> None:
    log = sarif(workspace)
    found = results_by(log)
    excepted = found[("owner-label", "Deployment/ml/legacy")]
    assert excepted["suppressions"][0]["kind"] == "external"
    assert "legacy-waiver" in excepted["suppressions"][0]["justification"]
    error = found[("job-deadline", "Job/default/nightly")]
    assert error["level"] == "error" and error["properties"]["outcome"] == "error"
    assert error["message"]["text"].startswith("evaluation error (eval_error): ")
    region = error["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 8}  # no fieldPath: the document's first line, not line 1
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True and invocation["exitCode"] == 1
    [note] = invocation["toolExecutionNotifications"]
    assert note["locations"][0]["physicalLocation"]["region"]["startLine"] == 8


def test_fingerprints_are_stable_across_runs_and_line_moves(workspace: Workspace) -> None:
    def prints(log: dict[str, Any]) -> dict[tuple[str, str], str]:
        return {key: r["partialFingerprints"][FINGERPRINT_KEY] for key, r in results_by(log).items()}

    first = prints(sarif(workspace))
    assert prints(sarif(workspace)) == first
    deploy = workspace.root / "manifests" / "deploy.yaml"
    deploy.write_text("# moved down by two lines\n# by a comment\n" + deploy.read_text())
    moved = sarif(workspace)
    assert (
        results_by(moved)[("gpu-cap", "Deployment/ml/big")]["locations"][0]["physicalLocation"]["region"][
            "startLine"
        ]
        == 35
    )
    assert prints(moved) == first
    assert len(set(first.values())) == len(first)


def test_files_outside_the_working_folder_get_absolute_uris(
    workspace: Workspace, tmp_path_factory: Any
) -> None:
    elsewhere = Path(tmp_path_factory.mktemp("elsewhere")) / "job.yaml"
    elsewhere.write_text((workspace.root / "manifests" / "jobs.yaml").read_text())
    code, out, err = workspace.check("--format", "sarif", paths=[str(elsewhere)])
    assert code == 1, err
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in json.loads(out)["runs"][0]["results"]
    }
    assert elsewhere.as_uri() in uris


@pytest.mark.parametrize(
    "file",
    [
        "job.yaml",
        "a b/c%20d#e?f.yaml",  # characters a URI must quote
        "../up/./there//x.yaml",
        "/abs/olute.yaml",
        "//two/leading/slashes.yaml",
        "///three.yaml",
        "ünïcödé/日本.yaml",
        "bad-\udcff-byte.yaml",  # a file name that is not UTF-8, as os.fsdecode gives it
        "trailing/",
        ".",
        "x" * 5000 + ".yaml",
    ],
)
@pytest.mark.parametrize("base", ["/work/repo", "/", "//net/share"])
def test_file_uris_are_pathlibs(file: str, base: str) -> None:
    # Written without a path object per file (pathlib interns every part of every path it parses).
    assert file_uri(file, base) == PurePosixPath(absolute_path(file, base)).as_uri()
