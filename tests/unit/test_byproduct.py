"""GPUs per product in the workload view and the org view: pinned, unpinned, UPDATE deltas, bounds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine.errors import LoadError
from policyengine.loader import parse_text
from policyengine.model import GroupVersionKind, GroupVersionResource, Inventory, Request
from policyengine.policyset import PolicySet, build_policy_set
from policyengine.productusage import pool_product_usage
from policyengine.views import views_for
from policyengine.workloads import describe
from policyengine.workloads.byproduct import MAX_BUDGET_PRODUCTS, budget_products, expand

H100, A100 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB"
CONFIG: dict[str, Any] = {"gpu": {"teams": {"models": {"quotaByProduct": {H100: 16, A100: 4}}}}}


def _job(parallelism: int, gpus: int, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = {**(spec or {}), "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "models"},
        "spec": {"parallelism": parallelism, "template": {"spec": pod}},
    }


def _provide(obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    policy_set = PolicySet(config=CONFIG)
    namespace = {"metadata": {"name": "models", "labels": {"policyengine.io/team": "models"}}}
    inventory = Inventory(namespaces={"models": namespace}, objects=())
    request = Request(
        uid="u",
        kind=GroupVersionKind("batch", "v1", "Job"),
        resource=GroupVersionResource("batch", "v1", "jobs"),
        operation="UPDATE" if old else "CREATE",
        name="j",
        namespace="models",
        object=obj,
        old_object=old,
    )
    return dict(views_for(policy_set)(request, inventory, policy_set.config, datetime.now(UTC)))


def test_pinned_gpus_count_against_their_product() -> None:
    gpus = describe(_job(4, 2, {"nodeSelector": {"nvidia.com/gpu.product": H100}}))["gpus"]
    assert gpus["byProduct"] == {H100: 8}
    assert gpus["unpinned"] == []
    assert gpus["charge"]["byProduct"] == {H100: 8}


def test_unpinned_gpus_count_against_every_budgeted_product_once_the_team_is_known() -> None:
    views = _provide(_job(4, 2))
    gpus = views["workload"]["gpus"]
    assert gpus["unpinned"] == [{"template": "spec.template.spec", "gpus": 8, "excluded": []}]
    assert gpus["byProduct"] == {A100: 8, H100: 8}
    assert gpus["charge"]["byProduct"] == {A100: 8, H100: 8}
    assert views["org"]["quota"]["gpusInUseByProduct"] == {A100: 0, H100: 0}


def test_not_in_excludes_a_product_from_the_charge() -> None:
    term = {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "NotIn", "values": [A100]}]}
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
    }
    gpus = _provide(_job(1, 3, {"affinity": affinity}))["workload"]["gpus"]
    assert gpus["charge"]["byProduct"] == {A100: 0, H100: 3}


def test_update_charges_new_minus_old_per_product_never_below_zero() -> None:
    pin = {"nodeSelector": {"nvidia.com/gpu.product": H100}}
    grow = _provide(_job(6, 1, pin), _job(2, 1, pin))["workload"]["gpus"]["charge"]
    assert grow["byProduct"] == {A100: 0, H100: 4}
    shrink = _provide(_job(1, 1, pin), _job(2, 1, pin))["workload"]["gpus"]["charge"]
    assert shrink["byProduct"] == {A100: 0, H100: 0}
    # Pinning a running unpinned workload to H100 adds nothing: its GPUs were already charged to H100.
    pinned = _provide(_job(2, 1, pin), _job(2, 1))["workload"]["gpus"]["charge"]
    assert pinned["byProduct"] == {A100: 0, H100: 0}


def test_bound_pod_counts_as_its_node_and_unbound_as_its_spec() -> None:
    def pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
        containers = [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": 2}}}]
        return {
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "models"},
            "spec": {**spec, "containers": containers},
            "status": {"phase": "Running"},
        }

    node = {"kind": "Node", "metadata": {"name": "n1", "labels": {"nvidia.com/gpu.product": A100}}}
    objects = (
        node,
        pod("bound", {"nodeName": "n1", "nodeSelector": {"nvidia.com/gpu.product": H100}}),
        pod("free", {}),
        pod("gone", {"nodeName": "missing"}),
    )
    namespace = {"metadata": {"name": "models", "labels": {"policyengine.io/team": "models"}}}
    inventory = Inventory(namespaces={"models": namespace}, objects=objects)
    pools = pool_product_usage(inventory, CONFIG, CONFIG["gpu"]["teams"])
    # bound: its node's A100 (2); free and gone (node unknown): unpinned, 4 against every product.
    assert pools["models"].in_use([A100, H100]) == {A100: 6, H100: 4}


def test_many_products_are_bounded() -> None:
    limits = {"quotaByProduct": {f"p-{i}": 1 for i in range(10_000)}}
    assert len(budget_products(limits)) == MAX_BUDGET_PRODUCTS
    excluded = [f"x-{i}" for i in range(10_000)]
    expanded = expand({}, [{"gpus": 1, "excluded": excluded}], budget_products(limits))
    assert len(expanded) == MAX_BUDGET_PRODUCTS


def test_hostile_unpinned_entries_are_read_defensively() -> None:
    assert expand({H100: 1}, [{"gpus": "8"}, {"gpus": -3}, "junk", {"gpus": 2, "excluded": 7}], [A100]) == {
        A100: 2,
        H100: 1,
    }


def _config_problems(entries: str) -> list[str]:
    text = (
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: c}\nspec:\n"
        "  gpu:\n    teams:\n      ml:\n        quotaByProduct:\n" + entries
    )
    with pytest.raises(LoadError) as err:
        build_policy_set(parse_text(text, "config.yaml"))
    return [str(p) for p in err.value.problems]


def test_a_hundred_thousand_product_budgets_are_refused_with_one_clear_error() -> None:
    (problem,) = _config_problems("".join(f"          p-{i}: 1\n" for i in range(100_000)))
    assert "has 100000 entries, more than the 64 allowed" in problem
    assert "spec.gpu.teams.ml.quotaByProduct" in problem


def test_a_huge_product_name_is_refused_without_echoing_it() -> None:
    (problem,) = _config_problems(f"          ? {'H' * 200_000}\n          : 1\n")
    assert "more than the 63 allowed" in problem
    assert len(problem) < 1_000
