"""Decisions: outcomes, actions, lazy variables, messages, failurePolicy, exceptions, params."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from policyengine.engine import EMPTY_INVENTORY, Engine
from policyengine.gate import request_for
from policyengine.loader import parse_text
from policyengine.model import Action, Decision, Inventory, Outcome
from policyengine.policyset import build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def engine(text: str) -> Engine:
    return Engine(build_policy_set(parse_text(text, "policies.yaml")))


def decide(
    eng: Engine, manifest: str, inventory: Inventory = EMPTY_INVENTORY, now: datetime = NOW
) -> Decision:
    (doc,) = parse_text(manifest, "m.yaml")
    return eng.evaluate(request_for(doc), inventory=inventory, now=now)


def policy(name: str, spec: str, annotations: str = "") -> str:
    return f"""
apiVersion: policyengine.io/v1
kind: Policy
metadata:
  name: {name}
{annotations}
spec:
{spec}
---
"""


POD = """
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: team-a
  labels: {{app: demo}}
spec:
  containers:
    - name: main
      image: {image}
"""


def pod(name: str = "p", image: str = "nginx:1.27") -> str:
    return POD.format(name=name, image=image)


def outcomes(decision: Decision) -> list[tuple[str, str, str]]:
    return [(r.policy, str(r.action), str(r.outcome)) for r in decision.results]


def test_pass_fail_and_verdict() -> None:
    eng = engine(
        policy(
            "no-latest",
            """
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "object.spec.containers.all(c, !c.image.endsWith(':latest'))"
      message: images must not use the latest tag
""",
        )
    )
    ok = decide(eng, pod())
    assert ok.allowed and outcomes(ok) == [("no-latest", "deny", "pass")] and ok.verdict == "allowed"
    bad = decide(eng, pod(image="nginx:latest"))
    assert not bad.allowed and bad.verdict == "denied"
    assert bad.results[0].message == "images must not use the latest tag"


def test_unmatched_policies_produce_no_results() -> None:
    eng = engine(
        policy(
            "deploys",
            '  match: {kinds: [{apiGroups: [apps], kinds: [Deployment]}]}\n  validations: [{expression: "false"}]',
        )
    )
    decision = decide(eng, pod())
    assert decision.allowed and decision.results == ()


def test_variables_are_lazy_and_may_use_earlier_ones() -> None:
    eng = engine(
        policy(
            "vars",
            """
  variables:
    - name: broken
      expression: "object.spec.nothing.here"
    - name: images
      expression: "object.spec.containers.map(c, c.image)"
    - name: count
      expression: "size(variables.images)"
  validations:
    - expression: "variables.count == 1"
""",
        )
    )
    # `broken` is never referenced, so it is never evaluated and cannot fail the policy.
    assert outcomes(decide(eng, pod())) == [("vars", "deny", "pass")]


def test_a_variable_error_becomes_an_error_result_of_the_validations_that_use_it() -> None:
    eng = engine(
        policy(
            "vars",
            """
  variables:
    - name: broken
      expression: "object.spec.nothing.here"
  validations:
    - expression: "variables.broken == 1"
    - expression: "true"
""",
        )
    )
    results = decide(eng, pod()).results
    assert [str(r.outcome) for r in results] == ["error", "pass"]
    assert results[0].code == "eval_error"


def test_message_expression_wins_and_falls_back_to_message() -> None:
    eng = engine(
        policy(
            "msgs",
            """
  validations:
    - expression: "false"
      message: static one
      messageExpression: "'image ' + object.spec.containers[0].image + ' rejected'"
    - expression: "false"
      message: static two
      messageExpression: "object.spec.missing.field"
    - expression: "false"
      message: static three
      messageExpression: '"two\\nlines"'
    - expression: "1 == 2"
""",
        )
    )
    messages = [r.message for r in decide(eng, pod()).results]
    assert messages == [
        "image nginx:1.27 rejected",
        "static two",
        "static three",
        "failed expression: 1 == 2",
    ]


def test_a_policy_that_errors_on_one_object_but_not_on_others() -> None:
    eng = engine(
        policy(
            "port",
            """
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
  validations:
    - expression: "object.spec.containers[0].ports[0].containerPort > 1024"
      message: use an unprivileged port
