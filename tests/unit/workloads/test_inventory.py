"""Cluster inventory: Kubernetes objects in, namespaces and per-team GPU usage out."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from policyengine.inventory import NAME_LABEL, from_documents, inventory_view, pod_gpus_held, usage_by_team
from policyengine.model import Inventory
from policyengine.workloads import describe


def namespace(name: str, team: str | None = None) -> dict[str, Any]:
    labels = {"policyengine.io/team": team} if team else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def pod(
    ns: str, gpus: int, phase: str | None = "Running", resource: str = "nvidia.com/gpu"
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"p-{ns}-{gpus}-{phase}", "namespace": ns},
        "spec": {"containers": [{"name": "m", "image": "i", "resources": {"limits": {resource: gpus}}}]},
    }
    if phase is not None:
        p["status"] = {"phase": phase}
    return p


def test_from_documents_expands_lists_and_keeps_other_objects() -> None:
    text = """
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: train, labels: {policyengine.io/team: ml}}}
- {apiVersion: v1, kind: Pod, metadata: {name: a, namespace: train}, spec: {containers: []}}
---
apiVersion: v1
kind: PodList
items:
- {metadata: {name: b, namespace: train}, spec: {containers: []}}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: serve}
"""
    inventory = from_documents(yaml.safe_load_all(text))
    assert sorted(inventory.namespaces) == ["serve", "train"]
    assert [(o["kind"], o["metadata"]["name"]) for o in inventory.objects] == [("Pod", "a"), ("Pod", "b")]


def test_from_documents_skips_non_objects() -> None:
    assert from_documents([None, "text", 3, {"kind": "List", "items": [None]}]) == Inventory()


def test_only_pods_that_have_not_terminated_hold_gpus() -> None:
    phases = ["Pending", "Running", "Unknown", None, "Succeeded", "Failed"]
    inventory = from_documents([namespace("train", "ml"), *(pod("train", 2, phase) for phase in phases)])
    assert usage_by_team(inventory) == {"ml": 8}  # Pending, Running, Unknown and no status yet
    assert [pod_gpus_held(p) for p in inventory.objects] == [2, 2, 2, 2, 0, 0]


def test_namespaces_without_a_team_label_count_for_default() -> None:
    inventory = from_documents([namespace("a"), pod("a", 1), pod("unlisted", 2), pod("b", 1)])
    assert usage_by_team(inventory) == {"default": 4}


def test_gpu_resource_rules_are_the_workload_rules() -> None:
    inventory = from_documents(
        [
            namespace("t", "ml"),
            pod("t", 1, resource="amd.com/gpu"),
            pod("t", 3, resource="nvidia.com/mig-1g.10gb"),
            pod("t", 4, resource="intel.com/gpu"),
        ]
    )
    assert usage_by_team(inventory) == {"ml": 4}
    assert usage_by_team(inventory, {"spec": {"gpu": {"resources": ["intel.com/gpu"]}}}) == {"ml": 8}


def test_pod_usage_matches_what_admission_counts_for_the_same_pod() -> None:
    p = pod("t", 2)
    p["spec"]["initContainers"] = [
        {"name": "w", "image": "i", "resources": {"limits": {"nvidia.com/gpu": 3}}}
    ]
    assert pod_gpus_held(p) == describe(p)["gpus"]["total"] == 3


@pytest.mark.parametrize(("in_use", "request_gpus", "fits"), [(30, 2, True), (30, 3, False), (32, 0, True)])
def test_team_quota_boundary(in_use: int, request_gpus: int, fits: bool) -> None:
    """The figures a quota rule compares: usage + this workload's total <= quota (32)."""
    config = {"spec": {"gpu": {"teams": {"ml": {"quota": 32}, "default": {"quota": 0}}}}}
    inventory = from_documents([namespace("t", "ml"), pod("t", in_use), pod("t", 5, "Succeeded")])
    view = inventory_view(inventory, config)
    workload = describe(
        {"apiVersion": "v1", "kind": "Pod", "spec": pod("t", request_gpus)["spec"]},
        config,
    )
    quota = config["spec"]["gpu"]["teams"]["ml"]["quota"]
    assert (view["teams"]["ml"]["gpusInUse"] + workload["gpus"]["total"] <= quota) is fits


def test_inventory_view_lists_configured_teams_and_namespaces() -> None:
    config = {"gpu": {"teams": {"ml": {"quota": 8}, "vision": {"quota": 4}}}}
    inventory = from_documents(
        [
            {
                **namespace("train", "ml"),
                "metadata": {**namespace("train", "ml")["metadata"], "annotations": {"a": "b"}},
            },
            namespace("misc"),
            pod("train", 2),
            pod("train", 0),
            pod("misc", 1),
        ]
    )
    assert inventory_view(inventory, config) == {
        "teams": {
            "default": {"gpusInUse": 1, "pods": 1, "gpusInUseByResource": {"nvidia.com/gpu": 1}},
            "ml": {"gpusInUse": 2, "pods": 2, "gpusInUseByResource": {"nvidia.com/gpu": 2}},
            "vision": {"gpusInUse": 0, "pods": 0, "gpusInUseByResource": {}},
        },
        "namespaces": {
            # kube-apiserver's name label is on every namespace, as in a real cluster.
            "misc": {"team": "default", "labels": {NAME_LABEL: "misc"}, "annotations": {}},
            "train": {
                "team": "ml",
                "labels": {"policyengine.io/team": "ml", NAME_LABEL: "train"},
                "annotations": {"a": "b"},
            },
        },
    }


def test_empty_inventory_view() -> None:
    assert inventory_view(Inventory()) == {
        "teams": {"default": {"gpusInUse": 0, "pods": 0, "gpusInUseByResource": {}}},
        "namespaces": {},
    }
