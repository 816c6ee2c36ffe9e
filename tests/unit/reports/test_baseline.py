"""`check --write-baseline` / `--baseline`: today's findings recorded without line numbers, the gate
failing only on new ones, baselined findings kept in every report, fixed entries counted, and a broken
baseline file refused (exit 2) with its file, line and field. Admission never reads a baseline."""

from __future__ import annotations

import inspect
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from policyengine.cli import build_parser
from policyengine.engine import Engine
from tests.helpers import run_cli
from tests.unit.reports.conftest import DEPLOY, Workspace, deployment

ROOT = Path(__file__).resolve().parents[3]


def as_json(workspace: Workspace, *args: str, expect: int, paths: tuple[str, ...] = ("manifests",)) -> Any:
    code, out, err = workspace.check("--format", "json", *args, paths=paths)
    assert code == expect, err
    return json.loads(out)


def outcomes(report: Any) -> dict[tuple[str, str], str]:
    return {(r["policy"], r["resource"]["name"]): r["outcome"] for r in report["results"]}


def test_a_baseline_written_then_read_makes_the_exit_0(workspace: Workspace) -> None:
    before = as_json(workspace, expect=1)
    written = as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    assert written["summary"]["baselined"] == 4 and written["summary"]["failed"] == 0
    # A baseline changes the verdict, not the count of checks made.
    assert written["summary"]["evaluated"] == before["summary"]["evaluated"]
    text = (workspace.root / "baseline.json").read_text()
    body = json.loads(text)
    assert body["version"] == 1 and body["generatedBy"].startswith("policyengine ")
    assert [(f["file"], f["policy"], f["resource"]["name"]) for f in body["findings"]] == [
        ("manifests/deploy.yaml", "gpu-cap", "big"),
        ("manifests/deploy.yaml", "owner-label", "big"),
        ("manifests/deploy.yaml", "replica-watch", "legacy"),
        ("manifests/jobs.yaml", "job-deadline", "nightly"),
    ]
    assert '"line"' not in text and all(len(f["fingerprint"]) == 64 for f in body["findings"])
    assert body["findings"][0]["resource"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "ml",
        "name": "big",
    }

    report = as_json(workspace, "--baseline", "baseline.json", expect=0)
    assert outcomes(report) == {
        ("gpu-cap", "big"): "baselined",
        ("owner-label", "big"): "baselined",
        ("owner-label", "legacy"): "excepted",
        ("replica-watch", "legacy"): "baselined",
        ("job-deadline", "nightly"): "baselined",
    }
    assert report["summary"]["baselined"] == 4 and report["summary"]["fixed"] == 0
    assert report["summary"]["exitCode"] == 0 and report["summary"]["deniedResources"] == 0
    assert as_json(workspace, "--baseline", "baseline.json", "--strict", expect=0)["summary"]["warnings"] == 0
    # Written twice, byte for byte the same: a baseline diff shows only what changed.
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    assert (workspace.root / "baseline.json").read_text() == text
    assert sorted(p.name for p in workspace.root.iterdir()) == ["baseline.json", "manifests", "policies"]


def test_a_new_violation_fails_and_the_old_ones_stay_baselined(workspace: Workspace) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    (workspace.root / "manifests" / "more.yaml").write_text(deployment("huge", 16))
    report = as_json(workspace, "--baseline", "baseline.json", expect=1)
    assert outcomes(report)[("gpu-cap", "huge")] == "fail"
    assert outcomes(report)[("gpu-cap", "big")] == "baselined"
    assert report["summary"]["failed"] == 1 and report["summary"]["deniedResources"] == 1
    # The same violation on a resource of another name is a new finding too.
    (workspace.root / "manifests" / "more.yaml").unlink()
    renamed = DEPLOY.replace("name: big", "name: bigger")
    (workspace.root / "manifests" / "deploy.yaml").write_text(renamed)
    assert (
        outcomes(as_json(workspace, "--baseline", "baseline.json", expect=1))[("gpu-cap", "bigger")] == "fail"
    )


