"""ValidatingAdmissionPolicy + binding: Kubernetes semantics for params, matching and actions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine.cli import main
from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Action, Decision, Inventory, Outcome
from policyengine.policyset import PolicySet, build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: max-replicas}}
spec:
  failurePolicy: {failure}
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules:
      - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  variables:
    - {{name: limit, expression: "int(params.data.max)"}}
  validations:
    - expression: "object.spec.replicas <= variables.limit"
      messageExpression: "'replicas must be at most ' + string(variables.limit)"
      reason: Invalid
---
"""

PLAIN_POLICY = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-latest}
spec:
  matchConstraints:
    resourceRules:
      - {apiGroups: [""], apiVersions: [v1], operations: ["*"], resources: [pods]}
  validations:
    - expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
      message: no latest tags
  auditAnnotations:
    - {key: images, valueExpression: "object.spec.containers.map(c, c.image).join(',')"}
---
"""


def binding(
    name: str, param_ref: str = "", extra: str = "", actions: str = "[Deny]", policy: str = "max-replicas"
) -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {policy}
  validationActions: {actions}
{param_ref}
{extra}
---
"""


def config_map(name: str, namespace: str | None, maximum: int, labels: str = "{}") -> str:
    ns = f", namespace: {namespace}" if namespace else ""
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}{ns}, labels: {labels}}}
data: {{max: "{maximum}"}}
---
"""


def deployment(namespace: str = "team-a", replicas: int = 3, labels: str = "{}") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {namespace}, labels: {labels}}}
spec:
  replicas: {replicas}
"""


def load(text: str) -> PolicySet:
    return build_policy_set(parse_text(text, "policies.yaml"))


def decide(policy_set: PolicySet, manifest: str, inventory: Inventory | None = None) -> Decision:
    (doc,) = parse_text(manifest, "m.yaml")
    return Engine(policy_set).evaluate(request_for(doc), inventory=inventory or Inventory(), now=NOW)


def failures(decision: Decision) -> list[tuple[str, str, str]]:
    return [(r.policy, r.outcome.value, r.message) for r in decision.results if r.outcome is not Outcome.PASS]


def by_name(ns: str = "", name: str = "limits", action: str = "Deny") -> str:
    namespace = f", namespace: {ns}" if ns else ""
    return f"  paramRef: {{name: {name}{namespace}, parameterNotFoundAction: {action}}}"


def test_param_by_name_and_namespace() -> None:
    ps = load(
        POLICY.format(failure="Fail") + binding("b", by_name("shared")) + config_map("limits", "shared", 5)
    )
    assert failures(decide(ps, deployment(replicas=3))) == []
    assert failures(decide(ps, deployment(replicas=9))) == [
        ("max-replicas", "fail", "replicas must be at most 5")
    ]


def test_unset_namespace_means_the_request_namespace() -> None:
    text = POLICY.format(failure="Fail") + binding("b", by_name()) + config_map("limits", "team-a", 2)
    ps = load(text + config_map("limits", "team-b", 10))
    assert failures(decide(ps, deployment("team-a", replicas=3))) == [
        ("max-replicas", "fail", "replicas must be at most 2")
    ]
    assert failures(decide(ps, deployment("team-b", replicas=3))) == []


def test_params_from_the_inventory() -> None:
    ps = load(POLICY.format(failure="Fail") + binding("b", by_name()))
    (cm,) = parse_text(config_map("limits", "team-a", 1), "inv.yaml")
    decision = decide(ps, deployment(replicas=2), Inventory(objects=(cm.data,)))
    assert failures(decision) == [("max-replicas", "fail", "replicas must be at most 1")]


def test_selector_evaluates_once_per_param() -> None:
    ref = "  paramRef: {selector: {matchLabels: {tier: web}}, parameterNotFoundAction: Deny}"
    text = POLICY.format(failure="Fail") + binding("b", ref)
    text += config_map("small", "team-a", 2, "{tier: web}") + config_map("big", "team-a", 8, "{tier: web}")
    text += config_map("other", "team-a", 1, "{tier: db}")
    decision = decide(load(text), deployment(replicas=4))
    # In name order: "big" (8) holds, "small" (2) does not.
    assert [r.outcome for r in decision.results] == [Outcome.PASS, Outcome.FAIL]
    assert not decision.allowed


def test_params_not_found_deny_denies_with_a_message() -> None:
    decision = decide(load(POLICY.format(failure="Fail") + binding("b", by_name())), deployment())
    (result,) = decision.results
    assert (result.outcome, result.action, result.code) == (Outcome.ERROR, Action.DENY, "param_not_found")
    assert "no params found" in result.message
    assert not decision.allowed


def test_params_not_found_deny_under_ignore_is_recorded_not_enforced() -> None:
    decision = decide(load(POLICY.format(failure="Ignore") + binding("b", by_name())), deployment())
    assert decision.allowed
    assert [(r.outcome, r.action) for r in decision.results] == [(Outcome.ERROR, Action.AUDIT)]


def test_params_not_found_allow_skips_the_policy() -> None:
    decision = decide(
        load(POLICY.format(failure="Fail") + binding("b", by_name(action="Allow"))), deployment()
    )
    assert decision.allowed and decision.results == ()


def test_namespaced_params_for_a_cluster_scoped_request_is_an_error() -> None:
    text = POLICY.format(failure="Fail").replace(
        "resources: [deployments]", "resources: [deployments, namespaces]"
    )
    text = text.replace("apiGroups: [apps]", 'apiGroups: [apps, ""]').replace(
        "apiVersions: [v1]", "apiVersions: [v1]"
    )
    ps = load(text + binding("b", by_name()) + config_map("limits", "team-a", 2))
    decision = decide(ps, "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\nspec: {replicas: 1}\n")
    (result,) = decision.results
    assert result.outcome is Outcome.ERROR and "cluster-scoped" in result.message


