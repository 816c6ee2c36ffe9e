"""DRA claims in the workload view: both API shapes, counting modes, sharing, and hostile claim objects."""

from __future__ import annotations

import json
from typing import Any

from policyengine.workloads import ClaimObjects, describe
from policyengine.workloads.dra import (
    MAX_ALTERNATIVES,
    MAX_EXPRESSION,
    MAX_POD_CLAIMS,
    MAX_REQUESTS,
    MAX_SELECTORS,
    MAX_VIEW_SELECTOR_TEXT,
)


def template(name: str, requests: list[Any], version: str = "v1", ns: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": f"resource.k8s.io/{version}",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"spec": {"devices": {"requests": requests}}},
    }


def claim(name: str, requests: list[Any], ns: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"devices": {"requests": requests}},
    }


def job(claims: list[dict[str, Any]], parallelism: int = 16, ns: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train", "namespace": ns},
        "spec": {
            "parallelism": parallelism,
            "template": {"spec": {"resourceClaims": claims, "containers": [{"name": "c", "image": "x"}]}},
        },
    }


EIGHT_V1 = [{"name": "gpus", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 8}}]


def test_a_template_counts_per_pod_and_a_shared_claim_once() -> None:
    objects = ClaimObjects([template("eight", EIGHT_V1), claim("shared", EIGHT_V1)])
    per_pod = describe(job([{"name": "g", "resourceClaimTemplateName": "eight"}]), None, objects)
    assert (per_pod["gpus"]["total"], per_pod["gpus"]["maxPerPod"]) == (128, 8)
    assert per_pod["gpus"]["byResource"] == {"nvidia.com/gpu": 128}
    shared = describe(job([{"name": "g", "resourceClaimName": "shared"}]), None, objects)
    assert (shared["gpus"]["total"], shared["gpus"]["maxPerPod"]) == (8, 8)
    assert shared["podTemplates"][0]["gpus"] == {"perPod": 8, "byResource": {"nvidia.com/gpu": 8}}
    assert per_pod["problems"] == shared["problems"] == []


def test_a_shared_claim_named_by_two_templates_counts_once() -> None:
    objects = ClaimObjects([claim("shared", EIGHT_V1)])
    spec = {"resourceClaims": [{"name": "g", "resourceClaimName": "shared"}], "containers": []}
    lws = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "w", "namespace": "ml"},
        "spec": {
            "replicas": 2,
            "leaderWorkerTemplate": {
                "size": 3,
                "leaderTemplate": {"spec": spec},
                "workerTemplate": {"spec": spec},
            },
        },
    }
    view = describe(lws, None, objects)
    assert view["gpus"]["total"] == 8


def test_both_api_shapes_and_first_available() -> None:
    v1beta1 = [
        {"name": "a", "deviceClassName": "gpu.nvidia.com", "count": 2},
        {"name": "b", "deviceClassName": "mig.nvidia.com"},
    ]
    alternatives = [
        {
            "name": "either",
            "firstAvailable": [
                {"name": "small", "deviceClassName": "gpu.nvidia.com", "count": 1},
                {"name": "big", "deviceClassName": "gpu.amd.com", "count": 4},
                {"name": "nic", "deviceClassName": "nic.example.com", "count": 9},
            ],
        }
    ]
    objects = ClaimObjects([template("old", v1beta1, "v1beta1"), template("alt", alternatives, "v1beta2")])
    view = describe(
        job(
            [
                {"name": "o", "resourceClaimTemplateName": "old"},
                {"name": "a", "resourceClaimTemplateName": "alt"},
            ],
            1,
        ),
        None,
        objects,
    )
    assert view["podTemplates"][0]["gpus"]["byResource"] == {
        "amd.com/gpu": 4,
        "mig.nvidia.com": 1,
        "nvidia.com/gpu": 2,
    }
    (chosen,) = view["podTemplates"][0]["resourceClaims"][1]["devices"]
    assert (chosen["request"], chosen["deviceClass"], chosen["count"], chosen["firstAvailable"]) == (
        "either/big",
        "gpu.amd.com",
        4,
        3,
    )
    assert view["problems"] == []


def test_configured_device_classes_decide_what_is_a_gpu() -> None:
    objects = ClaimObjects(
        [template("t", [{"name": "x", "exactly": {"deviceClassName": "tpu.example.com"}}])]
    )
    obj = job([{"name": "t", "resourceClaimTemplateName": "t"}], 2)
    assert describe(obj, None, objects)["gpus"]["total"] == 0
    config = {"spec": {"gpu": {"deviceClasses": {"tpu.example.com": "example.com/tpu"}}}}
    assert describe(obj, config, objects)["gpus"]["byResource"] == {"example.com/tpu": 2}


