"""Gatekeeper ConstraintTemplate (K8sNativeValidation) + constraints: variables, actions, match, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.engine import Engine
from policyengine.errors import LoadError
from policyengine.loader import parse_text
from policyengine.match import gvk_of, gvr_of
from policyengine.model import Action, Decision, Inventory, Outcome, Request
from policyengine.policyset import PolicySet, build_policy_set

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

TEMPLATE = """
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sallowedrepos}
spec:
  crd:
    spec:
      names: {kind: K8sAllowedRepos}
      validation:
        openAPIV3Schema:
          type: object
          properties:
            repos: {type: array, items: {type: string}}
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            variables:
              - name: repos
                expression: "!has(variables.params.repos) ? ['default.io/'] : variables.params.repos"
            validations:
              - expression: "variables.anyObject.spec.containers.all(c, variables.repos.exists(r, c.image.startsWith(r)))"
                messageExpression: "'image not from ' + variables.repos.join(', ') + ' (' + variables.anyObject.metadata.name + ')'"
        - engine: Rego
          source:
            rego: "package k8sallowedrepos"
---
"""


def constraint(name: str = "repos", spec: str = "") -> str:
    return f"""
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sAllowedRepos
metadata: {{name: {name}}}
spec:
{spec or "  match: {kinds: [{apiGroups: [''], kinds: [Pod]}]}"}
---
"""


def pod(
    namespace: str = "team-a", image: str = "evil.io/x", labels: str = "{}", name: str = "p"
) -> dict[str, Any]:
    (doc,) = parse_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}\n"
        f"spec: {{containers: [{{name: c, image: {image}}}]}}\n",
        "pod.yaml",
    )
    data: dict[str, Any] = doc.data
    return data


def request(obj: dict[str, Any], operation: str = "CREATE", old: Any = None) -> Request:
    subject = obj if obj is not None else old
    gvk = gvk_of(subject)
    meta = subject["metadata"]
    return Request(
        uid="u",
        kind=gvk,
        resource=gvr_of(gvk),
        operation=operation,
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        object=obj,
        old_object=old,
    )


def load(text: str) -> PolicySet:
    return build_policy_set(parse_text(text, "gk.yaml"))


def decide(ps: PolicySet, req: Request, inventory: Inventory | None = None) -> Decision:
    return Engine(ps).evaluate(req, inventory=inventory or Inventory(), now=NOW)


def messages(decision: Decision) -> list[str]:
    return [r.message for r in decision.results if r.outcome is Outcome.FAIL]


def test_params_are_the_constraint_parameters() -> None:
    spec = "  match: {kinds: [{apiGroups: [''], kinds: [Pod]}]}\n  parameters: {repos: [good.io/]}"
    ps = load(TEMPLATE + constraint(spec=spec))
    assert messages(decide(ps, request(pod()))) == ["image not from good.io/ (p)"]
    assert messages(decide(ps, request(pod(image="good.io/x")))) == []
    (policy,) = ps.policies
    assert (
        policy.name == "repos"
        and policy.params["kind"] == "K8sAllowedRepos"
        and not policy.uses_config_params
    )


def test_params_are_null_without_parameters() -> None:
    ps = load(TEMPLATE + constraint())
    assert messages(decide(ps, request(pod()))) == ["image not from default.io/ (p)"]


def test_any_object_is_the_old_object_on_delete() -> None:
    ps = load(TEMPLATE + constraint())
    decision = decide(ps, request(None, "DELETE", old=pod(name="gone")))  # type: ignore[arg-type]
    assert messages(decision) == ["image not from default.io/ (gone)"]


@pytest.mark.parametrize(
    ("raw", "action", "allowed"),
    [("deny", Action.DENY, False), ("warn", Action.WARN, True), ("dryrun", Action.AUDIT, True)],
)
def test_enforcement_action(raw: str, action: Action, allowed: bool) -> None:
    spec = f"  enforcementAction: {raw}\n  match: {{kinds: [{{apiGroups: [''], kinds: [Pod]}}]}}"
    decision = decide(load(TEMPLATE + constraint(spec=spec)), request(pod()))
    assert [r.action for r in decision.results] == [action]
    assert decision.allowed is allowed


def test_scoped_enforcement_actions_for_our_enforcement_points() -> None:
    spec = """  enforcementAction: scoped
  scopedEnforcementActions:
    - {action: warn, enforcementPoints: [{name: validation.gatekeeper.sh}]}
    - {action: deny, enforcementPoints: [{name: audit.gatekeeper.sh}]}"""
    (policy,) = load(TEMPLATE + constraint(spec=spec)).policies
    assert policy.actions == frozenset({Action.WARN})


def test_unknown_enforcement_action_is_a_load_problem() -> None:
    with pytest.raises(LoadError, match="enforcementAction 'block' is not one of"):
        load(TEMPLATE + constraint(spec="  enforcementAction: block"))


def test_match_namespaces_excluded_and_wildcards() -> None:
    spec = """  match:
    kinds: [{apiGroups: [''], kinds: [Pod]}]
    namespaces: ['team-*']
    excludedNamespaces: ['*-sandbox']"""
    ps = load(TEMPLATE + constraint(spec=spec))
    assert messages(decide(ps, request(pod("team-a"))))
    assert not decide(ps, request(pod("team-sandbox"))).results
    assert not decide(ps, request(pod("other"))).results


def test_match_label_and_namespace_selectors_name_and_scope() -> None:
    spec = """  match:
    labelSelector: {matchLabels: {app: web}}
    namespaceSelector: {matchExpressions: [{key: env, operator: In, values: [prod]}]}
    name: 'web-*'
    scope: Namespaced"""
    ps = load(TEMPLATE + constraint(spec=spec))
    prod = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}
    inventory = Inventory(namespaces={"shop": prod})
    hit = pod("shop", labels="{app: web}", name="web-1")
    assert messages(decide(ps, request(hit), inventory))
    assert not decide(ps, request(pod("shop", labels="{app: db}", name="web-1")), inventory).results
    assert not decide(ps, request(pod("shop", labels="{app: web}", name="api-1")), inventory).results
    assert not decide(ps, request(pod("lab", labels="{app: web}", name="web-1")), inventory).results


def test_kinds_match_any_operation_including_none() -> None:
    ps = load(TEMPLATE + constraint())
    assert messages(decide(ps, request(pod(), operation="")))
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "x"}}
    assert not decide(ps, request(deployment)).results


def test_rego_only_template_is_unsupported() -> None:
    rego_only = TEMPLATE.replace(
        """        - engine: K8sNativeValidation
          source:
            variables:
              - name: repos
                expression: "!has(variables.params.repos) ? ['default.io/'] : variables.params.repos"
            validations:
              - expression: "variables.anyObject.spec.containers.all(c, variables.repos.exists(r, c.image.startsWith(r)))"
                messageExpression: "'image not from ' + variables.repos.join(', ') + ' (' + variables.anyObject.metadata.name + ')'"
