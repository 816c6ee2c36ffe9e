"""``policyengine test``: Gatekeeper Suite and PolicyTest files, failure lines, --run, exit codes."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cli import main
from policyengine.policyset import load_policy_set
from policyengine.testing.runner import run_tests

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

TEMPLATE = """
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8snolatest}
spec:
  crd: {spec: {names: {kind: K8sNoLatest}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "(has(request.operation) && request.operation == 'UPDATE') || variables.anyObject.spec.containers.all(c, !c.image.endsWith(':latest'))"
                message: "latest tag used"
"""
CONSTRAINT = """
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sNoLatest
metadata: {name: no-latest}
spec: {match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}}
"""
SUITE = """
kind: Suite
apiVersion: test.gatekeeper.sh/v1alpha1
metadata: {name: nolatest}
tests:
- name: no-latest
  template: template.yaml
  constraint: constraint.yaml
  cases:
  - name: good
    object: good.yaml
    assertions: [{violations: no}]
  - name: bad
    object: bad.yaml
    assertions: [{violations: yes, message: "latest"}]
  - name: bad-counted
    object: bad.yaml
    assertions: [{violations: 1}]
  - name: update-is-fine
    object: update.yaml
    assertions: [{violations: no}]
  - name: wrong-on-purpose
    object: good.yaml
    assertions: [{violations: yes}]
  - name: skipped
    skip: true
    object: good.yaml
    assertions: [{violations: no}]
"""


def pod(image: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec: {{containers: [{{name: c, image: '{image}'}}]}}\n"


UPDATE = """
kind: AdmissionReview
apiVersion: admission.k8s.io/v1beta1
request:
  operation: UPDATE
  object: {apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: [{name: c, image: 'x:latest'}]}}
"""

POLICY = """
apiVersion: policyengine.io/v1
kind: Policy
metadata: {name: needs-team}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "has(object.metadata.labels) && 'team' in object.metadata.labels"
      message: "pods need a team label"
"""
POLICY_TEST = """
apiVersion: policyengine.io/v1
kind: PolicyTest
metadata: {name: needs-team}
spec:
  policies: [".."]
  cases:
    - name: labelled-pod-passes
      object: {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {team: ml}}, spec: {containers: []}}
      expect:
        verdict: allowed
        results: [{policy: needs-team, outcome: pass}]
    - name: unlabelled-pod-denied
      object: fixtures/unlabelled.yaml
      expect:
        verdict: denied
        results: [{policy: needs-team, action: deny, message: "team label", count: 1}]
    - name: no-expectation
      object: fixtures/unlabelled.yaml
    - name: wrong-verdict
      object: fixtures/unlabelled.yaml
      expect: {verdict: allowed}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def gator(tmp_path: Path) -> Path:
    return write(
        tmp_path / "gk",
        {
            "template.yaml": TEMPLATE,
            "constraint.yaml": CONSTRAINT,
            "suite.yaml": SUITE,
            "good.yaml": pod("x:1.0"),
            "bad.yaml": pod("x:latest"),
            "update.yaml": UPDATE,
        },
    )


@pytest.fixture
def native(tmp_path: Path) -> Path:
    return write(
        tmp_path / "pack",
        {
            "policy.yaml": POLICY,
            "tests/needs-team.yaml": POLICY_TEST,
            "tests/fixtures/unlabelled.yaml": pod("x:1"),
        },
    )


def test_gatekeeper_suite_cases_pass_fail_and_skip(gator: Path) -> None:
    report, problems = run_tests([str(gator)], now=NOW)
    assert problems == []
    status = {r.name: r.status for r in report.results}
    assert status == {
        "nolatest/no-latest/good": "pass",
        "nolatest/no-latest/bad": "pass",
        "nolatest/no-latest/bad-counted": "pass",
        "nolatest/no-latest/update-is-fine": "pass",
        "nolatest/no-latest/wrong-on-purpose": "fail",
        "nolatest/no-latest/skipped": "skip",
    }
    assert report.summary() == "4 passed, 1 failed, 1 skipped"
    (line,) = [x for x in report.lines() if x.startswith("FAIL")]
    assert line.startswith("FAIL nolatest/no-latest/wrong-on-purpose (")
    assert "suite.yaml:22)" in line and "expected at least 1 violations, got 0" in line