def test_binding_match_resources_intersect_with_the_policy() -> None:
    extra = "  matchResources:\n    namespaceSelector: {matchLabels: {env: prod}}"
    ps = load(PLAIN_POLICY + binding("b", extra=extra, policy="no-latest"))
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: %s}\nspec: {containers: [{name: c, image: 'x:latest'}]}\n"
    prod = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}
    dev = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lab", "labels": {"env": "dev"}}}
    inventory = Inventory(namespaces={"shop": prod, "lab": dev})
    assert failures(decide(ps, pod % "shop", inventory)) == [("no-latest", "fail", "no latest tags")]
    assert decide(ps, pod % "lab", inventory).results == ()
    # The binding cannot widen the policy: a Deployment is outside matchConstraints.
    assert decide(ps, deployment("shop"), inventory).results == ()


@pytest.mark.parametrize(
    ("actions", "allowed", "warned"),
    [
        ("[Deny]", False, False),
        ("[Warn]", True, True),
        ("[Audit]", True, False),
        ("[Warn, Audit]", True, True),
    ],
)
def test_validation_actions_come_from_the_binding(actions: str, allowed: bool, warned: bool) -> None:
    ps = load(PLAIN_POLICY + binding("b", actions=actions, policy="no-latest"))
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'x:latest'}]}\n"
    )
    decision = decide(ps, pod)
    assert decision.allowed is allowed
    assert bool(decision.warnings) is warned
    assert decision.audit_annotations == {"no-latest/images": "x:latest"}


def test_deny_and_warn_together_is_a_load_problem() -> None:
    with pytest.raises(LoadError, match="invalid_value: Deny and Warn cannot be used together") as err:
        load(PLAIN_POLICY + binding("b", actions="[Deny, Warn]", policy="no-latest"))
    assert err.value.problems[0].path == "spec.validationActions"


def test_policy_without_binding_does_nothing_and_says_so() -> None:
    ps = load(PLAIN_POLICY)
    assert ps.policies == ()
    assert any("'no-latest' has no binding, so it does nothing" in note for note in ps.notes)


def test_binding_for_a_missing_policy_is_a_load_problem() -> None:
    with pytest.raises(LoadError, match="unknown_policy: binding 'b' names ValidatingAdmissionPolicy 'nope'"):
        load(PLAIN_POLICY + binding("b", policy="nope"))


def test_pairs_are_named_by_policy_or_policy_and_binding() -> None:
    assert [p.name for p in load(PLAIN_POLICY + binding("b", policy="no-latest")).policies] == ["no-latest"]
    two = load(PLAIN_POLICY + binding("b1", policy="no-latest") + binding("b2", policy="no-latest"))
    assert [p.name for p in two.policies] == ["no-latest/b1", "no-latest/b2"]
    assert all(not p.uses_config_params for p in two.policies)


def test_param_objects_in_policy_files_are_claimed() -> None:
    ps = load(POLICY.format(failure="Fail") + binding("b", by_name("x")) + config_map("limits", "x", 5))
    assert [o["metadata"]["name"] for o in ps.param_objects] == ["limits"]


def test_message_expression_over_the_cap_or_multiline_falls_back() -> None:
    text = PLAIN_POLICY.replace(
        "message: no latest tags", "message: no latest tags\n      messageExpression: \"'a\\\\nb'\""
    )
    ps = load(text + binding("b", policy="no-latest"))
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: 'x:latest'}]}\n"
    )
    assert failures(decide(ps, pod)) == [("no-latest", "fail", "no latest tags")]


def test_match_conditions_skip() -> None:
    text = PLAIN_POLICY.replace(
        "  validations:",
        "  matchConditions:\n    - {name: only-p, expression: \"object.metadata.name == 'p'\"}\n  validations:",
    )
    ps = load(text + binding("b", policy="no-latest"))
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec: {containers: [{name: c, image: 'x:latest'}]}\n"
    )
    assert [r.outcome for r in decide(ps, pod).results] == [Outcome.SKIP]


def test_param_kind_without_param_ref_is_a_binding_error() -> None:
    decision = decide(load(POLICY.format(failure="Fail") + binding("b")), deployment())
    (result,) = decision.results
    assert result.outcome is Outcome.ERROR and "has no paramRef" in result.message
    assert not decision.allowed


def test_check_verbose_notes_an_unbound_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "vap.yaml").write_text(PLAIN_POLICY)
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"
    )
    args = [
        "check",
        "--no-default-policies",
        "--policies",
        str(tmp_path / "vap.yaml"),
        str(tmp_path / "pod.yaml"),
    ]
    assert main([*args, "--verbose"]) == 0
    assert (
        "ValidatingAdmissionPolicy 'no-latest' has no binding, so it does nothing" in capsys.readouterr().err
    )
    assert main(args) == 0
    assert "no binding" not in capsys.readouterr().err


def test_a_bad_expression_of_a_policy_with_two_bindings_is_reported_once() -> None:
    bad = PLAIN_POLICY.replace("!c.image.endsWith(':latest')", "!c.image.endsWith(variables.tag) && nope(c)")
    with pytest.raises(LoadError) as err:
        load(bad + binding("b1", policy="no-latest") + binding("b2", policy="no-latest"))
    assert [(p.code, p.path) for p in err.value.problems] == [
        ("cel_compile", "spec.validations[0].expression"),
        ("cel_compile", "spec.validations[0].expression"),
    ]
    assert "undeclared reference to 'nope'" in err.value.problems[0].message
    assert "variables.tag is not declared" in err.value.problems[1].message
