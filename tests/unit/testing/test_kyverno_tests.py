"""Kyverno CLI ``Test`` files under ``policyengine test``: ClusterPolicy ``validate.cel`` rules converted
(autogen included), results per policy, rule and resource, values files, refusals, the legacy format."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cel.port import DEFAULT_BUDGET
from policyengine.cli import main
from policyengine.expressions import Compiler
from policyengine.testing.kyvernoconvert import Refused, convert
from policyengine.testing.kyvernotest import REFUSED
from policyengine.testing.runner import run_tests

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

POLICY = """
apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata: {name: no-privileged}
spec:
  validationFailureAction: Enforce
  rules:
    - name: privileged-containers
      match:
        any:
        - resources: {kinds: [Pod], operations: [CREATE, UPDATE]}
      exclude:
        any:
        - resources: {namespaces: [kube-system]}
      celPreconditions:
        - name: not-skipped
          expression: "!has(object.metadata.labels) || !('skip' in object.metadata.labels)"
      validate:
        cel:
          expressions:
            - expression: "object.spec.containers.all(c, !has(c.securityContext) || !has(c.securityContext.privileged) || c.securityContext.privileged == false)"
              message: "privileged is disallowed"
    - name: team-label
      match:
        any:
        - resources: {kinds: [Pod]}
      validate:
        cel:
          expressions:
            - expression: "namespaceObject.metadata.labels.team == 'ml'"
"""
RESOURCES = """
apiVersion: v1
kind: Pod
metadata: {name: goodpod, namespace: ml}
spec: {containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: badpod, namespace: ml}
spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: systempod, namespace: kube-system}
spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}
---
apiVersion: v1
kind: Pod
metadata: {name: skippedpod, namespace: ml, labels: {skip: "yes"}}
spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: baddeploy, namespace: ml}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: x, securityContext: {privileged: true}}]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: goodcron, namespace: ml}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        metadata: {labels: {a: b}}
        spec: {containers: [{name: c, image: x}]}
"""
VALUES = """
apiVersion: cli.kyverno.io/v1alpha1
kind: Values
namespaceSelector:
  - name: ml
    labels: {team: ml}
"""
TEST = """
apiVersion: cli.kyverno.io/v1alpha1
kind: Test
metadata: {name: no-privileged}
policies: [../policy.yaml]
resources: [resources.yaml]
variables: values.yaml
results:
  - {policy: no-privileged, rule: privileged-containers, kind: Pod, resources: [goodpod], result: pass}
  - {policy: no-privileged, rule: privileged-containers, kind: Pod, resources: [badpod], result: fail}
  - {policy: no-privileged, rule: privileged-containers, kind: Pod, resources: [kube-system/systempod], result: fail}
  - {policy: no-privileged, rule: privileged-containers, kind: Pod, resources: [skippedpod], result: skip}
  - {policy: no-privileged, rule: privileged-containers, kind: Deployment, resources: [baddeploy], result: fail}
  - {policy: no-privileged, rule: privileged-containers, kind: CronJob, resources: [goodcron], result: pass}
  - {policy: no-privileged, rule: team-label, kind: Pod, resources: [goodpod], result: pass}
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "policy.yaml": POLICY,
            ".kyverno-test/kyverno-test.yaml": TEST,
            ".kyverno-test/resources.yaml": RESOURCES,
            ".kyverno-test/values.yaml": VALUES,
        },
    )
    return tmp_path


def statuses(root: Path) -> dict[str, str]:
    report, problems = run_tests([str(root)], now=NOW)
    assert problems == []
    return {r.name: r.status if r.status == "pass" else r.reason for r in report.results}


def test_kyverno_test_in_a_hidden_folder_runs_every_expected_result(suite: Path) -> None:
    # The resource in kube-system is excluded: no rule response, a pass whatever the expectation (as
    # kyverno test); the Deployment and CronJob run the autogen rules; the label feeds namespaceObject.
    assert statuses(suite) == {
        "no-privileged/no-privileged/privileged-containers/goodpod": "pass",
        "no-privileged/no-privileged/privileged-containers/badpod": "pass",
        "no-privileged/no-privileged/privileged-containers/kube-system/systempod": "pass",
        "no-privileged/no-privileged/privileged-containers/skippedpod": "pass",
        "no-privileged/no-privileged/privileged-containers/baddeploy": "pass",
        "no-privileged/no-privileged/privileged-containers/goodcron": "pass",
        "no-privileged/no-privileged/team-label/goodpod": "pass",
    }


