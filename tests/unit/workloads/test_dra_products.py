"""GPU products and MIG profiles of DRA requests: how node-label pinning combines with CEL product selectors
in ``gpuProducts``, MIG slices counted under ``nvidia.com/mig-<profile>`` in requests and in allocated
claims, and the bound on the selector text a workload makes the engine parse."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.workloads import ClaimObjects, describe, selectors
from policyengine.workloads.claims import DeviceClasses, allocated_gpus
from policyengine.workloads.dra import MAX_EXPRESSION, MAX_REQUESTS, MAX_SELECTORS
from policyengine.workloads.selectors import MAX_PARSED, selected_profiles

PRODUCT = "device.attributes['gpu.nvidia.com'].productName"
PROFILE = "device.attributes['gpu.nvidia.com'].profile"
H100, A100 = "NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-40GB"


def template(name: str, requests: list[Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"spec": {"devices": {"requests": requests}}},
    }


def request(name: str, device_class: str, *expressions: str, count: int = 1) -> dict[str, Any]:
    selectors_ = [{"cel": {"expression": e}} for e in expressions]
    return {
        "name": name,
        "exactly": {"deviceClassName": device_class, "count": count, "selectors": selectors_},
    }


def pod(claims: list[str], node_product: str | None = None, plugin_gpus: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "resourceClaims": [{"name": c, "resourceClaimTemplateName": c} for c in claims],
        "containers": [{"name": "c", "image": "x", "resources": {"claims": [{"name": c} for c in claims]}}],
    }
    if plugin_gpus:
        spec["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": plugin_gpus}
    if node_product:
        spec["nodeSelector"] = {"nvidia.com/gpu.product": node_product}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ml"}, "spec": spec}


def products(obj: dict[str, Any], *templates: dict[str, Any]) -> dict[str, Any]:
    view = describe(obj, None, ClaimObjects(templates))
    assert not view["problems"], view["problems"]
    result: dict[str, Any] = view["podTemplates"][0]["gpuProducts"]
    return result


H100_ONLY = template("h", [request("g", "gpu.nvidia.com", f"{PRODUCT} == 'NVIDIA H100 80GB HBM3'")])
EITHER = template("e", [request("g", "gpu.nvidia.com", f"{PRODUCT} in ['NVIDIA H100 80GB HBM3', '{A100}']")])
REGEX = template("r", [request("g", "gpu.nvidia.com", f"{PRODUCT}.matches('H100')")])
BARE = template("b", [request("g", "gpu.nvidia.com")])


def test_a_dra_selector_pins_the_template_the_node_label_does_not() -> None:
    got = products(pod(["e"]), EITHER)
    assert (got["pinned"], got["allowed"], got["path"]) == (True, [A100, H100], "spec.resourceClaims[0]")
    assert (got["request"], got["reason"], got["unread"]) == ("", "", "")


def test_node_label_and_dra_selector_allow_what_both_allow() -> None:
    got = products(pod(["e"], node_product=H100), EITHER)
    assert (got["pinned"], got["allowed"], got["path"]) == (True, [H100], "spec")


def test_the_node_label_pins_a_dra_request_without_a_product_selector() -> None:
    assert products(pod(["b"], node_product=H100), BARE)["allowed"] == [H100]


def test_every_dra_request_must_be_pinned_without_the_node_label() -> None:
    got = products(pod(["h", "r"]), H100_ONLY, REGEX)
    assert not got["pinned"] and got["allowed"] == []
    assert got["request"] == "ResourceClaimTemplate r request g (spec.spec.devices.requests[0].exactly)"
    assert got["unread"] == f"{PRODUCT}.matches('H100')"
    assert "no term compares the product attribute" in got["reason"]


def test_device_plugin_gpus_need_the_node_label_whatever_the_claims_select() -> None:
    got = products(pod(["h"], plugin_gpus=1), H100_ONLY)
    assert not got["pinned"] and got["reason"] == ""
    assert products(pod(["h"], node_product=H100, plugin_gpus=1), H100_ONLY)["allowed"] == [H100]


def test_non_gpu_requests_need_no_product() -> None:
    nic = template("n", [request("nic", "rdma.example.com")])
    got = products(pod(["h", "n"]), H100_ONLY, nic)
    assert (got["pinned"], got["allowed"]) == (True, [H100])


@pytest.mark.parametrize(
    "expressions, profiles",
    [
        ([f"{PROFILE} == '1g.5gb'"], ["1g.5gb"]),
        ([f"device.driver == 'gpu.nvidia.com' && {PROFILE} == '1g.12gb'"], ["1g.12gb"]),
        ([f"'2g.10gb' == {PROFILE}"], ["2g.10gb"]),
        ([f"{PROFILE} in ['1g.5gb', '2g.10gb']"], ["1g.5gb", "2g.10gb"]),
        ([f"{PROFILE} in ['1g.5gb', '2g.10gb']", f"{PROFILE} == '1g.5gb'"], ["1g.5gb"]),
    ],
)
def test_mig_profiles_are_read_like_products(expressions: list[str], profiles: list[str]) -> None:
    selection = selected_profiles(expressions)
    assert selection.pinned and list(selection.allowed) == profiles


@pytest.mark.parametrize(
    "device_class, expressions, resource",
    [
        ("mig.nvidia.com", [f"{PROFILE} == '1g.5gb'"], "nvidia.com/mig-1g.5gb"),
        ("mig.nvidia.com", [f"{PROFILE} == '1g.10gb+me'"], "nvidia.com/mig-1g.10gb+me"),
        ("mig.nvidia.com", [f"{PROFILE} in ['1g.5gb', '2g.10gb']"], "mig.nvidia.com"),  # not one profile
        ("mig.nvidia.com", [f"{PROFILE}.startsWith('1g')"], "mig.nvidia.com"),
        ("mig.nvidia.com", [], "mig.nvidia.com"),
        ("mig.nvidia.com", [f"{PROFILE} == '1g.5gb/../gpu'"], "mig.nvidia.com"),  # no resource name
        ("gpu.nvidia.com", [f"{PROFILE} == '1g.5gb'"], "nvidia.com/gpu"),  # a whole GPU has no profile
        ("gpu.example.com", [f"{PROFILE} == '1g.5gb'"], ""),
    ],
)
def test_a_mig_request_pinning_one_profile_counts_as_its_slices(
    device_class: str, expressions: list[str], resource: str
) -> None:
    assert DeviceClasses().request_resource(device_class, expressions, selectors.SelectorBudget()) == resource


def test_mig_profiles_count_in_the_view() -> None:
    mig = template(
        "m",
        [
            request("a", "mig.nvidia.com", f"{PROFILE} == '1g.5gb'", count=2),
            request("b", "mig.nvidia.com", f"{PROFILE} in ['1g.5gb', '2g.10gb']"),
        ],
    )
    view = describe(pod(["m"]), None, ClaimObjects([mig]))
    assert view["podTemplates"][0]["gpus"]["byResource"] == {"mig.nvidia.com": 1, "nvidia.com/mig-1g.5gb": 2}


def test_allocated_mig_slices_count_under_the_same_names() -> None:
    held = template(
        "held",
        [
            request("a", "mig.nvidia.com", f"{PROFILE} == '1g.5gb'"),
            {
                "name": "b",
                "firstAvailable": [
                    {"name": "small", "deviceClassName": "mig.nvidia.com", "selectors": []},
                    {
                        "name": "big",
                        "deviceClassName": "mig.nvidia.com",
                        "selectors": [{"cel": {"expression": f"{PROFILE} == '3g.20gb'"}}],
                    },
                ],
            },
        ],
    )
    claim = {**held, "kind": "ResourceClaim", "spec": held["spec"]["spec"]}
    claim["status"] = {
        "allocation": {
            "devices": {
                "results": [
                    {"request": "a", "device": "m0"},
                    {"request": "a", "device": "m1"},
                    {"request": "b/big", "device": "m2"},
                    {"request": "b/small", "device": "m3"},
                ]
            }
        }
    }
    assert allocated_gpus(claim, DeviceClasses()) == {
        "nvidia.com/mig-1g.5gb": 2,
        "nvidia.com/mig-3g.20gb": 1,
        "mig.nvidia.com": 1,
    }


def test_the_largest_template_parses_a_bounded_amount_of_selector_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """32 requests x 32 selectors of 10 KiB each, all distinct, in a MIG class: the engine parses at most
    MAX_PARSED characters of them for the workload, still counts every device, and says what it left
    unread (a problem for the MIG profiles, an unpinned product with the reason)."""
    parsed: list[int] = []
    real = selectors._read

    def counting(source: Any, attr: Any) -> Any:
        parsed.append(len(source))
        return real(source, attr)

    monkeypatch.setattr(selectors, "_read", counting)
    selectors._cached.cache_clear()

    def expression(i: int, j: int) -> str:
        head = f"{PROFILE} == '1g.5gb' && '{i}-{j}' != '"
        return head + "x" * (MAX_EXPRESSION - len(head) - 1) + "'"

    requests = [
        request(f"r{i}", "mig.nvidia.com", *(expression(i, j) for j in range(MAX_SELECTORS)))
        for i in range(MAX_REQUESTS)
    ]
    assert all(
        len(e["cel"]["expression"]) == MAX_EXPRESSION for r in requests for e in r["exactly"]["selectors"]
    )
    view = describe(pod(["big"]), None, ClaimObjects([template("big", requests)]))
    assert sum(parsed) <= MAX_PARSED
    assert view["podTemplates"][0]["gpus"]["perPod"] == MAX_REQUESTS  # counting does not depend on the bound
    assert any(f"past the {MAX_PARSED} characters" in p["message"] for p in view["problems"])
    got = view["podTemplates"][0]["gpuProducts"]
    assert not got["pinned"] and len(got["unread"]) <= 200


def test_an_instance_type_label_pins_the_node_but_does_not_narrow_a_dra_product_selector() -> None:
    """A DRA selector names NVIDIA products; a node pinned by its instance type keeps the request pinned,
    and the selector's product is what the GPU may be (the two vocabularies are not intersected)."""
    obj = pod(["h"])
    obj["spec"]["nodeSelector"] = {"node.kubernetes.io/instance-type": "p5.48xlarge"}
    got = products(obj, H100_ONLY)
    assert got["pinned"] and got["allowed"] == [H100]
    assert set(got["byLabel"]) == {"node.kubernetes.io/instance-type"}
    # An unpinned DRA request on such a node is pinned by the node label.
    got = products(obj, template("h", [request("g", "gpu.nvidia.com")]))
    assert got["pinned"] and got["allowed"] == ["p5.48xlarge"] and got["reason"] == ""
