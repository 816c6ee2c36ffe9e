"""Kyverno ValidatingPolicies load as they are and give Kyverno's verdicts; autogen, switches, exceptions
and the refused functions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine.codec import request_from_manifest
from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.loader import parse_text
from policyengine.model import Decision, Outcome
from policyengine.policyset import PolicySet, build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DATA = Path(__file__).parents[2] / "data" / "kyverno"
CORPUS = ("disallow-latest-tag", "require-labels", "restrict-node-port", "limit-containers-per-pod",
          "restrict-wildcard-verbs")  # fmt: skip


def load(text: str) -> PolicySet:
    return build_policy_set(parse_text(text, "policy.yaml"))


def decide(policy_set: PolicySet, obj: dict[str, Any], **kw: Any) -> Decision:
    return Engine(policy_set, **kw).evaluate(request_from_manifest(obj), now=NOW)


def verdict(decision: Decision, policy: str) -> str:
    """Kyverno's result for ``policy`` (its autogen variants included): fail, pass or skip."""
    mine = [r for r in decision.results if r.policy == policy or r.policy.startswith(policy + "/autogen")]
    if not mine:
        return "skip"
    return "fail" if any(r.outcome is Outcome.FAIL for r in mine) else "pass"


def _cases() -> list[tuple[str, str, str, str]]:
    out = []
    for folder in CORPUS:
        test = yaml.safe_load((DATA / folder / ".kyverno-test" / "kyverno-test.yaml").read_text())
        for result in test["results"]:
            for name in result["resources"]:
                out.append((folder, result["kind"], name, result["result"]))
    return out


@pytest.mark.parametrize(("folder", "kind", "name", "expected"), _cases())
def test_real_policies_give_kyvernos_verdicts(folder: str, kind: str, name: str, expected: str) -> None:
    policy_set = build_policy_set(parse_text((DATA / folder / f"{folder}.yaml").read_text(), folder))
    resources = yaml.safe_load_all((DATA / folder / ".kyverno-test" / "resource.yaml").read_text())
    obj = next(r for r in resources if r and r["kind"] == kind and r["metadata"]["name"] == name)
    test = yaml.safe_load((DATA / folder / ".kyverno-test" / "kyverno-test.yaml").read_text())
    policy = test["results"][0]["policy"]
    assert verdict(decide(policy_set, obj), policy) == expected


POD_RULE = """
apiVersion: policies.kyverno.io/{version}
kind: ValidatingPolicy
metadata: {{name: no-host-network}}
spec:
  {extra}
  matchConstraints:
    resourceRules:
      - {{apiGroups: [''], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}}
  validations:
    - expression: "!has(object.spec.hostNetwork) || object.spec.hostNetwork == false"
      message: host networking is not allowed
      fieldPath: spec.hostNetwork
"""


def pod_spec(host: bool) -> dict[str, Any]:
    return {"hostNetwork": host, "containers": [{"name": "c", "image": "nginx:1"}]}


def deployment(host: bool) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "namespace": "ns"},
        "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec(host)}},
    }


@pytest.mark.parametrize("version", ["v1alpha1", "v1beta1", "v1"])
def test_autogen_pod_rule_denies_a_deployment_on_its_template(version: str) -> None:
    policy_set = load(POD_RULE.format(version=version, extra=""))
    names = {p.name for p in policy_set.policies}
    assert names == {
        "no-host-network",
        "no-host-network/autogen",
        "no-host-network/autogen-cronjobs",
        "no-host-network/autogen-workloads",
    }
    generated = policy_set.by_name()["no-host-network/autogen"]
    assert generated.validations[0].expression.source == (
        "!has(object.spec.template.spec.hostNetwork) || object.spec.template.spec.hostNetwork == false"
    )
    decision = decide(policy_set, deployment(True))
    assert not decision.allowed
    assert verdict(decide(policy_set, deployment(False)), "no-host-network") == "pass"
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec(True)}}}},
    }
    assert not decide(policy_set, cron).allowed


