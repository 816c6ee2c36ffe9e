"""`policyengine check --inventory` with spec.gpu.teamsFrom kueue: the ClusterQueue's nominal quota is the
budget its namespaces share, DRA device classes count through Kueue's deviceClassMappings, and hostile
Kueue objects are bounded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.inventory import from_documents
from policyengine.kueue import MAX_FLAVORS, MAX_GROUPS, KueueBudgets
from tests.helpers import run_json, write

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: kueue}
spec:
  gpu: {teamsFrom: kueue}
"""
QUEUES = """
apiVersion: kueue.x-k8s.io/v1beta2
kind: ClusterQueue
metadata: {name: cq}
spec:
  resourceGroups:
    - coveredResources: [nvidia.com/gpu, example.com/gpu]
      flavors:
        - name: any
          resources:
            - {name: nvidia.com/gpu, nominalQuota: 16}
            - {name: example.com/gpu, nominalQuota: "8"}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: q, namespace: a}
spec: {clusterQueue: cq}
---
apiVersion: kueue.x-k8s.io/v1beta2
kind: LocalQueue
metadata: {name: q, namespace: b}
spec: {clusterQueue: cq}
---
apiVersion: v1
kind: Pod
metadata: {name: p8, namespace: a}
spec: {containers: [{name: c, image: "x@sha256:0000000000000000000000000000000000000000000000000000000000000000", resources: {limits: {nvidia.com/gpu: 8}}}]}
status: {phase: Running}
---
apiVersion: v1
kind: Pod
metadata: {name: p4, namespace: b}
spec: {containers: [{name: c, image: "x@sha256:0000000000000000000000000000000000000000000000000000000000000000", resources: {limits: {nvidia.com/gpu: 4}}}]}
status: {phase: Running}
"""
MAPPING = """
apiVersion: config.kueue.x-k8s.io/v1beta2
kind: Configuration
resources:
  deviceClassMappings: [{name: example.com/gpu, deviceClassNames: [gpu.nvidia.com]}]
"""


DRA_JOB = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: eight, namespace: a}
spec:
  spec:
    devices:
      requests: [{name: g, exactly: {deviceClassName: gpu.nvidia.com, count: 8}}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: dra, namespace: a, labels: {kueue.x-k8s.io/queue-name: q}}
spec:
  template:
    spec:
      restartPolicy: Never
      resourceClaims: [{name: g, resourceClaimTemplateName: eight}]
      containers: [{name: c, image: "x@sha256:0000000000000000000000000000000000000000000000000000000000000000", resources: {claims: [{name: g}]}}]
"""


def _job(name: str, gpus: int, namespace: str = "b", queue: str = "q") -> str:
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: {namespace}, labels: {{kueue.x-k8s.io/queue-name: {queue}}}}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{{name: c, image: "x@sha256:0000000000000000000000000000000000000000000000000000000000000000", resources: {{limits: {{nvidia.com/gpu: {gpus}}}}}}}]
"""


def _check(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    manifest: str,
    inventory: str,
) -> tuple[int, dict[str, str]]:
    config = write(tmp_path / "config.yaml", CONFIG)
    inv = write(tmp_path / "inventory.yaml", inventory)
    job = write(tmp_path / "job.yaml", manifest)
    code, report = run_json(
        ["check", "--config", str(config), "--inventory", str(inv), str(job)], capsys, monkeypatch
    )
    failed: dict[str, str] = {
        r["policy"]: r["message"] for r in report["results"] if r["outcome"] in ("fail", "error")
    }
    return code, failed


def test_dra_claims_count_against_the_quota_their_mapping_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 12 held + 8 DRA GPUs: over the 16 of nvidia.com/gpu alone, within 24 once example.com/gpu (8) is
    # mapped to the gpu.nvidia.com class the claim asks for.
    code, failed = _check(tmp_path, capsys, monkeypatch, DRA_JOB, QUEUES)
    assert code == 1 and "20 is over the quota of 16" in failed["gpu-team-quota"]
    code, failed = _check(tmp_path, capsys, monkeypatch, DRA_JOB, QUEUES + "---" + MAPPING)
    assert code == 0, failed


