"""Each kind of policy document is compiled against the names it is evaluated with, so a misspelt
binding, a view it does not get, a message literal or a validation that cannot be true or false fails
the load with ``file:line: code: message (at path)`` instead of erroring on every request."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from policyengine import errors, native
from policyengine.cel import Declarations
from policyengine.cli import main
from policyengine.compat import gatekeeper, vap
from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.loader import parse_text
from policyengine.model import GroupVersionKind, GroupVersionResource, Outcome, Request
from policyengine.policyset import build_policy_set, load_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

NATIVE = """\
apiVersion: policyengine.io/v1
kind: Policy
metadata: {{name: gpu-cap}}
spec:
  match: {{kinds: [{{apiGroups: [""], kinds: [Pod]}}]}}
  validations:
    - expression: "{expression}"
      messageExpression: "{message}"
"""
VAP = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: replicas}}
spec:
  matchConstraints:
    resourceRules: [{{apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}}]
  validations:
    - expression: "{expression}"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: replicas}}
spec: {{policyName: replicas, validationActions: [Deny]}}
"""
TEMPLATE = """\
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {{name: k8sgpus}}
spec:
  crd: {{spec: {{names: {{kind: K8sGpus}}}}}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "{expression}"
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sGpus
metadata: {{name: gpus}}
spec: {{match: {{kinds: [{{apiGroups: [""], kinds: [Pod]}}]}}}}
"""
EXCEPTION = """\
---
apiVersion: policyengine.io/v1
kind: PolicyException
metadata: {{name: waiver}}
spec:
  policies: [gpu-cap]
  match: {{namespaces: [lab]}}
  matchConditions: [{{name: demo, expression: "{expression}"}}]
  reason: demo
  approvedBy: platform
"""


def load(text: str) -> list[errors.Problem]:
    with pytest.raises(LoadError) as caught:
        build_policy_set(parse_text(text, "p.yaml"))
    return list(caught.value.problems)


def native_policy(expression: str, message: str = "'too many'") -> str:
    return NATIVE.format(expression=expression, message=message)


def test_a_misspelt_view_fails_the_load_at_its_line() -> None:
    (problem,) = load(native_policy("workloads.gpus.total <= 8"))
    assert problem.render() == (
        "p.yaml:7: undeclared_reference: undeclared reference to 'workloads' (did you mean 'workload'? "
        "Policy expressions may read inventory, namespaceObject, object, oldObject, org, params, request, "
        "variables, workload) (at spec.validations[0].expression)"
    )


def test_every_problem_of_the_set_is_reported_together() -> None:
    problems = load(native_policy("objct.spec.replicas <= 8", message="Msg{text: 'x'}"))
    assert [(p.code, p.path) for p in problems] == [
        (errors.UNDECLARED_REFERENCE, "spec.validations[0].expression"),
        (errors.UNDECLARED_REFERENCE, "spec.validations[0].messageExpression"),
    ]
    assert "message construction (Msg{...})" in problems[1].message


@pytest.mark.parametrize(
    ("expression", "message", "path", "text"),
    [
        ("'true'", "'x'", "spec.validations[0].expression", "must evaluate to bool, but this expression yields string"),
        ("object.a + 1", "'x'", "spec.validations[0].expression", "must evaluate to bool, but this expression yields"),
        ("true", "object.spec.replicas > 3", "spec.validations[0].messageExpression", "must evaluate to string, but this expression yields bool"),
    ],
)  # fmt: skip
def test_a_result_of_the_wrong_kind_fails_the_load(
    expression: str, message: str, path: str, text: str
) -> None:
    (problem,) = load(native_policy(expression, message))
    assert (problem.code, problem.path) == (errors.CEL_TYPE, path)
    assert text in problem.message