def test_autogen_keeps_the_workloads_namespace_and_honours_the_controllers_list() -> None:
    text = POD_RULE.format(version="v1", extra="autogen: {podControllers: {controllers: [deployments]}}")
    text = text.replace(
        "!has(object.spec.hostNetwork)", "object.metadata.namespace == 'ns' && !has(object.spec.hostNetwork)"
    )
    policy_set = load(text)
    assert {p.name for p in policy_set.policies} == {
        "no-host-network",
        "no-host-network/autogen",
        "no-host-network/autogen-workloads",
    }
    source = policy_set.by_name()["no-host-network/autogen"].validations[0].expression.source
    assert source.startswith("object.metadata.namespace == 'ns' && !has(object.spec.template.spec.")
    rules = policy_set.by_name()["no-host-network/autogen"].match.resource_rules
    assert [(r.api_groups, r.resources) for r in rules] == [(("apps",), ("deployments",))]


def test_no_autogen_when_the_policy_matches_more_than_pods() -> None:
    text = POD_RULE.format(version="v1", extra="").replace("resources: [pods]", "resources: [pods, services]")
    assert {p.name for p in load(text).policies} == {"no-host-network"}


def test_admission_disabled_policy_does_not_run_at_admission_but_keeps_its_switches() -> None:
    text = POD_RULE.format(version="v1", extra="evaluation: {admission: {enabled: false}}")
    policy_set = load(text)
    policy = policy_set.by_name()["no-host-network"]
    assert (policy.admission, policy.background) == (False, True)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": pod_spec(True),
    }
    assert decide(policy_set, pod).allowed
    assert not decide(policy_set, pod, background=True).allowed


def test_namespaced_policy_only_sees_its_namespace() -> None:
    text = POD_RULE.format(version="v1beta1", extra="").replace(
        "kind: ValidatingPolicy\nmetadata: {name: no-host-network}",
        "kind: NamespacedValidatingPolicy\nmetadata: {name: no-host-network, namespace: team-a}",
    )
    policy_set = load(text)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": pod_spec(True),
    }
    assert decide(policy_set, pod).allowed
    pod["metadata"]["namespace"] = "team-a"
    assert not decide(policy_set, pod).allowed


EXCEPTION = """
---
apiVersion: policies.kyverno.io/v1
kind: PolicyException
metadata: {name: allow-infra}
spec:
  policyRefs:
    - {name: no-host-network, kind: ValidatingPolicy}
  matchConditions:
    - name: infra
      expression: "object.metadata.name == 'd'"
"""


def test_kyverno_exception_excepts_the_policy_and_its_autogen_variants() -> None:
    policy_set = load(POD_RULE.format(version="v1", extra="") + EXCEPTION)
    assert policy_set.exceptions[0].policies[0] == "no-host-network"
    assert decide(policy_set, deployment(True)).allowed
    other = deployment(True)
    other["metadata"]["name"] = "e"
    assert not decide(policy_set, other).allowed


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("http.Get('https://x.example/') == {}", "http.*: reads the network"),
        ("image.GetMetadata('nginx').config != null", "image.GetMetadata"),
        ("time.now() > timestamp('2020-01-01T00:00:00Z')", "time.now: reads the clock"),
        ("resource.Post('v1', 'pods', {}) == {}", "resource.Post: writes to the cluster"),
    ],
)
def test_network_and_clock_functions_are_refused_at_load(expression: str, why: str) -> None:
    text = POD_RULE.format(version="v1", extra="").replace(
        '"!has(object.spec.hostNetwork) || object.spec.hostNetwork == false"', '"' + expression + '"'
    )
    with pytest.raises(LoadError) as err:
        load(text)
    problem = next(p for p in err.value.problems if p.code == "unsupported")
    assert why in problem.message and "one verdict everywhere" in problem.message
    assert (problem.file, problem.line) == ("policy.yaml", 11)  # the expression's own line


def test_a_refused_name_inside_a_string_is_only_text() -> None:
    text = POD_RULE.format(version="v1", extra="").replace(
        "message: host networking is not allowed", "messageExpression: \"'see time.now() and http.Get(x)'\""
    )
    assert load(text).policies


