"""GPU memory beside the device count: ``workload.gpuMemory``, ``podTemplates[].gpuMemory``, each DRA
device's ``memory``, team usage in memory (``org.quota.gpuMemoryInUse``) and the UPDATE charge;
ResourceSlices read within bounds."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from policyengine import Engine
from policyengine.codec import request_from_manifest
from policyengine.errors import LoadError
from policyengine.inventory import from_documents
from policyengine.memory_usage import memory_by_team
from policyengine.org import OrgRules
from policyengine.policyset import bundled_policies_dir, load_policy_set
from policyengine.views import views_for
from policyengine.workloads import ClaimObjects, DeviceMemory, describe
from policyengine.workloads.slices import MAX_DEVICES, MAX_KEYS, memory_bytes

GI = 2**30
NOW = datetime(2026, 1, 1, tzinfo=UTC)
PACK_TESTS = bundled_policies_dir() / "gpu-quotas" / "tests" / "memory"


def _cluster() -> list[Any]:
    cluster = yaml.safe_load((PACK_TESTS / "cluster.yaml").read_text())
    items: list[Any] = cluster["items"]
    return items


def _template(name: str, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaimTemplate",
        "metadata": {"name": name, "namespace": "llm"},
        "spec": {"spec": {"devices": {"requests": [{"name": "r", "exactly": request}]}}},
    }


def _job(pods: int, claims: list[dict[str, str]], limits: dict[str, Any] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "x", "resources": {"limits": limits or {}}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "namespace": "llm"},
        "spec": {
            "parallelism": pods,
            "template": {"spec": {"resourceClaims": claims, "containers": [container]}},
        },
    }


def test_memory_per_pod_and_per_workload_from_every_source() -> None:
    items = _cluster()
    objects = ClaimObjects(items)
    job = _job(
        4,
        [
            {"name": "part", "resourceClaimTemplateName": "mig-3g40"},  # ResourceSlice counters: 40Gi
            {"name": "mem", "resourceClaimTemplateName": "shared-20g"},  # capacity.requests 20Gi -> 24Gi
            {"name": "one", "resourceClaimName": "held"},  # shared: 4 x 40Gi, once for the workload
        ],
        {"nvidia.com/mig-1g.10gb": 2},  # the profile name: 10Gi each
    )
    view = describe(job, None, objects, "llm", DeviceMemory(items))
    template = view["podTemplates"][0]
    assert template["gpuMemory"] == {
        "perPod": (40 + 24 + 160 + 20) * GI,
        "byResource": {
            "mig.nvidia.com": 160 * GI,
            "nvidia.com/gpu": 24 * GI,
            "nvidia.com/mig-1g.10gb": 20 * GI,
            "nvidia.com/mig-3g.40gb": 40 * GI,
        },
    }
    memory = view["gpuMemory"]
    assert memory["total"] == (4 * (40 + 24 + 20) + 160) * GI
    assert (memory["maxPerPod"], memory["known"], memory["unknown"], memory["charge"]) == (
        244 * GI,
        True,
        [],
        memory["total"],
    )
    sources = [d["memory"]["source"] for c in template["resourceClaims"] for d in c["devices"]]
    assert sources == ["ResourceSlice", "capacity.requests", "ResourceSlice"]
    # The device counts are unchanged by it.
    assert view["gpus"]["total"] == 4 * (1 + 1 + 2) + 4


def test_unknown_memory_is_listed_never_counted_as_zero() -> None:
    no_slices = describe(
        _job(2, [{"name": "part", "resourceClaimTemplateName": "mig-3g40"}]),
        None,
        ClaimObjects(_cluster()),
        "llm",
    )
    # Without ResourceSlices the pinned profile still names its memory.
    assert no_slices["gpuMemory"]["total"] == 2 * 40 * GI and no_slices["gpuMemory"]["known"]
    whole = _template("whole", {"deviceClassName": "gpu.nvidia.com", "count": 2})
    view = describe(
        _job(3, [{"name": "g", "resourceClaimTemplateName": "whole"}], {"nvidia.com/gpu": 1}),
        None,
        ClaimObjects([whole]),
        "llm",
    )
    assert view["gpuMemory"]["known"] is False
    assert [(u["resource"], u["devices"]) for u in view["gpuMemory"]["unknown"]] == [
        ("nvidia.com/gpu", 2),
        ("nvidia.com/gpu", 1),
    ]
    assert view["gpuMemory"]["total"] == 0
    # A capacity request that is not a quantity (here a map holding a huge number) is unknown, shown cut.
    odd = _template(
        "odd", {"deviceClassName": "gpu.nvidia.com", "capacity": {"requests": {"memory": {"a": 10**5000}}}}
    )
    view = describe(
        _job(1, [{"name": "g", "resourceClaimTemplateName": "odd"}]), None, ClaimObjects([odd]), "llm"
    )
    (entry,) = view["gpuMemory"]["unknown"]
    assert "is not a quantity" in entry["reason"] and len(entry["reason"]) < 300


def test_team_usage_in_memory_comes_from_allocated_devices_and_profile_names() -> None:
    items = _cluster()
    inventory = from_documents(items)
    usage = memory_by_team(inventory, None, DeviceMemory(items), ClaimObjects(items))
    assert usage["llm"] == (170 * GI, 0)
    # Without the ResourceSlices the allocated partitions' memory is unknown, and counted as such.
    assert memory_by_team(inventory, None, DeviceMemory(), ClaimObjects(items))["llm"] == (10 * GI, 4)
    # The pool's usage and budget in org.quota: only for a team with a memory budget.
    org = OrgRules.from_config(_config()).view(
        "llm", {}, inventory, {}, [], None, pools_memory={"llm": [170 * GI, 0]}
    )
    assert {k: v for k, v in org["quota"].items() if k.startswith("gpuMemory")} == {
        "gpuMemoryInUse": 170 * GI,
        "gpuMemoryUnknownInUse": 0,
        "gpuMemoryBudget": 640 * GI,
    }
    assert (
        "gpuMemoryInUse" not in OrgRules.from_config(_config()).view("open", {}, inventory, {}, [])["quota"]
    )


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PACK_TESTS / "config.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def engine() -> Engine:
    policies = [str(bundled_policies_dir() / "gpu-quotas")]
    config = [str(PACK_TESTS / "config.yaml")]
    return Engine(load_policy_set(policies, config_paths=config, include_bundled=False))


def test_an_update_is_charged_the_memory_it_adds(engine: Engine) -> None:
    inventory = from_documents(_cluster())
    claims = [{"name": "part", "resourceClaimTemplateName": "mig-3g40"}]
    new, old = _job(13, claims), _job(2, claims)
    request = replace(request_from_manifest(new, operation="UPDATE"), object=new, old_object=old)
    workload = views_for(engine.policy_set)(request, inventory, engine.policy_set.config, NOW)["workload"]
    assert workload["gpuMemory"]["charge"] == 11 * 40 * GI  # 2 -> 13 pods: 440Gi more
    decision = engine.evaluate(request, inventory=inventory, now=NOW)
    outcomes = {r.outcome.value for r in decision.results if r.policy == "gpu-memory-quota"}
    assert outcomes == {"pass"}
    grown = replace(request, object=_job(14, claims))  # 170 + 480 > 640
    decision = engine.evaluate(grown, inventory=inventory, now=NOW)
    (result,) = [r for r in decision.results if r.policy == "gpu-memory-quota" and r.outcome.value == "fail"]
    assert "adds 480Gi" in result.message


@pytest.mark.parametrize("budget", ["lots", "-1Gi", "1e99999", "9" * 100, "1Gb"])
def test_a_memory_budget_must_be_a_bounded_quantity(tmp_path: Path, budget: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: c}\n"
        f"spec: {{gpu: {{teams: {{a: {{gpuMemory: '{budget}'}}}}}}}}\n"
    )
    policies = [str(bundled_policies_dir() / "gpu-quotas")]
    with pytest.raises(LoadError, match="gpuMemory"):
        load_policy_set(policies, config_paths=[str(config)], include_bundled=False)


def test_hostile_quantities_are_bounded() -> None:
    assert memory_bytes("640Gi") == 640 * GI
    assert memory_bytes("1e1000") == 2**63 - 1  # saturates at int64
    assert memory_bytes("1e99999") is None  # refused on its exponent, never materialised
    assert memory_bytes("9" * 100_000) is None  # refused on its length
    assert memory_bytes(10**100_000) == 2**63 - 1  # a YAML number of bytes saturates, never becomes text
    assert memory_bytes("-1Gi") is None and memory_bytes(True) is None and memory_bytes({"a": 1}) is None


def _slice(devices: list[dict[str, Any]], name: str = "s") -> dict[str, Any]:
    return {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": name},
        "spec": {"driver": "gpu.nvidia.com", "pool": {"name": name}, "devices": devices},
    }


def test_hostile_slices_are_bounded() -> None:
    many_counters = {f"c{i}": {"value": "1e999"} for i in range(10_000)}
    device = {
        "name": "d",
        "attributes": {"type": {"string": "mig"}, "profile": {"string": "1g.5gb"}},
        "capacity": {f"k{i}": {"value": "1"} for i in range(10_000)},
        "consumesCounters": [{"counterSet": "s", "counters": {**many_counters, "memory": {"value": "5Gi"}}}]
        * 10_000,
    }
    index = DeviceMemory([_slice([device])])
    # capacity keys past the bound are not read; 8 counter entries of 5Gi are.
    assert index.allocated("gpu.nvidia.com", "s", "d") == 8 * 5 * GI
    # Devices and distinct kinds past the bounds are not indexed, and that is remembered.
    per_slice = [
        {
            "name": f"d{i}",
            "attributes": {"profile": {"string": f"p{i}"}},
            "capacity": {"memory": {"value": "1Gi"}},
        }
        for i in range(128)
    ]
    slices = [_slice(per_slice * 2, f"s{n}") for n in range(MAX_DEVICES // 128 + 2)]
    big = DeviceMemory(slices)
    assert len(big) == MAX_DEVICES and big.cut
    assert len(big.kinds) <= MAX_KEYS
