"""GPU quotas in a scan: a running workload is judged against its pool without its own pods (they are
its usage, not another's), its charge whole; admission (``check``) still charges a new manifest in full."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from policyengine import ownusage
from policyengine.engine import Engine
from policyengine.gate import check_documents
from policyengine.inventory import from_documents
from policyengine.loader import Document
from policyengine.model import Inventory
from policyengine.policyset import load_policy_set
from policyengine.scan import background_engine, documents_of, scan
from tests.helpers import write

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# Pinned by digest, so no other policy denies the workloads: a passing one is charged to the scan's ledger.
IMAGE = "registry.example.com/trainer@sha256:" + "a" * 64
H100 = "NVIDIA-H100-80GB-HBM3"
QUOTAS = ("gpu-team-quota", "gpu-resource-quota", "gpu-product-quota")


def config(tmp_path: Path, quota: int) -> str:
    text = f"""
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {{name: teams}}
spec:
  gpu:
    resources: [nvidia.com/gpu]
    teams:
      ml:
        quota: {quota}
        quotaByResource: {{nvidia.com/gpu: {quota}}}
        quotaByProduct: {{{H100}: {quota}}}
"""
    return str(write(tmp_path / f"config-{quota}.yaml", text))


def container(gpus: int) -> dict[str, Any]:
    return {"name": "c", "image": IMAGE, "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}


def job(name: str, pods: int, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ml-train", "uid": f"uid-{name}"},
        "spec": {
            "parallelism": pods,
            "completions": pods,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container(gpus)]}},
        },
    }


def pod_of(name: str, i: int, gpus: int) -> dict[str, Any]:
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": f"uid-{name}", "controller": True}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{i}",
            "namespace": "ml-train",
            "creationTimestamp": "2026-05-01T00:00:00Z",  # before the scan: these pods run already
            "labels": {"job-name": name, "batch.kubernetes.io/controller-uid": f"uid-{name}"},
            "ownerReferences": [owner],
        },
        "spec": {"restartPolicy": "Never", "containers": [container(gpus)]},
        "status": {"phase": "Running"},
    }


NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "ml-train", "labels": {"policyengine.io/team": "ml"}},
}


def cluster(*jobs: tuple[str, int, int]) -> list[dict[str, Any]]:
    """The namespace, each Job and its running pods."""
    objects: list[dict[str, Any]] = [NAMESPACE]
    for name, pods, gpus in jobs:
        objects += [job(name, pods, gpus), *(pod_of(name, i, gpus) for i in range(pods))]
    return objects


def scanned(tmp_path: Path, quota: int, objects: list[dict[str, Any]]) -> dict[str, dict[str, list[Any]]]:
    """Per Job: its quota policies' results in a scan of ``objects``."""
    policy_set = load_policy_set([], config_paths=[config(tmp_path, quota)])
    report = scan(
        background_engine(policy_set), documents_of(objects), inventory=from_documents(objects), now=NOW
    )
    out: dict[str, dict[str, list[Any]]] = {}
    for c in report.checked:
        if c.decision.request.kind.kind == "Job":
            results = [r for r in c.decision.results if r.policy in QUOTAS]
            out[c.decision.request.name] = {p: [r for r in results if r.policy == p] for p in QUOTAS}
    return out


def outcomes(results: dict[str, list[Any]]) -> dict[str, set[str]]:
    return {p: {r.outcome.value for r in rs} for p, rs in results.items()}


ALL_PASS = {p: {"pass"} for p in QUOTAS}


def test_a_running_job_within_its_team_quota_passes_a_scan(tmp_path: Path) -> None:
    # 3 running pods hold 24 of the team's 32 GPUs: those 24 are the Job's own, not 24 more.
    assert outcomes(scanned(tmp_path, 32, cluster(("train", 3, 8)))["train"]) == ALL_PASS