def pytorchjob(worker_host: bool) -> dict[str, Any]:
    def role(host: bool) -> dict[str, Any]:
        return {"replicas": 1, "template": {"metadata": {"labels": {"r": "x"}}, "spec": pod_spec(host)}}

    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train", "namespace": "ml"},
        "spec": {"pytorchReplicaSpecs": {"Master": role(False), "Worker": role(worker_host)}},
    }


def test_pod_rule_runs_on_each_template_of_an_ai_workload_with_the_templates_field_path() -> None:
    policy_set = load(POD_RULE.format(version="v1", extra=""))
    decision = decide(policy_set, pytorchjob(True))
    assert not decision.allowed
    failed = [r for r in decision.results if r.outcome is Outcome.FAIL]
    assert [(r.policy, r.field_path) for r in failed] == [
        ("no-host-network/autogen-workloads", "spec.pytorchReplicaSpecs.Worker.template.spec.hostNetwork")
    ]
    assert failed[0].message == "host networking is not allowed"
    assert verdict(decide(policy_set, pytorchjob(False)), "no-host-network") == "pass"


def test_pod_rule_on_a_deployment_names_the_templates_field_path() -> None:
    decision = decide(load(POD_RULE.format(version="v1", extra="")), deployment(True))
    failed = [r for r in decision.results if r.outcome is Outcome.FAIL]
    assert [(r.policy, r.field_path) for r in failed] == [("no-host-network/autogen", "spec.hostNetwork")]


def test_template_pods_see_the_templates_metadata_and_the_workloads_namespace() -> None:
    text = POD_RULE.format(version="v1", extra="").replace(
        '"!has(object.spec.hostNetwork) || object.spec.hostNetwork == false"',
        "\"object.metadata.labels.r == 'x' && object.metadata.namespace == 'ml'\"",
    )
    decision = decide(load(text), pytorchjob(True))
    assert [r.outcome for r in decision.results] == [Outcome.PASS]


def test_kyverno_exception_covers_the_workload_variant() -> None:
    text = POD_RULE.format(version="v1", extra="") + EXCEPTION.replace("'d'", "'train'")
    assert decide(load(text), pytorchjob(True)).allowed


@pytest.mark.parametrize(
    "spec",
    [
        "spec: 3",
        "spec: {validations: 3}",
        "spec: {validations: [{expression: 1}]}",
        "spec: {matchConstraints: 3, validations: [{expression: 'true'}]}",
        "spec: {matchConstraints: {resourceRules: [3]}, validations: [{expression: 'true'}]}",
        "spec: {validationActions: [Explode], validations: [{expression: 'true'}]}",
        "spec: {failurePolicy: Sometimes, validations: [{expression: 'true'}]}",
    ],
)
def test_malformed_policies_are_load_problems_not_crashes(spec: str) -> None:
    text = f"apiVersion: policies.kyverno.io/v1\nkind: ValidatingPolicy\nmetadata: {{name: x, annotations: null}}\n{spec}\n"
    with pytest.raises(LoadError) as err:
        load(text)
    assert all(p.file == "policy.yaml" and p.code == "schema_invalid" for p in err.value.problems)


@pytest.mark.parametrize(
    "spec", ["spec: {}", "spec: {policyRefs: [3]}", "spec: {policyRefs: [{name: x}], matchConditions: 4}"]
)
def test_malformed_exceptions_are_load_problems(spec: str) -> None:
    text = f"apiVersion: policies.kyverno.io/v1\nkind: PolicyException\nmetadata: {{name: e, annotations: null}}\n{spec}\n"
    with pytest.raises(LoadError) as err:
        load(text)
    assert {p.code for p in err.value.problems} == {"schema_invalid"}


def test_odd_switch_and_autogen_shapes_fall_back_to_kyvernos_defaults() -> None:
    text = POD_RULE.format(version="v1", extra="evaluation: 3\n  autogen: {podControllers: 3}")
    policy = load(text).by_name()["no-host-network"]
    assert (policy.admission, policy.background) == (True, True)
