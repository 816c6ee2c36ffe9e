"""A scale-subresource UPDATE is judged as the UPDATE of its parent workload (``policyengine.scale``):
the gpu-quotas pack charges what the new replicas add, and whatever cannot be judged that way is an
error result, never a pass."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine import errors
from policyengine.codec import request_from_admission
from policyengine.engine import Engine
from policyengine.inventory import from_documents
from policyengine.loader import read_documents
from policyengine.model import Decision, Inventory, Outcome
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.scale import MAX_REPLICAS, ParentUnavailable

PACK = bundled_policies_dir() / "gpu-quotas"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Parents:
    """A ParentLookup over a dict, recording what it was asked."""

    def __init__(self, objects: dict[tuple[str, str, str], Any], fail: str = "") -> None:
        self.objects = objects
        self.fail = fail
        self.asked: list[tuple[str, str, str, str, str]] = []

    def get(self, group: str, version: str, resource: str, namespace: str, name: str) -> Any:
        self.asked.append((group, version, resource, namespace, name))
        if self.fail:
            raise ParentUnavailable(self.fail)
        return self.objects.get((resource, namespace, name))


@pytest.fixture(scope="module")
def engine() -> Engine:
    tests = PACK / "tests"
    policy_set = load_policy_set(
        [str(PACK)], config_paths=[str(tests / "config.yaml")], include_bundled=False
    )
    return Engine(policy_set)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return from_documents([d.data for d in read_documents([str(PACK / "tests" / "cluster.yaml")])])


def deployment(replicas: int, name: str = "gpu-train") -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    spec = {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "containers": [container]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ml-train"},
        "spec": {"replicas": replicas, "template": {"spec": spec}},
    }


def scale_request(
    replicas: Any,
    *,
    resource: tuple[str, str, str] = ("apps", "v1", "deployments"),
    name: str = "gpu-train",
    spec: Any = None,
) -> dict[str, Any]:
    """An AdmissionRequest as kube-apiserver sends it for ``kubectl scale``: kind autoscaling/v1 Scale,
    resource the parent's (apps/v1 deployments), subResource scale."""
    group, version, plural = resource
    scale: dict[str, Any] = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": name, "namespace": "ml-train"},
        "spec": {"replicas": replicas} if spec is None else spec,
    }
    if spec == "missing":
        del scale["spec"]
    old = {**scale, "spec": {"replicas": 1}}
    gvr = {"group": group, "version": version, "resource": plural}
    return {
        "uid": "u-scale",
        "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "resource": gvr,
        "subResource": "scale",
        "requestKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
        "requestResource": gvr,
        "requestSubResource": "scale",
        "name": name,
        "namespace": "ml-train",
        "operation": "UPDATE",
        "userInfo": {"username": "alice"},
        "object": scale,
        "oldObject": old,
    }


def decide(engine: Engine, inventory: Inventory, raw: dict[str, Any], parents: Parents | None) -> Decision:
    return engine.evaluate(request_from_admission(raw), inventory=inventory, now=NOW, parents=parents)


def failed(decision: Decision, policy: str) -> list[str]:
    return [r.message for r in decision.results if r.policy == policy and r.outcome is Outcome.FAIL]


def errored(decision: Decision) -> list[tuple[str, str, str | None]]:
    return [(r.policy, r.message, r.code) for r in decision.results if r.outcome is Outcome.ERROR]


def test_a_scale_up_over_quota_is_denied_with_the_growth(engine: Engine, inventory: Inventory) -> None:
    # Team ml: quota 16, 10 in use; the Deployment runs 1 replica of 1 GPU and is scaled to 8: +7 = 17.
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(1)})
    decision = decide(engine, inventory, scale_request(8), parents)
    assert parents.asked == [("apps", "v1", "deployments", "ml-train", "gpu-train")]
    assert decision.allowed is False
    (message,) = failed(decision, "gpu-team-quota")
    assert "judged as the UPDATE of Deployment gpu-train to 8 replicas (from 1)" in message
    assert "Deployment gpu-train adds 7 (it grows to 8): 17 is over the quota of 16" in message
    # Answered (and audited) for the request as asked: its uid, the Scale, the subresource.
    assert decision.request.uid == "u-scale" and decision.request.kind.kind == "Scale"
    assert decision.request.sub_resource == "scale"


def test_a_scale_up_within_quota_is_allowed(engine: Engine, inventory: Inventory) -> None:
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(2)})
    decision = decide(engine, inventory, scale_request(8), parents)  # +6: 16 = quota
    assert decision.allowed is True and not errored(decision)


def test_a_scale_up_past_the_per_workload_limit_is_denied(engine: Engine, inventory: Inventory) -> None:
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(8)})
    decision = decide(engine, inventory, scale_request(100), parents)
    assert decision.allowed is False and failed(decision, "gpu-per-workload-limit")


def test_a_scale_down_of_a_team_over_quota_is_allowed(engine: Engine, inventory: Inventory) -> None:
    # 12 replicas (already over maxPerWorkload and, whole, over the quota) down to 9: adds nothing.
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(12)})
    decision = decide(engine, inventory, scale_request(9), parents)
    assert not failed(decision, "gpu-team-quota") and not errored(decision)


