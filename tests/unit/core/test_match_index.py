"""The match index answers exactly what ``matches`` answers policy by policy: on the bundled packs, the
gatekeeper-library constraints and matches of every shape (wildcard and subresource rules, resourceNames,
scopes, namespace and object selectors, namespace and name lists, bindings' intersections), for the
upstream manifests and the gatekeeper samples as requests of every operation, subresource and scope;
an engine using it decides as one judging every policy; and its table stays bounded whatever kinds of
request it is shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine.engine import Engine
from policyengine.gate import is_object, request_for
from policyengine.loader import read_documents
from policyengine.match import matches
from policyengine.matchindex import MAX_KEY_CHARS, MAX_KEYS, MatchIndex
from policyengine.model import (
    GroupVersionKind,
    GroupVersionResource,
    KindRule,
    LabelSelector,
    Match,
    Request,
    ResourceRule,
    SelectorRequirement,
)
from policyengine.policyset import load_policy_set

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_TEAM = LabelSelector(match_labels=(("team", "ml"),))
_NOT_SYSTEM = LabelSelector(match_expressions=(SelectorRequirement("tier", "NotIn", ("system",)),))

# Matches of every shape matches() reads, beside the real policies' own.
SHAPES = (
    Match(),
    Match(operations=("DELETE",)),
    Match(resource_rules=(ResourceRule(),)),
    Match(resource_rules=(ResourceRule(resources=("*/*",)),)),
    Match(resource_rules=(ResourceRule(resources=("pods/*",), operations=("CONNECT", "UPDATE")),)),
    Match(resource_rules=(ResourceRule(resources=("*/scale",)),)),
    Match(resource_rules=(ResourceRule(api_groups=("apps",), resources=("deployments/scale",)),)),
    Match(resource_rules=(ResourceRule(api_groups=("",), api_versions=("v1",), resources=("pods",)),)),
    Match(resource_rules=(ResourceRule(resources=("pods",), resource_names=("trainer-0",)),)),
    Match(resource_rules=(ResourceRule(scope="Cluster"),)),
    Match(resource_rules=(ResourceRule(scope="Namespaced", operations=("CREATE",)),)),
    Match(
        resource_rules=(ResourceRule(),),
        exclude_resource_rules=(ResourceRule(resources=("pods",), resource_names=("trainer-0",)),),
    ),
    Match(resource_rules=(ResourceRule(),), exclude_resource_rules=(ResourceRule(api_groups=("apps",)),)),
    Match(kinds=(KindRule(),)),
    Match(kinds=(KindRule(("",), ("Pod",)),), operations=("CREATE", "DELETE")),
    Match(kinds=(KindRule(("kubeflow.org",), ("*",)),)),
    Match(kinds=(KindRule(("*",), ("Namespace",)),), namespace_selector=_TEAM),
    Match(kinds=(KindRule(),), scope="Cluster"),
    Match(kinds=(KindRule(),), scope="Namespaced"),
    Match(namespace_selector=_TEAM),
    Match(namespace_selector=_NOT_SYSTEM),
    Match(object_selector=LabelSelector(match_labels=(("app", "llm"),))),
    Match(object_selector=LabelSelector(match_expressions=(SelectorRequirement("app", "Exists"),))),
    Match(namespaces=("team-*",)),
    Match(excluded_namespaces=("kube-*", "*-system")),
    Match(names=("trainer-*",)),
    Match(kinds=(KindRule(),), also=(Match(resource_rules=(ResourceRule(operations=("CREATE",)),)),)),
    Match(kinds=(KindRule(),), also=(Match(namespace_selector=_TEAM),)),
)

NAMESPACES: dict[str, Any] = {
    "team-ml": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-ml", "labels": {"team": "ml"}}},
    "kube-system": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "labels": {"tier": "system"}}},
}  # fmt: skip


def _variants(request: Request) -> list[Request]:
    """The request as every operation, with and without a subresource, in other namespaces (or none),
    with another name and with labels."""
    obj = request.object if isinstance(request.object, dict) else {}
    labelled = {**obj, "metadata": {**obj.get("metadata", {}), "labels": {"app": "llm"}}}
    out = []
    for operation in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        for sub in ("", "status", "scale"):
            for namespace in {request.namespace, "", "team-ml", "kube-system"}:
                base = replace(request, operation=operation, sub_resource=sub, namespace=namespace)
                out.append(base)
                out.append(replace(base, name="trainer-0", object=labelled, old_object=obj))
    return out


def _gatekeeper(shared: Path) -> tuple[list[Match], list[Any]]:
    """Every gatekeeper-library constraint's match (each sample loaded with its template), and the
    samples' objects."""
    root = shared / "corpus" / "gatekeeper-library"
    found: list[Match] = []
    for constraint in sorted(root.rglob("constraint.yaml")):
        template = constraint.parents[2] / "template.yaml"
        policy_set = load_policy_set([str(template), str(constraint)], include_bundled=False)
        found.extend(p.match for p in policy_set.policies)
    samples = [p for p in sorted(root.rglob("*.yaml")) if p.name not in ("template.yaml", "constraint.yaml")]
    docs = [d for d in read_documents([str(p) for p in samples]) if is_object(d.data)]
    return found, docs