def test_an_eight_gpu_job_is_denied_and_a_four_gpu_one_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, failed = _check(tmp_path, capsys, monkeypatch, _job("big", 8), QUEUES)
    assert code == 1
    assert failed["gpu-team-quota"] == (
        "ClusterQueue cq (LocalQueue b/q) uses 12 GPUs and Job big adds 8: 20 is over the quota of 16"
    )
    code, failed = _check(tmp_path, capsys, monkeypatch, _job("small", 4), QUEUES)
    assert code == 0, failed


def test_a_missing_local_queue_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, failed = _check(tmp_path, capsys, monkeypatch, _job("j", 1, namespace="c"), QUEUES)
    assert code == 1
    assert (
        failed["gpu-kueue-queue"]
        == "Job j uses GPUs but LocalQueue q is not in namespace c (--inventory or the cluster)"
    )


def test_dra_classes_count_through_device_class_mappings() -> None:
    inventory = from_documents([*_docs(QUEUES), *_docs(MAPPING)])
    budgets = KueueBudgets.build(inventory, {"spec": {"gpu": {"teamsFrom": "kueue"}}})
    quota = budgets.quota(
        "a", {"metadata": {"labels": {"kueue.x-k8s.io/queue-name": "q"}}}, {}, ["nvidia.com/gpu"]
    )
    # example.com/gpu stands for gpu.nvidia.com, whose devices the workload view counts as nvidia.com/gpu.
    assert quota["limits"]["quota"] == 24
    assert quota["limits"]["quotaByResource"] == {"nvidia.com/gpu": 24}
    assert quota["gpusInUse"] == 12 and quota["problems"] == []
    # Without the mapping example.com/gpu is no GPU resource Kueue's quota could stand for.
    unmapped = KueueBudgets.build(from_documents(_docs(QUEUES)), {})
    assert unmapped.pools["cq"].quota == 16


def test_hostile_cluster_queues_are_bounded_and_reported() -> None:
    flavors = [
        {"name": f"f{i}", "resources": [{"name": "nvidia.com/gpu", "nominalQuota": 1}]} for i in range(10_000)
    ]
    many_flavors = {"coveredResources": ["nvidia.com/gpu"], "flavors": flavors}
    docs: list[Any] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "wide"},
            "spec": {"resourceGroups": [many_flavors]},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ClusterQueue",
            "metadata": {"name": "deep"},
            "spec": {"resourceGroups": [many_flavors] * 10_000},
        },
    ]
    budgets = KueueBudgets.build(from_documents(docs), {})
    wide, deep = budgets.pools["wide"], budgets.pools["deep"]
    assert wide.quota == 0 and f"10000 flavors, over Kueue's {MAX_FLAVORS}: not read" in wide.problems[0]
    assert deep.quota == 0 and deep.problems == [
        f"has 10000 resourceGroups, over Kueue's {MAX_GROUPS}: not read"
    ]


def _docs(text: str) -> list[Any]:
    import yaml

    return [d for d in yaml.safe_load_all(text) if d]


def test_upstream_kueue_samples_give_their_nominal_gpu_quota(shared: Path) -> None:
    upstream = shared / "corpus" / "upstream" / "kueue"
    tas = from_documents(_docs((upstream / "tas__sample-gpu-queues.yaml").read_text()))
    label = {"metadata": {"labels": {"kueue.x-k8s.io/queue-name": "tas-user-queue"}}}
    quota = KueueBudgets.build(tas, {}).quota("default", label, {}, ["nvidia.com/gpu"])
    assert (quota["clusterQueue"], quota["limits"]["quota"], quota["problems"]) == (
        "tas-cluster-queue",
        16,
        [],
    )
    # The DRA sample's example.com/gpu is a GPU only through a deviceClassMappings entry naming a GPU class.
    dra = _docs((upstream / "dra__sample-dra-queues.yaml").read_text())
    unmapped = KueueBudgets.build(from_documents(dra), {}).quota("default", label, {}, [])
    assert unmapped["problems"] == [
        "LocalQueue tas-user-queue is not in namespace default (--inventory or the cluster)"
    ]
    mapped = KueueBudgets.build(from_documents([*dra, *_docs(MAPPING)]), {})
    assert mapped.pools["cluster-queue"].by_resource == {"nvidia.com/gpu": 8}
    assert KueueBudgets.build(from_documents(dra), {}).pools["cluster-queue"].quota == 0
