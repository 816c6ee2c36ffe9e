"""`--format github`: workflow commands with the runner's escaping, and the job summary."""

from __future__ import annotations

from policyengine.reports.github import escape_data, escape_property
from tests.unit.reports.conftest import Workspace

EXPECTED = [
    "::error file=manifests/deploy.yaml,line=33,col=15,title=gpu-cap::Deployment/ml/big: at most 4 GPUs per "
    "container%0AFix: Lower resources.limits['nvidia.com/gpu'] to 4 or fewer.",
    "::warning file=manifests/deploy.yaml,line=23,col=3,title=owner-label::Deployment/ml/big: no owner label, "
    "so GPU usage cannot be charged: add one%0AFix: Add metadata.labels.owner: <team>.",
    "::notice file=manifests/deploy.yaml,line=42,col=3,title=replica-watch::Deployment/ml/legacy: more than 2 "
    "replicas",
    "::error file=manifests/jobs.yaml,line=8,title=job-deadline (evaluation error)::Job/default/nightly: "
    "evaluation error (eval_error): expression 'object.spec.activeDeadlineSeconds <= 3600': "
    "no such member in mapping: 'activeDeadlineSeconds'",
    "policyengine: 5 resources, 10 checks: 5 passed, 1 denied, 1 warnings, 1 errors, 1 excepted",
]


def test_annotations_are_exact(workspace: Workspace) -> None:
    code, out, _ = workspace.check("--format", "github")
    assert code == 1
    assert out.splitlines() == EXPECTED


def test_escaping_follows_the_actions_runner() -> None:
    assert escape_data("100% done\r\nnext: a,b") == "100%25 done%0D%0Anext: a,b"
    assert escape_property("dir,with:colon%\n") == "dir%2Cwith%3Acolon%25%0A"


def test_the_job_summary_is_appended_when_asked(workspace: Workspace) -> None:
    summary = workspace.root / "summary.md"
    summary.write_text("earlier step\n")
    workspace.monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = workspace.check("--format", "github")
    assert code == 1 and out.splitlines() == EXPECTED
    text = summary.read_text()
    assert text.startswith("earlier step\n## policyengine check failed\n")
    assert "| 5 | 10 | 5 | 1 | 1 | 1 | 1 |" in text
    assert (
        "| deny | gpu-cap | Deployment/ml/big | manifests/deploy.yaml:33 | at most 4 GPUs per container |"
        in text
    )
    assert "| excepted (legacy-waiver) | owner-label | Deployment/ml/legacy |" in text


def test_no_summary_without_the_github_format(workspace: Workspace) -> None:
    summary = workspace.root / "summary.md"
    workspace.monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    workspace.check("--format", "json")
    assert not summary.exists()
