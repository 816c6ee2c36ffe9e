"""``workload.gpus.charge``: what a request adds to its team's GPU usage. The whole workload on CREATE
and in CI; on UPDATE with the old object, the growth only (new minus old, never below 0), so the team
quota charges a scale-up once and never denies a scale-down."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.inventory import from_documents
from policyengine.model import Inventory, Request
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.views import views_for
from policyengine.workloads.charge import update_charge

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      ml: {quota: 16, maxPerPod: 8, maxPerWorkload: 12}
"""


def deployment(
    replicas: Any, gpus: Any, resource: str = "nvidia.com/gpu", image: str = "x"
) -> dict[str, Any]:
    container = {"name": "c", "image": image, "resources": {"limits": {resource: gpus}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serve", "namespace": "train"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [container]}}},
    }


def update(new: Any, old: Any) -> Request:
    return replace(request_from_manifest(new, operation="UPDATE"), object=new, old_object=old)


# Team ml holds 8 GPUs: the running Deployment's 2 replicas x 1 GPU, and a 6-GPU pod.
INVENTORY: Inventory = from_documents(
    [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "train", "labels": {"policyengine.io/team": "ml"}},
        },
        *(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "train"},
                "spec": {
                    "containers": [
                        {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": n}}}
                    ]
                },
                "status": {"phase": "Running"},
            }
            for name, n in (("serve-a", 1), ("serve-b", 1), ("other", 6))
        ),
    ]
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    config = tmp_path_factory.mktemp("charge") / "config.yaml"
    config.write_text(CONFIG)
    policies = [str(bundled_policies_dir() / "gpu-quotas")]
    return Engine(load_policy_set(policies, config_paths=[str(config)], include_bundled=False))


def workload(engine: Engine, request: Request) -> dict[str, Any]:
    provide = views_for(engine.policy_set)
    view: dict[str, Any] = provide(request, INVENTORY, engine.policy_set.config, NOW)["workload"]
    return view


def quota_result(engine: Engine, request: Request) -> tuple[str, str]:
    decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
    (result,) = [
        r for r in decision.results if r.policy == "gpu-team-quota" and r.outcome.value != "pass"
    ] or [next(r for r in decision.results if r.policy == "gpu-team-quota")]
    return result.outcome.value, result.message


def test_a_scale_up_is_charged_once(engine: Engine) -> None:
    # 2 -> 10 replicas: 8 in use (the old 2 among them) + 8 added = 16 = quota. Charging the whole
    # 10 on top of the 8 in use (18) denied it.
    request = update(deployment(10, 1), deployment(2, 1))
    assert workload(engine, request)["gpus"]["charge"] == {
        "total": 8,
        "byResource": {"nvidia.com/gpu": 8},
        "byProduct": {},
    }
    decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
    assert decision.allowed, [r.message for r in decision.results if r.denies]
    # One more replica is over: 8 + 9 = 17.
    outcome, message = quota_result(engine, update(deployment(11, 1), deployment(2, 1)))
    assert (outcome, message) == (
        "fail",
        "team ml uses 8 GPUs and Deployment serve adds 9 (it grows to 11): 17 is over the quota of 16",
    )