def test_a_wrong_expectation_is_a_mismatch_with_file_and_line(
    suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    test = suite / ".kyverno-test" / "kyverno-test.yaml"
    test.write_text(
        test.read_text().replace(
            "resources: [baddeploy], result: fail", "resources: [baddeploy], result: pass"
        )
    )
    assert main(["test", str(suite)]) == 1
    out = capsys.readouterr().out
    assert (
        f"FAIL no-privileged/no-privileged/privileged-containers/baddeploy ({test}:13): "
        "expected pass, got fail (Deployment/baddeploy)"
    ) in out
    assert out.strip().endswith("6 passed, 1 failed")


def test_values_namespace_labels_feed_namespace_object(suite: Path) -> None:
    values = suite / ".kyverno-test" / "values.yaml"
    values.write_text(values.read_text().replace("team: ml", "team: web"))
    got = statuses(suite)
    assert got["no-privileged/no-privileged/team-label/goodpod"] == "expected pass, got fail (Pod/goodpod)"


def test_update_operation_from_the_result(suite: Path) -> None:
    policy = suite / "policy.yaml"
    policy.write_text(policy.read_text().replace("operations: [CREATE, UPDATE]", "operations: [CREATE]"))
    test = suite / ".kyverno-test" / "kyverno-test.yaml"
    text = test.read_text().replace(
        "resources: [badpod], result: fail}", "resources: [badpod], result: fail, operation: UPDATE}"
    )
    test.write_text(text)
    # Not matched on UPDATE: no response, which kyverno test counts as a pass whatever was expected.
    assert statuses(suite)["no-privileged/no-privileged/privileged-containers/badpod"] == "pass"


def test_legacy_unversioned_format(tmp_path: Path) -> None:
    legacy = textwrap.dedent(TEST).replace(
        "apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\nmetadata: {name: no-privileged}\n", "name: legacy\n"
    )
    write(tmp_path, {"policy.yaml": POLICY, "t/resources.yaml": RESOURCES, "t/values.yaml": VALUES})
    (tmp_path / "t" / "kyverno-test.yaml").write_text(legacy)
    got = statuses(tmp_path)
    assert len(got) == 7
    assert set(got.values()) == {"pass"}
    assert "legacy/no-privileged/team-label/goodpod" in got


def test_a_rule_without_cel_is_refused_with_the_reason(suite: Path) -> None:
    policy = suite / "policy.yaml"
    policy.write_text(
        policy.read_text().replace(
            '      validate:\n        cel:\n          expressions:\n            - expression: "namespaceObject',
            '      validate:\n        pattern: {spec: {}}\n        cel:\n          expressions:\n            - expression: "namespaceObject',
        )
    )
    got = statuses(suite)
    reason = f"{REFUSED}no-privileged: rule 'team-label': validate mixes cel with other validation kinds"
    assert set(got.values()) == {reason}


def test_optional_syntax_loads_and_runs(suite: Path) -> None:
    # A policy written with optional syntax loads: no case of it is refused.
    policy = suite / "policy.yaml"
    policy.write_text(
        policy.read_text().replace("namespaceObject.metadata.labels.team == 'ml'", "object.?spec.hasValue()")
    )
    got = statuses(suite)
    assert got and not any(v.startswith(REFUSED) for v in got.values())


def test_test_level_features_the_runner_lacks_are_refused(suite: Path) -> None:
    test = suite / ".kyverno-test" / "kyverno-test.yaml"
    test.write_text(test.read_text() + "userinfo: user.yaml\n")
    got = statuses(suite)
    assert set(got.values()) == {f"{REFUSED}the test uses userinfo, which the runner does not provide"}


def test_unknown_field_and_missing_resource_are_failures(suite: Path) -> None:
    test = suite / ".kyverno-test" / "kyverno-test.yaml"
    test.write_text(test.read_text().replace("[goodcron]", "[nosuchthing]"))
    got = statuses(suite)
    assert got["no-privileged/no-privileged/privileged-containers/nosuchthing"] == (
        "no resource 'nosuchthing' among the test's resources"
    )
    test.write_text(test.read_text() + "bogus: 1\n")
    assert statuses(suite) == {"no-privileged": "unknown field 'bogus' in a Kyverno Test"}


def test_policy_kinds_loaded_as_they_are_go_through_the_policy_set(suite: Path) -> None:
    # A ValidatingAdmissionPolicy named in a test is loaded as it is; its results are the policy's.
    write(
        suite,
        {
            "vap.yaml": """
            apiVersion: admissionregistration.k8s.io/v1
            kind: ValidatingAdmissionPolicy
            metadata: {name: vap-no-priv}
            spec:
              matchConstraints: {resourceRules: [{apiGroups: [""], apiVersions: [v1], operations: ["*"], resources: [pods]}]}
              validations: [{expression: "object.spec.containers.all(c, !has(c.securityContext))"}]
            ---
            apiVersion: admissionregistration.k8s.io/v1
            kind: ValidatingAdmissionPolicyBinding
            metadata: {name: vap-no-priv}
            spec: {policyName: vap-no-priv, validationActions: [Deny]}
            """,
            ".kyverno-test/kyverno-test.yaml": """
            apiVersion: cli.kyverno.io/v1alpha1
            kind: Test
            metadata: {name: vap}
            policies: [../vap.yaml]
            resources: [resources.yaml]
            results:
              - {policy: vap-no-priv, isValidatingAdmissionPolicy: true, kind: Pod, resources: [goodpod], result: pass}
              - {policy: vap-no-priv, isValidatingAdmissionPolicy: true, kind: Pod, resources: [badpod], result: fail}
            """,
        },
    )
    assert set(statuses(suite).values()) == {"pass"}


def test_autogen_rewrites_as_kyverno_does() -> None:
    rules = convert(
        {
            "metadata": {"name": "p"},
            "spec": {
                "rules": [
                    {
                        "name": "r",
                        "match": {"any": [{"resources": {"kinds": ["Pod"]}}]},
                        "validate": {
                            "cel": {
                                "expressions": [
                                    {"expression": "object.metadata.name != '' && has(object.spec)"}
                                ]
                            }
                        },
                    }
                ]
            },
        }
    )
    assert [r.rule for r in rules] == ["r", "autogen-r", "autogen-cronjob-r"]
    exprs = [r.documents[0]["spec"]["validations"][0]["expression"] for r in rules]
    assert exprs == [
        "object.metadata.name != '' && has(object.spec)",
        "object.spec.template.metadata.name != '' && has(object.spec.template.spec)",
        "object.spec.jobTemplate.spec.template.metadata.name != '' && has(object.spec.jobTemplate.spec.template.spec)",
    ]
    kinds = [r.documents[0]["spec"]["matchConstraints"]["resourceRules"] for r in rules]
    assert [k["resources"][0] for k in kinds[1]] == [
        "daemonsets",
        "deployments",
        "jobs",
        "statefulsets",
        "replicasets",
        "replicationcontrollers",
    ]
    assert kinds[2] == [
        {"apiGroups": ["batch"], "apiVersions": ["*"], "operations": ["*"], "resources": ["cronjobs"]}
    ]


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ({"match": {"any": [{"subjects": [{"kind": "User", "name": "x"}]}]}}, "match by subjects"),
        (
            {"match": {"any": [{"resources": {"kinds": ["Pod"], "names": ["web-*"]}}]}},
            "a wildcard resource name",
        ),
        ({"match": {"any": [{"resources": {"kinds": ["Pod/exec"]}}]}}, "names a subresource"),
        ({"match": {"any": [{"resources": {"kinds": ["Pod"]}}]}, "context": []}, "uses context"),
    ],
)
def test_conversion_refusals(rule: dict[str, object], reason: str) -> None:
    full = {"name": "r", "validate": {"cel": {"expressions": [{"expression": "true"}]}}, **rule}
    with pytest.raises(Refused, match=reason):
        convert({"metadata": {"name": "p"}, "spec": {"rules": [full]}})