def test_a_running_job_over_a_lowered_quota_fails_without_being_counted_twice(tmp_path: Path) -> None:
    results = scanned(tmp_path, 16, cluster(("train", 3, 8)))["train"]
    assert all(rs and rs[-1].outcome.value == "fail" for rs in results.values())  # the comparisons
    team = results["gpu-team-quota"][-1].message
    assert "uses 0 GPUs and Job train adds 24" in team and "24 is over the quota of 16" in team
    assert "48" not in team
    by_resource = results["gpu-resource-quota"][-1].message
    assert "nvidia.com/gpu: uses 0 and" in by_resource and "48" not in by_resource
    assert "48" not in results["gpu-product-quota"][-1].message


def test_two_running_jobs_of_a_team_pass_together_and_fail_together(tmp_path: Path) -> None:
    objects = cluster(("a", 2, 8), ("b", 2, 8))  # 16 + 16 running
    within = scanned(tmp_path / "32", 32, objects)
    assert {name: outcomes(r) for name, r in within.items()} == {"a": ALL_PASS, "b": ALL_PASS}
    over = scanned(tmp_path / "24", 24, objects)
    for name in ("a", "b"):
        team = over[name]["gpu-team-quota"]
        assert team[-1].outcome.value == "fail"
        assert "uses 16 GPUs and Job" in team[-1].message and "32 is over the quota of 24" in team[-1].message


def test_check_still_charges_the_same_job_in_full_as_a_new_manifest(tmp_path: Path) -> None:
    objects = cluster(("train", 3, 8))
    policy_set = load_policy_set([], config_paths=[config(tmp_path, 32)])
    doc = Document(data=job("train", 3, 8), file="job.yaml", line=1, index=0)
    report = check_documents(Engine(policy_set), [doc], inventory=from_documents(objects), now=NOW)
    team = [r for r in report.checked[0].decision.results if r.policy == "gpu-team-quota"]
    assert team[-1].outcome.value == "fail"  # admission: 24 in use + 24 more = 48 > 32
    assert "uses 24 GPUs and Job train adds 24" in team[-1].message


def test_hostile_ten_thousand_pods_of_one_workload_are_indexed_once_and_read_once() -> None:
    pods = [pod_of("big", i, 1) for i in range(10_000)]
    inventory = Inventory(objects=(job("big", 10_000, 1), *pods))
    index = ownusage.OwnUsage.build(inventory, {}, {}, products=True, memory=True)
    assert index.indexed == 10_000  # one entry per pod, whatever number of identities it names
    own = index.held(["ml-train/batch/Job/big", "uid:uid-big"])
    assert own["default"].devices == 10_000
    assert index.visited == 10_000  # each pod read once although it names the Job four ways
    for i in range(10_000):
        index.held([f"ml-train//Pod/big-{i}"])
    assert index.visited == 20_000


def test_hostile_ten_thousand_workloads_are_each_read_in_constant_work() -> None:
    objects = [o for i in range(10_000) for o in (job(f"j{i}", 1, 1), pod_of(f"j{i}", 0, 1))]
    index = ownusage.OwnUsage.build(Inventory(objects=tuple(objects)), {}, {}, products=True, memory=True)
    for i in range(10_000):
        assert index.held([f"ml-train/batch/Job/j{i}", f"uid:uid-j{i}"])["default"].devices == 1
    assert index.visited == 10_000


def test_a_scan_builds_the_index_once_per_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds: list[int] = []
    original = ownusage.OwnUsage.build.__func__  # type: ignore[attr-defined]

    def counting(cls: type[ownusage.OwnUsage], *args: Any, **kwargs: Any) -> ownusage.OwnUsage:
        builds.append(1)
        return original(cls, *args, **kwargs)  # type: ignore[no-any-return]

    monkeypatch.setattr(ownusage.OwnUsage, "build", classmethod(counting))
    objects = cluster(*((f"j{i}", 2, 1) for i in range(50)))
    assert all(outcomes(r) == ALL_PASS for r in scanned(tmp_path, 100, objects).values())
    assert len(builds) == 1