def test_without_api_access_a_scale_is_an_error_not_a_pass(engine: Engine, inventory: Inventory) -> None:
    decision = decide(engine, inventory, scale_request(100), None)
    assert decision.allowed is False
    found = errored(decision)
    assert {p for p, _, _ in found} >= {"gpu-team-quota", "gpu-per-workload-limit"}
    assert all(code == errors.EVAL_PARENT and "no API access" in m for _, m, code in found)


def test_a_missing_parent_is_an_error(engine: Engine, inventory: Inventory) -> None:
    decision = decide(engine, inventory, scale_request(3), Parents({}))
    assert decision.allowed is False
    assert errored(decision) and all("is not found" in m for _, m, _ in errored(decision))


def test_a_failed_get_is_an_error_naming_why(engine: Engine, inventory: Inventory) -> None:
    decision = decide(engine, inventory, scale_request(3), Parents({}, fail="timed out after 1s"))
    assert decision.allowed is False
    assert all("could not be read: timed out after 1s" in m for _, m, _ in errored(decision))


def test_an_unknown_crd_kind_is_an_error_naming_it(engine: Engine, inventory: Inventory) -> None:
    trainer = deployment(1)
    trainer.update(apiVersion="example.com/v1", kind="Deployment")  # a CRD the pack governs by kind
    parents = Parents({("deployments", "ml-train", "gpu-train"): trainer})
    decision = decide(
        engine, inventory, scale_request(50, resource=("example.com", "v1", "deployments")), parents
    )
    assert decision.allowed is False
    found = errored(decision)
    assert found and all(
        "scale subresource of Deployment (example.com/deployments) is not read" in m for _, m, _ in found
    )


@pytest.mark.parametrize(
    ("replicas", "spec", "why"),
    [
        (MAX_REPLICAS + 1, None, f"outside 0..{MAX_REPLICAS}"),
        (10**400, None, f"outside 0..{MAX_REPLICAS}"),
        (-1, None, f"outside 0..{MAX_REPLICAS}"),
        ("100", None, "is a str, not an integer"),
        (True, None, "is a bool, not an integer"),
        (2.5, None, "is a float, not an integer"),
        (None, "missing", "has no spec.replicas"),
        (None, {"other": 1}, "has no spec.replicas"),
        (None, ["replicas", 3], "has no spec.replicas"),
    ],
)
def test_a_hostile_scale_is_an_error(
    engine: Engine, inventory: Inventory, replicas: Any, spec: Any, why: str
) -> None:
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(1)})
    decision = decide(engine, inventory, scale_request(replicas, spec=spec), parents)
    assert decision.allowed is False
    found = errored(decision)
    assert found and all(why in m and code == errors.EVAL_PARENT for _, m, code in found)


def test_the_largest_int32_is_judged(engine: Engine, inventory: Inventory) -> None:
    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(1)})
    decision = decide(engine, inventory, scale_request(MAX_REPLICAS), parents)
    assert decision.allowed is False and not errored(decision)
    assert failed(decision, "gpu-team-quota")


def test_a_statefulset_and_a_leaderworkerset_scale_on_spec_replicas(
    engine: Engine, inventory: Inventory
) -> None:
    lws = deployment(1)
    template = lws["spec"].pop("template")
    lws.update(apiVersion="leaderworkerset.x-k8s.io/v1", kind="LeaderWorkerSet")
    lws["spec"]["leaderWorkerTemplate"] = {"size": 2, "workerTemplate": template}
    sts = {**deployment(1), "kind": "StatefulSet"}
    parents = Parents(
        {("leaderworkersets", "ml-train", "gpu-train"): lws, ("statefulsets", "ml-train", "gpu-train"): sts}
    )
    for resource in (("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"), ("apps", "v1", "statefulsets")):
        decision = decide(engine, inventory, scale_request(20, resource=resource), parents)
        assert decision.allowed is False and failed(decision, "gpu-team-quota"), resource


def test_the_budget_fallback_of_a_scale_covers_the_parents_policies(
    engine: Engine, inventory: Inventory
) -> None:
    request = request_from_admission(scale_request(100))
    decision = engine.unevaluated(request, inventory=inventory, message="late", code=errors.EVAL_BUDGET)
    assert decision.allowed is False
    assert {r.policy for r in decision.results} >= {"gpu-team-quota", "gpu-per-workload-limit"}


def test_the_audit_entry_is_the_scale_request_and_says_it_was_judged_through_the_parent(
    engine: Engine, inventory: Inventory
) -> None:
    from audit.decisions import entry_for

    parents = Parents({("deployments", "ml-train", "gpu-train"): deployment(1)})
    decision = decide(engine, inventory, scale_request(8), parents)
    entry = entry_for(decision, source="admission", time=NOW)
    assert entry["uid"] == "u-scale" and entry["verdict"] == "denied"
    assert entry["resource"]["kind"] == "Scale" and entry["resource"]["apiVersion"] == "autoscaling/v1"
    assert entry["results"] and all(
        r["message"].startswith("judged as the UPDATE of Deployment gpu-train") for r in entry["results"]
    )