def test_a_validating_admission_policy_gets_kubernetes_bindings_only() -> None:
    (typo,) = load(VAP.format(expression="objct.spec.replicas <= 5"))
    assert typo.code == errors.UNDECLARED_REFERENCE and "'objct'" in typo.message
    assert "ValidatingAdmissionPolicy expressions may read" in typo.message
    (view,) = load(VAP.format(expression="workload.gpus.total <= 5"))
    assert view.code == errors.UNDECLARED_REFERENCE and "'workload'" in view.message
    build_policy_set(
        parse_text(VAP.format(expression="object.spec.replicas <= 5 && params == null"), "p.yaml")
    )


def test_a_gatekeeper_template_gets_kubernetes_bindings_and_its_variables() -> None:
    (problem,) = load(TEMPLATE.format(expression="inventory.gpus.used < 8"))
    assert (problem.code, problem.line) == (errors.UNDECLARED_REFERENCE, 12)
    assert problem.path == "spec.targets[0].code[0].source.validations[0].expression"
    build_policy_set(
        parse_text(
            TEMPLATE.format(expression="variables.anyObject.kind == 'Pod' && has(variables.params)"), "p.yaml"
        )
    )


def test_exception_conditions_are_checked_with_the_policy_bindings() -> None:
    text = native_policy("object.spec.replicas <= 8") + EXCEPTION.format(
        expression="objet.metadata.name == 'x'"
    )
    (problem,) = load(text)
    assert (problem.code, problem.path) == (errors.UNDECLARED_REFERENCE, "spec.matchConditions[0].expression")
    assert "PolicyException expressions may read" in problem.message
    (typed,) = load(native_policy("true") + EXCEPTION.format(expression="'yes'"))
    assert typed.code == errors.CEL_TYPE


def test_a_policy_test_reports_the_load_error_of_its_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.yaml").write_text(native_policy("workloads.gpus.total <= 8"), encoding="utf-8")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text(
        textwrap.dedent("""\
            apiVersion: policyengine.io/v1
            kind: PolicyTest
            metadata: {name: gpu}
            spec:
              policies: [../policy.yaml]
              cases:
                - name: small-pod
                  object: {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: []}}
                  expect: {verdict: allowed}
        """),
        encoding="utf-8",
    )
    assert main(["test", str(tmp_path / "tests" / "t.yaml")]) == 1
    assert "undeclared_reference: undeclared reference to 'workloads'" in capsys.readouterr().out


def _reads_every_root(declared: Declarations) -> str:
    roots = sorted(declared.roots - {"variables"})
    return f"[{', '.join(roots)}].size() == {len(roots)} && variables.v"


def test_every_name_declared_for_native_policies_is_bound_at_evaluation() -> None:
    text = native_policy("true").replace(
        "  validations:", "  variables: [{name: v, expression: 'true'}]\n  validations:"
    )
    text = text.replace('"true"', f'"{_reads_every_root(native.DECLARED)}"', 1)
    engine = Engine(build_policy_set(parse_text(text, "p.yaml")))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "lab"}, "spec": {}}
    request = Request(
        "uid",
        GroupVersionKind("", "v1", "Pod"),
        GroupVersionResource("", "v1", "pods"),
        "CREATE",
        "a",
        "lab",
        pod,
    )
    decision = engine.evaluate(request, now=NOW)
    assert [r.outcome for r in decision.results] == [Outcome.PASS], decision.results


def test_kubernetes_kinds_declare_the_same_names() -> None:
    assert vap.DECLARED.roots == gatekeeper.DECLARED.roots == native.ADMISSION_ROOTS
    assert native.DECLARED.roots == native.ADMISSION_ROOTS | native.VIEWS
    assert native.EXCEPTION_DECLARED.roots == native.DECLARED.roots


def test_the_shipped_packs_use_only_declared_names() -> None:
    assert load_policy_set([]).policies


def test_the_new_codes_are_load_codes() -> None:
    assert {errors.UNDECLARED_REFERENCE, errors.CEL_TYPE} <= errors.LOAD_CODES
