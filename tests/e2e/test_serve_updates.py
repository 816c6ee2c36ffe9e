"""``policyengine serve`` over TLS decides an UPDATE AdmissionReview with its oldObject on what the change
adds to the team's GPU usage: a scale-up is charged once, a scale-down is not denied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policyengine.policyset import bundled_policies_dir
from tests.e2e.test_serve import Server, _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.unit.webhook.builders import review

pytestmark = pytest.mark.e2e

PACK_TESTS = Path(__file__).resolve().parents[2] / "policies" / "gpu-quotas" / "tests"


def deployment(replicas: int) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    spec = {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "containers": [container]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "serve", "namespace": "ml-train"},
        "spec": {"replicas": replicas, "template": {"spec": spec}},
    }


def deployment_review(new: int, old: int | None, operation: str = "UPDATE") -> dict[str, Any]:
    body = review(
        deployment(new),
        old=deployment(old) if old is not None else None,
        operation=operation,
        kind="Deployment",
        resource="deployments",
        namespace="ml-train",
    )
    request = body["request"]
    for key in ("kind", "requestKind", "resource", "requestResource"):
        request[key]["group"] = "apps"
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Server]:  # noqa: F811
    # The gpu-quotas pack with its tests' config and cluster: team ml, quota 16, 10 GPUs in use.
    running = _start(
        tmp_path_factory.mktemp("serve-updates"),
        certs,
        "--policies", str(bundled_policies_dir() / "gpu-quotas"),
        "--config", str(PACK_TESTS / "config.yaml"),
        "--inventory", str(PACK_TESTS / "cluster.yaml"),
    )  # fmt: skip
    yield running
    _stop(running)


def _decide(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    with server.client() as client:
        response: dict[str, Any] = client.post("/validate", json=body).json()["response"]
    return response


def test_an_update_is_charged_what_it_adds(server: Server) -> None:
    # 2 -> 8 replicas adds 6: 10 + 6 = 16 = quota. The whole 8 again would make 18. A dry run: judged,
    # never reserved, so the requests below see the same usage.
    dry = deployment_review(8, 2)
    dry["request"]["dryRun"] = True
    assert _decide(server, dry)["allowed"] is True
    # 1 -> 8 adds 7: 17 > 16, and the message names the growth.
    denied = _decide(server, deployment_review(8, 1))
    assert denied["allowed"] is False
    assert (
        "team ml uses 10 GPUs and Deployment serve adds 7 (it grows to 8): 17 is over the quota of 16"
        in (denied["status"]["message"])
    )


def test_a_scale_down_is_allowed_and_a_create_is_charged_whole(server: Server) -> None:
    # 12 -> 9: over maxPerWorkload 8 and, charged whole, over the quota (19); it adds nothing.
    assert _decide(server, deployment_review(9, 12))["allowed"] is True
    created = _decide(server, deployment_review(8, None, operation="CREATE"))
    assert created["allowed"] is False
    assert "Deployment serve adds 8: 18 is over the quota of 16" in created["status"]["message"]
    no_old = _decide(server, deployment_review(8, None))
    assert no_old["allowed"] is False and "adds 8: 18" in no_old["status"]["message"]