def test_pending_workloads_of_a_scan_are_still_charged_together(tmp_path: Path) -> None:
    # No pod shows a pending Job's GPUs: the first takes the pool's room, the second finds it taken.
    objects = [*cluster(("a", 2, 8)), job("p1", 2, 8), job("p2", 2, 8)]
    results = scanned(tmp_path, 32, objects)
    assert [results[n]["gpu-team-quota"][-1].outcome.value for n in ("a", "p1", "p2")] == [
        "pass",
        "pass",
        "fail",
    ]
    assert "uses 32 GPUs and Job p2 adds 16" in results["p2"]["gpu-team-quota"][-1].message


def memory_config(tmp_path: Path, budget: str) -> str:
    text = f"""
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {{name: memory}}
spec:
  gpu:
    teams:
      ml: {{quota: 64, gpuMemory: {budget}}}
"""
    return str(write(tmp_path / f"memory-{budget}.yaml", text))


def test_a_running_job_is_judged_against_the_memory_its_pods_do_not_hold(tmp_path: Path) -> None:
    mig = "nvidia.com/mig-1g.10gb"  # 10Gi each, read from the profile name
    objects = cluster(("train", 3, 1))
    for obj in objects[1:]:
        spec = obj["spec"]["template"]["spec"] if obj["kind"] == "Job" else obj["spec"]
        spec["containers"][0]["resources"]["limits"] = {mig: "1"}
    verdicts = {}
    for budget in ("40Gi", "20Gi"):
        policy_set = load_policy_set([], config_paths=[memory_config(tmp_path, budget)])
        report = scan(
            background_engine(policy_set), documents_of(objects), inventory=from_documents(objects), now=NOW
        )
        job_results = next(
            c for c in report.checked if c.decision.request.kind.kind == "Job"
        ).decision.results
        verdicts[budget] = [r for r in job_results if r.policy == "gpu-memory-quota"][-1]
    assert verdicts["40Gi"].outcome.value == "pass"  # 30Gi held, all of it the Job's own
    assert verdicts["20Gi"].outcome.value == "fail"
    assert "uses 0Gi of GPU memory and Job train adds 30Gi" in verdicts["20Gi"].message


def kueue_objects(nominal: int) -> list[dict[str, Any]]:
    queue: list[dict[str, Any]] = [
        {"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": {"name": "any"}},
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "cq"},
            "spec": {
                "namespaceSelector": {},
                "resourceGroups": [
                    {
                        "coveredResources": ["nvidia.com/gpu"],
                        "flavors": [
                            {
                                "name": "any",
                                "resources": [{"name": "nvidia.com/gpu", "nominalQuota": nominal}],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "default", "namespace": "ml-train"},
            "spec": {"clusterQueue": "cq"},
        },
    ]
    return [*cluster(("train", 3, 8)), *queue]


def test_under_kueue_a_running_job_is_judged_without_its_own_pods(tmp_path: Path) -> None:
    text = "apiVersion: policyengine.io/v1\nkind: GovernanceConfig\nmetadata: {name: k}\nspec:\n  gpu:\n"
    path = str(
        write(tmp_path / "kueue.yaml", text + "    teamsFrom: kueue\n    teams: {ml: {quota: 1000}}\n")
    )
    policy_set = load_policy_set([], config_paths=[path])
    verdicts = {}
    for nominal in (32, 16):
        objects = kueue_objects(nominal)
        report = scan(
            background_engine(policy_set), documents_of(objects), inventory=from_documents(objects), now=NOW
        )
        job_results = next(
            c for c in report.checked if c.decision.request.kind.kind == "Job"
        ).decision.results
        verdicts[nominal] = [r for r in job_results if r.policy == "gpu-team-quota"][-1]
    assert verdicts[32].outcome.value == "pass", verdicts[32].message  # 24 held, all the Job's own
    assert verdicts[16].outcome.value == "fail"
    assert "uses 0 GPUs and Job train adds 24" in verdicts[16].message and "48" not in verdicts[16].message