def test_all_and_bad_counts_are_problems_never_zero_silently() -> None:
    requests = [
        {"name": "all", "exactly": {"deviceClassName": "gpu.nvidia.com", "allocationMode": "All"}},
        {"name": "neg", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": -1}},
        {"name": "txt", "deviceClassName": "gpu.nvidia.com", "count": "8"},
        {"name": "nic", "exactly": {"deviceClassName": "nic.example.com", "allocationMode": "All"}},
    ]
    view = describe(
        job([{"name": "t", "resourceClaimTemplateName": "t"}]), None, ClaimObjects([template("t", requests)])
    )
    assert [p["message"].split(":")[0] for p in view["problems"]] == [
        "ResourceClaimTemplate t spec.spec.devices.requests[0].exactly.allocationMode",
        "ResourceClaimTemplate t spec.spec.devices.requests[1].exactly.count",
        "ResourceClaimTemplate t spec.spec.devices.requests[2].count",
    ]
    assert {p["path"] for p in view["problems"]} == {"spec.template.spec.resourceClaims[0]"}


def test_claims_resolve_in_the_request_namespace() -> None:
    objects = ClaimObjects([template("eight", EIGHT_V1, ns="team-a")])
    obj = job([{"name": "g", "resourceClaimTemplateName": "eight"}], 1, ns="")
    assert describe(obj, None, objects, "team-a")["gpus"]["total"] == 8
    missing = describe(obj, None, objects)  # no namespace anywhere: "default"
    assert missing["gpus"]["total"] == 0
    assert "not found in namespace default" in missing["problems"][0]["message"]


# --- hostile claim objects ---------------------------------------------------------------------------------


def test_hostile_claim_objects_are_bounded() -> None:
    huge = "x" * (MAX_EXPRESSION * 4)
    selectors = [{"cel": {"expression": huge}}] * 1000
    sub = {"name": "s" * 100_000, "deviceClassName": "gpu.nvidia.com", "count": 2**80, "selectors": selectors}
    requests: list[Any] = [
        {"name": {"nested": ["junk"] * 1000}, "exactly": {"deviceClassName": ["not", "a", "string"]}},
        {"name": "alts", "firstAvailable": [sub] * 1000},
        {"name": "sel", "exactly": {"deviceClassName": "gpu.nvidia.com", "selectors": selectors}},
        "not a mapping",
        None,
    ] * 1000
    pod_claims = [{"name": "t", "resourceClaimTemplateName": "t"}] * 1000 + [{"resourceClaimName": huge}]
    objects = ClaimObjects([template("t", requests)])
    view = describe(job(pod_claims), None, objects)
    size = len(json.dumps(view))
    claims = view["podTemplates"][0]["resourceClaims"]
    assert len(claims) == MAX_POD_CLAIMS
    devices = claims[0]["devices"]
    assert len(devices) == MAX_REQUESTS
    assert all(len(d["selectors"]) <= MAX_SELECTORS for d in devices)
    assert all(len(s) <= MAX_EXPRESSION + 40 for d in devices for s in d["selectors"])
    assert all(len(d["request"]) <= 600 and d["firstAvailable"] <= MAX_ALTERNATIVES for d in devices)
    # Out of range counts, over-long lists and selectors are problems, and the view stays small: each
    # claim object is read once, whatever the number of pod claims naming it.
    assert any("more than Kubernetes allows (32)" in p["message"] for p in view["problems"])
    assert any("is not a positive integer" in p["message"] for p in view["problems"])
    assert any("more than the view keeps" in p["message"] for p in view["problems"])
    assert len(view["problems"]) < 1000
    assert size < 2 * MAX_VIEW_SELECTOR_TEXT + 1024 * 1024, size


def test_claim_objects_index_is_bounded(monkeypatch: Any) -> None:
    from policyengine.workloads import claims

    monkeypatch.setattr(claims, "MAX_CLAIM_OBJECTS", 3)
    objects = ClaimObjects(
        [template(f"t{i}", EIGHT_V1) for i in range(10)] + [{"kind": "ResourceClaim"}, "junk", None]
    )
    assert len(objects) == 3
    assert objects.get("ResourceClaimTemplate", "ml", "t2") is not None
    assert objects.get("ResourceClaimTemplate", "ml", "t3") is None
