"""`policyengine check` with a team GPU memory budget (gpuMemory): MIG partitions charged in GPU memory
through the ResourceSlices of --inventory, and GPUs whose memory nothing says reported, never 0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from policyengine.policyset import bundled_policies_dir
from tests.helpers import run_json, write

PACK_TESTS = bundled_policies_dir() / "gpu-quotas" / "tests" / "memory"
JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: finetune, namespace: llm}
spec:
  parallelism: PODS
  template:
    spec:
      restartPolicy: Never
      resourceClaims: [{name: part, resourceClaimTemplateName: mig-3g40}]
      containers:
        - name: t
          image: busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
          resources: {claims: [{name: part}]}
"""


def _check(tmp_path: Path, manifest: str, capsys: Any, monkeypatch: Any) -> tuple[int, dict[str, str]]:
    path = write(tmp_path / "job.yaml", manifest)
    args = ["check", str(path), "--config", str(PACK_TESTS / "config.yaml")]
    code, report = run_json([*args, "--inventory", str(PACK_TESTS / "cluster.yaml")], capsys, monkeypatch)
    assert report["summary"]["errors"] == 0
    found = {r["policy"]: r["message"] for r in report["results"] if r["outcome"] == "fail"}
    return code, found


def test_mig_partitions_over_the_memory_budget_fail_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 170Gi held + 12 x 40Gi = 650Gi > 640Gi; 11 pods (610Gi) fit.
    code, found = _check(tmp_path, JOB.replace("PODS", "12"), capsys, monkeypatch)
    assert code == 1
    assert found["gpu-memory-quota"] == (
        "team llm uses 170Gi of GPU memory and Job finetune adds 480Gi (12 x 42949672960 bytes in "
        "spec.template.spec): over the gpuMemory budget of 640Gi"
    )
    code, found = _check(tmp_path, JOB.replace("PODS", "11"), capsys, monkeypatch)
    assert "gpu-memory-quota" not in found


def test_a_gpu_of_unknown_memory_under_a_memory_budget_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = """
apiVersion: v1
kind: Pod
metadata: {name: whole, namespace: llm}
spec:
  containers: [{name: c, image: x, resources: {limits: {nvidia.com/gpu: 2}}}]
"""
    code, found = _check(tmp_path, pod, capsys, monkeypatch)
    assert code == 1
    assert "the memory of 2 nvidia.com/gpu per pod in spec" in found["gpu-memory-quota"]
