"""``workload.draAdminAccess`` (the engine's view) and gpu-dra-admin-access: every served shape of a claim's admin access is
found by the request walk that counts devices, what is read is bounded, and hostile claims and namespaces
get a decision (never a crash, never a pass for a request that asks admin access)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.model import Request, UserInfo
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.workloads.adminaccess import admin_access_requests
from policyengine.workloads.claims import MAX_REQUESTS, DeviceClasses
from policyengine.workloads.dra import claim_requests

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = "gpu-dra-admin-access"
CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    adminAccess: {allowedUsers: [root-ops], allowedGroups: [gpu-admins]}
"""


def claim(requests: Any, version: str = "v1", kind: str = "ResourceClaim") -> dict[str, Any]:
    spec: dict[str, Any] = {"devices": {"requests": requests}}
    return {
        "apiVersion": f"resource.k8s.io/{version}",
        "kind": kind,
        "metadata": {"name": "c", "namespace": "mon"},
        "spec": {"spec": spec} if kind == "ResourceClaimTemplate" else spec,
    }


def test_every_served_shape_is_read() -> None:
    v1 = claim([{"name": "a", "exactly": {"deviceClassName": "x", "adminAccess": True}}])
    v1beta1 = claim([{"name": "a", "deviceClassName": "x", "adminAccess": True}], "v1beta1")
    v1beta2 = claim([{"name": "a", "exactly": {"adminAccess": True}}], "v1beta2", "ResourceClaimTemplate")
    alternative = claim(
        [{"name": "a", "firstAvailable": [{"name": "s"}, {"name": "t", "adminAccess": True}]}]
    )
    assert admin_access_requests(v1, None) == [
        {"request": "a", "path": "spec.devices.requests[0].exactly.adminAccess"}
    ]
    assert admin_access_requests(v1beta1, None) == [
        {"request": "a", "path": "spec.devices.requests[0].adminAccess"}
    ]
    assert admin_access_requests(v1beta2, None) == [
        {"request": "a", "path": "spec.spec.devices.requests[0].exactly.adminAccess"}
    ]
    assert admin_access_requests(alternative, None) == [
        {"request": "a/t", "path": "spec.devices.requests[0].firstAvailable[1].adminAccess"}
    ]


@pytest.mark.parametrize(
    "obj",
    [
        claim([{"name": "a", "exactly": {"adminAccess": "true"}}]),  # not the boolean the API takes
        claim([{"name": "a", "exactly": {"adminAccess": False}}]),
        claim("not a list"),
        claim([None, 7, "x"]),
        {**claim([{"exactly": {"adminAccess": True}}]), "apiVersion": "example.com/v1"},  # not DRA
        {"apiVersion": "v1", "kind": "Pod", "spec": {"devices": {"requests": [{"adminAccess": True}]}}},
    ],
)
def test_what_is_not_admin_access_is_not_reported(obj: Any) -> None:
    assert admin_access_requests(obj, None) == []


def test_the_walk_is_bounded_by_the_apis_request_limit() -> None:
    many = claim([{"name": f"r{i}", "exactly": {"adminAccess": True}} for i in range(10_000)])
    assert len(admin_access_requests(many, None)) == MAX_REQUESTS
    problems: list[dict[str, str]] = []
    claim_requests(many, DeviceClasses.from_config(None), problems)
    assert any("more than Kubernetes allows" in p["message"] for p in problems)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    config = tmp_path_factory.mktemp("admin") / "config.yaml"
    config.write_text(CONFIG)
    policies = [str(bundled_policies_dir() / "gpu-quotas")]
    return Engine(load_policy_set(policies, config_paths=[str(config)], include_bundled=False))


def review(engine: Engine, obj: Any, old: Any = None, user: str = "eve", groups: tuple[str, ...] = ()) -> Any:
    operation = "CREATE" if old is None else "UPDATE"
    request: Request = request_from_manifest(obj, operation=operation)
    request = replace(request, old_object=old, user_info=UserInfo(username=user, groups=groups))
    decision = engine.evaluate(request, now=NOW)
    return decision, [r for r in decision.results if r.policy == POLICY]


def test_the_shipped_defaults_allow_nobody(tmp_path: Any) -> None:
    plain = Engine(load_policy_set([str(bundled_policies_dir() / "gpu-quotas")], include_bundled=False))
    obj = claim([{"name": "a", "exactly": {"deviceClassName": "x", "adminAccess": True}}])
    decision, results = review(plain, obj, user="cluster-admin", groups=("system:masters",))
    assert not decision.allowed
    assert [r.outcome for r in results].count("fail") == 1


def test_a_user_in_an_allowed_group_with_admin_access_is_allowed(engine: Engine) -> None:
    obj = claim([{"name": "a", "exactly": {"deviceClassName": "x", "adminAccess": True}}])
    assert review(engine, obj, groups=("gpu-admins",))[0].allowed
    assert review(engine, obj, user="root-ops")[0].allowed
    assert not review(engine, obj, user="root-ops-2", groups=("gpu-admins-2",))[0].allowed


@pytest.mark.parametrize(
    "labels",
    [["resource.kubernetes.io/admin-access"], "resource.kubernetes.io/admin-access=true", 7],
)
def test_hostile_namespace_labels_are_decided_not_crashed(engine: Engine, labels: Any) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "labels": labels}}
    decision, results = review(engine, ns)
    assert results, "the policy gave no result"
    assert all(r.outcome in ("pass", "fail", "error") for r in results)
    # An admin-access label in any form that is not a map is not a label the API server would accept.
    assert decision.allowed or any(r.outcome in ("fail", "error") for r in results)


def test_a_namespace_label_value_that_is_not_a_string_still_counts_as_a_change(engine: Engine) -> None:
    new = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x", "labels": {"resource.kubernetes.io/admin-access": True}},
    }
    old = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    decision, results = review(engine, new, old)
    assert not decision.allowed
    assert any(r.outcome == "fail" and "adds the label" in r.message for r in results)
