"""`policyengine check` charges the checked set's workloads to their team together, in order (file, then
document): workloads that arrive together cannot take more than the team's quota."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_json, write

CONFIG = """
apiVersion: policyengine.io/v1
kind: GovernanceConfig
metadata: {name: c}
spec:
  gpu:
    teams:
      vision: {quota: 64}
"""
NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata: {name: cv, labels: {policyengine.io/team: vision}}
"""
JOB = """
---
apiVersion: batch/v1
kind: Job
metadata: {name: NAME, namespace: cv}
spec:
  parallelism: 3
  completions: 3
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: t
          image: busybox@sha256:0000000000000000000000000000000000000000000000000000000000000000
          resources: {limits: {nvidia.com/gpu: 8}}
"""


def test_three_jobs_of_24_gpus_in_one_file_take_no_more_than_a_64_gpu_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = "".join(JOB.replace("NAME", name) for name in ("a", "b", "c"))
    manifests = write(tmp_path / "jobs.yaml", NAMESPACE + jobs)
    config = write(tmp_path / "config.yaml", CONFIG)
    code, report = run_json(["check", str(manifests), "--config", str(config)], capsys, monkeypatch)
    assert code == 1
    failed = [r for r in report["results"] if r["outcome"] == "fail"]
    assert [(r["policy"], r["resource"]["name"]) for r in failed] == [("gpu-team-quota", "c")]
    # The running total and the workloads already charged are named.
    assert failed[0]["message"] == (
        "team vision uses 48 GPUs and Job c adds 24: 72 is over the quota of 64 "
        "(reservations counted: 48 reserved by cv/batch/Job/a (24), cv/batch/Job/b (24))"
    )


def test_every_later_workload_over_the_quota_is_denied_and_one_that_fits_is_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a, b: 48 of 64; c (24) and d (24) each take it over; e (8 GPUs: 1 pod) still fits: 56.
    jobs = "".join(JOB.replace("NAME", name) for name in ("a", "b", "c", "d"))
    small = (
        JOB.replace("NAME", "e")
        .replace("parallelism: 3", "parallelism: 1")
        .replace("completions: 3", "completions: 1")
    )
    write(tmp_path / "m" / "1.yaml", NAMESPACE + jobs)
    write(tmp_path / "m" / "2.yaml", small)
    config = write(tmp_path / "config.yaml", CONFIG)
    args = ["check", str(tmp_path / "m"), "--config", str(config)]
    code, report = run_json(args, capsys, monkeypatch)
    assert code == 1
    failed = [r["resource"]["name"] for r in report["results"] if r["outcome"] == "fail"]
    assert failed == ["c", "d"]