def test_moving_a_resource_down_keeps_it_baselined(workspace: Workspace) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    before = as_json(workspace, "--baseline", "baseline.json", expect=0)
    moved = "".join(f"# comment {i}\n" for i in range(10)) + DEPLOY
    (workspace.root / "manifests" / "deploy.yaml").write_text(moved)
    after = as_json(workspace, "--baseline", "baseline.json", expect=0)
    line = {(r["policy"], r["resource"]["name"]): r["source"]["line"] for r in after["results"]}
    assert line[("gpu-cap", "big")] == 43  # was 33: the finding moved, and is still the same finding
    assert outcomes(after) == outcomes(before) and after["summary"]["baselined"] == 4


def test_fixed_findings_are_counted_so_the_baseline_can_shrink(workspace: Workspace) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    (workspace.root / "manifests" / "deploy.yaml").write_text(
        DEPLOY.replace("nvidia.com/gpu: 8", "nvidia.com/gpu: 2")
    )
    report = as_json(workspace, "--baseline", "baseline.json", expect=0)
    assert report["summary"]["fixed"] == 1 and report["summary"]["baselined"] == 3
    code, out, _ = workspace.check("--baseline", "baseline.json")
    assert code == 0 and "3 baselined, 1 fixed" in out and "BASELINED (deny) job-deadline" in out
    # Entries of files this run did not read are not called fixed.
    report = as_json(workspace, "--baseline", "baseline.json", expect=0, paths=("manifests/jobs.yaml",))
    assert report["summary"]["fixed"] == 0 and report["summary"]["baselined"] == 1


def test_baseline_paths_are_relative_to_its_folder_not_the_working_directory(workspace: Workspace) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    workspace.monkeypatch.chdir(workspace.root / "manifests")
    base = ["check", ".", "--no-default-policies", "--policies", "../policies"]
    code, out, err = run_cli(
        [*base, "--baseline", "../baseline.json", "--format", "json"], workspace.capsys, workspace.monkeypatch
    )
    assert code == 0, err
    assert json.loads(out)["summary"]["baselined"] == 4


def test_sarif_marks_baseline_state_and_validates(workspace: Workspace, shared: Path) -> None:
    schema = json.loads((shared / "vectors" / "sarif" / "sarif-schema-2.1.0.json").read_text())
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    (workspace.root / "manifests" / "more.yaml").write_text(deployment("huge", 16))
    code, out, err = workspace.check("--format", "sarif", "--baseline", "baseline.json")
    assert code == 1, err
    log = json.loads(out)
    assert not list(jsonschema.Draft4Validator(schema).iter_errors(log))
    run = log["runs"][0]
    states = {
        (r["ruleId"], r["locations"][0]["logicalLocations"][0]["name"]): r["baselineState"]
        for r in run["results"]
    }
    assert states[("gpu-cap", "huge")] == "new" and states[("gpu-cap", "big")] == "unchanged"
    assert states[("job-deadline", "nightly")] == "unchanged"
    assert run["properties"]["summary"]["baselined"] == 4
    code, out, _ = workspace.check("--format", "sarif")  # no baseline given: no baselineState at all
    assert all("baselineState" not in r for r in json.loads(out)["runs"][0]["results"])


def test_junit_and_github_report_baselined_findings_without_failing(
    workspace: Workspace, tmp_path: Path
) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    code, out, _ = workspace.check("--format", "junit", "--baseline", "baseline.json")
    root = ET.fromstring(out)
    assert code == 0 and root.get("failures") == "0" and root.get("errors") == "0"
    case = root.find(".//testcase[@name='Deployment/ml/big: gpu-cap']")
    assert case is not None and case.find("failure") is None
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == "baselined: at most 4 GPUs per container"

    summary = tmp_path / "summary.md"
    workspace.monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = workspace.check("--format", "github", "--baseline", "baseline.json")
    assert code == 0 and "::error" not in out and "::warning" not in out
    gpu = next(line for line in out.splitlines() if "gpu-cap" in line)
    assert gpu.startswith("::notice file=manifests/deploy.yaml,line=33,col=15,title=gpu-cap (baselined)::")
    assert out.rstrip().endswith("4 baselined, 0 fixed")
    assert "| baselined (deny) | gpu-cap |" in summary.read_text()