def test_a_scale_down_is_never_denied_even_over_quota(engine: Engine) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big", "namespace": "train"},
        "spec": {
            "containers": [{"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 12}}}]
        },
        "status": {"phase": "Running"},
    }
    crowded = replace(INVENTORY, objects=(*INVENTORY.objects, big))  # 20 in use, quota 16
    request = update(deployment(1, 1), deployment(2, 1))
    assert workload(engine, request)["gpus"]["charge"] == {
        "total": 0,
        "byResource": {"nvidia.com/gpu": 0},
        "byProduct": {},
    }
    decision = engine.evaluate(request, inventory=crowded, now=NOW)
    assert decision.allowed
    (quota,) = [r for r in decision.results if r.policy == "gpu-team-quota"]
    assert quota.outcome.value == "skip" and "adds-gpus" in quota.message
    # The same Deployment reviewed as a CREATE is charged whole: 20 + 1 > 16.
    created = engine.evaluate(request_from_manifest(deployment(1, 1)), inventory=crowded, now=NOW)
    assert not created.allowed


def test_an_update_without_the_old_object_and_a_create_charge_the_whole_workload(engine: Engine) -> None:
    new = deployment(10, 1)
    without_old = replace(request_from_manifest(new, operation="UPDATE"), old_object=None)
    for request in (without_old, request_from_manifest(new)):
        assert workload(engine, request)["gpus"]["charge"] == {
            "total": 10,
            "byResource": {"nvidia.com/gpu": 10},
            "byProduct": {},
        }
        assert quota_result(engine, request) == (
            "fail",
            "team ml uses 8 GPUs and Deployment serve adds 10: 18 is over the quota of 16",
        )


def test_the_per_resource_charge_is_the_growth_of_each_resource(engine: Engine) -> None:
    # 4 whole GPUs become 4 MIG slices x 2 replicas: the total grows by 4, MIG by 8, whole GPUs by none.
    old = deployment(4, 1)
    new = deployment(4, 1)
    new["spec"]["template"]["spec"]["containers"].append(
        {"name": "m", "image": "x", "resources": {"limits": {"nvidia.com/mig-1g.5gb": 1}}}
    )
    assert workload(engine, update(new, old))["gpus"]["charge"] == {
        "total": 4,
        "byResource": {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.5gb": 4},
        "byProduct": {},
    }
    swapped = deployment(4, 1, resource="amd.com/gpu")
    assert workload(engine, update(swapped, old))["gpus"]["charge"] == {
        "total": 0,
        "byResource": {"amd.com/gpu": 4},
        "byProduct": {},
    }


def test_limits_judge_the_new_object_but_a_shrinking_update_is_not_denied(engine: Engine) -> None:
    def failed(request: Request) -> set[str]:
        decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
        return {r.policy for r in decision.results if r.denies}

    # maxPerWorkload 12: 20 -> 14 is still over it but shrinks it; 10 -> 14 grows over it.
    assert failed(update(deployment(14, 1), deployment(20, 1))) == set()
    assert failed(update(deployment(14, 1), deployment(10, 1))) == {"gpu-per-workload-limit"}
    # maxPerPod 8: 10 x 1 -> 1 x 10 adds nothing, but no pod may ask for 10.
    assert failed(update(deployment(1, 10), deployment(10, 1))) == {"gpu-per-pod-limit"}


def test_the_old_objects_problems_stay_out_of_the_view(engine: Engine) -> None:
    # An unreadable old count counts 0: the whole new workload is charged (more, never less), and
    # the finding is about an object nobody is submitting, so it is not reported.
    request = update(deployment(3, 1), deployment("many", "lots"))
    view = workload(engine, request)
    assert view["problems"] == []
    assert view["gpus"]["charge"] == {"total": 3, "byResource": {"nvidia.com/gpu": 3}, "byProduct": {}}
    decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
    assert [r.outcome.value for r in decision.results if r.policy == "gpu-counts-readable"] == ["skip"]


@pytest.mark.parametrize(
    "old",
    [
        None,
        "not an object",
        [deployment(2, 1)],
        {"kind": "Deployment", "spec": {"replicas": 2**200, "template": "x"}},
        deployment(2**70, 2**70),  # saturates at int64, as the new view does
        deployment(-5, -3),
        {
            "spec": {
                "template": {
                    "spec": {"containers": [{"resources": {"limits": {"nvidia.com/gpu": {"a": 1}}}}] * 500}
                }
            }
        },
    ],
)
def test_a_hostile_old_object_never_lowers_the_charge_below_zero_or_crashes(engine: Engine, old: Any) -> None:
    request = update(deployment(3, 1), old)
    charge = workload(engine, request)["gpus"]["charge"]
    assert 0 <= charge["total"] <= 3
    assert all(0 <= n <= 3 for n in charge["byResource"].values())
    decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
    assert not any(r.outcome.value == "error" for r in decision.results), decision.results


def test_update_charge_reads_only_whole_non_negative_old_figures() -> None:
    new = {"total": 4, "byResource": {"nvidia.com/gpu": 4}}
    assert update_charge(new, {"total": True, "byResource": {"nvidia.com/gpu": 2.5}}) == new
    assert update_charge(new, {}) == new
    assert update_charge(new, {"total": 9, "byResource": {"nvidia.com/gpu": 9}}) == {
        "total": 0,
        "byResource": {"nvidia.com/gpu": 0},
    }


def test_delete_and_connect_are_not_charged_or_reviewed_by_the_gpu_rules(engine: Engine) -> None:
    gone = deployment(20, 1)
    for operation in ("DELETE", "CONNECT"):
        request = replace(request_from_manifest(gone, operation=operation), object=None, old_object=gone)
        decision = engine.evaluate(request, inventory=INVENTORY, now=NOW)
        assert decision.results == () and decision.allowed