""",
        )
    )
    with_port = pod().rstrip() + "\n      ports: [{containerPort: 8080}]\n"
    without = pod()
    assert outcomes(decide(eng, with_port)) == [("port", "deny", "pass")]
    errored = decide(eng, without)
    assert outcomes(errored) == [("port", "deny", "error")] and not errored.allowed
    assert "containerPort" in errored.results[0].message or "ports" in errored.results[0].message


def test_failure_policy_ignore_records_the_error_without_denying() -> None:
    eng = engine(policy("ign", '  failurePolicy: Ignore\n  validations: [{expression: "object.nope == 1"}]'))
    decision = decide(eng, pod())
    assert decision.allowed
    assert outcomes(decision) == [("ign", "audit", "error")]


def test_non_boolean_validation_is_a_type_error() -> None:
    eng = engine(policy("nb", '  validations: [{expression: "object.metadata.name"}]'))
    (result,) = decide(eng, pod()).results
    assert result.outcome is Outcome.ERROR and result.code == "type_error"


def test_warn_and_audit_actions_do_not_deny() -> None:
    eng = engine(
        policy("w", '  validationActions: [Warn]\n  validations: [{expression: "false", message: careful}]')
        + policy("a", '  validationActions: [Audit]\n  validations: [{expression: "false"}]')
    )
    decision = decide(eng, pod())
    assert decision.allowed and decision.verdict == "warned"
    assert decision.warnings == ("w: careful",)
    assert {(r.policy, r.action) for r in decision.results} == {("w", Action.WARN), ("a", Action.AUDIT)}


def test_match_conditions_skip_or_error() -> None:
    eng = engine(
        policy(
            "skip",
            '  matchConditions: [{name: only-b, expression: "object.metadata.name == \'b\'"}]\n  validations: [{expression: "false"}]',
        )
        + policy(
            "err",
            '  matchConditions: [{name: bad, expression: "object.nope"}]\n  validations: [{expression: "true"}]',
        )
    )
    decision = decide(eng, pod(name="a"))
    assert outcomes(decision) == [("skip", "deny", "skip"), ("err", "deny", "error")]
    assert outcomes(decide(eng, pod(name="b")))[0] == ("skip", "deny", "fail")


def test_native_policies_see_governance_config_as_params() -> None:
    eng = engine(
        policy(
            "cfg",
            "  validations: [{expression: \"object.metadata.name in params.allowed.names\", messageExpression: \"'not in ' + params.allowed.names.join(',')\"}]",
        )
        + "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: c}\nspec:\n  allowed: {names: [x, y]}\n"
    )
    (result,) = decide(eng, pod()).results
    assert result.outcome is Outcome.FAIL


def test_namespace_object_and_request_bindings() -> None:
    eng = engine(
        policy(
            "ns",
            "  validations: [{expression: \"namespaceObject.metadata.labels.team == 'a' && request.operation == 'CREATE' && request.namespace == 'team-a'\"}]",
        )
    )
    inv = Inventory(namespaces={"team-a": {"metadata": {"name": "team-a", "labels": {"team": "a"}}}})
    assert outcomes(decide(eng, pod(), inventory=inv)) == [("ns", "deny", "pass")]


def test_exceptions_apply_until_they_expire() -> None:
    policies = (
        policy("strict", '  validations: [{expression: "false", message: denied}]')
        + """
apiVersion: policyengine.io/v1
kind: PolicyException
metadata: {name: demo-waiver}
spec:
  policies: [strict]
  match: {namespaces: [team-a], kinds: [{apiGroups: [""], kinds: [Pod]}]}
  matchConditions: [{name: demo, expression: "object.metadata.labels.app == 'demo'"}]
  expires: "2026-12-01T00:00:00Z"
  reason: migration
  approvedBy: platform-team
"""
    )
    eng = engine(policies)
    excepted = decide(eng, pod())
    assert excepted.allowed
    assert [(r.outcome, r.exception) for r in excepted.results] == [(Outcome.EXCEPTED, "demo-waiver")]
    later = decide(eng, pod(), now=datetime(2026, 12, 2, tzinfo=UTC))
    assert not later.allowed and later.exceptions_expired == ("demo-waiver",)
    other = decide(eng, pod().replace("app: demo", "app: other"))
    assert not other.allowed and other.results[0].exception is None


def test_audit_annotations() -> None:
    eng = engine(
        policy(
            "ann",
            '  validations: [{expression: "true"}]\n  auditAnnotations: [{key: image, valueExpression: "object.spec.containers[0].image"}, {key: none, valueExpression: "null"}]',
        )
    )
    assert dict(decide(eng, pod()).audit_annotations) == {"ann/image": "nginx:1.27"}


def test_policy_set_digest_is_stable(tmp_path: Path) -> None:
    text = policy("d", '  validations: [{expression: "true"}]')
    assert engine(text).digest == engine(text).digest
    assert engine(text).digest != engine(text.replace('"true"', '"1 == 1"')).digest


def test_request_built_from_a_manifest() -> None:
    (doc,) = parse_text("apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: train}\n", "j.yaml")
    request = request_for(doc)
    resource: Any = request.resource
    assert (resource.group, resource.version, resource.resource) == ("kubeflow.org", "v1", "pytorchjobs")
    assert request.namespace == "default" and request.operation == "CREATE"
    (ns,) = parse_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n", "n.yaml")
    assert request_for(ns).namespace == ""


def test_field_path_expression_names_the_offending_field_and_falls_back() -> None:
    eng = engine(
        policy(
            "paths",
            """
  validations:
    - expression: "object.spec.containers.all(c, !c.image.endsWith(':1.27'))"
      fieldPath: spec.containers
      fieldPathExpression: "'spec.containers[' + string(object.spec.containers.size() - 1) + '].image'"
    - expression: "false"
      fieldPath: spec
      fieldPathExpression: "object.spec.nothing"
""",
        )
    )
    first, second = decide(eng, pod()).results
    assert first.field_path == "spec.containers[0].image"
    assert second.field_path == "spec"


def test_a_request_the_backend_cannot_hold_is_an_error_result_not_a_crash() -> None:
    from policyengine.cel import get_backend
    from policyengine.expressions import Compiler

    text = policy("p", '  validations: [{expression: "true"}]')
    eng = Engine(build_policy_set(parse_text(text, "p.yaml"), compiler=Compiler(get_backend("reference"))))
    huge = "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {n: 100000000000000000000000}\n"
    decision = decide(eng, huge)
    assert not decision.allowed
    assert [(r.outcome, r.code) for r in decision.results] == [(Outcome.ERROR, "eval_error")]
    assert "cannot be evaluated" in decision.results[0].message
