"""``policyengine serve`` over TLS denies DRA admin access to a user outside GovernanceConfig
spec.gpu.adminAccess, naming the request's path and the user, and lets an allowed group through: on a
ResourceClaim CREATE and on a Namespace UPDATE that adds the admin-access label (with its oldObject)."""

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
CLAIM = {
    "apiVersion": "resource.k8s.io/v1",
    "kind": "ResourceClaim",
    "metadata": {"name": "peek", "namespace": "monitoring"},
    "spec": {
        "devices": {
            "requests": [
                {"name": "mon", "exactly": {"deviceClassName": "gpu.nvidia.com", "adminAccess": True}}
            ]
        }
    },
}


def claim_review(groups: list[str]) -> dict[str, Any]:
    body = review(CLAIM, kind="ResourceClaim", resource="resourceclaims", namespace="monitoring")
    request = body["request"]
    for key in ("kind", "requestKind", "resource", "requestResource"):
        request[key]["group"] = "resource.k8s.io"
    request["userInfo"]["groups"] = groups
    return body


def namespace_review() -> dict[str, Any]:
    labels = {"resource.kubernetes.io/admin-access": "true"}
    new = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml", "labels": labels}}
    old = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    body = review(new, old=old, operation="UPDATE", kind="Namespace", resource="namespaces", namespace="")
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[Server]:  # noqa: F811
    running = _start(
        tmp_path_factory.mktemp("serve-admin-access"),
        certs,
        "--policies", str(bundled_policies_dir() / "gpu-quotas"),
        "--config", str(PACK_TESTS / "config.yaml"),
        "--config", str(PACK_TESTS / "admin-access" / "config.yaml"),
    )  # fmt: skip
    yield running
    _stop(running)


def _decide(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    with server.client() as client:
        response: dict[str, Any] = client.post("/validate", json=body).json()["response"]
    return response


def test_admin_access_is_denied_to_a_user_outside_the_list(server: Server) -> None:
    denied = _decide(server, claim_review(["devs", "system:authenticated"]))
    assert denied["allowed"] is False
    assert (
        "ResourceClaim peek asks for DRA admin access to devices in use by other pods "
        "(spec.devices.requests[0].exactly.adminAccess, request mon), and user alice "
        "(groups devs, system:authenticated) is not in GovernanceConfig" in denied["status"]["message"]
    )
    assert _decide(server, claim_review(["gpu-admins"]))["allowed"] is True


def test_labelling_a_namespace_for_admin_access_is_denied(server: Server) -> None:
    denied = _decide(server, namespace_review())
    assert denied["allowed"] is False
    assert (
        'user alice (groups devs, system:authenticated) adds the label resource.kubernetes.io/admin-access="true" '
        "to Namespace ml" in denied["status"]["message"]
    )