""",
        "",
    )
    with pytest.raises(LoadError) as err:
        load(rego_only + constraint())
    (problem,) = err.value.problems
    assert problem.code == "unsupported"
    assert "'k8sallowedrepos'" in problem.message and "Rego is not supported" in problem.message


def test_template_without_constraints_does_nothing_and_says_so() -> None:
    ps = load(TEMPLATE)
    assert ps.policies == ()
    assert any("has no constraints" in n for n in ps.notes)


def test_constraint_without_template_is_unknown_kind() -> None:
    with pytest.raises(LoadError, match="unknown_kind: constraint 'repos' is of kind K8sAllowedRepos"):
        load(constraint())


def test_parameters_checked_against_the_template_schema() -> None:
    spec = "  parameters: {repos: nope}"
    with pytest.raises(LoadError, match="schema_invalid") as err:
        load(TEMPLATE + constraint(spec=spec))
    assert err.value.problems[0].path == "spec.parameters.repos"


def test_reserved_variable_names_are_rejected() -> None:
    with pytest.raises(LoadError, match="variable name 'params' is reserved"):
        load(TEMPLATE.replace("- name: repos", "- name: params") + constraint())


def test_same_name_different_kinds_are_qualified() -> None:
    other = TEMPLATE.replace("K8sAllowedRepos", "K8sOtherRepos").replace("k8sallowedrepos", "k8sotherrepos")
    text = TEMPLATE + other + constraint() + constraint().replace("K8sAllowedRepos", "K8sOtherRepos")
    assert sorted(p.name for p in load(text).policies) == ["K8sAllowedRepos/repos", "K8sOtherRepos/repos"]


def test_namespace_lists_never_exclude_cluster_scoped_objects() -> None:
    spec = "  match:\n    namespaces: [team-a]\n    excludedNamespaces: [kube-system]"
    ps = load(TEMPLATE + constraint(spec=spec))
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"containers": []}}
    assert [r.outcome for r in decide(ps, request(node)).results] == [Outcome.PASS]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}}
    assert not decide(ps, request(namespace)).results


def test_nullable_parameters_admit_null() -> None:
    text = TEMPLATE.replace(
        "repos: {type: array, items: {type: string}}", "repos: {type: array, nullable: true}"
    )
    (policy,) = load(text + constraint(spec="  parameters: {repos: null}")).policies
    assert policy.variables[0].value == {"repos": None}