def test_or_value_on_a_non_optional_returns_the_receiver() -> None:
    # cel-go's evalOptionalOrValue (the versions Kubernetes runs): a receiver that is not an optional is
    # returned unchanged, without evaluating the argument.
    compiler = Compiler()
    expr = compiler.compile("dyn({'a': 1}).a.orValue(2)")
    assert expr.evaluate(compiler.backend.bind({}), DEFAULT_BUDGET) == 1
    assert (
        compiler.compile("optional.none().orValue(2)").evaluate(compiler.backend.bind({}), DEFAULT_BUDGET)
        == 2
    )


def test_hidden_folder_walk_survives_a_link_loop_and_is_bounded(
    suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from policyengine.testing import kyvernotest

    (suite / ".kyverno-test" / "loop").symlink_to(suite, target_is_directory=True)
    assert kyvernotest.hidden_test_files([str(suite)]) == [str(suite / ".kyverno-test" / "kyverno-test.yaml")]
    hidden = suite / ".many"
    hidden.mkdir()
    for i in range(50):
        (hidden / f"f{i}.yaml").write_text("")
    (hidden / "kyverno-test.yaml").write_text(textwrap.dedent(TEST))
    monkeypatch.setattr(kyvernotest, "MAX_WALK_ENTRIES", 20)
    # the walk stops at the bound: the folder past it is not read
    assert str(hidden / "kyverno-test.yaml") not in kyvernotest.hidden_test_files([str(suite)])


def test_hostile_result_entries_are_failures_not_crashes(suite: Path) -> None:
    test = suite / ".kyverno-test" / "kyverno-test.yaml"
    test.write_text(test.read_text() + "  - just-a-string\n  - {policy: no-privileged, result: pass}\n")
    got = statuses(suite)
    assert got["no-privileged/#7"] == "a result needs a policy"
    assert got["no-privileged/#8"] == "a result needs resources"
