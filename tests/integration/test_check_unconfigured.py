"""`policyengine check` on a repository the tool has never seen: the shipped defaults hold no
organisation, so the rules that need one (teams and quotas, approved sources, data locations, trusted
keys) are reported once each as not-configured and deny nothing; --require-config and the config file's
requireConfig make that an error (exit 2)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import ACME_CONFIG, run_cli, run_json, write

DIGEST = "@sha256:" + "0" * 64
REVISION = "a" * 40
# A KServe InferenceService serving a model from no organisation anyone configured (pinned by revision,
# its image by digest), and a GPU Deployment in a namespace without a team label.
REPOSITORY = {
    "serving/isvc.yaml": f"""
        apiVersion: serving.kserve.io/v1beta1
        kind: InferenceService
        metadata: {{name: chat, namespace: serving}}
        spec:
          predictor:
            model:
              modelFormat: {{name: huggingface}}
              storageUri: hf://meta-llama/Llama-3.1-8B-Instruct:{REVISION}
              image: kserve/huggingfaceserver{DIGEST}
              resources: {{limits: {{nvidia.com/gpu: 1}}}}
        """,
    "training/deploy.yaml": f"""
        apiVersion: apps/v1
        kind: Deployment
        metadata: {{name: trainer, namespace: research}}
        spec:
          replicas: 4
          template:
            spec:
              containers:
                - name: t
                  image: pytorch/pytorch{DIGEST}
                  resources: {{limits: {{nvidia.com/gpu: 8}}}}
        """,
}
# Every shipped rule that needs organisation facts, with the keys it names.
ORG_RULES = {
    "residency-data-locations": ["spec.residency.dataLocations"],
    "residency-unknown-data-locations": ["spec.residency.dataLocations"],
    "gpu-per-pod-limit": ["spec.gpu.teams"],
    "gpu-per-workload-limit": ["spec.gpu.teams"],
    "gpu-team-quota": ["spec.gpu.teams", "spec.gpu.teamsFrom=kueue"],
    "gpu-resource-quota": ["spec.gpu.teams", "spec.gpu.teamsFrom=kueue"],
    "gpu-product-quota": ["spec.gpu.teams", "spec.gpu.teamsFrom=kueue"],
    "gpu-product-allowlist": ["spec.gpu.teams"],
    "gpu-memory-quota": ["spec.gpu.teams"],
    "model-approved-source": ["spec.models.approvedSources"],
    "model-signature-verified": [
        "spec.models.trustedKeys",
        "spec.models.caCertificates",
        "spec.models.trustedIdentities",
    ],
}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for name, text in REPOSITORY.items():
        write(root / name, text)
    (root / ".git").mkdir()  # the config-file search stops here: nothing of the machine's is read
    return root


@pytest.fixture(autouse=True)
def _inside(repository: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repository)


def test_no_config_means_notices_not_denies_from_organisation_rules(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report = run_json(["check", "."], capsys, monkeypatch)
    assert code == 0, report["results"]
    assert report["results"] == []
    assert report["summary"]["unconfigured"] == [{"policy": p, "needs": n} for p, n in ORG_RULES.items()]
    assert report["summary"]["resources"] == 2 and report["summary"]["errors"] == 0

    code, out, _ = run_cli(["check", "."], capsys, monkeypatch)
    assert code == 0
    notes = [line for line in out.splitlines() if line.startswith("note: not-configured: ")]
    assert len(notes) == len(ORG_RULES)  # one per policy per run, not one per resource
    assert (
        "note: not-configured: gpu-team-quota needs GovernanceConfig spec.gpu.teams or spec.gpu.teamsFrom=kueue"
        in notes
    )
    assert (
        "note: not-configured: model-approved-source needs GovernanceConfig spec.models.approvedSources"
        in notes
    )
    assert out.splitlines()[-1].startswith("PASS: 2 resources")


def test_org_free_rules_still_deny_without_a_config(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    isvc = repository / "serving" / "isvc.yaml"
    isvc.write_text(isvc.read_text().replace(f":{REVISION}", "").replace(DIGEST, ":latest"))
    code, report = run_json(["check", "."], capsys, monkeypatch)
    assert code == 1
    denied = {r["policy"] for r in report["results"] if r["outcome"] == "fail"}
    assert denied == {"model-pinned-by-digest", "ai-images-pinned-by-digest"}


def test_the_same_repository_with_the_organisations_config_is_judged_by_its_rules(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report = run_json(["check", "--config", ACME_CONFIG, "--require-config", "."], capsys, monkeypatch)
    assert code == 1
    denied = {r["policy"] for r in report["results"] if r["outcome"] == "fail"}
    assert {"model-approved-source", "gpu-team-quota"} <= denied
    assert report["summary"]["unconfigured"] == []


def test_kueue_budgets_are_the_other_source_of_team_quotas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "kueue.yaml",
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: k}\nspec: {gpu: {teamsFrom: kueue}}\n",
    )
    code, report = run_json(["check", "--config", str(config), "."], capsys, monkeypatch)
    assert code == 1  # Kueue is where the budgets come from, and no LocalQueue covers these workloads
    assert {r["policy"] for r in report["results"] if r["outcome"] == "fail"} == {"gpu-kueue-queue"}
    unconfigured = {u["policy"] for u in report["summary"]["unconfigured"]}
    assert {"gpu-team-quota", "gpu-resource-quota", "gpu-product-quota"}.isdisjoint(unconfigured)
    assert "gpu-per-pod-limit" in unconfigured  # per-pod limits only come from spec.gpu.teams


def test_require_config_makes_a_missing_fact_exit_2_naming_policy_and_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(["check", "--require-config", "."], capsys, monkeypatch)
    assert code == 2, err
    assert out == ""  # nothing was evaluated
    for policy, needs in ORG_RULES.items():
        assert f"not_configured: policy {policy} needs GovernanceConfig {' or '.join(needs)}" in err
    assert "gpu-quotas/policies.yaml" in err  # each problem is at the policy's document


def test_require_config_in_the_config_file_exits_2_too(
    repository: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    write(repository / ".policyengine.yaml", "paths: [.]\nrequireConfig: true\n")
    code, _, err = run_cli(["check"], capsys, monkeypatch)
    assert code == 2, err
    assert "policy model-approved-source needs GovernanceConfig spec.models.approvedSources" in err
    code, out, _ = run_cli(["check", "--print-config", "json"], capsys, monkeypatch)
    assert json.loads(out)["settings"]["requireConfig"] == {
        "value": True,
        "source": "file:.policyengine.yaml",
    }


def test_machine_readable_reports_carry_the_notices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sarif, junit = tmp_path / "r.sarif", tmp_path / "r.xml"
    args = [
        "check",
        ".",
        "--format",
        "sarif",
        "--output",
        str(sarif),
        "--format",
        "junit",
        "--output",
        str(junit),
    ]
    code, _, _ = run_cli([*args, "--format", "github"], capsys, monkeypatch)
    assert code == 0
    run = json.loads(sarif.read_text())["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    notes = [
        n
        for n in run["invocations"][0]["toolExecutionNotifications"]
        if n["descriptor"]["id"] == "not_configured"
    ]
    assert [n["associatedRule"]["id"] for n in notes] == list(ORG_RULES)
    assert all(
        n["level"] == "note" and rules[n["associatedRule"]["index"]] == n["associatedRule"]["id"]
        for n in notes
    )
    assert notes[0]["properties"]["needs"] == ["spec.residency.dataLocations"]
    suite = ET.parse(junit).getroot().find("testsuite[@name='policies not configured']")
    assert suite is not None and suite.get("skipped") == str(len(ORG_RULES))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("spec.models.approvedSources | " * 5000, "characters long, more than the 512 allowed"),
        ("spec.models.approvedSources; rm -rf /", "is not a GovernanceConfig key"),
        ("spec.nothing.here", "spec.nothing.here is not a key of GovernanceConfig"),
        (" | ".join(["spec.gpu.teams"] * 9), "names 9 alternatives, more than the 8 allowed"),
        ("spec.gpu.teamsFrom=" + "k" * 300, "is not a GovernanceConfig key"),
    ],
)
def test_a_hostile_requires_config_annotation_is_bounded_and_named_at_its_file(
    tmp_path: Path, value: str, says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = write(
        tmp_path / "policies" / "odd.yaml",
        "apiVersion: policyengine.io/v1\nkind: Policy\nmetadata:\n  name: odd\n  annotations:\n"
        f"    policyengine.io/requires-config: {json.dumps(value)}\n"
        "spec:\n  validations: [{expression: 'true'}]\n",
    )
    code, _, err = run_cli(["check", "--policies", str(policy), "."], capsys, monkeypatch)
    assert code == 2, err
    (line,) = [e for e in err.splitlines() if str(policy) in e]
    assert says in line and "policyengine.io/requires-config" in line
    assert len(line) < 1000  # the value is not echoed back whole
