"""Match semantics: resource rules, kinds, operations, selectors, namespaces and names."""

from __future__ import annotations

from typing import Any

from policyengine.match import gvk_of, gvr_of, matches, plural, selector_matches
from policyengine.model import (
    KindRule,
    LabelSelector,
    Match,
    Request,
    ResourceRule,
    SelectorRequirement,
)


def req(
    obj: dict[str, Any], *, operation: str = "CREATE", namespace: str = "team-a", sub: str = ""
) -> Request:
    gvk = gvk_of(obj)
    return Request(
        uid="u",
        kind=gvk,
        resource=gvr_of(gvk),
        operation=operation,
        name=obj["metadata"]["name"],
        namespace=namespace,
        object=obj,
        sub_resource=sub,
    )


DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"tier": "gpu"}},
}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "prod"}}}


def test_plural_resource_names() -> None:
    assert [
        plural(k) for k in ("Deployment", "Ingress", "NetworkPolicy", "InferenceService", "RayCluster")
    ] == [
        "deployments",
        "ingresses",
        "networkpolicies",
        "inferenceservices",
        "rayclusters",
    ]
    assert plural("PyTorchJob") == "pytorchjobs" and plural("JobSet") == "jobsets"


def test_resource_rules_and_operations() -> None:
    rule = ResourceRule(api_groups=("apps",), resources=("deployments",), operations=("CREATE",))
    m = Match(resource_rules=(rule,))
    assert matches(m, req(DEPLOY), None)
    assert not matches(m, req(DEPLOY, operation="UPDATE"), None)
    assert not matches(
        Match(resource_rules=(ResourceRule(api_groups=("",), resources=("pods",)),)), req(DEPLOY), None
    )


def test_subresources_need_explicit_rules() -> None:
    star = Match(resource_rules=(ResourceRule(),))
    assert not matches(star, req(DEPLOY, sub="scale"), None)
    scale = Match(resource_rules=(ResourceRule(resources=("deployments/scale",)),))
    assert matches(scale, req(DEPLOY, sub="scale"), None)
    assert matches(Match(resource_rules=(ResourceRule(resources=("*/*",)),)), req(DEPLOY, sub="scale"), None)


def test_exclude_rules_win() -> None:
    m = Match(
        resource_rules=(ResourceRule(),), exclude_resource_rules=(ResourceRule(resource_names=("web",)),)
    )
    assert not matches(m, req(DEPLOY), None)


def test_kinds_default_to_create_and_update() -> None:
    m = Match(kinds=(KindRule(("apps",), ("Deployment",)),))
    assert matches(m, req(DEPLOY), None) and matches(m, req(DEPLOY, operation="UPDATE"), None)
    assert not matches(m, req(DEPLOY, operation="DELETE"), None)
    assert matches(
        Match(kinds=(KindRule(("*",), ("*",)),), operations=("DELETE",)),
        req(DEPLOY, operation="DELETE"),
        None,
    )


def test_namespace_selector_uses_namespace_labels() -> None:
    sel = LabelSelector(match_labels=(("env", "prod"),))
    m = Match(namespace_selector=sel)
    assert matches(m, req(DEPLOY), NS)
    assert not matches(m, req(DEPLOY), {"metadata": {"name": "team-a"}})
    assert not matches(m, req(DEPLOY), None)
    # A Namespace object is selected by its own labels.
    assert matches(m, req(NS, namespace=""), None)


def test_object_selector_matches_old_or_new_object() -> None:
    m = Match(object_selector=LabelSelector(match_expressions=(SelectorRequirement("tier", "In", ("gpu",)),)))
    assert matches(m, req(DEPLOY), None)
    delete = Request(
        uid="u",
        kind=gvk_of(DEPLOY),
        resource=gvr_of(gvk_of(DEPLOY)),
        operation="DELETE",
        name="web",
        namespace="a",
        object=None,
        old_object=DEPLOY,
    )
    assert matches(m, delete, None)


def test_selector_operators() -> None:
    labels = {"a": "1"}
    assert selector_matches(LabelSelector(match_expressions=(SelectorRequirement("a", "Exists"),)), labels)
    assert not selector_matches(
        LabelSelector(match_expressions=(SelectorRequirement("a", "DoesNotExist"),)), labels
    )
    assert selector_matches(
        LabelSelector(match_expressions=(SelectorRequirement("b", "NotIn", ("1",)),)), labels
    )
    assert not selector_matches(
        LabelSelector(match_expressions=(SelectorRequirement("a", "NotIn", ("1",)),)), labels
    )
    assert selector_matches(LabelSelector(), {})


def test_namespace_lists_with_wildcards_and_names() -> None:
    assert matches(Match(namespaces=("team-*",)), req(DEPLOY), None)
    assert not matches(Match(excluded_namespaces=("*-a",)), req(DEPLOY), None)
    assert not matches(Match(namespaces=("kube-system",)), req(DEPLOY), None)
    assert matches(Match(names=("we*",)), req(DEPLOY), None)
    assert not matches(Match(scope="Cluster"), req(DEPLOY), None)


def test_requests_of_one_kind_share_its_kind_and_resource_objects() -> None:
    first = gvk_of({"apiVersion": "apps/v1", "kind": "Deployment"})
    again = gvk_of({"apiVersion": "apps/v1", "kind": "Deployment"})
    assert again is first and gvr_of(again) is gvr_of(first)
    assert (first.group, first.version, first.kind) == ("apps", "v1", "Deployment")
    assert gvr_of(first).resource == "deployments"


def test_a_stream_of_distinct_kinds_does_not_grow_the_memo() -> None:
    """Hostile: every manifest a kind of its own, and names far past any real one."""
    from policyengine import match
    from policyengine.memo import MEMO_SIZE

    for i in range(3 * MEMO_SIZE):
        gvk = gvk_of({"apiVersion": f"g{i}.example.com/v1", "kind": f"K{i}"})
        assert gvr_of(gvk).resource == f"k{i}s"
        assert len(match._KINDS) <= MEMO_SIZE and len(match._RESOURCES) <= MEMO_SIZE
    long = "x" * 100_000
    made = gvk_of({"apiVersion": "v1", "kind": long})
    assert made.kind == long and gvr_of(made).resource.startswith("x")
    assert all(len(key[1]) < 1000 for key in match._KINDS)
    assert all(len(key.kind) < 1000 for key in match._RESOURCES)
