"""``policyengine serve --kube`` over TLS judges a scale-subresource UPDATE (``kubectl scale``, an
autoscaler) as the UPDATE of the Deployment it scales, read from the API server: a scale-up is charged
what it adds to the team's GPU usage, a scale-down passes, and a parent that is gone is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.policyset import bundled_policies_dir
from tests.e2e.test_serve import _start, _stop, certs  # noqa: F401 (certs is a fixture)
from tests.unit.webhook.fake_apiserver import FakeAPIServer, kubeconfig

pytestmark = pytest.mark.e2e

PACK_TESTS = Path(__file__).resolve().parents[2] / "policies" / "gpu-quotas" / "tests"


def deployment(replicas: int) -> dict[str, Any]:
    container = {"name": "c", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 1}}}
    spec = {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, "containers": [container]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gpu-train", "namespace": "ml-train", "uid": "d-1"},
        "spec": {"replicas": replicas, "template": {"spec": spec}},
    }


def scale_review(replicas: int, uid: str) -> dict[str, Any]:
    """What kube-apiserver sends for ``kubectl scale deploy/gpu-train --replicas=N``."""
    scale = {
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {"name": "gpu-train", "namespace": "ml-train", "uid": "d-1"},
        "spec": {"replicas": replicas},
        "status": {"replicas": 1, "selector": "app=gpu-train"},
    }
    deployments = {"group": "apps", "version": "v1", "resource": "deployments"}
    scale_kind = {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    request = {
        "uid": uid,
        "kind": scale_kind,
        "resource": deployments,
        "subResource": "scale",
        "requestKind": scale_kind,
        "requestResource": deployments,
        "requestSubResource": "scale",
        "name": "gpu-train",
        "namespace": "ml-train",
        "operation": "UPDATE",
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": scale,
        "oldObject": {**scale, "spec": {"replicas": 1}},
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"},
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def test_a_scale_is_judged_as_the_update_of_its_deployment(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    fake = FakeAPIServer()
    url = fake.start()
    # Team ml (quota 16) runs 10 GPUs; its Deployment gpu-train runs 1 replica of 1 GPU.
    fake.put("namespaces", "ml-train", metadata={"labels": {"policyengine.io/team": "ml"}})
    limits = {"limits": {"nvidia.com/gpu": 10}}
    pod_spec = {"containers": [{"name": "c", "image": "x", "resources": limits}]}
    fake.put("pods", "running", "ml-train", spec=pod_spec, status={"phase": "Running"})
    fake.put_workload("deployments", deployment(1))
    running = _start(
        tmp_path,
        certs,
        "--kube", "--kubeconfig", str(kubeconfig(tmp_path / "kubeconfig", url)),
        "--policies", str(bundled_policies_dir() / "gpu-quotas"),
        "--config", str(PACK_TESTS / "config.yaml"),
        "--reservations", "memory",  # one replica; the scale is the subject here, not the store
    )  # fmt: skip
    try:
        with running.client() as client:
            up = client.post("/validate", json=scale_review(8, "u-up")).json()
            response = up["response"]
            assert up["kind"] == "AdmissionReview" and response["uid"] == "u-up"
            assert response["allowed"] is False
            message = response["status"]["message"]
            assert "judged as the UPDATE of Deployment gpu-train to 8 replicas (from 1)" in message
            assert "Deployment gpu-train adds 7 (it grows to 8): 17 is over the quota of 16" in message
            assert fake.gets == ["/apis/apps/v1/namespaces/ml-train/deployments/gpu-train"]

            within = client.post("/validate", json=scale_review(6, "u-within")).json()["response"]
            assert within == {**within, "uid": "u-within", "allowed": True}

            fake.put_workload("deployments", deployment(12))  # over the quota already: 12 -> 9 passes
            down = client.post("/validate", json=scale_review(9, "u-down")).json()["response"]
            assert down["allowed"] is True

            fake.delete_workload("deployments", deployment(12))
            gone = client.post("/validate", json=scale_review(2, "u-gone")).json()["response"]
            assert gone["allowed"] is False
            assert (
                "evaluation error: the parent of the scale of deployments/gpu-train"
                in gone["status"]["message"]
            )
            assert "is not found" in gone["status"]["message"]
        logged = [line for line in running.logs() if line.get("uid") == "u-up"]
        assert logged and logged[0]["resource"]["kind"] == "Scale" and logged[0]["verdict"] == "denied"
    finally:
        _stop(running)
        fake.stop()


def test_without_kube_a_scale_is_an_error_for_failure_policy(tmp_path: Path, certs: Path) -> None:  # noqa: F811
    running = _start(
        tmp_path,
        certs,
        "--policies", str(bundled_policies_dir() / "gpu-quotas"),
        "--config", str(PACK_TESTS / "config.yaml"),
        "--inventory", str(PACK_TESTS / "cluster.yaml"),
    )  # fmt: skip
    try:
        with running.client() as client:
            response = client.post("/validate", json=scale_review(100, "u-nokube")).json()["response"]
        assert response["allowed"] is False
        assert "the webhook has no API access (--kube)" in response["status"]["message"]
    finally:
        _stop(running)