def test_native_policy_test_and_a_case_without_expectation_fails(native: Path) -> None:
    report, _ = run_tests([str(native)], now=NOW)
    status = {r.name: (r.status, r.reason) for r in report.results}
    assert status["needs-team/labelled-pod-passes"] == ("pass", "")
    assert status["needs-team/unlabelled-pod-denied"] == ("pass", "")
    assert status["needs-team/no-expectation"][0] == "fail"
    assert "no expectation" in status["needs-team/no-expectation"][1]
    assert status["needs-team/wrong-verdict"][0] == "fail"
    assert "expected verdict allowed, got denied" in status["needs-team/wrong-verdict"][1]
    assert report.summary() == "2 passed, 2 failed"


def test_tests_folders_are_not_loaded_as_policies(native: Path) -> None:
    policy_set = load_policy_set([str(native)], include_bundled=False)
    assert [p.name for p in policy_set.policies] == ["needs-team"]


def test_cli_exit_codes_and_run_selection(gator: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(gator)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "4 passed, 1 failed, 1 skipped"
    assert len([x for x in out if x.startswith("FAIL ")]) == 1

    assert main(["test", str(gator), "--run", "/(good|bad)$"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2 passed, 0 failed"]


def test_cli_without_test_files_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.yaml").write_text(pod("x:1"))
    assert main(["test", str(tmp_path)]) == 2
    assert "no test cases found" in capsys.readouterr().err


def test_a_broken_template_fails_its_cases_with_the_problem(gator: Path) -> None:
    (gator / "template.yaml").write_text(TEMPLATE.replace("K8sNativeValidation", "Rego"))
    report, _ = run_tests([str(gator)], now=NOW, select=None)
    reasons = {r.reason for r in report.results if r.status == "fail"}
    assert len(reasons) == 1
    assert "unsupported" in reasons.pop()


REQUEST_TEST = """
apiVersion: policyengine.io/v1
kind: PolicyTest
metadata: {name: requests}
spec:
  policies: [../policy.yaml]
  cases:
    - name: update-checks-the-new-object
      request:
        operation: UPDATE
        namespace: shop
        object: {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: []}}
        oldObject: {apiVersion: v1, kind: Pod, metadata: {name: a, labels: {team: x}}, spec: {containers: []}}
      expect: {verdict: denied}
    - name: delete-is-not-matched
      oldObject: {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: []}}
      expect:
        verdict: allowed
        results: [{policy: needs-team, outcome: fail, count: 0}]
"""


def test_policy_test_requests_and_old_objects(native: Path) -> None:
    write(native, {"tests/requests.yaml": REQUEST_TEST})
    report, _ = run_tests([str(native / "tests/requests.yaml")], now=NOW)
    assert {r.name: (r.status, r.reason) for r in report.results} == {
        "requests/update-checks-the-new-object": ("pass", ""),
        "requests/delete-is-not-matched": ("pass", ""),
    }


def test_run_selecting_nothing_is_not_an_error(gator: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(gator), "--run", "nothing-has-this-name"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["0 passed, 0 failed"]
    assert "no test cases matching --run" in captured.err


def test_a_misspelt_expectation_is_reported_at_its_line(native: Path) -> None:
    write(
        native,
        {"tests/typo.yaml": POLICY_TEST.replace("        verdict: allowed", "        verdit: allowed")},
    )
    report, _ = run_tests([str(native / "tests/typo.yaml")], now=NOW)
    (result,) = report.results
    assert result.status == "fail"
    assert "invalid PolicyTest" in result.reason and "verdit" in result.reason
    assert result.ref.line == 10  # the expect: mapping holding the stray key
