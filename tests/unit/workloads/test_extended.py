"""GPUs asked for as extended resources served by DRA (KEP-5004): the implicit
``deviceclass.resource.kubernetes.io/<class>`` name and a DeviceClass's ``spec.extendedResourceName``
count under the class's GPU name, once, in the view, in ``check`` and in the inventory's usage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.inventory import from_documents, inventory_view, pod_gpus_held
from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.extended import MAX_RESOURCE_NAME
from tests.helpers import ACME_CONFIG, run_json, write

IMPLICIT = "deviceclass.resource.kubernetes.io/"


def _job(limits: dict[str, Any], parallelism: int = 16, init: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}],
    }
    if init is not None:
        spec["initContainers"] = [{"name": "i", "image": "x", "resources": {"limits": init}}]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "big", "namespace": "team-a"},
        "spec": {"parallelism": parallelism, "template": {"spec": spec}},
    }


def _device_class(name: str, resource: str, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "DeviceClass",
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"extendedResourceName": resource},
    }


def test_implicit_device_class_name_counts_under_the_class_gpu_name() -> None:
    view = describe(_job({f"{IMPLICIT}gpu.nvidia.com": "8"}))
    assert view["podTemplates"][0]["gpus"] == {"perPod": 8, "byResource": {"nvidia.com/gpu": 8}}
    assert (view["gpus"]["total"], view["gpus"]["byResource"]) == (128, {"nvidia.com/gpu": 128})
    assert view["containers"][0]["gpus"]["draExtendedResources"] == [
        {
            "resource": f"{IMPLICIT}gpu.nvidia.com",
            "deviceClass": "gpu.nvidia.com",
            "countsAs": "nvidia.com/gpu",
            "count": 8,
        }
    ]
    assert view["isAiWorkload"] and not view["problems"]


def test_a_device_class_extended_resource_name_counts_under_its_class() -> None:
    claims = ClaimObjects([_device_class("gpu.amd.com", "example.com/gpu")])
    view = describe(_job({"example.com/gpu": 2}, parallelism=3), None, claims)
    assert view["gpus"]["byResource"] == {"amd.com/gpu": 6}
    # Without the DeviceClass the name is nothing the view knows.
    assert describe(_job({"example.com/gpu": 2}, parallelism=3))["gpus"]["total"] == 0


def test_a_device_plugin_name_served_by_dra_counts_once() -> None:
    claims = ClaimObjects([_device_class("gpu.nvidia.com", "nvidia.com/gpu")])
    view = describe(_job({"nvidia.com/gpu": 1, f"{IMPLICIT}gpu.nvidia.com": 1}, parallelism=2), None, claims)
    assert view["gpus"]["byResource"] == {"nvidia.com/gpu": 4}  # 2 pods x (1 + 1), nvidia.com/gpu once
    assert [e["resource"] for e in view["containers"][0]["gpus"]["draExtendedResources"]] == [
        f"{IMPLICIT}gpu.nvidia.com"
    ]


def test_the_later_device_class_serves_a_shared_name() -> None:
    older = _device_class("gpu.amd.com", "example.com/gpu", "2026-01-01T00:00:00Z")
    newer = _device_class("gpu.nvidia.com", "example.com/gpu", "2026-02-01T00:00:00Z")
    for order in ([older, newer], [newer, older]):
        view = describe(_job({"example.com/gpu": 1}, parallelism=1), None, ClaimObjects(order))
        assert view["gpus"]["byResource"] == {"nvidia.com/gpu": 1}


def test_a_class_that_is_no_gpu_class_is_not_counted() -> None:
    view = describe(_job({f"{IMPLICIT}nic.example.com": 4}))
    assert view["gpus"]["total"] == 0 and "draExtendedResources" not in view["containers"][0]["gpus"]


def test_init_containers_follow_the_effective_request_rule() -> None:
    name = f"{IMPLICIT}gpu.nvidia.com"
    view = describe(_job({name: 2}, parallelism=1, init={name: 4}))
    assert view["podTemplates"][0]["gpus"]["perPod"] == 4


def test_a_bad_quantity_is_a_problem_never_zero() -> None:
    view = describe(_job({f"{IMPLICIT}gpu.nvidia.com": "eight"}))
    assert any("spec.template.spec.containers[0].resources.limits" in p["path"] for p in view["problems"])


def test_hostile_container_with_ten_thousand_device_class_names_is_bounded() -> None:
    limits: dict[str, Any] = {f"{IMPLICIT}class-{i}.example.com": 1 for i in range(10_000)}
    limits[f"{IMPLICIT}gpu.nvidia.com"] = 1
    limits[f"{IMPLICIT}{'g' * 100_000}"] = 1
    view = describe(_job(limits, parallelism=1))
    gpus = view["containers"][0]["gpus"]
    assert gpus["byResource"] == {"nvidia.com/gpu": 1}
    assert len(gpus["draExtendedResources"]) == 1 and not view["problems"]


def test_hostile_device_class_with_a_huge_extended_resource_name_is_not_read() -> None:
    huge = "example.com/" + "g" * 1_000_000
    claims = ClaimObjects([_device_class("gpu.nvidia.com", huge)])
    view = describe(_job({huge: 1}, parallelism=1), None, claims)
    assert view["gpus"]["total"] == 0 and len(huge) > MAX_RESOURCE_NAME
    ok = "example.com/" + "g" * 63
    view = describe(_job({ok: 1}, parallelism=1), None, ClaimObjects([_device_class("gpu.nvidia.com", ok)]))
    assert view["gpus"]["total"] == 1


def _pod(limits: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ml"},
        "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": limits}}]},
        "status": status,
    }


def _generated_claim(count: int) -> dict[str, Any]:
    """The ResourceClaim the scheduler makes for a pod's DRA extended resources (as KEP-5004 shows it)."""
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {
            "name": "p-extended-resources-x7k9m",
            "namespace": "ml",
            "annotations": {"resource.kubernetes.io/extended-resource-claim": "true"},
        },
        "spec": {
            "devices": {
                "requests": [
                    {
                        "name": "container-0-request-0",
                        "exactly": {"deviceClassName": "gpu.nvidia.com", "count": count},
                    }
                ]
            }
        },
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "container-0-request-0", "device": f"gpu-{i}", "driver": "d", "pool": "n"}
                        for i in range(count)
                    ]
                }
            }
        },
    }