def _upstream(shared: Path) -> list[Any]:
    root = shared / "corpus" / "upstream"
    paths = [str(p) for p in sorted(root.rglob("*")) if p.suffix in (".yaml", ".yml", ".json")]
    return [d for d in read_documents(paths) if is_object(d.data)]


@pytest.mark.shared
def test_the_index_selects_what_matches_selects_on_the_real_corpora(shared: Path) -> None:
    gatekeeper, samples = _gatekeeper(shared)
    assert len(gatekeeper) >= 20
    assert any(m.namespaces or m.excluded_namespaces or m.namespace_selector for m in gatekeeper)
    bundled = [p.match for p in load_policy_set([]).policies]
    every = [*bundled, *gatekeeper, *SHAPES]
    index = MatchIndex(list(range(len(every))), every.__getitem__)
    docs = _upstream(shared) + samples
    assert len(docs) >= 100
    compared = selected = 0
    for doc in docs:
        for request in _variants(request_for(doc)):
            for ns in (NAMESPACES.get(request.namespace), None):
                expected = [i for i, m in enumerate(every) if matches(m, request, ns)]
                assert index.select(request, ns) == expected, (doc.file, request.operation, request.namespace)
                compared += 1
                selected += len(expected)
    assert compared > 10_000 and selected > 50_000  # the comparison really ran on matching requests
    assert 0 < len(index) <= MAX_KEYS


VAP = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: trainers-labelled}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
      - {apiGroups: ["*"], apiVersions: ["*"], operations: [CREATE, UPDATE], resources: ["*", "*/scale"]}
    namespaceSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [system]}]}
  matchConditions:
    - name: not-a-namespace
      expression: "request.kind.kind != 'Namespace'"
  validations:
    - expression: "has(object.metadata.labels) && 'app' in object.metadata.labels"
      message: workloads need an app label
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: trainers-labelled}
spec:
  policyName: trainers-labelled
  validationActions: [Deny]
  matchResources:
    objectSelector: {matchExpressions: [{key: skip, operator: DoesNotExist}]}
    resourceRules:
      - {apiGroups: ["*"], apiVersions: ["*"], operations: ["*"], resources: ["*/*"], resourceNames: [trainer-0, llm]}
"""


@pytest.mark.shared
def test_an_engine_with_the_index_decides_as_one_judging_every_policy(shared: Path, tmp_path: Path) -> None:
    (tmp_path / "vap.yaml").write_text(VAP)
    engine = Engine(load_policy_set([str(tmp_path / "vap.yaml")]))
    naive = Engine(engine.policy_set)
    policies = naive._policies
    naive._index.select = lambda request, ns: [c for c in policies if matches(c.policy.match, request, ns)]  # type: ignore[method-assign]
    from policyengine.model import Inventory

    inventory = Inventory(namespaces=NAMESPACES)
    decided = 0
    for doc in _upstream(shared):
        for request in _variants(request_for(doc))[::5]:
            a = engine.evaluate(request, inventory=inventory, now=_NOW)
            b = naive.evaluate(request, inventory=inventory, now=_NOW)
            assert (a.allowed, a.results) == (b.allowed, b.results), (doc.file, request.operation)
            decided += any(r.policy == "trainers-labelled" for r in a.results)
    assert decided > 20  # the policy with matchConditions and selectors was judged


def _request(kind: str, group: str = "example.com") -> Request:
    return Request(
        uid="u",
        kind=GroupVersionKind(group, "v1", kind),
        resource=GroupVersionResource(group, "v1", kind.lower() + "s"),
        operation="CREATE",
        name="x",
        namespace="team-ml",
        object={"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "x"}},
    )


def test_the_table_is_bounded_whatever_kinds_requests_name() -> None:
    every = list(SHAPES)
    index = MatchIndex(list(range(len(every))), every.__getitem__)
    for n in range(MAX_KEYS * 3):
        request = _request(f"Kind{n}")
        assert index.select(request, None) == [i for i, m in enumerate(every) if matches(m, request, None)]
        assert len(index) <= MAX_KEYS
    index = MatchIndex(list(range(len(every))), every.__getitem__)
    huge = _request("K" * (MAX_KEY_CHARS + 1))
    assert index.select(huge, None) == [i for i, m in enumerate(every) if matches(m, huge, None)]
    assert len(index) == 0  # judged, not kept