@pytest.mark.parametrize(
    ("text", "where", "code"),
    [
        ('{"version": 1, "findings": [\n  {"file": }\n]}\n', ":2: yaml_syntax: not JSON", None),
        ('{"version": 2, "findings": []}\n', ":1: invalid_value: unknown baseline version 2", "version"),
        ('{"version": 1}\n', ":1: schema_invalid: findings must be a list", "findings"),
        (
            '{"version": 1, "findings": [\n  {"file": "a.yaml",\n   "policy": 7}\n]}\n',
            ":3: schema_invalid: policy must be a string",
            "findings[0].policy",
        ),
        (
            '{"version": 1, "findings": [{"file": "a", "policy": "p", "resource": {"apiVersion": "v1",'
            ' "kind": "Pod", "namespace": "", "name": "x"}, "fingerprint": "zz"}]}\n',
            ":1: invalid_value: fingerprint must be 64 lowercase hex digits",
            "findings[0].fingerprint",
        ),
        ('{"version": 1, "version": 1, "findings": []}\n', ":1: ", None),  # a repeated key
        ("[" * 5000 + "]" * 5000 + "\n", ":1: ", None),  # nesting deeper than any parser stack
        ("[1, 2]\n", ":1: schema_invalid: a baseline is one JSON object", None),
        ("", ":1: yaml_syntax: not JSON", None),
        ("version: 1\nfindings: []\n", ":1: yaml_syntax: not JSON", None),  # YAML is not a baseline
    ],
)
def test_a_broken_baseline_is_exit_2_naming_file_line_and_field(
    workspace: Workspace, text: str, where: str, code: str | None
) -> None:
    (workspace.root / "baseline.json").write_text(text)
    exit_code, out, err = workspace.check("--baseline", "baseline.json")
    assert exit_code == 2 and out == ""
    assert f"baseline.json{where}" in err, err
    if code is not None:
        assert f"(at {code})" in err
    assert "internal error" not in err


def test_an_oversized_baseline_is_refused_by_max_input_size(workspace: Workspace) -> None:
    as_json(workspace, "--write-baseline", "baseline.json", expect=0)
    size = (workspace.root / "baseline.json").stat().st_size
    code, _, err = workspace.check("--baseline", "baseline.json", "--max-input-size", str(size - 1))
    assert code == 2 and f"baseline.json:1: read_error: larger than the input size limit of {size - 1}" in err
    code, _, err = workspace.check("--baseline", "missing.json")
    assert code == 2 and "missing.json:1: read_error" in err


def test_admission_never_reads_a_baseline() -> None:
    assert "baseline" not in str(inspect.signature(Engine.evaluate))
    assert not any("baseline" in name for name in inspect.signature(Engine).parameters)
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--baseline", "b.json"])
    sources = [*(ROOT / "webhook").rglob("*.py"), ROOT / "policyengine" / "engine.py"]
    assert not [p.name for p in sources if "baseline" in p.read_text(encoding="utf-8").lower()]


def test_junit_and_the_github_summary_list_skipped_files(workspace: Workspace, tmp_path: Path) -> None:
    (workspace.root / "manifests" / "compose.yaml").write_text("services:\n  web: {image: nginx}\n")
    code, out, _ = workspace.check("--format", "junit")
    root = ET.fromstring(out)
    suite = root.find("testsuite[@name='skipped files']")
    assert code == 1 and suite is not None and suite.get("skipped") == "1"
    case = suite.find("testcase")
    assert case is not None and case.get("classname") == "manifests/compose.yaml"
    skipped = case.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "no document is a mapping with apiVersion and kind"
    total = sum(int(s.get("skipped", "0")) for s in root.findall("testsuite"))
    assert root.get("failures") == "3" and root.get("skipped") == str(total)

    summary = tmp_path / "summary.md"
    workspace.monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    workspace.check("--format", "github")
    text = summary.read_text()
    assert "Skipped 1 files that are not Kubernetes manifests and 0 Helm charts." in text
    assert "- `manifests/compose.yaml`: no document is a mapping with apiVersion and kind" in text