def test_usage_counts_the_pod_not_the_scheduler_generated_claim_again() -> None:
    status = {
        "phase": "Running",
        "extendedResourceClaimStatus": {
            "resourceClaimName": "p-extended-resources-x7k9m",
            "requestMappings": [
                {"containerName": "c", "requestName": "container-0-request-0", "resourceName": "x"}
            ],
        },
    }
    pod = _pod({f"{IMPLICIT}gpu.nvidia.com": 4}, status)
    # Even if a pod named the generated claim (it does not), its devices are the pod's limits already.
    pod["spec"]["resourceClaims"] = [{"name": "x", "resourceClaimName": "p-extended-resources-x7k9m"}]
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    inventory = from_documents([namespace, pod, _generated_claim(4)])
    team = inventory_view(inventory)["teams"]["default"]
    assert (team["gpusInUse"], team["gpusInUseByResource"]) == (4, {"nvidia.com/gpu": 4})
    assert pod_gpus_held(pod) == 4


def test_usage_reads_extended_resource_names_of_inventory_device_classes() -> None:
    pod = _pod({"example.com/gpu": 2}, {"phase": "Running"})
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}}
    inventory = from_documents([namespace, _device_class("gpu.nvidia.com", "example.com/gpu"), pod])
    assert inventory_view(inventory)["teams"]["default"]["gpusInUseByResource"] == {"nvidia.com/gpu": 2}


REPRO = """
apiVersion: batch/v1
kind: Job
metadata: {name: big, namespace: team-a}
spec:
  parallelism: 16
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: c
          image: nvcr.io/nvidia/cuda@sha256:0000000000000000000000000000000000000000000000000000000000000000
          resources:
            limits: {deviceclass.resource.kubernetes.io/gpu.nvidia.com: "8"}
"""


def test_check_denies_the_128_gpu_job_of_a_team_without_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, report = run_json(
        ["check", "--config", ACME_CONFIG, str(write(tmp_path / "job.yaml", REPRO))], capsys, monkeypatch
    )
    assert code == 1
    denied = {r["policy"]: r["message"] for r in report["results"] if r["outcome"] == "fail"}
    assert "asks for 128 GPUs" in denied["gpu-team-quota"]


def test_check_reads_device_classes_among_the_checked_manifests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = (
        REPRO.replace("deviceclass.resource.kubernetes.io/gpu.nvidia.com", "example.com/gpu")
        + """
---
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {name: gpu.nvidia.com}
spec: {extendedResourceName: example.com/gpu}
"""
    )
    code, report = run_json(
        ["check", "--config", ACME_CONFIG, str(write(tmp_path / "job.yaml", manifest))], capsys, monkeypatch
    )
    assert code == 1
    denied = {r["policy"]: r["message"] for r in report["results"] if r["outcome"] == "fail"}
    assert "asks for 128 GPUs" in denied["gpu-team-quota"]


def _claim_pod(requests: list[dict[str, Any]]) -> tuple[dict[str, Any], ClaimObjects]:
    template = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": "t", "namespace": "ml"},
        "spec": {"spec": {"devices": {"requests": requests}}},
    }
    pod = _pod({}, {})
    pod["spec"]["resourceClaims"] = [{"name": "gpus", "resourceClaimTemplateName": "t"}]
    return pod, ClaimObjects([template])


def test_resource_quota_charge_is_the_api_servers() -> None:
    pod, claims = _claim_pod(
        [
            {"name": "exact", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 3}},
            {"name": "all", "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"}},
            {
                "name": "either",
                "firstAvailable": [
                    {"name": "big", "deviceClassName": "gpu.nvidia.com", "count": 4},
                    {"name": "small", "deviceClassName": "gpu.nvidia.com", "count": 1},
                ],
            },
        ]
    )
    view = describe(pod, None, claims)
    (claim,) = view["podTemplates"][0]["resourceClaims"]
    charges = {d["request"]: d["resourceQuotaCharge"] for d in claim["devices"]}
    assert charges == {"exact": 3, "all": 32, "either/big": 4}
    assert claim["resourceQuotaCharge"] == 39 and claim["gpus"] == 7  # All is a finding, never 0
    (finding,) = [p for p in view["problems"] if "allocationMode" in p["message"]]
    assert (
        "ResourceQuota charges it as 32 devices of gpu.nvidia.com.deviceclass.resource.k8s.io/devices"
        in (finding["message"])
    )
